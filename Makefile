# router: make run | make test | make test-quick | make bench | make build
GO ?= go
BIN ?= router

.PHONY: build run test test-quick vet bench bench-peers fuzz clean deb example

# A static binary (no libc mapped: ~1.3 MiB less RSS), as the .deb ships.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

# The quick start: Graphite on 127.0.0.1:2003 and StatsD on 127.0.0.1:8125 printed on stdout; no external service.
run: build
	./$(BIN) -config etc/quickstart.toml

# The whole test suite, installing what it needs (scripts/test.sh says what).
# Warm: about 5 minutes on 2 cores. Cold (fresh machine): the Consul build of
# scripts/install-consul.sh adds 6-7 minutes and ~3.3 GB of Go caches.
test:
	./scripts/test.sh

# The edit-test loop: no Consul, no race detector, -short; installs nothing.
test-quick:
	./scripts/test.sh quick

vet:
	$(GO) vet ./...

# Go micro-benchmarks of every hot path (compare runs with benchstat).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The router through the shared load harness (../shared/bench), side by
# side with the peers installed here: see bench/run.sh.
bench-peers:
	./bench/run.sh

# Each fuzzer for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzGraphiteRoundTrip$$' -fuzztime $(FUZZTIME) ./plugins/codec/graphite/
	$(GO) test -run '^$$' -fuzz '^FuzzStatsDRoundTrip$$' -fuzztime $(FUZZTIME) ./plugins/codec/statsd/
	$(GO) test -run '^$$' -fuzz '^FuzzFromStatsD$$' -fuzztime $(FUZZTIME) ./plugins/codec/graphite/
	$(GO) test -run '^$$' -fuzz '^FuzzToStatsD$$' -fuzztime $(FUZZTIME) ./plugins/codec/statsd/
	$(GO) test -run '^$$' -fuzz '^FuzzFramer$$' -fuzztime $(FUZZTIME) ./plugins/internal/linein/
	$(GO) test -run '^$$' -fuzz '^FuzzBatchReaderFrame$$' -fuzztime $(FUZZTIME) ./plugins/internal/linein/
	$(GO) test -run '^$$' -fuzz '^FuzzServeVsNetHTTP$$' -fuzztime $(FUZZTIME) ./plugins/inputs/http_json/
	$(GO) test -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(FUZZTIME) ./plugins/inputs/https_batch/

clean:
	rm -f $(BIN)

# The Debian package (bin/router_VERSION_ARCH.deb) with dpkg-deb only; see
# packaging/build-deb.sh for VERSION, GOARCH and the rest.
DEB_OUT ?= bin
deb:
	GO=$(GO) ./packaging/build-deb.sh $(DEB_OUT)

# The custom binary of examples/custom-plugin (its own module): the built-ins
# plus outputs.jsonl, in bin/router-custom.
example:
	cd examples/custom-plugin && $(GO) build -o ../../bin/router-custom .
