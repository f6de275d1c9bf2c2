package statsd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	gcodec "github.com/metricsrouter/router/plugins/codec/graphite"
	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	_ "github.com/metricsrouter/router/plugins/inputs/statsd" // an input for agent.ParseConfig
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
	"golang.org/x/net/ipv4"
)

const wait = 10 * time.Second

// newOutput builds an outputs.statsd from the registered factory (its
// defaults), changed by mod, and inits it.
func newOutput(t testing.TB, mod func(s *StatsD)) (*StatsD, *plugintest.Metrics) {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Outputs, "statsd")
	if !ok {
		t.Fatal("outputs.statsd is not registered")
	}
	s := p.New().(*StatsD)
	if mod != nil {
		mod(s)
	}
	env, m := plugintest.Env(t, "outputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, m
}

// parseLines parses StatsD lines into a batch (they must be valid).
func parseLines(t testing.TB, lines []string) metric.Batch {
	t.Helper()
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if err := codec.Parse([]byte(l), &b[i]); err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
	}
	return b
}

// randomLines returns n valid StatsD lines of random lengths up to maxLen.
func randomLines(r *rand.Rand, n, maxLen int) []string {
	lines := make([]string, n)
	for i := range lines {
		l := fmt.Sprintf("rnd.%d:%d|c", i, r.IntN(1000))
		if extra := r.IntN(maxLen); extra > len(l)+3 {
			l += "|#" + strings.Repeat("t", extra-len(l)-2)
		}
		lines[i] = l
	}
	return lines
}

// checkDatagrams verifies that datagrams carry exactly lines, in order,
// whole, each datagram at most size bytes unless it holds one line.
func checkDatagrams(t *testing.T, grams []string, lines []string, size int) {
	t.Helper()
	var got []string
	for _, g := range grams {
		parts := strings.Split(g, "\n")
		if len(g) > size && len(parts) > 1 {
			t.Fatalf("datagram of %d bytes (> %d) with %d lines", len(g), size, len(parts))
		}
		if strings.HasSuffix(g, "\n") {
			t.Fatalf("datagram ends in a newline")
		}
		got = append(got, parts...)
	}
	if !slices.Equal(got, lines) {
		t.Fatalf("lines differ: got %d, want %d", len(got), len(lines))
	}
}

// TestPackNeverSplitsLines: random line lengths, many packet sizes.
func TestPackNeverSplitsLines(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{64, 100, 512, 1432, 8932, 65507} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			lines := randomLines(r, 3000, min(2*size, 65000))
			b := parseLines(t, lines)
			buf, packed, dropped := pack(nil, b, metric.Gauge, size, nil)
			if dropped != 0 || slices.ContainsFunc(packed, func(g gram) bool { return g.left != 0 }) {
				t.Fatalf("%d dropped", dropped)
			}
			var grams []string
			prev, n := 0, 0
			for j, p := range packed {
				g := string(buf[prev : p.end-1])
				grams = append(grams, g)
				// next is the first metric after datagram j
				if n += strings.Count(g, "\n") + 1; n != p.next {
					t.Fatalf("datagram %d: next = %d, want %d", j, p.next, n)
				}
				prev = p.end
			}
			checkDatagrams(t, grams, lines, size)
			// packing is tight: no datagram could have taken the next line
			for j := 0; j+1 < len(grams); j++ {
				first, _, _ := strings.Cut(grams[j+1], "\n")
				if len(grams[j])+1+len(first) <= size {
					t.Fatalf("datagram %d (%d bytes) had room for the next line (%d bytes)", j, len(grams[j]), len(first))
				}
			}
		})
	}
}

// TestUDPWriteByteIdentical: a batch through a real UDP socket; each line
// leaves byte for byte, packed up to max_packet_size, in few syscalls.
func TestUDPWriteByteIdentical(t *testing.T) {
	sink := plugintest.NewUDPSink(t)
	s, m := newOutput(t, func(s *StatsD) { s.Address = sink.Addr; s.MaxPacketSize = 512 })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"gorets:1|c|@0.1", "gaugor:+4|g", "glork:320|ms", "users:alice|s", "d:2|d|#env:prod,bare",
		"requests,host=a:1|c", "multi:1:2:3|ms", "t:1|c|T1700000000", "u:1|c|x:y", "etsy:1|c:2|ms", "cr:1|c\r",
	}
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("many.%d:%d|c", i, i))
	}
	b := parseLines(t, lines)
	if err := s.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLines(len(lines), wait) {
		t.Fatalf("sink got %d of %d lines", len(sink.Lines()), len(lines))
	}
	grams := sink.Datagrams()
	checkDatagrams(t, grams, lines, 512)
	if got := m.Get("datagrams_total"); got != uint64(len(grams)) {
		t.Fatalf("datagrams_total = %d, sink got %d", got, len(grams))
	}
	t.Logf("%d lines in %d datagrams", len(lines), len(grams))
}

// TestUDPLongLines: a line over max_packet_size goes alone; one over 65507
// bytes is dropped, counted and reported as rejected; the others pass.
func TestUDPLongLines(t *testing.T) {
	sink := plugintest.NewUDPSink(t)
	s, m := newOutput(t, func(s *StatsD) { s.Address = sink.Addr; s.MaxPacketSize = 100 })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	long := "long:1|c|#" + strings.Repeat("x", 3000)
	huge := "huge:1|c|#" + strings.Repeat("y", 70000)
	lines := []string{"a:1|c", long, "b:2|c", huge, "c:3|c"}
	err := s.Write(t.Context(), parseLines(t, lines))
	var r *streamout.Refused
	if !errors.As(err, &r) || r.Rejected() != 1 || !errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write = %v, want 1 refused (rejected)", err)
	}
	want := []string{"a:1|c", long, "b:2|c\nc:3|c"}
	if !sink.WaitLines(4, wait) {
		t.Fatalf("sink got %q", sink.Lines())
	}
	if got := sink.Datagrams(); !slices.Equal(got, want) {
		t.Fatalf("datagrams %d: %.40q", len(got), got)
	}
	if d := m.Get("oversize_dropped_total"); d != 1 {
		t.Fatalf("oversize_dropped_total = %d, want 1", d)
	}
}

// TestAsConvertsGraphite: a Graphite metric becomes `as`.
func TestAsConvertsGraphite(t *testing.T) {
	for _, as := range []string{"g", "c", "ms"} {
		t.Run(as, func(t *testing.T) {
			sink := plugintest.NewUDPSink(t)
			s, _ := newOutput(t, func(s *StatsD) { s.Address = sink.Addr; s.As = as })
			if err := s.Connect(t.Context()); err != nil {
				t.Fatal(err)
			}
			b := metric.Batch{metric.NewGraphite("a.b.c", 1.5, time.Unix(1700000000, 0))}
			if err := s.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			if !sink.WaitLines(1, wait) {
				t.Fatal("nothing arrived")
			}
			if got, want := sink.Lines()[0], "a.b.c:1.5|"+as; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// graphiteBatch parses Graphite lines into a batch (they must be valid).
func graphiteBatch(t testing.TB, lines ...string) metric.Batch {
	t.Helper()
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if err := gcodec.Parse([]byte(l), &b[i]); err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
	}
	return b
}

// TestConvertsGraphiteSafely: Graphite metrics whose names hold StatsD
// separators leave mapped, a negative gauge as "0" and the value in one
// datagram (never split, even where it would straddle two), and what
// StatsD cannot carry is left out, counted and reported as rejected; over
// UDP and TCP.
func TestConvertsGraphiteSafely(t *testing.T) {
	in := []string{
		"evil:666|c 1 1700000000",
		"nan.value 0 1700000000",             // made NaN below: the Graphite parser refuses NaN lines
		"pad.to.fill.it.up 12345 1700000000", // the gauge's first line fits after it, not both
		"negative.gauge -5 1700000000",
		"inf.value -Inf 1700000000",
		"a;k=v,evil:1|c 2 1700000000",
	}
	want := []string{
		"evil_666_c:1|g",
		"pad.to.fill.it.up:12345|g",
		"negative.gauge:0|g", "negative.gauge:-5|g",
		"a:2|g|#k:v_evil:1_c",
	}
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			var lines func() []string
			var addr string
			var wait4 func(n int) bool
			if proto == "udp" {
				sink := plugintest.NewUDPSink(t)
				addr, lines, wait4 = sink.Addr, sink.Lines, func(n int) bool { return sink.WaitLines(n, wait) }
				t.Cleanup(func() {
					// the two lines of the gauge are in one datagram
					for _, d := range sink.Datagrams() {
						if strings.Contains(d, "negative.gauge:0|g") && !strings.Contains(d, "negative.gauge:0|g\nnegative.gauge:-5|g") {
							t.Errorf("datagrams %q: the negative gauge was split", sink.Datagrams())
						}
					}
				})
			} else {
				sink := plugintest.NewLineSink(t)
				addr, lines, wait4 = sink.Addr, sink.Lines, func(n int) bool { return sink.WaitLen(n, wait) }
			}
			s, m := newOutput(t, func(s *StatsD) { s.Address, s.Protocol, s.MaxPacketSize = addr, proto, 64 })
			if err := s.Connect(t.Context()); err != nil {
				t.Fatal(err)
			}
			b := graphiteBatch(t, in...)
			b[1] = metric.NewGraphite("nan.value", math.NaN(), time.Unix(1700000000, 0))
			err := s.Write(t.Context(), b)
			var r *streamout.Refused
			if !errors.As(err, &r) || r.Rejected() != 2 || !errors.Is(err, registry.ErrRejected) || !errors.Is(err, codec.ErrNotNumber) {
				t.Fatalf("Write = %v, want 2 refused (not a number), rejected", err)
			}
			if !wait4(len(want)) {
				t.Fatalf("sink got %q", lines())
			}
			if got := lines(); !slices.Equal(got, want) {
				t.Fatalf("sink got %q, want %q", got, want)
			}
			if n := m.Get("conversion_refused_total"); n != 2 {
				t.Fatalf("conversion_refused_total = %d, want 2", n)
			}
		})
	}
	t.Run("negative timer", func(t *testing.T) {
		s, m := newOutput(t, func(s *StatsD) { s.Address, s.As = plugintest.NewUDPSink(t).Addr, "ms" })
		if err := s.Connect(t.Context()); err != nil {
			t.Fatal(err)
		}
		err := s.Write(t.Context(), graphiteBatch(t, "t -1 1700000000", "u 1 1700000000"))
		if !errors.Is(err, codec.ErrNegativeTimer) || m.Get("conversion_refused_total") != 1 {
			t.Fatalf("Write = %v (conversion_refused_total %d), want a negative timer refused", err, m.Get("conversion_refused_total"))
		}
	})
}

// flakyPC is a batchWriter that takes `ok` datagrams, then fails once.
type flakyPC struct {
	ok    int
	grams []string
}

func (f *flakyPC) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	n := 0
	for _, m := range ms {
		if f.ok == 0 {
			f.ok = -1 // fail once, then take everything
			return n, errors.New("injected send failure")
		}
		f.ok--
		f.grams = append(f.grams, string(m.Buffers[0]))
		n++
	}
	return n, nil
}

// TestUDPPartialWriteCountsRefused: a UDP write that fails part way
// returns a *registry.PartialWriteError: Written ends with the last
// datagram the kernel took, and Refused counts the metrics left out before
// it. A Write of b[Written:] sends the rest and reports the others left
// out: each line goes once, each metric left out is counted once.
func TestUDPPartialWriteCountsRefused(t *testing.T) {
	s, m := newOutput(t, func(s *StatsD) { s.Address, s.MaxPacketSize = plugintest.NewUDPSink(t).Addr, 64 })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	fake := &flakyPC{ok: 2}
	s.pc = fake
	var in, want []string
	refused := 0
	for i := range 40 {
		if i%3 == 1 {
			in = append(in, fmt.Sprintf("inf.%d Inf 1700000000", i))
			refused++
			continue
		}
		in = append(in, fmt.Sprintf("metric.number.%d %d 1700000000", i, i))
		want = append(want, fmt.Sprintf("metric.number.%d:%d|g", i, i))
	}
	b := graphiteBatch(t, in...)
	err := s.Write(t.Context(), b)
	var p *registry.PartialWriteError
	if !errors.As(err, &p) || errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write with a failing send = %v, want a partial write, retryable", err)
	}
	if len(fake.grams) != 2 {
		t.Fatalf("%d datagrams before the failure, want 2", len(fake.grams))
	}
	// Written is the first metric after the lines of the 2 datagrams, and
	// Refused the Infs before it
	sent := strings.Count(strings.Join(fake.grams, "\n"), "\n") + 1
	if p.Written != sent+sent/2 || p.Refused != sent/2 {
		t.Fatalf("%d lines sent; Written %d, Refused %d; want %d and %d", sent, p.Written, p.Refused, sent+sent/2, sent/2)
	}
	if n := m.Get("conversion_refused_total"); n != uint64(p.Refused) {
		t.Fatalf("after the partial write: conversion_refused_total = %d, want %d", n, p.Refused)
	}
	err = s.Write(t.Context(), b[p.Written:])
	var r *streamout.Refused
	if !errors.As(err, &r) || r.Rejected() != refused-p.Refused {
		t.Fatalf("Write of the rest = %v, want %d refused", err, refused-p.Refused)
	}
	var got []string
	for _, g := range fake.grams {
		got = append(got, strings.Split(g, "\n")...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("lines sent %q, want each once: %q", got, want)
	}
	if n := m.Get("conversion_refused_total"); n != uint64(refused) {
		t.Fatalf("conversion_refused_total = %d, want %d", n, refused)
	}
}

// TestTCPWrite: newline-framed, byte for byte, over many write(2)s.
func TestTCPWrite(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	s, _ := newOutput(t, func(s *StatsD) { s.Address = sink.Addr; s.Protocol = "tcp"; s.WriteBuffer = 512 })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 5000 {
		lines = append(lines, fmt.Sprintf("tcp.%d:%d|ms|@0.5", i, i))
	}
	if err := s.Write(t.Context(), parseLines(t, lines)); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLen(len(lines), wait) {
		t.Fatalf("sink got %d of %d", sink.Len(), len(lines))
	}
	if got := sink.Lines(); !slices.Equal(got, lines) {
		t.Fatal("lines differ")
	}
}

// adminServer is a tiny StatsD admin port: it answers "health" with
// "health: up" or "health: down", or not at all (silent).
type adminServer struct {
	addr   string
	state  atomic.Value // "up", "down" or "silent"
	checks atomic.Int64
	ln     net.Listener
	wg     sync.WaitGroup
}

func newAdmin(t *testing.T) *adminServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &adminServer{addr: ln.Addr().String(), ln: ln}
	a.state.Store("up")
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(wait))
				l, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || l != "health\r\n" {
					return
				}
				a.checks.Add(1)
				switch st := a.state.Load().(string); st {
				case "silent":
					time.Sleep(300 * time.Millisecond)
				default:
					fmt.Fprintf(c, "health: %s\n", st)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); a.wg.Wait() })
	return a
}

// waitHealthy waits until Healthy() == want.
func waitHealthy(t *testing.T, s *StatsD, want bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for s.Healthy() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Healthy() stayed %t", !want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHealthTransitions: up -> down (reply "health: down") -> up -> down
// (no reply within the timeout) -> up; each change counted once.
func TestHealthTransitions(t *testing.T) {
	admin := newAdmin(t)
	s, m := newOutput(t, func(s *StatsD) {
		s.Address = "127.0.0.1:9" // nothing needs to listen: UDP
		s.Admin = admin.addr
		s.CheckInterval = registry.Duration(50 * time.Millisecond)
	})
	if !s.Healthy() {
		t.Fatal("not healthy before any check")
	}
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	for admin.checks.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	if !s.Healthy() || m.Get("health_changes_total") != 0 {
		t.Fatal("a healthy backend was marked down")
	}
	steps := []struct {
		state string
		want  bool
	}{{"down", false}, {"up", true}, {"silent", false}, {"up", true}}
	for i, st := range steps {
		admin.state.Store(st.state)
		waitHealthy(t, s, st.want)
		if c := m.Get("health_changes_total"); c != uint64(i+1) {
			t.Fatalf("after %s: health_changes_total = %d, want %d", st.state, c, i+1)
		}
		want := 0.0
		if st.want {
			want = 1
		}
		if v, _ := m.GaugeValue("healthy"); v != want {
			t.Fatalf("gauge healthy = %v, want %v", v, want)
		}
	}
}

// TestHealthAdminGone: a closed admin port is a failed check.
func TestHealthAdminGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, _ := newOutput(t, func(s *StatsD) {
		s.Address = "127.0.0.1:9"
		s.Admin = addr
		s.CheckInterval = registry.Duration(20 * time.Millisecond)
	})
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, s, false)
}

// TestNoGoroutineLeak: Connect/Close cycles (and Connect after Connect, as
// the runner does when it reconnects) leave no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	admin := newAdmin(t)
	sink := plugintest.NewUDPSink(t)
	before := runtime.NumGoroutine()
	for range 20 {
		s, _ := newOutput(t, func(s *StatsD) {
			s.Address = sink.Addr
			s.Admin = admin.addr
			s.CheckInterval = registry.Duration(10 * time.Millisecond)
		})
		for range 3 {
			if err := s.Connect(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Write(t.Context(), parseLines(t, []string{"a:1|c"})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond)
		s.Close()
		s.Close()
	}
	deadline := time.Now().Add(wait)
	for {
		// the admin server's connection goroutines end on their own
		if n := runtime.NumGoroutine(); n <= before {
			break
		} else if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotConnected: Write before Connect asks the runner to connect.
func TestNotConnected(t *testing.T) {
	s, _ := newOutput(t, func(s *StatsD) { s.Address = "127.0.0.1:9" })
	if err := s.Write(t.Context(), parseLines(t, []string{"a:1|c"})); err == nil || !strings.Contains(err.Error(), registry.ErrNotConnected.Error()) {
		t.Fatalf("Write = %v, want ErrNotConnected", err)
	}
}

func TestInitErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(s *StatsD)
		want string
	}{
		{"no address", func(s *StatsD) {}, "address"},
		{"bad address", func(s *StatsD) { s.Address = "nohost" }, "address"},
		{"protocol", func(s *StatsD) { s.Address = "a:1"; s.Protocol = "http" }, "protocol"},
		{"packet small", func(s *StatsD) { s.Address = "a:1"; s.MaxPacketSize = 10 }, "max_packet_size"},
		{"packet big", func(s *StatsD) { s.Address = "a:1"; s.MaxPacketSize = 70000 }, "max_packet_size"},
		{"as", func(s *StatsD) { s.Address = "a:1"; s.As = "h" }, "as"},
		{"admin", func(s *StatsD) { s.Address = "a:1"; s.Admin = "8126" }, "admin"},
		{"interval", func(s *StatsD) {
			s.Address = "a:1"
			s.Admin = "a:2"
			s.CheckInterval = registry.Duration(time.Millisecond)
		}, "check_interval"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := registry.Default.Lookup(registry.Outputs, "statsd")
			s := p.New().(*StatsD)
			c.mod(s)
			env, _ := plugintest.Env(t, "outputs.statsd")
			if err := s.Init(env); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Init = %v, want an error about %s", err, c.want)
			}
		})
	}
}

func TestSampleDecodesStrictly(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Outputs, "statsd")
	s := p.New().(*StatsD)
	if err := plugintest.DecodeSample(p.Sample, "outputs", "statsd", s); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "outputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	if s.MaxPacketSize != 1432 || s.Protocol != "udp" || s.As != "g" || s.CheckInterval.D() != 10*time.Second {
		t.Fatalf("sample and defaults disagree: %+v", s)
	}
}

// BenchmarkPack1000: packing 1000 typical metrics into 1432-byte datagrams.
func BenchmarkPack1000(b *testing.B) {
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = fmt.Sprintf("bench.statsd.service.metric.%d:%d|ms|@0.1", i, i)
	}
	batch := parseLines(b, lines)
	var buf []byte
	var grams []gram
	b.ReportAllocs()
	for b.Loop() {
		buf, grams, _ = pack(buf[:0], batch, metric.Gauge, 1432, grams[:0])
	}
	b.ReportMetric(float64(len(grams)), "datagrams/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
}

// BenchmarkWriteUDP1000: pack plus one sendmmsg for 1000 metrics to a
// loopback socket nobody reads (the kernel drops them at the full buffer).
func BenchmarkWriteUDP1000(b *testing.B) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	s, _ := newOutput(b, func(s *StatsD) { s.Address = sink.LocalAddr().String() })
	if err := s.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = fmt.Sprintf("bench.statsd.service.metric.%d:%d|ms|@0.1", i, i)
	}
	batch := parseLines(b, lines)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
}

// TestTCPPeerClosed: a backend that closed its end is noticed before the
// next write, which takes nothing and asks for a reconnect; the batch then
// arrives once (writing b[Written:] after a partial write, as the runner
// does).
func TestTCPPeerClosed(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	s, _ := newOutput(t, func(s *StatsD) { s.Address = sink.Addr; s.Protocol = "tcp" })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), parseLines(t, []string{"a:1|c"})); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLen(1, wait) {
		t.Fatal("first line did not arrive")
	}
	sink.Stop()
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	b := parseLines(t, []string{"b:2|c", "c:3|c"})
	deadline := time.Now().Add(wait)
	for {
		err := s.Write(t.Context(), b)
		if err == nil {
			break
		}
		if !errors.Is(err, registry.ErrNotConnected) || time.Now().After(deadline) {
			t.Fatalf("Write = %v, want ErrNotConnected then success", err)
		}
		if p := (*registry.PartialWriteError)(nil); errors.As(err, &p) {
			b = b[p.Written:]
		}
		if err := s.Connect(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !sink.WaitLen(3, wait) {
		t.Fatalf("sink got %q", sink.Lines())
	}
	if got := sink.Lines(); !slices.Equal(got, []string{"a:1|c", "b:2|c", "c:3|c"}) {
		t.Fatalf("got %q", got)
	}
}

// BenchmarkPeek: the TCP peer-close peek allocates nothing.
func BenchmarkPeek(b *testing.B) {
	sink := plugintest.NewLineSink(b)
	s, _ := newOutput(b, func(s *StatsD) { s.Address = sink.Addr; s.Protocol = "tcp" })
	if err := s.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.tcp.PeerClosed() {
			b.Fatal("closed")
		}
	}
}

// TestBatchDefaults: unless the configuration says otherwise, a write waits
// up to 10 ms for a batch of at most 1000 metrics (fewer metrics waiting in
// memory than the agent's 5000); both keys override.
func TestBatchDefaults(t *testing.T) {
	for _, tc := range []struct {
		extra    string
		size     int
		interval time.Duration
	}{
		{"", 1000, 10 * time.Millisecond},
		{"batch_size = 3000\nflush_interval = \"0s\"", 3000, 0},
		{"flush_interval = \"50ms\"", 1000, 50 * time.Millisecond},
	} {
		cfg, err := agent.ParseConfig(registry.Default, "t.toml", "[[inputs.statsd]]\nlisten = \"127.0.0.1:0\"\n[[outputs.statsd]]\naddress = \"127.0.0.1:8125\"\n"+tc.extra+"\n",
			func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		o := cfg.Outputs[0].Out
		if o.BatchSize != tc.size || o.FlushInterval.D() != tc.interval {
			t.Errorf("%q: batch_size %d, flush_interval %v; want %d, %v", tc.extra, o.BatchSize, o.FlushInterval.D(), tc.size, tc.interval)
		}
	}
}
