package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestMirrorNeverSlowsPrimary: the primary blocks (no loss) while a dead
// mirror drops its oldest copies, counted, without slowing the primary.
func TestMirrorNeverSlowsPrimary(t *testing.T) {
	primary, copySink := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	copySink.Stop()
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "1s"   # the dead mirror would hold the shutdown otherwise
[[inputs.graphite]]
  listen = %q
[[outputs.mirror]]
  id = "m"
  protocol = "graphite"
  destinations = [%q, %q]
  overflow = "block"
  buffer_limit = 1000
  batch_size = 500
`, stats, in, primary.Addr, copySink.Addr))
	waitListen(t, in)
	const n = 50_000
	sendLines(t, in, graphiteLines("e2e.mirror", 0, n), 2)
	if !primary.WaitLen(n, 20*time.Second) {
		t.Fatalf("primary got %d of %d", primary.Len(), n)
	}
	var m map[string]float64
	var dropped, queued float64
	waitFor(10*time.Second, func() bool {
		m = scrape(t, stats)
		dropped = m[series("dropped_total", "outputs.graphite", "m/"+copySink.Addr)]
		queued = m[series("queued", "outputs.graphite", "m/"+copySink.Addr)]
		return dropped+queued == n
	})
	if dropped+queued != n || queued > 1000 {
		t.Fatalf("mirror: dropped %v + queued %v != %d (buffer_limit 1000)", dropped, queued, n)
	}
	if d := m[series("dropped_total", "outputs.graphite", "m/"+primary.Addr)]; d != 0 {
		t.Fatalf("primary dropped %v", d)
	}
}

// TestFailover: the second destination takes over while the first is down,
// and the first gets what it had queued when it returns.
func TestFailover(t *testing.T) {
	a, b := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.failover]]
  id = "f"
  protocol = "graphite"
  destinations = [%q, %q]
  retry_initial = "20ms"
  retry_max = "200ms"
`, stats, in, a.Addr, b.Addr))
	waitListen(t, in)
	sendLines(t, in, graphiteLines("e2e.fo.before", 0, 1000), 1)
	if !a.WaitLen(1000, 10*time.Second) || b.Len() != 0 {
		t.Fatalf("before: a %d b %d", a.Len(), b.Len())
	}
	a.Stop()
	sendLines(t, in, []string{"e2e.fo.probe 1 1"}, 1) // a's output notices it is down
	upKey := series("up", "outputs.graphite", "f/"+a.Addr)
	if !waitFor(10*time.Second, func() bool { return scrape(t, stats)[upKey] == 0 }) {
		t.Fatal("a never reported down")
	}
	sendLines(t, in, graphiteLines("e2e.fo.during", 0, 5000), 1)
	if !b.WaitLen(5000, 10*time.Second) {
		t.Fatalf("b got %d of 5000 while a was down", b.Len())
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if !a.WaitLen(1001, 10*time.Second) { // its 1000 + the queued probe
		t.Fatalf("a got %d after coming back, want 1001", a.Len())
	}
}
