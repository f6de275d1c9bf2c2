# bench/lib.sh - shell functions the workload scripts share (sourced).

# free_port: a TCP port on 127.0.0.1 nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT: wait (up to 10 s) until something accepts on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# quiet: with QUIET=1, wait (up to 10 min) until the 1-minute load average is
# below 0.5; warn if it never is.
quiet() {
	[[ ${QUIET:-0} == 1 ]] || return 0
	for _ in $(seq 120); do
		awk '{exit !($1 < 0.5)}' /proc/loadavg && return 0
		sleep 5
	done
	echo "# warning: host not quiet (load $(cut -d' ' -f1 /proc/loadavg)) before a round" >&2
}
