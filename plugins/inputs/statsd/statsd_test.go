package statsd_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/inputs/statsd"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

const wait = 10 * time.Second

// running is an inputs.statsd whose Run goes on in the background.
type running struct {
	s       *statsd.StatsD
	capture *plugintest.Capture
	metrics *plugintest.Metrics
	addr    string
}

// start builds an inputs.statsd from the registered factory (its defaults),
// on a free loopback port, changed by mod, and runs it until the test ends.
func start(t *testing.T, mod func(s *statsd.StatsD)) *running {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Inputs, "statsd")
	if !ok {
		t.Fatal("inputs.statsd is not registered")
	}
	s := p.New().(*statsd.StatsD)
	s.Listen = "127.0.0.1:0"
	s.ReadBuffer = 8 << 20
	if mod != nil {
		mod(s)
	}
	env, m := plugintest.Env(t, "inputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatalf("Init: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	r := &running{s: s, capture: plugintest.NewCapture(), metrics: m}
	go func() { done <- s.Run(ctx, r.capture) }()
	a := s.Addr()
	if a == nil {
		cancel()
		t.Fatalf("Run: %v", <-done)
	}
	r.addr = a.String()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func dial(t *testing.T, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// forms are StatsD lines of every kind the codec knows; each must pass
// byte for byte.
var forms = []string{
	"gorets:1|c",
	"gorets:1|c|@0.1",
	"gaugor:333|g",
	"gaugor:-10|g",
	"gaugor:+4|g",
	"glork:320|ms|@0.1",
	"histo:1.5|h",
	"dist:2|d|#env:prod,bare",
	"uniques:765|s",
	"users:alice|s",
	"requests,host=a,dc=ams:1|c",
	"multi:1:2:3|ms|#k:v",
	"with.time:1|c|T1700000000",
	"unknown.section:1|c|x:y|@0.5",
	"etsy.multi:1|c:2|ms",
	"crlf:1|c\r",
}

// TestUDPForwardsLinesByteForByte: one datagram with every form, its last
// line without '\n'.
func TestUDPForwardsLinesByteForByte(t *testing.T) {
	r := start(t, nil)
	c := dial(t, "udp", r.addr)
	if _, err := c.Write([]byte(strings.Join(forms, "\n"))); err != nil {
		t.Fatal(err)
	}
	if !r.capture.WaitFor(len(forms), wait) {
		t.Fatalf("got %d of %d metrics", r.capture.Len(), len(forms))
	}
	if got := r.capture.Raw(); !slices.Equal(got, forms) {
		t.Fatalf("got %q\nwant %q", got, forms)
	}
	if d := r.metrics.WaitCounter("datagrams_total", 1, wait); d != 1 {
		t.Fatalf("datagrams_total = %d", d)
	}
	if v, _ := r.metrics.GaugeValue("receive_buffer_bytes"); v <= 0 {
		t.Fatalf("receive_buffer_bytes = %v", v)
	}
}

// TestUDPBadLinesSkipped: with strict = true, malformed lines are counted
// and skipped, the good lines of the same datagram pass; "foo:1"
// (go-statsd-proxy's crash) is one.
func TestUDPBadLinesSkipped(t *testing.T) {
	r := start(t, func(s *statsd.StatsD) { s.Strict = true })
	c := dial(t, "udp", r.addr)
	for _, d := range []string{"a:1|c\nfoo:1\nb:2|g\n", "foo:1", "%s%s%n:1|c\nc:3|ms\n:1|c\nx:|c\ny:1|zz", "d:4|c"} {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a:1|c", "b:2|g", "%s%s%n:1|c", "c:3|ms", "d:4|c"}
	if !r.capture.WaitFor(len(want), wait) {
		t.Fatalf("got %d metrics", r.capture.Len())
	}
	if got := r.capture.Raw(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if pe := r.metrics.WaitCounter("parse_errors_total", 5, wait); pe != 5 {
		t.Fatalf("parse_errors_total = %d, want 5", pe)
	}
}

// TestUDPUnparsedPassed: by default, lines the codec does not understand
// pass as opaque lines, byte for byte, keyed as Etsy proxy.js keys them
// (the text before the first ':'), and are counted; empty lines are not
// lines.
func TestUDPUnparsedPassed(t *testing.T) {
	r := start(t, nil)
	c := dial(t, "udp", r.addr)
	for _, d := range []string{"a:1|c\n_e{5,4}:title|text|#k:v\n\n", "_sc|name|0|#k:v", " lead:1|c\nedge.nan:NaN|g\nbig:1e999|c\ny:1|zz\nfoo:1\nb:2|g"} {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a:1|c", "_e{5,4}:title|text|#k:v", "_sc|name|0|#k:v", " lead:1|c", "edge.nan:NaN|g", "big:1e999|c", "y:1|zz", "foo:1", "b:2|g"}
	keys := []string{"a", "_e{5,4}", "_sc|name|0|#k", " lead", "edge.nan", "big", "y", "foo", "b"}
	if !r.capture.WaitFor(len(want), wait) {
		t.Fatalf("got %d metrics", r.capture.Len())
	}
	if got := r.capture.Raw(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	var gotKeys []string
	opaque := 0
	snap := r.capture.Snapshot()
	for i := range snap {
		gotKeys = append(gotKeys, string(snap[i].Path()))
		if snap[i].Opaque() {
			opaque++
		}
	}
	// " lead:1|c" parses (a name may start with a space); the rest do not
	if !slices.Equal(gotKeys, keys) || opaque != 6 {
		t.Fatalf("keys %q (%d opaque), want %q (6 opaque)", gotKeys, opaque, keys)
	}
	if n := r.metrics.WaitCounter("passed_unparsed_total", 6, wait); n != 6 {
		t.Fatalf("passed_unparsed_total = %d, want 6", n)
	}
	if n := r.metrics.Get("parse_errors_total"); n != 0 {
		t.Fatalf("parse_errors_total = %d, want 0", n)
	}
}

// TestUDPLargeDatagramsBatched: 64 KiB datagrams with thousands of lines and
// small ones, sent in a burst, arrive whole, with fewer reads than datagrams.
func TestUDPLargeDatagramsBatched(t *testing.T) {
	r := start(t, nil)
	c := dial(t, "udp", r.addr)
	var want []string
	grams := 0
	for g := range 40 {
		size := 65000
		if g%2 == 1 {
			size = 300
		}
		var b bytes.Buffer
		for b.Len() < size {
			l := fmt.Sprintf("big.%d.%d:%d|ms|@0.25", g, b.Len(), g)
			if b.Len()+len(l)+1 > 65507 {
				break
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(l)
			want = append(want, l)
		}
		if _, err := c.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		grams++
	}
	if !r.capture.WaitFor(len(want), wait) {
		t.Fatalf("got %d of %d metrics", r.capture.Len(), len(want))
	}
	if got := r.capture.Raw(); !slices.Equal(got, want) {
		t.Fatalf("lines differ (got %d, want %d)", len(got), len(want))
	}
	d := r.metrics.WaitCounter("datagrams_total", uint64(grams), wait)
	calls := r.metrics.Get("udp_reads_total")
	if d != uint64(grams) || calls == 0 || calls > d {
		t.Fatalf("datagrams_total %d (want %d), udp_reads_total %d", d, grams, calls)
	}
	if r.capture.Batches > int(calls) {
		t.Errorf("%d batches for %d read calls: want at most one batch per call", r.capture.Batches, calls)
	}
	t.Logf("%d metrics in %d datagrams, %d read calls", len(want), d, calls)
}

// TestTCPNewlineFramed: TCP lines across writes; the last without '\n'
// counts when the client closes.
func TestTCPNewlineFramed(t *testing.T) {
	r := start(t, func(s *statsd.StatsD) { s.Protocol = "tcp" })
	c := dial(t, "tcp", r.addr)
	all := strings.Join(forms, "\n")
	for i := 0; i < len(all); i += 7 {
		if _, err := c.Write([]byte(all[i:min(i+7, len(all))])); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if !r.capture.WaitFor(len(forms), wait) {
		t.Fatalf("got %d of %d", r.capture.Len(), len(forms))
	}
	if got := r.capture.Raw(); !slices.Equal(got, forms) {
		t.Fatalf("got %q", got)
	}
}

func TestInitErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(s *statsd.StatsD)
		want string
	}{
		{"protocol", func(s *statsd.StatsD) { s.Protocol = "sctp" }, "protocol"},
		{"listen", func(s *statsd.StatsD) { s.Listen = "8125" }, "listen"},
		{"read_batch", func(s *statsd.StatsD) { s.ReadBatch = 0 }, "read_batch"},
		{"read_batch big", func(s *statsd.StatsD) { s.ReadBatch = 5000 }, "read_batch"},
		{"max_line_length", func(s *statsd.StatsD) { s.MaxLineLength = 0 }, "max_line_length"},
		{"read_buffer", func(s *statsd.StatsD) { s.ReadBuffer = -1 }, "read_buffer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := registry.Default.Lookup(registry.Inputs, "statsd")
			s := p.New().(*statsd.StatsD)
			c.mod(s)
			env, _ := plugintest.Env(t, "inputs.statsd")
			err := s.Init(env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Init = %v, want an error about %s", err, c.want)
			}
		})
	}
}

func TestSampleDecodesStrictly(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Inputs, "statsd")
	s := p.New().(*statsd.StatsD)
	if err := plugintest.DecodeSample(p.Sample, "inputs", "statsd", s); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "inputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	if s.Listen != ":8125" || s.Protocol != "udp" || s.ReadBatch != 64 {
		t.Fatalf("sample and defaults disagree: %+v", s)
	}
}

// benchDatagrams returns n datagrams of about size bytes of typical StatsD
// lines, each in its 64 KiB slot of one receive area (as the UDP input
// reads them), the area, and the number of lines.
func benchDatagrams(n, size int) ([][]byte, []byte, int) {
	var grams [][]byte
	area := make([]byte, n*(64<<10))
	lines := 0
	types := []string{"c", "ms|@0.1", "g", "c|#env:prod,host:web1"}
	for g := range n {
		var b bytes.Buffer
		for i := 0; b.Len() < size-64; i++ {
			fmt.Fprintf(&b, "bench.statsd.service%d.metric.%d:%d|%s\n", g%10, i, i, types[i%len(types)])
			lines++
		}
		slot := area[g*(64<<10):]
		grams = append(grams, slot[:copy(slot, bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))])
	}
	return grams, area, lines
}

// BenchmarkParseDatagrams: the UDP input's parse path for one read call of
// 64 datagrams of ~1400 bytes (the recvmmsg batch, without the syscall):
// split, parse, one batch, its lines copied out of the receive area.
// Allocations are per call (the batch and its bytes), none per metric;
// ns/metric is the cost per line.
func BenchmarkParseDatagrams(b *testing.B) {
	for _, size := range []int{1400, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			n := 64
			if size > 1400 {
				n = 4
			}
			grams, area, lines := benchDatagrams(n, size)
			r := linein.NewBatchReader(nil, n, codec.Parse, 64<<10, linein.Counters{}, nil, nil, nil)
			bytesPer := 0
			for _, g := range grams {
				bytesPer += len(g)
			}
			b.SetBytes(int64(bytesPer))
			b.ReportAllocs()
			for b.Loop() {
				if got := r.FrameDatagrams(grams, area); len(got) != lines {
					b.Fatalf("%d metrics, want %d", len(got), lines)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/metric")
			b.ReportMetric(float64(lines), "metrics/op")
		})
	}
}

// TestUDPShutdownEmitsWhatWasQueued: datagrams the kernel queued before the
// input was stopped are read during drain_grace and emitted before Run
// returns, including metrics gathered from light reads.
func TestUDPShutdownEmitsWhatWasQueued(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Inputs, "statsd")
	s := p.New().(*statsd.StatsD)
	s.Listen, s.ReadBuffer = "127.0.0.1:0", 8<<20
	env, _ := plugintest.Env(t, "inputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	capture := plugintest.NewCapture()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, capture) }()
	c := dial(t, "udp", s.Addr().String())
	// one metric first: it is read and gathered, waiting for more
	if _, err := c.Write([]byte("first:1|c")); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if _, err := c.Write([]byte(fmt.Sprintf("m.%d:%d|c", i, i))); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if got := capture.Len(); got != n+1 {
		t.Fatalf("%d of %d metrics emitted before Run returned", got, n+1)
	}
}

// TestUDPLightReadsEmittedPromptly: a lone datagram is not held back for
// company longer than the gathering delay.
func TestUDPLightReadsEmittedPromptly(t *testing.T) {
	r := start(t, nil)
	c := dial(t, "udp", r.addr)
	for i := range 5 {
		sent := time.Now()
		if _, err := c.Write([]byte(fmt.Sprintf("lone.%d:1|c", i))); err != nil {
			t.Fatal(err)
		}
		if !r.capture.WaitFor(i+1, wait) {
			t.Fatal("lone metric not emitted")
		}
		if d := time.Since(sent); d > 500*time.Millisecond {
			t.Fatalf("lone metric emitted after %v", d)
		}
	}
}

// gate is an Emitter whose first Emit waits for first, and every later one
// for open; then it counts.
type gate struct {
	first, open chan struct{}
	entered     chan struct{} // closed by the first Emit
	calls       atomic.Int32
	n           atomic.Int64
}

func (g *gate) Emit(ctx context.Context, b metric.Batch) error {
	wait := g.open
	if g.calls.Add(1) == 1 {
		close(g.entered)
		wait = g.first
	}
	select {
	case <-wait:
	case <-ctx.Done():
	}
	g.n.Add(int64(len(b)))
	return nil
}

// TestUDPReadAheadBounded: while Emit is stuck, the reader stops once
// linein.ReadAheadMetrics metrics wait (plus the batch in Emit and the one
// it holds), leaving the rest in the socket's receive buffer, and nothing
// is lost when Emit resumes.
func TestUDPReadAheadBounded(t *testing.T) {
	const perGram, grams, readBatch = 100, 400, 8 // 800 metrics per full read
	p, _ := registry.Default.Lookup(registry.Inputs, "statsd")
	s := p.New().(*statsd.StatsD)
	s.Listen, s.ReadBuffer, s.ReadBatch = "127.0.0.1:0", 16<<20, readBatch
	env, m := plugintest.Env(t, "inputs.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := &gate{first: make(chan struct{}), open: make(chan struct{}), entered: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, g) }()
	c := dial(t, "udp", s.Addr().String())
	// A lone metric, emitted by the reader itself once its gathering delay
	// is over: the reader is then stuck in Emit while the burst arrives, so
	// that every later read is a full one, handed to the emitting goroutine.
	if _, err := c.Write([]byte("ra.first:1|c")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.entered:
	case <-time.After(wait):
		t.Fatal("nothing emitted")
	}
	for i := range grams {
		var b bytes.Buffer
		for j := range perGram {
			fmt.Fprintf(&b, "ra.%d.%d:1|c\n", i, j)
		}
		if _, err := c.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	close(g.first)
	// let the reader run into its bound, then check it stopped there
	limit := uint64(1 + (linein.ReadAheadMetrics+2*readBatch*perGram)/perGram)
	time.Sleep(300 * time.Millisecond)
	read := m.Get("datagrams_total")
	if read > limit {
		t.Fatalf("reader took %d datagrams while Emit was stuck: want at most %d", read, limit)
	}
	if read*perGram < linein.ReadAheadMetrics/2 {
		t.Fatalf("reader took only %d datagrams while Emit was stuck: the read-ahead should fill to ~%d metrics", read, linein.ReadAheadMetrics)
	}
	close(g.open)
	want := int64(perGram*grams + 1)
	deadline := time.Now().Add(wait)
	for g.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := g.n.Load(); got != want {
		t.Fatalf("emitted %d of %d metrics after Emit resumed", got, want)
	}
	t.Logf("read %d of %d datagrams while Emit was stuck (bound %d)", read, grams+1, limit)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
