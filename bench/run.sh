#!/usr/bin/env bash
# bench/run.sh [WORKLOAD...] - the router through the shared load harness
# (../shared/bench: load generator, sinks, run.sh, compare.sh), each
# workload side by side with the peers available on this machine.
#
#   bench/run.sh                 # w1 w2 w3s w3p w4 w5, 3 repeats each
#   bench/run.sh w3s-paced w3p-paced  # w3s / w3p at a fixed datagram rate (PPS_W3S, PPS_W3P)
#   bench/run.sh w6              # 1000 carbon-c-relay rules (bench/w6-conf.sh), converted
#   bench/run.sh w7              # a carbon-c-relay aggregate of 10k groups (bench/w7-conf.sh), converted
#   bench/run.sh w8              # the StatsD server vs Etsy statsd (and Telegraf): bench/w8.sh
#   bench/run.sh w10             # prometheus_remote_write against graphite_exporter (GE=<binary>): bench/w10.sh
#   bench/run.sh w11             # Kafka: the producer and the consumer router's lines per CPU-second: bench/w11.sh
#   bench/run.sh w9              # w1 over a relay-to-relay link: plain, TLS, gzip, lz4, snappy
#                                # (router pairs; carbon-c-relay pairs plain and gzip, CCR_FULL or
#                                # ../shared/tools/build-carbon-c-relay.sh)
#   REPEAT=5 LINES=2000000 bench/run.sh w1 w2
#
# Prints, per workload, the harness's median table: rate, CPU-seconds, rate
# per CPU-second, loss and peak RSS of every system under test, with ratios;
# then each system's peak input socket receive queues (bench/sockq.py: the
# kernel memory a backlog holds, which the RSS does not show).
# Peers (run in the same interleaved rounds; only the router is required):
#   carbon-c-relay      if installed (apt-get install carbon-c-relay): w1, w2, w6, w7
#   Etsy proxy.js       STATSD_DIR=<dir>/node_modules/statsd (npm install statsd@0.9.0): w3s, w3p
#   others              PEER_W3, PEER_W4 and PEER_W5='name:command' (commands as
#                       in ../shared/bench/README.md, e.g. a statsd-http-proxy or a
#                       Polymur pair you built yourself)
# Environment: HARNESS (default ../shared/bench), REPEAT (3), ROUTER (a
# built binary; default: go build into a temp dir), RESULTS_DIR, ROUTER_B (a
# second build, run as SUT "router-b" in the same rounds: an A/B of a change),
# PEERS=0 (the router alone, e.g. for the scaling runs of PERFORMANCE.md),
# RMEM (bytes, default 268435456: net.core.rmem_default and rmem_max for the
# whole run, so that every system's UDP socket gets the same receive buffer;
# restored at the end; RMEM=0 leaves the host's), PPS_W3S / PPS_W3P (the
# datagram rates of the paced variants w3s-paced and w3p-paced).
# The run fails (exit 1) when any system has fewer than REPEAT good runs of a
# workload: its medians would rest on fewer runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench}
REPEAT=${REPEAT:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/router-bench.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$WORK}
[[ -d $HARNESS ]] || { echo "no harness at $HARNESS (set HARNESS)" >&2; exit 2; }
export BENCH=${BENCH:-$WORK/bench}
[[ -x $BENCH ]] || (cd "$HARNESS" && go build -o "$BENCH" .)
if [[ -z ${ROUTER:-} ]]; then
	ROUTER=$WORK/router
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$ROUTER" .) # static, as the .deb
fi
export ROUTER
workloads=("$@")
[[ ${#workloads[@]} -gt 0 ]] || workloads=(w1 w2 w3s w3p w4 w5)
failed_runs=0

# The same UDP receive buffer for every system under test: raise the host's
# default (and maximum) for the whole run, restore it at the end.
RMEM=${RMEM:-268435456}
if [[ $RMEM != 0 && " ${workloads[*]} " == *" w3"* ]]; then
	old_rmem=$(sysctl -n net.core.rmem_default) old_rmem_max=$(sysctl -n net.core.rmem_max)
	if sysctl -q -w net.core.rmem_max="$(( RMEM > old_rmem_max ? RMEM : old_rmem_max ))" net.core.rmem_default="$RMEM" 2>/dev/null; then
		trap 'sysctl -q -w net.core.rmem_default=$old_rmem net.core.rmem_max=$old_rmem_max' EXIT
	else
		echo "# warning: cannot set net.core.rmem_default (not root?): every system keeps the host's $old_rmem bytes" >&2
	fi
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/key.pem" \
	-out "$WORK/cert.pem" -days 7 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
export TLS_DIR=$WORK

# The router's configuration per workload, written from the BENCH_* ports.
router_cmd() {
	case $1 in
	w1) echo 'cat > $BENCH_WORKDIR/r.toml <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.broadcast]]
  protocol = "graphite"
  destinations = ["127.0.0.1:$BENCH_SINK1_PORT", "127.0.0.1:$BENCH_SINK2_PORT"]
  overflow = "block"
EOT
exec $ROUTER -config $BENCH_WORKDIR/r.toml' ;;
	w2) echo 'cat > $BENCH_WORKDIR/r.toml <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.consistent_hash]]
  hash = "carbon_ch"
  collision = "first"
  protocol = "graphite"
  destinations = ["127.0.0.1:$BENCH_SINK1_PORT:a", "127.0.0.1:$BENCH_SINK2_PORT:b"]
  overflow = "block"
EOT
exec $ROUTER -config $BENCH_WORKDIR/r.toml' ;;
	w3s | w3p | w3s-paced | w3p-paced) echo 'cat > $BENCH_WORKDIR/r.toml <<EOT
[[inputs.statsd]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.consistent_hash]]
  hash = "statsd"
  on_down = "rehash"
  [[outputs.consistent_hash.to.statsd]]
    address = "127.0.0.1:$BENCH_SINK1_PORT"
    admin = "127.0.0.1:$BENCH_SINK1_ADMIN_PORT"
  [[outputs.consistent_hash.to.statsd]]
    address = "127.0.0.1:$BENCH_SINK2_PORT"
    admin = "127.0.0.1:$BENCH_SINK2_ADMIN_PORT"
EOT
exec $ROUTER -config $BENCH_WORKDIR/r.toml' ;;
	w4) echo 'cat > $BENCH_WORKDIR/r.toml <<EOT
[[inputs.http_json]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.statsd]]
  address = "127.0.0.1:$BENCH_SINK1_PORT"
EOT
exec $ROUTER -config $BENCH_WORKDIR/r.toml' ;;
	w5) echo 'cat > $BENCH_WORKDIR/gw.toml <<EOT
[[inputs.https_batch]]
  listen = ""
  tls_listen = "127.0.0.1:$BENCH_AUX_PORT1"
  tls_cert = "$TLS_DIR/cert.pem"
  tls_key = "$TLS_DIR/key.pem"
  [inputs.https_batch.keystore]
    type = "static"
    keys = { bench = "bench-key-0123456789abcdef" }
[[outputs.graphite]]
  address = "127.0.0.1:$BENCH_SINK1_PORT"
EOT
cat > $BENCH_WORKDIR/px.toml <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.https_batch]]
  url = "https://127.0.0.1:$BENCH_AUX_PORT1"
  api_key = "bench-key-0123456789abcdef"
  ca_cert = "$TLS_DIR/cert.pem"
  overflow = "block"
EOT
$ROUTER -config $BENCH_WORKDIR/gw.toml &
exec $ROUTER -config $BENCH_WORKDIR/px.toml' ;;
	w9-*) # w1 through a relay-to-relay link: $1 = w9-plain | w9-tls | w9-gzip | w9-lz4 | w9-snappy
		local keys="" in_keys=""
		case $1 in
		w9-tls)
			keys="tls_ca = \"$TLS_DIR/cert.pem\""
			in_keys="tls_cert = \"$TLS_DIR/cert.pem\"
  tls_key = \"$TLS_DIR/key.pem\"" ;;
		w9-gzip | w9-lz4 | w9-snappy) keys="transport = \"${1#w9-}\"" in_keys=$keys ;;
		esac
		echo 'cat > $BENCH_WORKDIR/b.toml <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$BENCH_AUX_PORT1"
  '"$in_keys"'
[[outputs.broadcast]]
  protocol = "graphite"
  destinations = ["127.0.0.1:$BENCH_SINK1_PORT", "127.0.0.1:$BENCH_SINK2_PORT"]
  overflow = "block"
EOT
cat > $BENCH_WORKDIR/a.toml <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$BENCH_IN_PORT"
[[outputs.graphite]]
  address = "127.0.0.1:$BENCH_AUX_PORT1"
  overflow = "block"
  '"$keys"'
EOT
$ROUTER -config $BENCH_WORKDIR/b.toml &
$BENCH waitport -addr 127.0.0.1:$BENCH_AUX_PORT1
exec $ROUTER -config $BENCH_WORKDIR/a.toml' ;;
	w6 | w7) echo "$HERE/$1"'-conf.sh $BENCH_IN_PORT $BENCH_SINK1_PORT $BENCH_SINK2_PORT > $BENCH_WORKDIR/c.conf
$ROUTER convert carbon-c-relay $BENCH_WORKDIR/c.conf > $BENCH_WORKDIR/r.toml
exec $ROUTER -config $BENCH_WORKDIR/r.toml' ;;
	esac
}

for w in "${workloads[@]}"; do
	case $w in
	w8) exec "$HERE/w8.sh" ;; # StatsD server: its own sender, sink and rate search (ROUTER as built above)
	w11) exec "$HERE/w11.sh" ;; # Kafka producer and consumer against kfake: their own sender, sink and CPU rule (ROUTER as built above)
	w10) exec "$HERE/w10.sh" ;; # remote_write vs graphite_exporter: its own sender, sink and CPU rule (ROUTER as built above)
	esac
	if [[ $w == w9 ]]; then
		# w1 with the relay-to-relay link in between, plain, TLS and compressed:
		# router pairs, and carbon-c-relay pairs (the build with transports)
		suts=()
		for l in plain tls gzip lz4 snappy; do suts+=("router-$l" "$(router_cmd "w9-$l")"); done
		base=router-plain
		if [[ ${PEERS:-1} != 0 ]] && CCR_FULL=${CCR_FULL:-$("$ROOT/../shared/tools/build-carbon-c-relay.sh" 2>/dev/null)}; then
			for l in plain gzip; do suts+=("ccr-$l" "L=$l CCR=$CCR_FULL $HERE/w9-ccr.sh"); done
			base=ccr-gzip
		fi
		export LINES=${LINES:-2000000}
		echo "== w9 (w1 over a link)"
		(cd "$RESULTS_DIR" && LABEL=w9 RESULTS=$RESULTS_DIR/results-w9.jsonl BASE=$base "$HARNESS/compare.sh" w1 "$REPEAT" "${suts[@]}") | sed -n '/^| workload/,$p'
		continue
	fi
	suts=(router "$(router_cmd "$w")")
	if [[ -n ${ROUTER_B:-} ]]; then
		suts+=(router-b "$(router_cmd "$w" | sed "s#\$ROUTER#$ROUTER_B#g")")
	fi
	base=router
	[[ $w == w1 || $w == w2 || $w == w6 || $w == w7 ]] && export LINES=${LINES:-2000000}
	[[ ${PEERS:-1} == 0 ]] || case $w in # PEERS=0: the router (and ROUTER_B) alone
	w6 | w7)
		if command -v carbon-c-relay >/dev/null; then
			suts+=(ccr-q2M "$HERE/$w"'-conf.sh $BENCH_IN_PORT $BENCH_SINK1_PORT $BENCH_SINK2_PORT > $BENCH_WORKDIR/c.conf
exec carbon-c-relay -f $BENCH_WORKDIR/c.conf -q 2000000')
			base=ccr-q2M
		fi ;;
	w1 | w2)
		if command -v carbon-c-relay >/dev/null; then
			mode=forward
			[[ $w == w2 ]] && mode=carbon_ch
			suts+=(ccr-q2M "CCR_OPTS='-q 2000000' $HARNESS/peers/ccr.sh $mode")
			base=ccr-q2M
		fi ;;
	w3s | w3p | w3s-paced | w3p-paced)
		if [[ -n ${STATSD_DIR:-} ]]; then
			suts+=(proxyjs "$HARNESS/peers/statsd-proxyjs.sh")
			base=proxyjs
		fi
		if [[ -n ${PEER_W3:-} ]]; then
			suts+=("${PEER_W3%%:*}" "${PEER_W3#*:}")
			[[ $base != router ]] || base=${PEER_W3%%:*}
		fi ;;
	w4) if [[ -n ${PEER_W4:-} ]]; then suts+=("${PEER_W4%%:*}" "${PEER_W4#*:}"); base=${PEER_W4%%:*}; fi ;;
	w5) if [[ -n ${PEER_W5:-} ]]; then suts+=("${PEER_W5%%:*}" "${PEER_W5#*:}"); base=${PEER_W5%%:*}; fi ;;
	esac
	# every system's input sockets sampled for their receive queues
	# (bench/sockq.py, in a session of its own: not counted as the system's CPU)
	for ((i = 0; i < ${#suts[@]}; i += 2)); do
		rm -f "$RESULTS_DIR/sockq-$w-${suts[i]}.txt"
		suts[i + 1]="setsid python3 $HERE/sockq.py \$\$ $RESULTS_DIR/sockq-$w-${suts[i]}.txt \$BENCH_IN_PORT \$BENCH_AUX_PORT1 \$BENCH_AUX_PORT2 \$BENCH_AUX_PORT3 </dev/null >/dev/null 2>&1 &
${suts[i + 1]}"
	done
	echo "== $w"
	# w6 and w7 are the harness's w2 (one copy of each line over two sinks)
	# with the configuration of bench/w6-conf.sh (1000 rules) or
	# bench/w7-conf.sh (an aggregate) in front
	hw=$w pps=${PPS:-} lines=${LINES:-}
	case $w in
	w6 | w7) hw=w2 ;;
	# paced: 10 s of datagrams (w3p packs about 70 metrics in each)
	w3s-paced) hw=w3s pps=${PPS_W3S:-20000} lines=$((${PPS_W3S:-20000} * 10)) ;;
	w3p-paced) hw=w3p pps=${PPS_W3P:-1500} lines=$((${PPS_W3P:-1500} * 700)) ;;
	esac
	[[ $hw == w3s || $hw == w3p ]] && echo "# every system's UDP receive buffer: net.core.rmem_default = $(sysctl -n net.core.rmem_default) bytes (not in the peak RSS column)${pps:+; paced at $pps datagrams/s}"
	(cd "$RESULTS_DIR" && LABEL=$w PPS=$pps LINES=$lines RESULTS=$RESULTS_DIR/results-$w.jsonl BASE=$base "$HARNESS/compare.sh" "$hw" "$REPEAT" "${suts[@]}") \
		2> >(tee "$RESULTS_DIR/stderr-$w.log" >&2) | sed -n '/^| workload/,$p'
	wait
	sleep 0.3 # the last sampler writes its peak
	for ((i = 0; i < ${#suts[@]}; i += 2)); do
		f=$RESULTS_DIR/sockq-$w-${suts[i]}.txt
		[[ -s $f ]] && echo "# ${suts[i]}: peak input socket receive queues, median of $(wc -l <"$f") runs: $(sort -n "$f" | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f MiB (kernel memory, not in peak RSS)", m / 1048576}')"
	done
	if grep -q 'WARNING' "$RESULTS_DIR/stderr-$w.log"; then
		echo "# FAILED: $w: $(grep WARNING "$RESULTS_DIR/stderr-$w.log" | tr '\n' ' ')" >&2
		failed_runs=1
	fi
done
echo "# raw results: $RESULTS_DIR"
if [[ $failed_runs == 1 ]]; then
	echo "# FAILED: some system has fewer than $REPEAT good runs of a workload (above): its medians are not comparable" >&2
	exit 1
fi
