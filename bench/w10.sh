#!/usr/bin/env bash
# bench/w10.sh - workload w10 of issue #23: Graphite lines over TCP -> names
# mapped by a graphite_exporter mapping file -> Prometheus. The router's
# outputs.prometheus_remote_write against Prometheus's graphite_exporter.
#
#   GE=/tmp/w10-ge/graphite_exporter bench/w10.sh
#   GE=... REPEAT=5 bench/run.sh w10                  # the same, through bench/run.sh
#
# graphite_exporter is built from its public source in a temporary directory,
# e.g. (v0.17.0; its module dependencies come from the Go module proxy):
#   git -C <graphite_exporter clone> archive v0.17.0 | tar -x -C /tmp/w10-ge-src
#   (cd /tmp/w10-ge-src && GOBIN=/tmp/w10-ge go install -trimpath ./cmd/graphite_exporter)
# or, where the proxy serves the module itself:
#   GOBIN=/tmp/w10-ge go install github.com/prometheus/graphite_exporter@v0.17.0
#
# The comparison, per round (each SUT a fresh process, default GOMAXPROCS, one
# process each, the same machine; rounds interleaved: router, exporter,
# router, ...):
#   input    SERIES x ROUNDS lines (default 100k x 20 = 2M) "w10.r<k>.host<h>.i<j>.m<m>
#            <value> <ts>", k = series mod 20, written by bench/w10 over one TCP
#            connection as fast as the SUT reads; timestamps now-20 .. now-1 s
#   mapping  one file (bench/w10 mapping): 20 rules, 16 globs and 4 regexes, each
#            naming w10_r<k>_<metric> with labels host, instance, rule; every
#            line matches one rule. Both SUTs read this same file (the router
#            through outputs.prometheus_remote_write's mapping_file, which uses
#            the same mapper library)
#   router   inputs.graphite -> outputs.prometheus_remote_write (overflow =
#            "block", other keys their defaults) -> a local HTTP sink (bench/w10
#            sink, its own process, not measured) that snappy-decodes and
#            protobuf-decodes every request, counts samples and distinct series
#            and discards them. Ingested = the sink has acknowledged every
#            sample; the round fails unless it has SERIES x ROUNDS samples of
#            exactly SERIES distinct series
#   exporter graphite_exporter --graphite.mapping-config=<the file>
#            --graphite.cache-size=SERIES x 2 (its mapping cache holds every
#            name, as the router's does; its default is 1000) and otherwise
#            its defaults. It keeps only the last sample of each series, for
#            scraping: after the sending, once its CPU time has not grown for
#            STABLE (0.5 s), one scrape of /metrics counts the w10_ series; the
#            round fails unless there are exactly SERIES. Its CPU is taken
#            before that scrape, so rendering the scrape is not counted
#   CPU      user+system seconds of the SUT process (/proc/PID/stat utime+stime,
#            all its threads), from just before the first line is sent to
#            ingested as above
#   metric   samples per CPU-second = lines sent / CPU seconds (each line is one
#            sample for both: the router writes every one, the exporter parses,
#            maps and stores every one, overwriting the series' previous one)
# Table: medians over the ok rounds per SUT: CPU-s, samples per CPU-s (min..max),
# wall seconds from the first line to ingested, series seen, peak RSS (VmHWM),
# and the ratio of samples per CPU-s to the exporter's.
#
# Environment: GE (graphite_exporter binary; default /tmp/w10-ge/graphite_exporter),
# REPEAT (5), SERIES (100000), ROUNDS (20), STABLE (0.5s), SUTS ("router exporter"),
# ROUTER (a built binary; default: go build), QUIET=1 (wait before each round until
# the 1-minute load average is below 0.5), KEEP=1 (keep the work directory), RESULTS.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPEAT=${REPEAT:-5}
SERIES=${SERIES:-100000}
ROUNDS=${ROUNDS:-20}
STABLE=${STABLE:-0.5s}
GE=${GE:-/tmp/w10-ge/graphite_exporter}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/w10-run.XXXXXX")
RESULTS=${RESULTS:-$WORK/results-w10.jsonl}
W10=$WORK/w10
(cd "$ROOT" && go build -o "$W10" ./bench/w10)
if [[ -z ${ROUTER:-} ]]; then
	ROUTER=$WORK/router
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$ROUTER" .)
fi
read -r -a SUTS <<<"${SUTS:-router exporter}"
for s in "${SUTS[@]}"; do
	case $s in
	router) ;;
	exporter) [[ -x $GE ]] || { echo "exporter: set GE to a built graphite_exporter (see the header)" >&2; exit 2; } ;;
	*) echo "unknown SUT $s" >&2; exit 2 ;;
	esac
done
"$W10" mapping -out "$WORK/mapping.yaml"

SUT_PID= SINK_PID=
stop() {
	local p
	for p in $SUT_PID $SINK_PID; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $SUT_PID $SINK_PID; do wait "$p" 2>/dev/null || true; done
	SUT_PID= SINK_PID=
}
cleanup() {
	stop
	[[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

. "$HERE/lib.sh"

# run_one SUT: one round, its line on stdout and in RESULTS.
run_one() {
	local name=$1 d in http
	d=$(mktemp -d "$WORK/$name.XXXX")
	in=$(free_port) http=$(free_port)
	case $name in
	router)
		"$W10" sink -listen "127.0.0.1:$http" -ready "$d/ready" 2>"$d/sink.log" &
		SINK_PID=$!
		cat >"$d/r.toml" <<EOT
[[inputs.graphite]]
  listen = "127.0.0.1:$in"
[[outputs.prometheus_remote_write]]
  url = "http://127.0.0.1:$http/api/v1/write"
  mapping_file = "$WORK/mapping.yaml"
  overflow = "block"
EOT
		wait_port "$http"
		"$ROUTER" -config "$d/r.toml" >"$d/sut.log" 2>&1 </dev/null &
		SUT_PID=$!
		;;
	exporter)
		"$GE" --graphite.listen-address="127.0.0.1:$in" --web.listen-address="127.0.0.1:$http" \
			--graphite.mapping-config="$WORK/mapping.yaml" --graphite.cache-size=$((SERIES * 2)) >"$d/sut.log" 2>&1 </dev/null &
		SUT_PID=$!
		;;
	esac
	if ! wait_port "$in" || ! kill -0 "$SUT_PID" 2>/dev/null; then
		echo "$name did not start; log:" >&2
		tail -20 "$d/sut.log" >&2
		stop
		return 1
	fi
	sleep 1 # start-up done, idle
	local target=(-scrape "http://127.0.0.1:$http/metrics")
	[[ $name == router ]] && target=(-sink "http://127.0.0.1:$http/")
	local rc=0
	"$W10" round -sut "$name" -pid "$SUT_PID" -addr "127.0.0.1:$in" "${target[@]}" -series "$SERIES" \
		-rounds "$ROUNDS" -stable "$STABLE" -results "$RESULTS" || rc=$?
	[[ $rc == 0 ]] || { echo "# $name round failed; log tail:" >&2; tail -5 "$d/sut.log" >&2; }
	stop
	return $rc
}

echo "# w10: series=$SERIES rounds=$ROUNDS lines=$((SERIES * ROUNDS)) repeat=$REPEAT nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "# router: $ROUTER; graphite_exporter: $GE ($("$GE" --version 2>&1 | head -1))"
for r in $(seq "$REPEAT"); do
	for s in "${SUTS[@]}"; do
		quiet
		run_one "$s" || echo "$s FAILED (round $r)"
	done
done
echo
echo "# w10 medians of $REPEAT rounds, $((SERIES * ROUNDS)) lines, $SERIES series, 20 mapping rules (results: $RESULTS)"
"$W10" table -in "$RESULTS" -base exporter -repeat "$REPEAT"
