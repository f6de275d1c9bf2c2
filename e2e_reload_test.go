package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestReloadUnderLoad: 30 SIGHUPs while clients send ~100k lines/s and
// reconnect often; half of the reloads add or remove an output. Nothing is
// lost on the outputs that stay, no connection is refused.
func TestReloadUnderLoad(t *testing.T) {
	skipShort(t)
	a, b, extra := plugintest.NewLineSink(t), plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "r.toml")
	base := fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.broadcast]]
  id = "caches"
  protocol = "graphite"
  destinations = [%q, %q]
`, in, a.Addr, b.Addr)
	withExtra := base + fmt.Sprintf(`
[[outputs.graphite]]
  id = "extra"
  address = %q
`, extra.Addr)
	os.WriteFile(cfgFile, []byte(base), 0o600)
	p := startBinary(t, cfgFile)
	waitListen(t, in)

	var sent, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := 0
			tick := time.NewTicker(10 * time.Millisecond) // 250 lines per 10 ms per client: ~100k lines/s
			defer tick.Stop()
			for {
				conn, err := net.Dial("tcp", in)
				if err != nil {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				w := bufio.NewWriter(conn)
				for k := 0; k < 20; k++ { // reconnect every 5000 lines
					select {
					case <-stop:
						w.Flush()
						conn.Close()
						return
					case <-tick.C:
					}
					for j := 0; j < 250; j++ {
						fmt.Fprintf(w, "e2e.reload.c%d.%d %d 1700000000\n", c, i, i)
						i++
					}
					if w.Flush() != nil {
						t.Errorf("client %d: write failed", c)
						conn.Close()
						return
					}
					sent.Add(250)
				}
				conn.Close()
			}
		}()
	}
	for i := 0; i < 30; i++ {
		time.Sleep(150 * time.Millisecond)
		if i%2 == 0 {
			os.WriteFile(cfgFile, []byte(withExtra), 0o600)
		} else {
			os.WriteFile(cfgFile, []byte(base), 0o600)
		}
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, `"cause":"reload"`, i+1)
	}
	close(stop)
	wg.Wait()
	n := int(sent.Load())
	for _, s := range []*plugintest.LineSink{a, b} {
		if !s.WaitLen(n, 30*time.Second) {
			t.Fatalf("sink %s got %d of %d", s.Addr, s.Len(), n)
		}
		seen := make(map[string]bool, n)
		for _, l := range s.Lines() {
			if seen[l] {
				t.Fatalf("duplicate %q", l)
			}
			seen[l] = true
		}
	}
	time.Sleep(200 * time.Millisecond)
	if a.Len() != n || b.Len() != n {
		t.Fatalf("sinks got %d and %d, sent %d", a.Len(), b.Len(), n)
	}
	if refused.Load() != 0 {
		t.Fatalf("%d connections refused during reloads", refused.Load())
	}
	t.Logf("30 reloads under load: sent %d lines, each sink got %d, refused connections %d, extra output got %d while present",
		n, a.Len(), refused.Load(), extra.Len())
}

// TestReloadBadFileKeepsRunning: a broken file is refused and the running
// pipeline carries on; a good one is then taken.
func TestReloadBadFileKeepsRunning(t *testing.T) {
	a, b := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "r.toml")
	good := func(sink string) string {
		return fmt.Sprintf("[[inputs.graphite]]\n  listen = %q\n[[outputs.graphite]]\n  id = \"out\"\n  address = %q\n", in, sink)
	}
	os.WriteFile(cfgFile, []byte(good(a.Addr)), 0o600)
	p := startBinary(t, cfgFile, "-watch-config")
	waitListen(t, in)
	sendLines(t, in, []string{"e2e.r.1 1 1"}, 1)
	if !a.WaitLen(1, 10*time.Second) {
		t.Fatal("first line lost")
	}
	os.WriteFile(cfgFile, []byte(good(a.Addr)+"\nbogus_key = 1\n"), 0o600)
	p.waitLog(t, "reload refused", 1)
	sendLines(t, in, []string{"e2e.r.2 2 2"}, 1)
	if !a.WaitLen(2, 10*time.Second) {
		t.Fatal("line after a refused reload lost")
	}
	// a good change (file watch): the output moves to b
	os.WriteFile(cfgFile, []byte(good(b.Addr)), 0o600)
	p.waitLog(t, `"cause":"reload"`, 1)
	sendLines(t, in, []string{"e2e.r.3 3 3"}, 1)
	if !b.WaitLen(1, 10*time.Second) {
		t.Fatal("line after the reload did not reach the new output")
	}
	if a.Len() != 2 {
		t.Fatalf("old output got %d lines", a.Len())
	}
}
