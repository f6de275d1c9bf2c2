package linein_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// seqSink is an Emitter that checks sequence-numbered lines "STREAM SEQ 1":
// a TCP stream's lines (one connection each) must come exactly once and in
// order, a UDP line ("u") exactly once.
type seqSink struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each Emit
	next    map[string]int
	udp     map[int]int
	lines   int
	short   int // short connections whose 3 lines all came
	bad     []string
}

func newSeqSink() *seqSink {
	return &seqSink{changed: make(chan struct{}), next: map[string]int{}, udp: map[int]int{}}
}

func (s *seqSink) Emit(_ context.Context, b metric.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range b {
		name := string(b[i].Name())
		seq, err := strconv.Atoi(string(b[i].ValueToken()))
		s.lines++
		switch {
		case err != nil:
			s.bad = append(s.bad, fmt.Sprintf("bad line %q", b[i].Raw()))
		case name == "u":
			if s.udp[seq]++; s.udp[seq] > 1 {
				s.bad = append(s.bad, fmt.Sprintf("udp %d emitted twice", seq))
			}
		default:
			if seq != s.next[name] {
				s.bad = append(s.bad, fmt.Sprintf("stream %s: got %d, want %d", name, seq, s.next[name]))
			}
			s.next[name] = seq + 1
			if name[0] == 'c' && seq == 2 {
				s.short++
			}
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// wait waits until cond (called under the sink's lock) holds; false after
// the test's wait.
func (s *seqSink) wait(cond func() bool) bool {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			return cond()
		}
	}
}

// waitUntil is wait for the test's goroutine.
func (s *seqSink) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !s.wait(cond) {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("timed out waiting for %s (bad: %q)", what, s.bad[:min(10, len(s.bad))])
	}
}

// instance is one running line server.
type instance struct {
	srv    *linein.Server
	cancel context.CancelFunc
	done   chan error
}

func startInstance(cfg linein.Config, env registry.Env, out registry.Emitter, udp bool) *instance {
	in := &instance{srv: linein.NewServer(cfg, graphite.Parse, env), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() {
		if udp {
			in.done <- in.srv.ServeUDP(ctx, out)
		} else {
			in.done <- in.srv.ServeTCP(ctx, out)
		}
	}()
	return in
}

// stop cancels in and waits for its Run to return.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("serve did not return")
	}
}

// freeUDP returns a loopback UDP address that was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// TestReloadHandsOverEveryLine: an instance serving TCP (one persistent
// connection writing lines continuously, cut at random points, and a
// client opening many short connections) and UDP is replaced by a new one
// 30 times (A -> B -> A' ...), in the three ways the agent may do it: the
// successor started first, with a hold (the agent's contract: the
// successor listens asynchronously), and with a hold across a gap where
// nobody listens. Every line sent is emitted exactly once, in order per
// connection; no dial is refused; no line is cut; connections_total counts
// each connection once.
func TestReloadHandsOverEveryLine(t *testing.T) {
	tcpAddr, udpAddr := plugintest.FreeAddr(t), freeUDP(t)
	env, m := plugintest.Env(t, "inputs.graphite")
	sink := newSeqSink()
	tcpCfg := func(i int) linein.Config {
		return linein.Config{Listen: tcpAddr, MaxConnections: 100, MaxPerIP: 100, IdleTimeout: time.Duration(i+1) * time.Minute}
	}
	udpCfg := func(i int) linein.Config {
		return linein.Config{Listen: udpAddr, ReadBatch: []int{0, 16}[i%2], ReadBuffer: 1 << 20}
	}
	tcpIn := startInstance(tcpCfg(0), env, sink, false)
	udpIn := startInstance(udpCfg(0), env, sink, true)
	tcpIn.srv.Addr()
	udpIn.srv.Addr()

	stop := make(chan struct{})
	var senders sync.WaitGroup
	var sentP, shortConns, sentU atomic.Int64
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
	}

	// one persistent connection, lines cut at random points
	senders.Go(func() {
		c, err := net.Dial("tcp", tcpAddr)
		if err != nil {
			fail("dial: %v", err)
			return
		}
		defer c.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		var buf []byte
		seq := 0
		for {
			select {
			case <-stop:
				// the last line without '\n': emitted at EOF
				buf = fmt.Appendf(buf, "p %d 1", seq)
				sentP.Store(int64(seq + 1))
				if _, err := c.Write(buf); err != nil {
					fail("write: %v", err)
				}
				return
			default:
			}
			for range 1 + rng.IntN(20) {
				buf = fmt.Appendf(buf, "p %d 1\n", seq)
				seq++
			}
			cut := rng.IntN(len(buf) + 1)
			if _, err := c.Write(buf[:cut]); err != nil {
				fail("write: %v", err)
				return
			}
			buf = append(buf[:0], buf[cut:]...)
			// at most 2000 lines in flight
			if !sink.wait(func() bool { return sink.next["p"] >= seq-2000 }) {
				fail("persistent connection: stuck at %d of %d", sink.next["p"], seq)
				return
			}
		}
	})

	// many short connections of 3 lines each
	senders.Go(func() {
		for id := 0; ; id++ {
			select {
			case <-stop:
				shortConns.Store(int64(id))
				return
			default:
			}
			c, err := net.Dial("tcp", tcpAddr)
			if err != nil {
				fail("dial %d: %v", id, err)
				shortConns.Store(int64(id))
				return
			}
			lines := fmt.Sprintf("c%d 0 1\nc%d 1 1\nc%d 2 1\n", id, id, id)
			cut := len(lines) / 2
			_, err1 := c.Write([]byte(lines[:cut]))
			_, err2 := c.Write([]byte(lines[cut:]))
			c.Close()
			if err1 != nil || err2 != nil {
				fail("write %d: %v %v", id, err1, err2)
			}
			// at most 8 connections not yet fully emitted
			if !sink.wait(func() bool { return sink.short >= id-8 }) {
				fail("short connections: %d of %d complete", sink.short, id+1)
				shortConns.Store(int64(id + 1))
				return
			}
		}
	})

	// UDP datagrams of 1 to 3 lines
	senders.Go(func() {
		c, err := net.Dial("udp", udpAddr)
		if err != nil {
			fail("dial udp: %v", err)
			return
		}
		defer c.Close()
		rng := rand.New(rand.NewPCG(3, 4))
		seq := 0
		var buf []byte
		for {
			select {
			case <-stop:
				sentU.Store(int64(seq))
				return
			default:
			}
			buf = buf[:0]
			for k := range 1 + rng.IntN(3) {
				if k > 0 {
					buf = append(buf, '\n')
				}
				buf = fmt.Appendf(buf, "u %d 1", seq)
				seq++
			}
			if _, err := c.Write(buf); err != nil {
				fail("send: %v", err)
			}
			// at most 200 lines in flight: the receive buffer never fills
			if !sink.wait(func() bool { return len(sink.udp) >= seq-200 }) {
				fail("udp: %d of %d lines came", len(sink.udp), seq)
				sentU.Store(int64(seq))
				return
			}
		}
	})

	// progress waits until every sender got further through the current
	// instances
	progress := func() {
		sink.mu.Lock()
		p, u, c := sink.next["p"], len(sink.udp), sink.short
		sink.mu.Unlock()
		sink.waitUntil(t, "progress", func() bool {
			return sink.next["p"] >= p+200 && len(sink.udp) >= u+50 && sink.short >= c+2
		})
	}
	progress()
	for i := 1; i <= 30; i++ {
		newTCP := func() *instance { return startInstance(tcpCfg(i), env, sink, false) }
		newUDP := func() *instance { return startInstance(udpCfg(i), env, sink, true) }
		var nt, nu *instance
		switch i % 3 {
		case 0: // the successor first, no hold
			nt, nu = newTCP(), newUDP()
			nt.srv.Addr()
			nu.srv.Addr()
			tcpIn.stop(t)
			udpIn.stop(t)
		case 1: // the agent's contract: hold, start, stop the old one, release
			h := netx.Hold()
			nt, nu = newTCP(), newUDP()
			tcpIn.stop(t)
			udpIn.stop(t)
			h.Release()
		case 2: // a gap in which nobody listens, bridged by the hold
			h := netx.Hold()
			tcpIn.stop(t)
			udpIn.stop(t)
			nt, nu = newTCP(), newUDP()
			h.Release()
		}
		tcpIn, udpIn = nt, nu
		progress()
	}
	close(stop)
	senders.Wait()
	if t.Failed() {
		tcpIn.stop(t)
		udpIn.stop(t)
		return
	}
	p, n, u := int(sentP.Load()), int(shortConns.Load()), int(sentU.Load())
	sink.waitUntil(t, "every line", func() bool {
		return sink.next["p"] == p && len(sink.udp) == u && sink.short == n
	})
	tcpIn.stop(t)
	udpIn.stop(t)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.bad) > 0 {
		t.Fatalf("%d errors, first: %q", len(sink.bad), sink.bad[:min(10, len(sink.bad))])
	}
	for seq := range sink.udp {
		if seq < 0 || seq >= u {
			t.Fatalf("udp line %d was never sent", seq)
		}
	}
	if want := p + 3*n + u; sink.lines != want {
		t.Fatalf("%d lines emitted, want %d", sink.lines, want)
	}
	if got := m.Get("connections_total"); got != uint64(n+1) {
		t.Fatalf("connections_total = %d, want %d (each connection once)", got, n+1)
	}
	for _, name := range []string{"truncated_total", "parse_errors_total", "connections_rejected_total", "lines_too_long_total"} {
		if got := m.Get(name); got != 0 {
			t.Fatalf("%s = %d", name, got)
		}
	}
	if m.Get("connections_handed_over_total") < 30 {
		t.Fatalf("connections_handed_over_total = %d, want at least one per switch", m.Get("connections_handed_over_total"))
	}
	t.Logf("%d lines on the persistent connection, %d short connections, %d udp lines, %d handed over",
		p, n, u, m.Get("connections_handed_over_total"))
}

// TestHandOverCarriesState: what the old instance read of an incomplete
// line reaches the successor, and the rest of a line already counted as
// too long stays skipped there (not counted again, not parsed).
func TestHandOverCarriesState(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first, later string // sent before and after the switch
		want         []string
		tooLong      uint64
	}{
		{"partial line", "x 1 1\npartial.li", "ne 2 2\n", []string{"x 1 1", "partial.line 2 2"}, 0},
		{"inside a line too long", "x 1 1\n" + strings.Repeat("j", 100), "junk 3 3\nok 4 4\n", []string{"x 1 1", "ok 4 4"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := plugintest.FreeAddr(t)
			env, m := plugintest.Env(t, "inputs.graphite")
			capture := plugintest.NewCapture()
			cfg := linein.Config{Listen: addr, MaxLine: 50}
			a := startInstance(cfg, env, capture, false)
			a.srv.Addr()
			c := dialFrom(t, "127.0.0.1", addr)
			send(t, c, tc.first)
			if !capture.WaitFor(1, wait) {
				t.Fatal("first line not emitted")
			}
			waitCount(t, m, "lines_too_long_total", tc.tooLong)
			b := startInstance(cfg, env, capture, false)
			b.srv.Addr()
			a.stop(t)
			waitCount(t, m, "connections_handed_over_total", 1)
			send(t, c, tc.later)
			if !capture.WaitFor(len(tc.want), wait) {
				t.Fatalf("got %q", capture.Raw())
			}
			c.Close()
			b.stop(t)
			if got := capture.Raw(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for name, want := range map[string]uint64{"lines_too_long_total": tc.tooLong, "truncated_total": 0, "parse_errors_total": 0, "connections_total": 1} {
				if got := m.Get(name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

// TestStopWithoutSuccessorCloses: with no successor and no hold, stopping
// is what it always was: open connections are closed (an incomplete last
// line counted as truncated), nothing is handed over, and the port is
// closed when Run returns.
func TestStopWithoutSuccessorCloses(t *testing.T) {
	addr := plugintest.FreeAddr(t)
	env, m := plugintest.Env(t, "inputs.graphite")
	capture := plugintest.NewCapture()
	a := startInstance(linein.Config{Listen: addr}, env, capture, false)
	a.srv.Addr()
	c := dialFrom(t, "127.0.0.1", addr)
	send(t, c, "whole 1 1\nhalf.a.li")
	if !capture.WaitFor(1, wait) {
		t.Fatal("line not emitted")
	}
	a.stop(t)
	if !closedByServer(c) {
		t.Fatal("the connection was not closed")
	}
	if got := m.Get("truncated_total"); got != 1 {
		t.Fatalf("truncated_total = %d, want 1", got)
	}
	if got := m.Get("connections_handed_over_total"); got != 0 {
		t.Fatalf("connections_handed_over_total = %d", got)
	}
	if d, err := net.Dial("tcp", addr); err == nil {
		d.Close()
		t.Fatal("the port still accepts connections after Run returned")
	}
}
