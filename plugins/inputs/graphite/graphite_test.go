package graphite_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/inputs/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// wait bounds every wait in these tests; they return as soon as the
// condition holds, so it only matters when something is broken.
const wait = 10 * time.Second

// newGraphite returns an inputs.graphite from the registered factory (so with
// its defaults), listening on a free loopback port, changed by mod.
func newGraphite(t testing.TB, mod func(g *graphite.Graphite)) *graphite.Graphite {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Inputs, "graphite")
	if !ok {
		t.Fatal("inputs.graphite is not registered")
	}
	g := p.New().(*graphite.Graphite)
	g.Listen = "127.0.0.1:0"
	if mod != nil {
		mod(g)
	}
	return g
}

// running is an input whose Run is going on in the background.
type running struct {
	g       *graphite.Graphite
	capture *plugintest.Capture
	metrics *plugintest.Metrics
	addr    string
	cancel  context.CancelFunc
	done    chan error

	once sync.Once
	err  error
}

// start inits and runs an input; the test's end stops it.
func start(t *testing.T, mod func(g *graphite.Graphite)) *running {
	t.Helper()
	g := newGraphite(t, mod)
	env, m := plugintest.Env(t, "inputs.graphite")
	if err := g.Init(env); err != nil {
		t.Fatalf("Init: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{g: g, capture: plugintest.NewCapture(), metrics: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Run(ctx, r.capture) }()
	a := g.Addr()
	if a == nil {
		cancel()
		t.Fatalf("Run: %v", <-r.done)
	}
	r.addr = a.String()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// stop cancels Run and returns its result; Run must return within wait.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(wait):
			r.err = errors.New("Run did not return after cancellation")
		}
	})
	return r.err
}

// idle waits until every accepted connection has been closed, so that all
// the server read has been emitted.
func (r *running) idle(t *testing.T, accepted uint64) {
	t.Helper()
	if got := r.metrics.WaitCounter("connections_total", accepted, wait); got < accepted {
		t.Fatalf("connections_total = %d, want %d", got, accepted)
	}
	if v := r.metrics.WaitGauge("connections_active", 0, wait); v != 0 {
		t.Fatalf("connections_active = %v, want 0", v)
	}
}

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	var d net.Dialer
	c, err := d.DialContext(t.Context(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// closedByServer reads from c until the server closes it (EOF or reset).
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

func TestSampleDecodes(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Inputs, "graphite")
	var g graphite.Graphite
	if err := plugintest.DecodeSample(p.Sample, "inputs", "graphite", &g); err != nil {
		t.Fatal(err)
	}
	if err := g.Init(registry.Env{Metrics: plugintest.NewMetrics()}); err != nil {
		t.Fatalf("the sample does not pass Init: %v", err)
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(g *graphite.Graphite)
		wantErr string // "" = valid
	}{
		{"defaults", nil, ""},
		{"udp", func(g *graphite.Graphite) { g.Protocol = "udp" }, ""},
		{"ipv6 listen", func(g *graphite.Graphite) { g.Listen = "[::1]:2003" }, ""},
		{"any address", func(g *graphite.Graphite) { g.Listen = ":2003" }, ""},
		{"unknown protocol", func(g *graphite.Graphite) { g.Protocol = "sctp" }, `protocol "sctp"`},
		{"empty protocol", func(g *graphite.Graphite) { g.Protocol = "" }, `protocol ""`},
		{"upper-case protocol", func(g *graphite.Graphite) { g.Protocol = "TCP" }, `protocol "TCP"`},
		{"listen without port", func(g *graphite.Graphite) { g.Listen = "127.0.0.1" }, `listen "127.0.0.1"`},
		{"empty listen", func(g *graphite.Graphite) { g.Listen = "" }, `listen ""`},
		{"zero max_line_length", func(g *graphite.Graphite) { g.MaxLineLength = 0 }, "max_line_length"},
		{"negative max_line_length", func(g *graphite.Graphite) { g.MaxLineLength = -1 }, "max_line_length"},
		{"negative max_connections", func(g *graphite.Graphite) { g.MaxConnections = -1 }, "max_connections"},
		{"negative read_buffer", func(g *graphite.Graphite) { g.ReadBuffer = -1 }, "read_buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraphite(t, tc.mod)
			env, _ := plugintest.Env(t, "inputs.graphite")
			plugintest.WantErr(t, "Init", g.Init(env), tc.wantErr)
		})
	}
}

func TestRunFailsWhenAddressInUse(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			var addr string
			switch proto {
			case "tcp":
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				addr = l.Addr().String()
			case "udp":
				c, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				addr = c.LocalAddr().String()
			}
			g := runFails(t, proto, addr)
			if a := g.Addr(); a != nil {
				t.Fatalf("Addr = %v after a failed listen, want nil", a)
			}
		})
	}
}

// runFails runs an input listening on proto and listen and requires Run to
// fail with an error naming listen.
func runFails(t *testing.T, proto, listen string) *graphite.Graphite {
	t.Helper()
	g := newGraphite(t, func(g *graphite.Graphite) { g.Protocol, g.Listen = proto, listen })
	env, _ := plugintest.Env(t, "inputs.graphite")
	if err := g.Init(env); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(t.Context(), plugintest.NewCapture()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), listen) {
			t.Fatalf("Run = %v, want an error naming %s", err, listen)
		}
	case <-time.After(wait):
		t.Fatal("Run did not fail")
	}
	return g
}

// TestTCPManyConnections: 50 clients at once, each writing its lines in
// uneven pieces; every line arrives byte for byte, each client's in order.
func TestTCPManyConnections(t *testing.T) {
	const clients, lines = 50, 300
	r := start(t, nil)
	want := make([][]string, clients)
	for c := range clients {
		for i := range lines {
			var l string
			switch i % 4 {
			case 0:
				l = fmt.Sprintf("c%d.plain.%d %d 1700000000", c, i, i)
			case 1:
				l = fmt.Sprintf("c%d.tagged.%d;dc=eu;host=h%d %d.25 1700000001", c, i, c, i)
			case 2:
				l = fmt.Sprintf("c%d.tabs.%d\t-1e-3\t1700000002.5", c, i) // kept as sent
			case 3:
				l = fmt.Sprintf("c%d.crlf.%d  +%d  1700000003\r", c, i, i) // '\r' and runs of blanks too
			}
			want[c] = append(want[c], l)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		conn := dial(t, "tcp", r.addr)
		payload := []byte(strings.Join(want[c], "\n") + "\n")
		wg.Go(func() {
			defer conn.Close()
			// uneven pieces, so lines straddle reads
			for step := 1 + c*37; len(payload) > 0; step = step*3 + 1 {
				n := min(step%4000+1, len(payload))
				if _, err := conn.Write(payload[:n]); err != nil {
					errs <- err
					return
				}
				payload = payload[n:]
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r.idle(t, clients)

	got := map[string][]string{}
	for _, l := range r.capture.Raw() {
		c, _, _ := strings.Cut(l, ".")
		got[c] = append(got[c], l)
	}
	for c := range clients {
		if g := got[fmt.Sprintf("c%d", c)]; !slices.Equal(g, want[c]) {
			t.Errorf("client %d: got %d lines, want %d (or not byte for byte, in order)", c, len(g), len(want[c]))
		}
	}
	if n := r.capture.Len(); n != clients*lines {
		t.Errorf("captured %d metrics, want %d", n, clients*lines)
	}
	for _, name := range []string{"parse_errors_total", "lines_too_long_total", "truncated_total", "connections_rejected_total"} {
		if v := r.metrics.Get(name); v != 0 {
			t.Errorf("%s = %d, want 0", name, v)
		}
	}
	if v := r.metrics.Get("connections_total"); v != clients {
		t.Errorf("connections_total = %d, want %d", v, clients)
	}
}

// TestTCPStream: what one connection sends, and what comes out of it.
func TestTCPStream(t *testing.T) {
	long := strings.Repeat("x", 1<<20) // 1 MiB
	for _, tc := range []struct {
		name     string
		maxLine  int // 0 = default
		input    []string
		want     []string
		counters map[string]uint64
	}{
		{
			name:  "malformed lines are counted and skipped",
			input: []string{"good.1 1 1700000000\nnot a metric at all\ngood.2 2 1700000000\n", "bad.value x 1700000000\nonly.two 1\nbad.ts 1 soon\ngood.3 3 1700000000\n"},
			want:  []string{"good.1 1 1700000000", "good.2 2 1700000000", "good.3 3 1700000000"},
			counters: map[string]uint64{
				"parse_errors_total": 4,
			},
		},
		{
			name:     "empty lines are neither metrics nor errors",
			input:    []string{"\n\r\na 1 1\n\n\nb 2 2\n"},
			want:     []string{"a 1 1", "b 2 2"},
			counters: map[string]uint64{"parse_errors_total": 0},
		},
		{
			name:     "a 1 MiB line over max_line_length is skipped and the next line arrives",
			maxLine:  1024,
			input:    []string{"before 1 1\n" + long, " 1 1\nafter 2 2\n"},
			want:     []string{"before 1 1", "after 2 2"},
			counters: map[string]uint64{"lines_too_long_total": 1, "parse_errors_total": 0},
		},
		{
			name:     "a line of exactly max_line_length passes",
			maxLine:  1024,
			input:    []string{"p." + strings.Repeat("y", 1024-len("p. 1 1")) + " 1 1\nnext 2 2\n"},
			want:     []string{"p." + strings.Repeat("y", 1024-len("p. 1 1")) + " 1 1", "next 2 2"},
			counters: map[string]uint64{"lines_too_long_total": 0},
		},
		{
			name:     "the last line without newline counts when the client closes",
			input:    []string{"a 1 1\nb 2", " 2"},
			want:     []string{"a 1 1", "b 2 2"},
			counters: map[string]uint64{"truncated_total": 0},
		},
		{
			name:     "a malformed last line without newline is counted",
			input:    []string{"a 1 1\nb 2"},
			want:     []string{"a 1 1"},
			counters: map[string]uint64{"parse_errors_total": 1},
		},
		{
			name:     "raw bytes pass through untouched",
			input:    []string{"tabs.sep\t1\t1\n  lead.trail  2  2  \nnul\x00.ok 3 3\nutf8.\xff\xfe 4 4\r\n"},
			want:     []string{"tabs.sep\t1\t1", "  lead.trail  2  2  ", "nul\x00.ok 3 3", "utf8.\xff\xfe 4 4\r"},
			counters: map[string]uint64{"parse_errors_total": 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, func(g *graphite.Graphite) {
				if tc.maxLine > 0 {
					g.MaxLineLength = tc.maxLine
				}
			})
			c := dial(t, "tcp", r.addr)
			for _, s := range tc.input {
				write(t, c, s)
			}
			c.Close()
			r.idle(t, 1)
			if got := r.capture.Raw(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
			for name, want := range tc.counters {
				if got := r.metrics.Get(name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

func TestTCPMaxConnections(t *testing.T) {
	r := start(t, func(g *graphite.Graphite) { g.MaxConnections = 2 })
	c1 := dial(t, "tcp", r.addr)
	c2 := dial(t, "tcp", r.addr)
	write(t, c1, "one 1 1\n")
	write(t, c2, "two 2 2\n")
	if got := r.metrics.WaitCounter("connections_total", 2, wait); got != 2 {
		t.Fatalf("connections_total = %d, want 2", got)
	}

	c3 := dial(t, "tcp", r.addr) // the kernel completes the handshake; the server closes it
	closedByServer(t, c3)
	if got := r.metrics.WaitCounter("connections_rejected_total", 1, wait); got != 1 {
		t.Fatalf("connections_rejected_total = %d, want 1", got)
	}

	// the two accepted connections still work, and a slot frees up on close
	write(t, c1, "one.more 1 1\n")
	c1.Close()
	if v := r.metrics.WaitGauge("connections_active", 1, wait); v != 1 {
		t.Fatalf("connections_active = %v, want 1", v)
	}
	c4 := dial(t, "tcp", r.addr)
	write(t, c4, "four 4 4\n")
	c4.Close()
	c2.Close()
	r.idle(t, 3)
	if got, want := sorted(r.capture.Raw()), []string{"four 4 4", "one 1 1", "one.more 1 1", "two 2 2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := r.metrics.Get("connections_rejected_total"); got != 1 {
		t.Errorf("connections_rejected_total = %d, want 1", got)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	r := start(t, func(g *graphite.Graphite) { g.IdleTimeout = registry.Duration(idle) })
	began := time.Now()
	c := dial(t, "tcp", r.addr)
	closedByServer(t, c)
	if el := time.Since(began); el < idle {
		t.Errorf("closed after %v, before idle_timeout %v", el, idle)
	}
	if got := r.metrics.WaitCounter("connections_idle_closed_total", 1, wait); got != 1 {
		t.Errorf("connections_idle_closed_total = %d, want 1", got)
	}
	r.idle(t, 1)
	// an idle close is not a shutdown: the server goes on accepting
	dial(t, "tcp", r.addr)
	if got := r.metrics.WaitCounter("connections_total", 2, wait); got != 2 {
		t.Fatalf("connections_total = %d after an idle close, want 2", got)
	}
}

// TestTCPShutdown: cancelling ctx stops the listener, lets connections finish
// for drain_grace, emits what they sent, and Run returns nil.
func TestTCPShutdown(t *testing.T) {
	t.Run("a client that closes during drain_grace loses nothing", func(t *testing.T) {
		r := start(t, func(g *graphite.Graphite) { g.DrainGrace = registry.Duration(wait) })
		c := dial(t, "tcp", r.addr)
		write(t, c, "before 1 1\n")
		if got := r.metrics.WaitCounter("connections_total", 1, wait); got != 1 {
			t.Fatalf("connections_total = %d", got)
		}
		r.cancel()
		write(t, c, "after 2 2\nlast.without.newline 3 3")
		c.Close()
		if err := r.stop(t); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if got, want := r.capture.Raw(), []string{"before 1 1", "after 2 2", "last.without.newline 3 3"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		// the listener is closed
		if c, err := net.DialTimeout("tcp", r.addr, wait); err == nil {
			c.Close()
			t.Error("still accepting after Run returned")
		}
	})
	t.Run("a client that stays is cut after drain_grace", func(t *testing.T) {
		const grace = 100 * time.Millisecond
		r := start(t, func(g *graphite.Graphite) { g.DrainGrace = registry.Duration(grace) })
		c := dial(t, "tcp", r.addr)
		write(t, c, "complete 1 1\nhalf.a.li")
		if !r.capture.WaitFor(1, wait) {
			t.Fatal("the complete line did not arrive")
		}
		began := time.Now()
		if err := r.stop(t); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if el := time.Since(began); el < grace {
			t.Errorf("Run returned after %v, before drain_grace %v", el, grace)
		}
		closedByServer(t, c)
		if got, want := r.capture.Raw(), []string{"complete 1 1"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if got := r.metrics.Get("truncated_total"); got != 1 {
			t.Errorf("truncated_total = %d, want 1", got)
		}
	})
}

func TestUDP(t *testing.T) {
	for _, tc := range []struct {
		name      string
		datagrams []string
		want      []string
		counters  map[string]uint64
	}{
		{
			name:      "several lines per datagram, the last without newline",
			datagrams: []string{"a 1 1\nb 2 2\nc 3 3", "d 4 4\n", "e;k=v 5 5"},
			want:      []string{"a 1 1", "b 2 2", "c 3 3", "d 4 4", "e;k=v 5 5"},
			counters:  map[string]uint64{"parse_errors_total": 0},
		},
		{
			name:      "a malformed line does not lose the good ones",
			datagrams: []string{"good.1 1 1\nthis is bad\ngood.2 2 2\nbad.value x 1\ngood.3 3 3"},
			want:      []string{"good.1 1 1", "good.2 2 2", "good.3 3 3"},
			counters:  map[string]uint64{"parse_errors_total": 2},
		},
		{
			name:      "a line does not continue into the next datagram",
			datagrams: []string{"split.line 1", " 1\nok 2 2"},
			want:      []string{"ok 2 2"},
			counters:  map[string]uint64{"parse_errors_total": 2},
		},
		{
			name:      "a line over max_line_length is counted",
			datagrams: []string{"ok 1 1\n" + strings.Repeat("z", 2000) + " 1 1\nok 2 2"},
			want:      []string{"ok 1 1", "ok 2 2"},
			counters:  map[string]uint64{"lines_too_long_total": 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, func(g *graphite.Graphite) { g.Protocol, g.MaxLineLength = "udp", 1024 })
			c := dial(t, "udp", r.addr)
			// the sentinel comes last: once it is in, every datagram before it was read
			for _, d := range append(slices.Clone(tc.datagrams), "sentinel 0 0") {
				write(t, c, d)
			}
			if !r.capture.WaitFor(len(tc.want)+1, wait) {
				t.Fatalf("got %q, want %q and the sentinel", r.capture.Raw(), tc.want)
			}
			if err := r.stop(t); err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
			got := r.capture.Raw()
			if !slices.Equal(got, append(slices.Clone(tc.want), "sentinel 0 0")) {
				t.Errorf("got %q, want %q and the sentinel", got, tc.want)
			}
			for name, want := range tc.counters {
				if got := r.metrics.Get(name); got != want {
					t.Errorf("%s = %d, want %d", name, got, want)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// BenchmarkTCPInput: one connection streaming 1000-line writes through the
// listener into a Capture-like emitter that drops the batches.
func BenchmarkTCPInput(b *testing.B) {
	benchTCPInput(b, "bench.input.path.%d %d.5 1700000000\n", nil)
}

// benchTCPInput streams 1000-line writes of lines made by format (with the
// line number twice) to an input configured by configure.
func benchTCPInput(b *testing.B, format string, configure func(*graphite.Graphite)) {
	var payload []byte
	const lines = 1000
	for i := range lines {
		payload = fmt.Appendf(payload, format, i, i)
	}
	g := newGraphite(b, configure)
	env, _ := plugintest.Env(b, "inputs.graphite")
	env.Log = zerolog.Nop()
	if err := g.Init(env); err != nil {
		b.Fatal(err)
	}
	out := &counting{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	c, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	sent := 0
	for b.Loop() {
		if _, err := c.Write(payload); err != nil {
			b.Fatal(err)
		}
		// one write in flight: the reader works while the next one is sent
		if !out.waitFor(sent, wait) {
			b.Fatalf("%d of %d lines arrived", out.n.Load(), sent)
		}
		sent += lines
	}
	if !out.waitFor(sent, wait) {
		b.Fatalf("%d of %d lines arrived", out.n.Load(), sent)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/line")
}

// counting is an Emitter that only counts metrics.
type counting struct {
	n      atomic.Int64
	notify chan struct{}
}

func (c *counting) Emit(_ context.Context, b metric.Batch) error {
	c.n.Add(int64(len(b)))
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

func (c *counting) waitFor(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for c.n.Load() < int64(n) {
		select {
		case <-c.notify:
		case <-deadline.C:
			return c.n.Load() >= int64(n)
		}
	}
	return true
}
