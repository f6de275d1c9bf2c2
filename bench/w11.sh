#!/usr/bin/env bash
# bench/w11.sh - workload w11 of issue #24: the router into Kafka and out of
# it again. There is no peer: the figure is the router's lines and records
# per CPU-second on each side.
#
#   bench/w11.sh
#   QUIET=1 REPEAT=5 bench/run.sh w11               # the same, through bench/run.sh
#
# The brokers are franz-go's kfake (internal/kafkatest/cmd/kfake: 3 brokers,
# 12 partitions, in memory, its own process, not measured). Each round uses
# a topic of its own, and runs two measurements:
#   producer  LINES Graphite lines (default 2M over NAMES = 100k names,
#             ../shared/bench graphite-send, 4 TCP connections, no warm-up)
#             -> inputs.graphite -> outputs.kafka (partitioner "hash",
#             jump_fnv1a_ch over 12 partitions, lines_per_record LPR = 500,
#             compression COMPRESSION = none, acks "all", idempotent).
#             Done when the output's sent_total (metrics the brokers
#             acknowledged) reaches LINES.
#   consumer  a router started on the filled topic with a new group:
#             inputs.kafka -> outputs.graphite -> ../shared/bench
#             graphite-sink (its own process). Done when the sink has LINES.
#   CPU       user+system seconds of the router process (/proc/PID/stat,
#             all threads): producer from just before the first line to
#             done; consumer from its start to done (start-up included).
# Table: medians over REPEAT rounds of lines per CPU-second, CPU-seconds,
# wall seconds and CPU microseconds per record (LINES / LPR records), and
# peak RSS (VmHWM). A round that fails is reported and the script exits 1.
#
# Environment: REPEAT (3), LINES (2000000), NAMES (100000), LPR (500),
# COMPRESSION (none), ROUTER (a built binary; default: go build), BENCH (the
# shared harness binary; default: built), QUIET=1 (wait before each round for
# a 1-minute load average below 0.5), KEEP=1 (keep the work directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench}
REPEAT=${REPEAT:-3}
LINES=${LINES:-2000000}
NAMES=${NAMES:-100000}
LPR=${LPR:-500}
COMPRESSION=${COMPRESSION:-none}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/w11-run.XXXXXX")
BENCH=${BENCH:-$WORK/bench}
[[ -x $BENCH ]] || (cd "$HARNESS" && go build -o "$BENCH" .)
if [[ -z ${ROUTER:-} ]]; then
	ROUTER=$WORK/router
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$ROUTER" .)
fi
(cd "$ROOT" && go build -o "$WORK/kfake" ./internal/kafkatest/cmd/kfake)

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ ${KEEP:-0} == 1 ]] && echo "# work directory: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

. "$HERE/lib.sh"
# cpu PID: user+system seconds of the process so far.
cpu() {
	awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"
}
rss_mib() {
	awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}
now() { date +%s.%N; }
# counter URL SERIES: the value of one series on a /metrics page (0 if absent).
counter() {
	curl -s "$1" | awk -v s="$2" 'index($0, s " ") == 1 {v = $2} END {print v + 0}'
}

topics=$(seq -f 'w11-%g' -s, 1 "$REPEAT")
kport=$(free_port)
"$WORK/kfake" -brokers 3 -partitions 12 -topics "$topics" -port "$kport" >"$WORK/kfake.out" 2>&1 &
PIDS+=($!)
wait_port "$kport" || { echo "kfake did not start" >&2; cat "$WORK/kfake.out" >&2; exit 1; }
brokers="\"127.0.0.1:$kport\", \"127.0.0.1:$((kport + 1))\", \"127.0.0.1:$((kport + 2))\""

RESULTS=$WORK/results.tsv
: >"$RESULTS"
fail=0
echo "# w11: lines=$LINES names=$NAMES lines_per_record=$LPR compression=$COMPRESSION repeat=$REPEAT nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$REPEAT"); do
	topic=w11-$r
	# producer
	quiet
	in=$(free_port) stats=$(free_port)
	cat >"$WORK/p$r.toml" <<EOT
[agent]
  stats_addr = "127.0.0.1:$stats"
[[inputs.graphite]]
  listen = "127.0.0.1:$in"
[[outputs.kafka]]
  id = "kafka"
  brokers = [$brokers]
  topic = "$topic"
  partitions = 12
  hash = "jump_fnv1a_ch"
  lines_per_record = $LPR
  compression = "$COMPRESSION"
  overflow = "block"
EOT
	"$ROUTER" -config "$WORK/p$r.toml" >"$WORK/p$r.log" 2>&1 </dev/null &
	pp=$!
	PIDS+=("$pp")
	wait_port "$in" && wait_port "$stats" || { echo "producer did not start" >&2; tail "$WORK/p$r.log" >&2; exit 1; }
	sleep 1
	sent="router_sent_total{plugin=\"outputs.kafka\",id=\"kafka\"}"
	c0=$(cpu "$pp") t0=$(now)
	"$BENCH" graphite-send -addr "127.0.0.1:$in" -lines "$LINES" -names "$NAMES" -conns 4 -warmup 0 -out "$WORK/send$r.json" 2>/dev/null
	ok=0
	for _ in $(seq 1200); do
		[[ $(counter "http://127.0.0.1:$stats/metrics" "$sent") -ge $LINES ]] && { ok=1; break; }
		sleep 0.05
	done
	c1=$(cpu "$pp") t1=$(now) rss=$(rss_mib "$pp")
	kill "$pp"; wait "$pp" 2>/dev/null || true
	if [[ $ok == 1 ]]; then
		echo -e "producer\t$r\t$(echo "$c1 - $c0" | bc -l)\t$(echo "$t1 - $t0" | bc -l)\t$rss" >>"$RESULTS"
	else
		echo "producer FAILED (round $r): sent_total $(counter "http://127.0.0.1:$stats/metrics" "$sent") of $LINES" >&2
		fail=1
		continue
	fi
	# consumer
	quiet
	sinkp=$(free_port) stats=$(free_port)
	"$BENCH" graphite-sink -listen "127.0.0.1:$sinkp" -prefix bench. -expect "$LINES" -timeout 5m -out "$WORK/sink$r.json" -ready "$WORK/sink$r.ready" 2>/dev/null &
	sp=$!
	PIDS+=("$sp")
	for _ in $(seq 200); do [[ -e $WORK/sink$r.ready ]] && break; sleep 0.05; done
	cat >"$WORK/c$r.toml" <<EOT
[agent]
  stats_addr = "127.0.0.1:$stats"
[[inputs.kafka]]
  brokers = [$brokers]
  topics = ["$topic"]
  group = "w11-$r"
[[outputs.graphite]]
  address = "127.0.0.1:$sinkp"
  overflow = "block"
EOT
	t0=$(now)
	"$ROUTER" -config "$WORK/c$r.toml" >"$WORK/c$r.log" 2>&1 </dev/null &
	cp=$!
	PIDS+=("$cp")
	if wait "$sp"; then
		c1=$(cpu "$cp") t1=$(now) rss=$(rss_mib "$cp")
		echo -e "consumer\t$r\t$c1\t$(echo "$t1 - $t0" | bc -l)\t$rss" >>"$RESULTS"
	else
		echo "consumer FAILED (round $r); log tail:" >&2
		tail -5 "$WORK/c$r.log" >&2
		fail=1
	fi
	kill "$cp"; wait "$cp" 2>/dev/null || true
done

echo
echo "# w11 medians of $REPEAT rounds, $LINES lines, $((LINES / LPR)) records of $LPR lines"
python3 - "$RESULTS" "$LINES" "$LPR" "$REPEAT" <<'EOP'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]) if l.strip()]
lines, lpr, repeat = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print("| side | n | lines per CPU-s (min..max) | CPU-s | wall s | CPU us per record | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
bad = False
for side in ("producer", "consumer"):
    rs = [r for r in rows if r[0] == side]
    if len(rs) < repeat:
        bad = True
    if not rs:
        print(f"| {side} | 0 | - | - | - | - | - |")
        continue
    cpu = [float(r[2]) for r in rs]
    wall = [float(r[3]) for r in rs]
    rss = [float(r[4]) for r in rs]
    rate = [lines / c for c in cpu]
    rec = [c / (lines / lpr) * 1e6 for c in cpu]
    print(f"| {side} | {len(rs)} | {statistics.median(rate):,.0f} ({min(rate):,.0f}..{max(rate):,.0f}) | "
          f"{statistics.median(cpu):.2f} | {statistics.median(wall):.2f} | {statistics.median(rec):.1f} | {statistics.median(rss):.0f} |")
if bad:
    print(f"# WARNING: fewer than {repeat} rounds succeeded on a side", file=sys.stderr)
    sys.exit(1)
EOP
[[ $fail == 0 ]]
