package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

func waitCounter(t *testing.T, stats, key string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := scrape(t, stats)[key]
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", key, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSpoolSurvivesKill9: the destination is down, the router accepts
// 200k lines into its spool and is killed with SIGKILL; restarted with the
// destination up, it delivers every line (duplicates counted, none lost).
func TestSpoolSurvivesKill9(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	sink.Stop()
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "r.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "cache"
  address = %q
  buffer_limit = 20000
  spool_dir = %q
  retry_initial = "50ms"
  retry_max = "200ms"
`, stats, in, sink.Addr, filepath.Join(dir, "spool"))), 0o600)
	p := startBinary(t, cfg)
	waitListen(t, in)
	lines := graphiteLines("e2e.spool", 0, 200_000)
	sendLines(t, in, lines, 4)
	// everything accepted by the input is on disk once received_total says so
	waitCounter(t, stats, series("received_total", "inputs.graphite", "graphite-1"), float64(len(lines)), 20*time.Second)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	<-p.done
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	startBinary(t, cfg)
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

// TestMemoryBoundWhileDown: the destination is down and clients send as fast
// as they can; with max_buffered_bytes = 100 MiB the router's peak RSS stays
// under 256 MiB, and drops are counted.
func TestMemoryBoundWhileDown(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	sink.Stop()
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "r.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
  stats_addr = %q
  max_buffered_bytes = 104857600
  shutdown_timeout = "1s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "cache"
  address = %q
  buffer_limit = 100000000
`, stats, in, sink.Addr)), 0o600)
	p := startBinary(t, cfg)
	waitListen(t, in)
	var chunk []byte
	for i := 0; i < 20000; i++ {
		chunk = fmt.Appendf(chunk, "flood.metric.path.number.%d %d 1700000000\n", i, i)
	}
	var sent atomic.Int64
	stop := time.Now().Add(8 * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", in)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for time.Now().Before(stop) {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
				sent.Add(20000)
			}
		}()
	}
	wg.Wait()
	// the last reads may still be on their way into the queue: wait until
	// every metric received is accounted for
	var received, dropped, queued float64
	for deadline := time.Now().Add(10 * time.Second); ; {
		m := scrape(t, stats)
		received = m[series("received_total", "inputs.graphite", "graphite-1")]
		dropped = m[series("dropped_total", "outputs.graphite", "cache")]
		queued = m[series("queued", "outputs.graphite", "cache")]
		if received == dropped+queued || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// peakRSS reads VmHWM of a process.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
