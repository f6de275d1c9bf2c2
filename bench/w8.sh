#!/usr/bin/env bash
# bench/w8.sh - workload w8 of issue #21: StatsD over UDP -> a StatsD server ->
# Graphite over TCP to a sink. 100k distinct names bench.w8.<i>, 60 % counters
# (:1|c), 30 % timers (:<v>|ms), 10 % gauges (:<v>|g), PER metrics per datagram.
#
#   STATSD_DIR=~/.cache/router-test/etsy-statsd/node_modules/statsd bench/w8.sh
#   QUIET=1 STATSD_DIR=... bench/run.sh w8                     # the same, through bench/run.sh
#   TELEGRAF=/path/to/telegraf STATSD_DIR=... bench/w8.sh     # Telegraf as a third SUT
#   RATE_router=200000 RATE_etsy=5000 STATSD_DIR=... bench/w8.sh   # skip the search
#
# SUTs, each flushing every FLUSH seconds (default 10, Etsy's default), percentiles [90],
# UDP socket receive buffer = the kernel default (net.core.rmem_default) for all
# of them, otherwise their defaults (the router and Etsy write idle names every
# flush, Telegraf's delete_counters/delete_timings defaults do not):
#   router    inputs.statsd (read_buffer = 0) -> [[aggregators.statsd]] -> outputs.graphite
#   etsy      Etsy statsd 0.9.0, node stats.js, graphite backend (STATSD_DIR)
#   telegraf  Telegraf's statsd input -> its graphite output (TELEGRAF=<binary>; optional),
#             built from its source with: GOSUMDB=off GOFLAGS=-mod=mod go build -tags
#             custom,inputs.statsd,outputs.graphite ./cmd/telegraf; its own defaults stay
#             (allowed_pending_messages = 10000, percentile_limit = 1000)
#
# Per SUT, the search steps the rate (metrics/s) up through RATES with one run
# of SEARCH_DURATION seconds each, and keeps the highest with loss < LOSS_MAX %.
# Then REPEAT rounds, the SUTs interleaved (A B A B ...), DURATION seconds each
# at each SUT's rate, and the median table:
#   SUT                the system under test
#   n                  runs the medians rest on (the script exits 1 if below REPEAT)
#   rate (metrics/s)   the sending rate: the highest loss-free one the search found
#   metrics per CPU-s  metrics delivered / user+system CPU seconds of the SUT's
#                      processes (/proc utime+stime) while the sender ran: median, min..max
#   loss % (max)       1 - (flushed counts of counters + timers) / (counters + timers sent),
#                      from stats_counts.<name> and stats.timers.<name>.count (Telegraf:
#                      bench_w8_<i> and bench_w8_<i>.count), summed over all flushes up
#                      to the final one after the sending; median (worst)
#   peak RSS MiB       VmHWM of the SUT's processes after the final flush
#   flush max s        the router's router_flush_duration_max_seconds{plugin="aggregators.statsd"}
#                      ("-" for the peers, which do not export one)
#   ratio vs etsy      metrics per CPU-s / Etsy statsd's (and "ratio vs telegraf" / Telegraf's)
# Each run also prints a line (verify's columns, see "# sut phase ..."): names_short
# = stream names whose flushed count is below what was sent to them, sut_udp_drops
# = datagrams the kernel dropped at the SUT's socket, flushes = distinct timestamps.
#
# Environment: REPEAT (5), DURATION (20 s per round), SEARCH_DURATION (10 s),
# RATES ("1000 2000 3000 5000 7000 10000 14000 ... 320000", steps of about 1.4x),
# LOSS_MAX (0.1), NAMES (100000), PER (metrics per datagram, 10), FLUSH (seconds between
# flushes, 10; SETTLE, the sink's wait for the final flush, defaults to FLUSH + 3 s), SUTS ("router
# etsy", plus telegraf when TELEGRAF is set), RATE_<sut> (skip that SUT's search),
# ROUTER (a built binary; default: go build), QUIET=1 (wait before each run until
# the 1-minute load average is below 0.5), RMEM_DEFAULT (bytes: set
# net.core.rmem_default for the whole run, for every SUT alike, and restore it
# at the end; needs root), KEEP=1 (keep the runs' directories), RESULTS (JSON lines).
# Sender, sink and SUT share the host's cores: "harness_cpu" in the run lines is
# CPU the SUT did not get.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPEAT=${REPEAT:-5}
DURATION=${DURATION:-20}
SEARCH_DURATION=${SEARCH_DURATION:-10}
RATES=${RATES:-"1000 2000 3000 5000 7000 10000 14000 20000 28000 40000 56000 80000 112000 160000 224000 320000"}
LOSS_MAX=${LOSS_MAX:-0.1}
NAMES=${NAMES:-100000}
PER=${PER:-10}
FLUSH=${FLUSH:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/w8-run.XXXXXX")
RESULTS=${RESULTS:-$WORK/results-w8.jsonl}
W8=$WORK/w8
(cd "$ROOT" && go build -o "$W8" ./bench/w8)
if [[ -z ${ROUTER:-} ]]; then
	ROUTER=$WORK/router
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$ROUTER" .)
fi
default_suts="router etsy"
[[ -n ${TELEGRAF:-} ]] && default_suts+=" telegraf"
read -r -a SUTS <<<"${SUTS:-$default_suts}"
for s in "${SUTS[@]}"; do
	case $s in
	router) ;;
	etsy) [[ -f ${STATSD_DIR:-}/stats.js ]] || { echo "etsy: set STATSD_DIR to an npm statsd@0.9.0 (node_modules/statsd)" >&2; exit 2; } ;;
	telegraf) [[ -x ${TELEGRAF:-} ]] || { echo "telegraf: set TELEGRAF to a built telegraf binary" >&2; exit 2; } ;;
	*) echo "unknown SUT $s" >&2; exit 2 ;;
	esac
done

RMEM_OLD=
if [[ -n ${RMEM_DEFAULT:-} ]]; then
	RMEM_OLD=$(cat /proc/sys/net/core/rmem_default)
	sysctl -qw net.core.rmem_default="$RMEM_DEFAULT"
	echo "# net.core.rmem_default raised from $RMEM_OLD to $RMEM_DEFAULT for this run (every SUT's UDP socket)"
fi
SINK_PID= SUT_SID=
stop_sut() {
	[[ -n $SUT_SID ]] || return 0
	kill -TERM -- "-$SUT_SID" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$SUT_SID" 2>/dev/null || break; sleep 0.1; done
	for p in $(ps -eo pid=,sid= | awk -v s="$SUT_SID" '$2==s{print $1}'); do kill -KILL "$p" 2>/dev/null || true; done
	wait "$SUT_SID" 2>/dev/null || true
	SUT_SID=
}
cleanup() {
	stop_sut
	[[ -z $SINK_PID ]] || kill -TERM "$SINK_PID" 2>/dev/null || true
	[[ -z $RMEM_OLD ]] || sysctl -qw net.core.rmem_default="$RMEM_OLD"
	[[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
echo "# w8: names=$NAMES per_datagram=$PER flush=${FLUSH}s rmem_default=$(cat /proc/sys/net/core/rmem_default) repeat=$REPEAT duration=${DURATION}s search=${SEARCH_DURATION}s loss_max=$LOSS_MAX%"
echo "# router: $ROUTER; etsy: ${STATSD_DIR:-}; telegraf: ${TELEGRAF:-}"

# free_block prints a port p with p, p+1, p+2, p+3 free for TCP and UDP.
free_block() {
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 12000))
		python3 - "$p" <<'PYEOF' 2>/dev/null && { echo "$p"; return; }
import socket, sys
b = int(sys.argv[1])
for off in range(4):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind); s.bind(('127.0.0.1', b + off)); s.close()
PYEOF
	done
	echo "no free ports" >&2
	exit 1
}

# sut_start NAME DIR IN SINK AUX: writes NAME's configuration into DIR and
# starts it in its own session (SUT_SID).
sut_start() {
	local name=$1 d=$2 in=$3 sink=$4 aux=$5
	case $name in
	router)
		cat >"$d/r.toml" <<EOT
[agent]
  stats_addr = "127.0.0.1:$aux"
[[inputs.statsd]]
  listen = "127.0.0.1:$in"
  read_buffer = 0
[[aggregators.statsd]]
  flush_interval = "${FLUSH}s"
  percent_threshold = [90]
[[outputs.graphite]]
  address = "127.0.0.1:$sink"
  buffer_limit = 20000000 # a flush is one batch of every line: NAMES=1000000 makes 5.5 million
EOT
		setsid bash -c "exec '$ROUTER' -config '$d/r.toml'" >"$d/sut.log" 2>&1 </dev/null &
		;;
	etsy)
		cat >"$d/etsy.js" <<EOT
{ port: $in, address: "127.0.0.1", mgmt_port: $aux, mgmt_address: "127.0.0.1",
  flushInterval: $((FLUSH * 1000)), percentThreshold: [90], backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: $sink, automaticConfigReload: false }
EOT
		setsid bash -c "cd '$STATSD_DIR' && exec node stats.js '$d/etsy.js'" >"$d/sut.log" 2>&1 </dev/null &
		;;
	telegraf)
		# counts per interval (delete_counters, delete_timings), gauges kept
		# like Etsy's; names "bench_w8_<i>" (the input's metric_separator "_")
		cat >"$d/t.conf" <<EOT
[agent]
  interval = "${FLUSH}s"
  flush_interval = "${FLUSH}s"
  flush_jitter = "0s"
  metric_batch_size = 10000
  metric_buffer_limit = 2000000
  omit_hostname = true
[[inputs.statsd]]
  protocol = "udp"
  service_address = "127.0.0.1:$in"
  percentiles = [90.0]
  delete_counters = true
  delete_timings = true
  delete_gauges = false
  delete_sets = true
[[outputs.graphite]]
  servers = ["127.0.0.1:$sink"]
  template = "measurement.field"
EOT
		setsid bash -c "exec '$TELEGRAF' --config '$d/t.conf'" >"$d/sut.log" 2>&1 </dev/null &
		;;
	esac
	SUT_SID=$!
}

# udp_bound PORT: is a socket bound to 127.0.0.1:PORT (UDP)?
udp_bound() { grep -qi ":$(printf '%04X' "$1") 00000000:0000" /proc/net/udp; }

# run_one SUT RATE SECONDS PHASE: one run; prints verify's line (also into $WORK/last),
# appends its JSON to RESULTS.
run_one() {
	local name=$1 rate=$2 secs=$3 phase=$4
	local d b in sink aux
	d=$(mktemp -d "$WORK/$name-$rate.XXXX")
	b=$(free_block)
	in=$b sink=$((b + 1)) aux=$((b + 2))
	local pat=()
	[[ $name == telegraf ]] && pat=(-counter '{}' -timer '{}.count' -sep _)
	"$W8" sink -listen "127.0.0.1:$sink" -names "$NAMES" "${pat[@]}" -out "$d/sink.json" -ready "$d/ready" \
		-settle "${SETTLE:-$((FLUSH + 3))s}" -timeout 120s 2>"$d/sink.log" &
	SINK_PID=$!
	for _ in $(seq 100); do [[ -e $d/ready ]] && break; sleep 0.05; done
	sut_start "$name" "$d" "$in" "$sink" "$aux"
	for _ in $(seq 300); do udp_bound "$in" && break; sleep 0.1; done
	sleep "${SUT_WARMUP:-1}"
	if ! udp_bound "$in" || ! kill -0 "$SUT_SID" 2>/dev/null; then
		echo "$name did not start; log:" >&2
		tail -20 "$d/sut.log" >&2
		stop_sut
		kill -TERM "$SINK_PID" 2>/dev/null || true
		wait "$SINK_PID" 2>/dev/null || true
		SINK_PID=
		return 1
	fi
	"$W8" procstat -sid "$SUT_SID" -udp-port "$in" -out "$d/proc0.json"
	local pps=$(((rate + PER - 1) / PER))
	"$W8" send -addr "127.0.0.1:$in" -names "$NAMES" -per "$PER" -pps "$pps" -metrics $((rate * secs)) -out "$d/send.json"
	"$W8" procstat -sid "$SUT_SID" -udp-port "$in" -out "$d/proc1.json"
	kill -USR1 "$SINK_PID"
	# the sink writes sink.json once the final flush with counts has come
	while [[ ! -e $d/sink.json ]] && kill -0 "$SINK_PID" 2>/dev/null; do sleep 0.1; done
	"$W8" procstat -sid "$SUT_SID" -udp-port "$in" -out "$d/proc2.json"
	local fm=-1
	[[ $name == router ]] && fm=$("$W8" flushmax -url "http://127.0.0.1:$aux/metrics")
	stop_sut # the sink still reads (and ignores) a flush at shutdown
	kill -TERM "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" || true
	SINK_PID=
	"$W8" verify -sut "$name" -phase "$phase" -rate "$rate" -send "$d/send.json" -sink "$d/sink.json" \
		-proc0 "$d/proc0.json" -proc1 "$d/proc1.json" -proc2 "$d/proc2.json" -flushmax "$fm" -results "$RESULTS" |
		tee "$WORK/last"
}

. "$HERE/lib.sh"

lossfree() { awk -v m="$LOSS_MAX" '{exit !($5 < m)}' <<<"$1"; }

echo "# sut phase rate sent loss_pct names_short cpu_s metrics_per_cpu_s peak_rss_mib flush_max_s flushes sut_udp_drops sink"
declare -A RATE=()
for s in "${SUTS[@]}"; do
	v=RATE_$s
	if [[ -n ${!v:-} ]]; then
		RATE[$s]=${!v}
		continue
	fi
	best=
	for r in $RATES; do
		quiet
		run_one "$s" "$r" "$SEARCH_DURATION" search || { echo "$s $r: run failed" >&2; break; }
		lossfree "$(cat "$WORK/last")" || break
		best=$r
	done
	if [[ -z $best ]]; then
		best=${RATES%% *}
		echo "# WARNING: $s lost >= $LOSS_MAX % at every rate; its rounds run at $best" >&2
	fi
	RATE[$s]=$best
	echo "# $s: highest loss-free rate $best metrics/s"
done
for r in $(seq "$REPEAT"); do
	for s in "${SUTS[@]}"; do
		quiet
		run_one "$s" "${RATE[$s]}" "$DURATION" round || echo "$s FAILED (round $r)"
	done
done
echo
echo "# w8 medians of $REPEAT rounds, ${DURATION}s each, $NAMES names, $PER metrics per datagram, flush ${FLUSH} s (results: $RESULTS)"
suts_csv=$(IFS=,; echo "${SUTS[*]}")
"$W8" table -in "$RESULTS" -base etsy,telegraf -repeat "$REPEAT" -suts "$suts_csv" -loss-max "$LOSS_MAX"
