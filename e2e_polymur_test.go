package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
)

const testKey = "0123456789abcdef0123456789abcdef"

// gatewayConfig is a gateway on listen (tlsPart: its TLS keys, or "")
// taking testKey for team-a and forwarding to sink, its statistics on stats
// and runstats ("": none).
func gatewayConfig(listen, tlsPart, stats, runstats, sink string) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
  runstats_addr = %q
[[inputs.https_batch]]
  listen = %q
  %s
  [inputs.https_batch.keystore]
    type = "static"
    keys = { team-a = %q }
[[outputs.graphite]]
  id = "sink"
  address = %q
`, stats, runstats, listen, tlsPart, testKey, sink)
}

func proxyConfig(in, url, extra string) string {
	return fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.https_batch]]
  id = "gw"
  url = %q
  api_key = %q
  workers = 3
  batch_size = 5000
  flush_interval = "100ms"
  retry_initial = "50ms"
  retry_max = "500ms"
  %s
`, in, url, testKey, extra)
}

// checkExactlyOnce compares what a sink got with what was sent: it returns
// the number of duplicates and fails on any loss or foreign line.
func checkExactlyOnce(t *testing.T, sent []string, got []string) int {
	t.Helper()
	want := make(map[string]int, len(sent))
	for _, l := range sent {
		want[l]++
	}
	dups := 0
	seen := make(map[string]int, len(got))
	for _, l := range got {
		if _, ok := want[l]; !ok {
			t.Fatalf("sink got a line never sent: %q", l)
		}
		seen[l]++
		if seen[l] > want[l] {
			dups++
		}
	}
	missing := 0
	for l, n := range want {
		if seen[l] < n {
			missing += n - seen[l]
		}
	}
	if missing > 0 {
		t.Fatalf("%d lines lost (sent %d, got %d, duplicates %d)", missing, len(sent), len(got), dups)
	}
	return dups
}

// TestPolymurProxyToGateway: proxy config -> gateway config -> TCP sink,
// 200k lines, each delivered exactly once.
func TestPolymurProxyToGateway(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	gwAddr, gwStats, in := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, gatewayConfig(gwAddr, "", gwStats, "", sink.Addr))
	waitListen(t, gwAddr)
	proxy := startRouter(t, proxyConfig(in, "http://"+gwAddr, ""))
	waitListen(t, in)
	lines := graphiteLines("e2e.polymur", 0, 200_000)
	sendLines(t, in, lines, 4)
	if !sink.WaitLen(len(lines), 30*time.Second) {
		t.Fatalf("sink got %d of %d", sink.Len(), len(lines))
	}
	if code := proxy.stop(t); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}
	if dups := checkExactlyOnce(t, lines, sink.Lines()); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	m := scrape(t, gwStats)
	if got := m[series("lines_total", "inputs.https_batch", "https_batch-1")]; got != float64(len(lines)) {
		t.Errorf("gateway lines_total %v", got)
	}
}

// TestPolymurGatewayDown: the gateway is away for 10 s mid-run; the proxy
// keeps the batches and resends, and the sink gets every line.
func TestPolymurGatewayDown(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s outage")
	}
	sink := plugintest.NewLineSink(t)
	gwAddr, gwStats, in := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	gw := startRouter(t, gatewayConfig(gwAddr, "", gwStats, "", sink.Addr))
	waitListen(t, gwAddr)
	proxy := startRouter(t, proxyConfig(in, "http://"+gwAddr, ""))
	waitListen(t, in)
	before := graphiteLines("e2e.gwdown.before", 0, 20_000)
	sendLines(t, in, before, 2)
	if !sink.WaitLen(len(before), 20*time.Second) {
		t.Fatalf("before: sink got %d", sink.Len())
	}
	if code := gw.stop(t); code != 0 {
		t.Fatalf("gateway exit %d", code)
	}
	down := time.Now()
	during := graphiteLines("e2e.gwdown.during", 0, 100_000)
	sendLines(t, in, during, 2)
	time.Sleep(time.Until(down.Add(10 * time.Second)))
	if sink.Len() != len(before) {
		t.Fatalf("lines arrived while the gateway was down")
	}
	startRouter(t, gatewayConfig(gwAddr, "", gwStats, "", sink.Addr))
	all := append(append([]string{}, before...), during...)
	if !sink.WaitLen(len(all), 30*time.Second) {
		t.Fatalf("after the gateway came back: sink got %d of %d", sink.Len(), len(all))
	}
	if code := proxy.stop(t); code != 0 {
		t.Fatalf("proxy exit %d", code)
	}
	dups := checkExactlyOnce(t, all, sink.Lines())
	t.Logf("gateway down 10 s: sent %d, delivered %d, duplicates %d", len(all), sink.Len(), dups)
}

// TestPolymurHTTPS: a self-signed gateway works with ca_cert; with the wrong
// CA the proxy stops with an error naming ca_cert.
func TestPolymurHTTPS(t *testing.T) {
	pki, other := plugintest.NewTLS(t), plugintest.NewTLS(t)
	sink := plugintest.NewLineSink(t)
	gwAddr, gwStats, in := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	tlsPart := fmt.Sprintf("tls_listen = %q\n  tls_cert = %q\n  tls_key = %q", gwAddr, pki.Cert, pki.Key)
	startRouter(t, gatewayConfig("", tlsPart, gwStats, "", sink.Addr))
	waitListen(t, gwAddr)
	startRouter(t, proxyConfig(in, "https://"+gwAddr, fmt.Sprintf("ca_cert = %q", pki.CA)))
	waitListen(t, in)
	lines := graphiteLines("e2e.https", 0, 10_000)
	sendLines(t, in, lines, 1)
	if !sink.WaitLen(len(lines), 20*time.Second) {
		t.Fatalf("sink got %d", sink.Len())
	}
	checkExactlyOnce(t, lines, sink.Lines())

	// the wrong CA: the router exits non-zero, saying why
	cfg := filepath.Join(t.TempDir(), "p.toml")
	os.WriteFile(cfg, []byte(proxyConfig(plugintest.FreeAddr(t), "https://"+gwAddr, fmt.Sprintf("ca_cert = %q", other.CA))), 0o600)
	var out plugintest.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code := agent.Run(ctx, []string{"-config", cfg}, &out, &out); code == 0 {
		t.Fatalf("proxy with a wrong CA exited 0")
	}
	if ctx.Err() != nil {
		t.Fatal("proxy with a wrong CA did not stop by itself")
	}
	if log := out.String(); !strings.Contains(log, "ca_cert") || !strings.Contains(log, "certificate") {
		t.Fatalf("no clear error in the log:\n%s", tail(log, 2000))
	}
}

// pingKey asks the gateway whether key is valid: the HTTP status of /ping.
func pingKey(t *testing.T, gw, key string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+gw+"/ping", nil)
	req.Header.Set("X-Polymur-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitStatus polls /ping until it answers want; it returns how long it took.
func waitStatus(t *testing.T, gw, key string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if pingKey(t, gw, key) == want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("key %q: /ping did not answer %d within %v", key, want, within)
	return 0
}

// TestPolymurConsul: proxy -> gateway with API keys in a real Consul agent ->
// sink. A key registered while running works within 2 s, a deleted one is
// refused after the next sync, Consul killed mid-run changes nothing for
// valid keys and loses nothing, and sync resumes when Consul is back.
func TestPolymurConsul(t *testing.T) {
	consul := plugintest.StartConsul(t)
	const prefix = "polymur/gateway/keys/"
	consul.Put(t, prefix+"team-a", testKey)
	sink := plugintest.NewLineSink(t)
	gwAddr, gwStats, in := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cache := filepath.Join(t.TempDir(), "keys.cache")
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.https_batch]]
  listen = %q
  [inputs.https_batch.keystore]
    type = "consul"
    address = %q
    prefix = %q
    sync_interval = "5s"
    cache_file = %q
[[outputs.graphite]]
  id = "sink"
  address = %q
`, gwStats, gwAddr, consul.Addr, prefix, cache, sink.Addr))
	waitListen(t, gwAddr)
	startRouter(t, proxyConfig(in, "http://"+gwAddr, ""))
	waitListen(t, in)

	first := graphiteLines("e2e.consul.a", 0, 100_000)
	sendLines(t, in, first, 2)

	// a key registered while running
	consul.Put(t, prefix+"team-b", "fedcba9876543210fedcba9876543210")
	took := waitStatus(t, gwAddr, "fedcba9876543210fedcba9876543210", 200, 2*time.Second)
	t.Logf("key registered in Consul accepted after %v", took)
	// a deleted key
	consul.Delete(t, prefix+"team-b")
	took = waitStatus(t, gwAddr, "fedcba9876543210fedcba9876543210", 401, 6*time.Second)
	t.Logf("key deleted from Consul refused after %v", took)

	// Consul dies mid-run: valid keys keep working, nothing is lost
	consul.Kill(t)
	second := graphiteLines("e2e.consul.b", 0, 100_000)
	sendLines(t, in, second, 2)
	all := append(append([]string{}, first...), second...)
	if !sink.WaitLen(len(all), 30*time.Second) {
		t.Fatalf("sink got %d of %d", sink.Len(), len(all))
	}
	if pingKey(t, gwAddr, testKey) != 200 {
		t.Fatal("a valid key stopped working while Consul was down")
	}
	upKey := series("keystore_consul_up", "inputs.https_batch", "https_batch-1")
	if !waitFor(10*time.Second, func() bool { return scrape(t, gwStats)[upKey] == 0 }) {
		t.Fatal("/metrics never showed Consul down")
	}
	// Consul back (dev mode forgets its KV: put the keys again): sync resumes
	consul.Restart(t)
	consul.Put(t, prefix+"team-a", testKey)
	consul.Put(t, prefix+"team-c", "00112233445566778899aabbccddeeff")
	took = waitStatus(t, gwAddr, "00112233445566778899aabbccddeeff", 200, 10*time.Second)
	t.Logf("after Consul came back, a new key was accepted after %v", took)
	if v := scrape(t, gwStats)[upKey]; v != 1 {
		t.Fatalf("keystore_consul_up = %v after Consul came back", v)
	}
	if dups := checkExactlyOnce(t, all, sink.Lines()); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
}

// TestPolymurRunstats: a gateway's runstats_addr answers "stats", written
// without a newline and without closing, at once and in the shape of the
// original's answer (agent/admin/testdata/polymur/runstats/stats.json):
// the same keys in the same order and indentation, numbers where it has
// numbers, an RFC 3339 start-time.
func TestPolymurRunstats(t *testing.T) {
	gwAddr, runstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	before := time.Now().Add(-time.Second)
	startRouter(t, gatewayConfig(gwAddr, "", "", runstats, plugintest.NewLineSink(t).Addr))
	waitListen(t, runstats)
	c := plugintest.Dial(t, runstats, 10*time.Second)
	defer c.Close()
	io.WriteString(c, "stats")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.HasSuffix(string(got), "\n}\n") {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("stats: %v after %q", err, got)
		}
	}
	want, err := os.ReadFile("agent/admin/testdata/polymur/runstats/stats.json")
	if err != nil {
		t.Fatal(err)
	}
	shape := func(b []byte) string {
		s := regexp.MustCompile(`"start-time": "[^"]*"`).ReplaceAllString(string(b), `"start-time": "<time>"`)
		return regexp.MustCompile(`": \d+`).ReplaceAllString(s, `": <number>`)
	}
	if shape(got) != shape(want) {
		t.Fatalf("stats:\n%s\nwant the shape of\n%s", got, want)
	}
	m := regexp.MustCompile(`"start-time": "([^"]*)"`).FindSubmatch(got)
	if st, err := time.Parse(time.RFC3339, string(m[1])); err != nil || st.Before(before.Truncate(time.Second)) || st.After(time.Now()) {
		t.Fatalf("start-time %s (%v), router started after %v", m[1], err, before)
	}
}
