package main

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// spoolRouter is the router binary with a Graphite input and a Graphite
// output, "cache", that spools to disk and retries every 50 to 200 ms; its
// destination, sink, is down at the start.
type spoolRouter struct {
	p         *proc
	cfg       string // the config file, to start the router again on
	in, stats string
	sink      *plugintest.LineSink
}

// startSpooled starts a spoolRouter; more is more keys of the output.
func startSpooled(t *testing.T, more string) *spoolRouter {
	t.Helper()
	r := &spoolRouter{in: plugintest.FreeAddr(t), stats: plugintest.FreeAddr(t), sink: plugintest.NewLineSink(t)}
	r.sink.Stop()
	r.cfg = writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "cache"
  address = %q
  spool_dir = %q
  retry_initial = "50ms"
  retry_max = "200ms"
%s`, r.stats, r.in, r.sink.Addr, filepath.Join(t.TempDir(), "spool"), more))
	r.p = startBinary(t, r.cfg)
	waitListen(t, r.in)
	return r
}

// TestSpoolSurvivesKill9: the destination is down, the router accepts
// 200k lines into its spool and is killed with SIGKILL; restarted with the
// destination up, it delivers every line (duplicates counted, none lost).
func TestSpoolSurvivesKill9(t *testing.T) {
	r := startSpooled(t, "  buffer_limit = 20000\n")
	sink := r.sink
	lines := graphiteLines("e2e.spool", 0, 200_000)
	sendLines(t, r.in, lines, 4)
	// everything accepted by the input is on disk once received_total says so
	waitCounter(t, r.stats, series("received_total", "inputs.graphite", "graphite-1"), float64(len(lines)), 20*time.Second)
	r.p.kill9(t)
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	startBinary(t, r.cfg)
	if !sink.WaitLen(len(lines), 60*time.Second) {
		t.Fatalf("after kill -9 and restart: sink got %d of %d", sink.Len(), len(lines))
	}
	time.Sleep(300 * time.Millisecond)
	dups := checkExactlyOnce(t, lines, sink.Lines())
	t.Logf("kill -9 with spool: sent %d, delivered %d (distinct %d), duplicates %d, lost 0", len(lines), sink.Len(), sink.Len()-dups, dups)
}

// TestDestinationDown30s: under load, the destination is away for 30 s; the
// memory buffer (10k) overflows into the spool, and everything arrives once
// it is back.
func TestDestinationDown30s(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	dir := t.TempDir()
	p := startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "cache"
  address = %q
  buffer_limit = 10000
  spool_dir = %q
  spool_replay_rate = 200000
  retry_initial = "100ms"
  retry_max = "1s"
`, stats, in, sink.Addr, filepath.Join(dir, "spool")))
	waitListen(t, in)
	var sent []string
	send := func(from, n int) {
		l := graphiteLines("e2e.down30", from, n)
		sendLines(t, in, l, 2)
		sent = append(sent, l...)
	}
	send(0, 20_000)
	if !sink.WaitLen(20_000, 10*time.Second) {
		t.Fatal("warm-up lost")
	}
	sink.Stop()
	down := time.Now()
	for i := 1; time.Since(down) < 30*time.Second; i++ {
		send(i*20_000, 20_000) // ~40k lines/s while it is down
		time.Sleep(500 * time.Millisecond)
	}
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLen(len(sent), 60*time.Second) {
		t.Fatalf("sink got %d of %d after a 30 s outage", sink.Len(), len(sent))
	}
	m := scrape(t, stats)
	dropped := m[series("dropped_total", "outputs.graphite", "cache")]
	replayed := m[series("spool_replayed_total", "outputs.graphite", "cache")]
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	dups := checkExactlyOnce(t, sent, sink.Lines())
	if dropped != 0 {
		t.Fatalf("dropped_total = %v", dropped)
	}
	t.Logf("replayed from disk %v;", replayed)
	t.Logf("destination down 30 s: sent %d, delivered %d, duplicates %d, dropped 0", len(sent), sink.Len(), dups)
}

// startFlooded starts the router binary with a Graphite input and a
// Graphite output "cache" whose destination is down, the memory of its
// queue bounded by maxBuffered (max_buffered_bytes) only, shut down within
// 1 s. It returns once the input listens.
func startFlooded(t *testing.T, maxBuffered int) (p *proc, in, stats string) {
	t.Helper()
	down := downAddr(t)
	in, stats = plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	p = startBinary(t, writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  max_buffered_bytes = %d
  shutdown_timeout = "1s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "cache"
  address = %q
  buffer_limit = 100000000
`, stats, maxBuffered, in, down)))
	waitListen(t, in)
	return p, in, stats
}

// waitAccounted waits (10 s at most) until every metric the Graphite input
// of stats received is dropped or queued by output "cache" (the last reads
// may still be on their way into the queue), and returns the series then.
func waitAccounted(t *testing.T, stats string) (m map[string]float64, received, dropped, queued float64) {
	t.Helper()
	waitFor(10*time.Second, func() bool {
		m = scrape(t, stats)
		received = m[series("received_total", "inputs.graphite", "graphite-1")]
		dropped = m[series("dropped_total", "outputs.graphite", "cache")]
		queued = m[series("queued", "outputs.graphite", "cache")]
		return received == dropped+queued
	})
	return m, received, dropped, queued
}

// TestMemoryBoundWhileDown: the destination is down and clients send as fast
// as they can; with max_buffered_bytes = 100 MiB the router's peak RSS stays
// under 256 MiB, and drops are counted.
func TestMemoryBoundWhileDown(t *testing.T) {
	skipShort(t)
	p, in, stats := startFlooded(t, 100<<20)
	var chunk []byte
	for i := 0; i < 20000; i++ {
		chunk = fmt.Appendf(chunk, "flood.metric.path.number.%d %d 1700000000\n", i, i)
	}
	stop := time.Now().Add(8 * time.Second)
	if err := eachConn(in, 4, func(_ int, conn net.Conn) error {
		for time.Now().Before(stop) {
			if _, err := conn.Write(chunk); err != nil {
				return nil
			}
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	_, received, dropped, queued := waitAccounted(t, stats)
	peak := peakRSS(t, p.cmd.Process.Pid)
	secs := 8.0
	t.Logf("destination down, flood: %.0f lines received (%.0f/s), %v dropped (counted), %v queued, peak RSS %d MiB",
		received, received/secs, dropped, queued, peak>>20)
	if received != dropped+queued {
		t.Errorf("received %v != dropped %v + queued %v", received, dropped, queued)
	}
	if peak > 256<<20 {
		t.Fatalf("peak RSS %d MiB over 256 MiB", peak>>20)
	}
}
