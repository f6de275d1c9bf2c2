#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): formatting, vet, and every
# test with the race detector. It installs what the tests need first.
#
#   scripts/test.sh          everything (make test)
#   scripts/test.sh quick    the edit-test loop (make test-quick): no Consul,
#                            no race detector, -short; installs nothing
#
# Both end with one line "== N passed, N failed, N skipped (...)" and exit 1
# when anything failed (scripts/testsum reads go test -json).
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-}"
mode="${1:-full}"
case "$mode" in
full | quick) ;;
*) echo "usage: scripts/test.sh [quick]" >&2; exit 2 ;;
esac

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

if [ "$mode" = quick ]; then
	echo "== go test -short (no Consul, no race detector)"
	go build -o .tools/bin/testsum ./scripts/testsum
	go test -short -count=1 -timeout 10m -json ./... | .tools/bin/testsum
	exit
fi

echo "== consul (a real agent for the key store and discovery tests)"
CONSUL_BIN="$(./scripts/install-consul.sh)"
export CONSUL_BIN

# apt_need CMD PACKAGE: install Debian's PACKAGE when CMD is missing.
apt_need() {
	if ! eval "$1" >/dev/null 2>&1; then
		SUDO=
		[ "$(id -u)" = 0 ] || SUDO=sudo
		$SUDO apt-get install -y -q "$2" >/dev/null || { $SUDO apt-get update -q && $SUDO apt-get install -y -q "$2" >/dev/null; }
	fi
}

echo "== chromium (the real-browser CORS test of inputs.http_json)"
apt_need "command -v chromium" chromium

echo "== graphite-carbon (carbon's own aggregator rules: the carbon-aggregator converter's reference)"
apt_need "/usr/bin/python3 -c 'import carbon.aggregator.rules'" graphite-carbon

echo "== a C compiler (glibc's qsort: the order carbon-c-relay's percentiles pick from)"
apt_need "command -v cc" gcc

echo "== carbon-c-relay (the oracle of the rule chain's differential tests, and its issues/*.conf)"
CRELAY_SRC="$(./scripts/install-crelay.sh)"
export CRELAY_SRC

echo "== Prometheus and VictoriaMetrics (remote_write receivers of outputs.prometheus_remote_write's e2e test)"
apt_need "command -v prometheus" prometheus
apt_need "command -v victoria-metrics" victoria-metrics

echo "== carbon-c-relay with its transports (gzip, lz4, snappy, ssl: the link tests' peer; built once)"
CRELAY_FULL="$(./scripts/install-crelay-full.sh)"
export CRELAY_FULL

echo "== kcat (librdkafka: the independent Kafka client of the Kafka plugins' tests)"
apt_need "command -v kcat" kcat

echo "== Etsy statsd (proxy.js: the StatsD proxy's management and ring differential tests)"
STATSD_DIR="$(./scripts/install-statsd.sh)"
export STATSD_DIR

echo "== go test -race"
go build -o .tools/bin/testsum ./scripts/testsum
go test -race -count=1 -timeout 20m -json ./... | .tools/bin/testsum
