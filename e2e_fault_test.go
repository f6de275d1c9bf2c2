package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// stallSink accepts connections but reads nothing until released; then it
// reads every connection (old ones included) to the end.
type stallSink struct {
	ln      net.Listener
	release chan struct{}
	mu      sync.Mutex
	lines   []string
	wg      sync.WaitGroup
}

func newStallSink(t *testing.T) *stallSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallSink{ln: ln, release: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetReadBuffer(64 << 10)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				<-s.release
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					s.mu.Lock()
					s.lines = append(s.lines, sc.Text())
					s.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *stallSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// TestDestinationNeverReads: one destination accepts but does not read (its
// TCP window fills) for 6 s, longer than write_timeout; the other
// destination is not held up, and once the stalled one reads, it gets every
// line.
func TestDestinationNeverReads(t *testing.T) {
	skipShort(t)
	good := plugintest.NewLineSink(t)
	stall := newStallSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.broadcast]]
  id = "b"
  protocol = "graphite"
  destinations = [%q, %q]
  write_timeout = "2s"
  retry_initial = "100ms"
  retry_max = "500ms"
`, stats, in, good.Addr, stall.ln.Addr().String()))
	waitListen(t, in)
	lines := graphiteLines("e2e.stall", 0, 300_000)
	sendLines(t, in, lines, 2)
	if !good.WaitLen(len(lines), 20*time.Second) {
		t.Fatalf("the healthy destination got %d of %d while the other stalled", good.Len(), len(lines))
	}
	time.Sleep(6 * time.Second)
	m := scrape(t, stats)
	stalledID := "b/" + stall.ln.Addr().String()
	queued := m[series("queued", "outputs.graphite", stalledID)]
	t.Logf("after 6 s of stall: healthy sink %d lines, stalled output queued %v, write errors %v",
		good.Len(), queued, m[series("write_errors_total", "outputs.graphite", stalledID)])
	close(stall.release)
	waitFor(30*time.Second, func() bool { return stall.Len() >= len(lines) })
	stall.mu.Lock()
	got := append([]string(nil), stall.lines...)
	stall.mu.Unlock()
	dups := checkExactlyOnce(t, lines, got)
	t.Logf("stalled destination: sent %d, delivered %d, duplicates %d, dropped 0", len(lines), len(got), dups)
}

// TestGatewayReturns500: a gateway that answers 500 for 3 s; the proxy
// retries, and the sink gets every line.
func TestGatewayReturns500(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	var got []string
	var fails atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			io.WriteString(w, "key is valid\n")
			return
		}
		if failing.Load() {
			fails.Add(1)
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(500)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		b, _ := io.ReadAll(zr)
		mu.Lock()
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
		mu.Unlock()
		io.WriteString(w, "Batch Received\n")
	}))
	defer gw.Close()
	in := plugintest.FreeAddr(t)
	startRouter(t, proxyConfig(in, gw.URL, ""))
	waitListen(t, in)
	lines := graphiteLines("e2e.gw500", 0, 50_000)
	sendLines(t, in, lines, 2)
	time.Sleep(3 * time.Second)
	failing.Store(false)
	waitFor(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(lines)
	})
	mu.Lock()
	defer mu.Unlock()
	dups := checkExactlyOnce(t, lines, got)
	t.Logf("gateway 500 for 3 s: %d failed POSTs, sent %d, delivered %d, duplicates %d", fails.Load(), len(lines), len(got), dups)
}

// TestHostileTCP: 10,000 idle connections, a 10 MB line and NUL/invalid
// UTF-8 names: a good client on another connection is served throughout.
func TestHostileTCP(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  max_connections = 10050
  max_connections_per_ip = 0
  max_line_length = 65536
[[outputs.graphite]]
  id = "sink"
  address = %q
`, stats, in, sink.Addr))
	p := startBinary(t, cfg)
	waitListen(t, in)
	plugintest.OpenConns(t, func() (net.Conn, error) { return net.Dial("tcp", in) }, 10_000, "") // idle
	waitCounter(t, stats, series("connections_active", "inputs.graphite", "graphite-1"), 10_000, 30*time.Second)
	// a 10 MB line, then good lines, on one connection
	c, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(c)
	w.Write(bytes.Repeat([]byte("x"), 10<<20))
	w.WriteString(" 1 1\n")
	w.WriteString("good.after.long 1 1700000000\n")
	w.WriteString("nul\x00name.inv\xffalid 2 1700000000\n")
	w.Flush()
	c.Close()
	if !sink.WaitLen(2, 20*time.Second) {
		t.Fatalf("good lines after a 10 MB line: sink got %d", sink.Len())
	}
	got := sink.Lines()
	if got[0] != "good.after.long 1 1700000000" || got[1] != "nul\x00name.inv\xffalid 2 1700000000" {
		t.Fatalf("sink got %q", got)
	}
	m := scrape(t, stats)
	if m[series("lines_too_long_total", "inputs.graphite", "graphite-1")] != 1 {
		t.Errorf("lines_too_long_total = %v", m[series("lines_too_long_total", "inputs.graphite", "graphite-1")])
	}
	t.Logf("10,000 idle connections + a 10 MB line: good lines delivered, peak RSS %d MiB", peakRSS(t, p.cmd.Process.Pid)>>20)
}
