package graphite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// wait bounds every wait in these tests; they return as soon as the
// condition holds, so it only matters when something is broken.
const wait = 10 * time.Second

// newOutput returns an outputs.graphite from the registered factory (so with
// its defaults), changed by mod and passed through Init.
func newOutput(t testing.TB, addr string, mod func(g *Graphite)) (*Graphite, *plugintest.Metrics) {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Outputs, "graphite")
	if !ok {
		t.Fatal("outputs.graphite is not registered")
	}
	g := p.New().(*Graphite)
	g.Address = addr
	if mod != nil {
		mod(g)
	}
	env, m := plugintest.Env(t, "outputs.graphite")
	if err := g.Init(env); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g, m
}

func connect(t testing.TB, g *Graphite) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := g.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
}

func writeCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// numbered returns n distinct Graphite lines.
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d %d 1700000000", prefix, i, i)
	}
	return out
}

// matchLines compares got with want, where "{now}" in a wanted line stands for
// a Unix time in [from, to].
func matchLines(t *testing.T, got, want []string, from, to int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d\ngot  %q\nwant %q", len(got), len(want), head(got), head(want))
	}
	for i := range want {
		before, after, ok := strings.Cut(want[i], "{now}")
		if !ok {
			if got[i] != want[i] {
				t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
			}
			continue
		}
		g := got[i]
		if !strings.HasPrefix(g, before) || !strings.HasSuffix(g, after) || len(g) < len(before)+len(after) {
			t.Fatalf("line %d = %q, want %q", i, g, want[i])
		}
		ts, err := strconv.ParseInt(g[len(before):len(g)-len(after)], 10, 64)
		if err != nil || ts < from || ts > to {
			t.Fatalf("line %d = %q: timestamp not in [%d, %d]", i, g, from, to)
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestSampleDecodes(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Outputs, "graphite")
	var g Graphite
	if err := plugintest.DecodeSample(p.Sample, "outputs", "graphite", &g); err != nil {
		t.Fatal(err)
	}
	if err := g.Init(registry.Env{Metrics: plugintest.NewMetrics()}); err != nil {
		t.Fatalf("the sample does not pass Init: %v", err)
	}
	if g.Destination() != "127.0.0.1:2003" {
		t.Fatalf("Destination = %q", g.Destination())
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(g *Graphite)
		wantErr string // "" = valid
	}{
		{"defaults", nil, ""},
		{"udp", func(g *Graphite) { g.Protocol = "udp" }, ""},
		{"host name", func(g *Graphite) { g.Address = "carbon.example:2003" }, ""},
		{"smallest write_buffer", func(g *Graphite) { g.WriteBuffer = 512 }, ""},
		{"packet size bounds", func(g *Graphite) { g.Protocol, g.MaxPacketSize = "udp", 65507 }, ""},
		{"no address", func(g *Graphite) { g.Address = "" }, "address: required"},
		{"address without port", func(g *Graphite) { g.Address = "carbon" }, `address "carbon"`},
		{"unknown protocol", func(g *Graphite) { g.Protocol = "http" }, `protocol "http"`},
		{"empty protocol", func(g *Graphite) { g.Protocol = "" }, `protocol ""`},
		{"small write_buffer", func(g *Graphite) { g.WriteBuffer = 511 }, "write_buffer"},
		{"small max_packet_size", func(g *Graphite) { g.MaxPacketSize = 63 }, "max_packet_size"},
		{"large max_packet_size", func(g *Graphite) { g.MaxPacketSize = 65508 }, "max_packet_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := registry.Default.Lookup(registry.Outputs, "graphite")
			g := p.New().(*Graphite)
			g.Address = "127.0.0.1:2003"
			if tc.mod != nil {
				tc.mod(g)
			}
			env, _ := plugintest.Env(t, "outputs.graphite")
			plugintest.WantErr(t, "Init", g.Init(env), tc.wantErr)
		})
	}
}

func TestWriteBeforeConnect(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			g, _ := newOutput(t, "127.0.0.1:1", func(g *Graphite) { g.Protocol = proto })
			if err := g.Write(t.Context(), plugintest.Batch(t, "a 1 1")); !errors.Is(err, registry.ErrNotConnected) {
				t.Fatalf("Write = %v, want ErrNotConnected", err)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	addr := plugintest.FreeAddr(t) // nothing listens there any more
	g, _ := newOutput(t, addr, nil)
	if err := g.Connect(t.Context()); err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if err := g.Write(t.Context(), plugintest.Batch(t, "a 1 1")); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write after a failed Connect = %v, want ErrNotConnected", err)
	}
}

// TestWriteTCP: what reaches a carbon-like line sink for each kind of metric.
func TestWriteTCP(t *testing.T) {
	many := numbered("many", 20000)
	for _, tc := range []struct {
		name   string
		in     []string
		modify func(b metric.Batch)
		want   []string
		wbuf   int // write_buffer; 0 = default
		refuse int // metrics left out, reported as rejected
	}{
		{
			name: "untouched lines leave byte for byte",
			in:   []string{"a.b.c 1 1700000000", "tagged;dc=eu;host=x 2.50 1700000001", "tabs\t3e2\t1700000002", "  blanks  -4  1700000003  ", "crlf 5 1700000004\r", "inf.value -Inf 1700000005"},
			want: []string{"a.b.c 1 1700000000", "tagged;dc=eu;host=x 2.50 1700000001", "tabs\t3e2\t1700000002", "  blanks  -4  1700000003  ", "crlf 5 1700000004\r", "inf.value -Inf 1700000005"},
		},
		{
			name:   "a modified metric is rendered",
			in:     []string{"keep.me 1 1700000000", "old.path;k=v  2.50\t1700000001", "value.changed 3 1700000002"},
			modify: func(b metric.Batch) { b[1].SetPath([]byte("new.path;k=v")); b[2].SetValue(0.5) },
			want:   []string{"keep.me 1 1700000000", "new.path;k=v 2.50 1700000001", "value.changed 0.5 1700000002"},
		},
		{
			name: "statsd metrics get the write time as timestamp",
			in:   []string{"statsd:hits:3|c", "statsd:lat,host=a:12.5|ms|@0.1|#env:prod,bare", "statsd:temp:-2|g|T1700000000"},
			want: []string{"hits 3 {now}", "lat;env=prod;host=a 12.5 {now}", "temp -2 1700000000"},
		},
		{
			name: "statsd names carbon would split are mapped, what no line carries is left out",
			in: []string{"statsd:my metric:1|c|T1700000000", "statsd:users:alice|s", "statsd:a;evil=1\tx:2|c|#k v:w;x|T1700000000",
				"statsd:t:1:2:3|ms", "statsd:last:3|c|T1700000000", "statsd:nan.member:nan|s"},
			want:   []string{"my_metric 1 1700000000", "a_evil=1_x;k_v=w_x 2 1700000000", "last 3 1700000000"},
			refuse: 3,
		},
		{
			name:   "refused metrics across many writes",
			in:     append(append(slices.Clone(many[:5000]), "statsd:s:x|s", "statsd:s:y|s"), many[5000:]...),
			want:   many,
			wbuf:   512,
			refuse: 2,
		},
		{
			name: "a batch over many writes keeps its order",
			in:   many,
			want: many,
			wbuf: 512,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := plugintest.NewLineSink(t)
			g, _ := newOutput(t, sink.Addr, func(g *Graphite) {
				if tc.wbuf > 0 {
					g.WriteBuffer = tc.wbuf
				}
			})
			connect(t, g)
			b := plugintest.Batch(t, tc.in...)
			if tc.modify != nil {
				tc.modify(b)
			}
			from := time.Now().Unix()
			err := g.Write(writeCtx(t), b)
			checkRefused(t, err, tc.refuse)
			to := time.Now().Unix()
			if !sink.WaitLen(len(tc.want), wait) {
				t.Fatalf("sink got %d lines, want %d", sink.Len(), len(tc.want))
			}
			g.Close()
			sink.Stop() // reads what is left: nothing more may have come
			matchLines(t, sink.Lines(), tc.want, from, to)
		})
	}
}

// written returns how many metrics of its batch a failed Write took: the
// Written of a *registry.PartialWriteError, 0 for any other error.
func written(t *testing.T, err error) int {
	t.Helper()
	var p *registry.PartialWriteError
	if !errors.As(err, &p) {
		return 0
	}
	if p.Written <= 0 || p.Err == nil {
		t.Fatalf("bad partial write %+v", p)
	}
	return p.Written
}

// checkRefused fails unless err reports exactly n metrics left out (nil for
// n == 0) as a rejection.
func checkRefused(t *testing.T, err error, n int) {
	t.Helper()
	if n == 0 {
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		return
	}
	var r *streamout.Refused
	if !errors.As(err, &r) || r.Rejected() != n || !errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write = %v, want %d metrics refused as rejected", err, n)
	}
}

// TestReconnectAfterSinkStop: a Write to a sink that went away fails with
// ErrNotConnected instead of vanishing into the dead socket, having taken
// nothing, and the batch written again after a reconnect arrives exactly
// once.
func TestReconnectAfterSinkStop(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	g, _ := newOutput(t, sink.Addr, func(g *Graphite) { g.WriteBuffer = 512 })
	connect(t, g)
	first, second := numbered("first", 1000), numbered("second", 1000)
	if err := g.Write(writeCtx(t), plugintest.Batch(t, first...)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !sink.WaitLen(len(first), wait) {
		t.Fatalf("sink got %d lines, want %d", sink.Len(), len(first))
	}

	// Stop drains what was sent and closes the connection; the output sees
	// the close when it peeks before its first chunk.
	sink.Stop()
	b := plugintest.Batch(t, second...)
	err := g.Write(writeCtx(t), b)
	if !errors.Is(err, registry.ErrNotConnected) || written(t, err) != 0 {
		t.Fatalf("Write to a stopped sink = %v, want an error wrapping ErrNotConnected, nothing taken", err)
	}
	if err := g.Write(writeCtx(t), b); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write without reconnecting = %v, want ErrNotConnected", err)
	}

	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	connect(t, g)
	if err := g.Write(writeCtx(t), b); err != nil {
		t.Fatalf("Write after reconnect: %v", err)
	}
	// a new batch afterwards starts from its first line
	third := numbered("third", 10)
	if err := g.Write(writeCtx(t), plugintest.Batch(t, third...)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	want := slices.Concat(first, second, third)
	if !sink.WaitLen(len(want), wait) {
		t.Fatalf("sink got %d lines, want %d", sink.Len(), len(want))
	}
	g.Close()
	sink.Stop()
	if got := sink.Lines(); !slices.Equal(got, want) {
		t.Fatalf("sink got %d lines, want %d, each once and in order", len(got), len(want))
	}
}

// readAll reads c until the writer closes it.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	data, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	c.Close()
	return string(data)
}

// TestSlowPeerNoCutLine: a peer that stops reading, then reads again: the
// timed-out write says how many metrics it got out, the connection is kept,
// and a Write of the rest finishes a line left cut on it; every line arrives
// once and whole.
func TestSlowPeerNoCutLine(t *testing.T) {
	lines := numbered("slow.peer", 20000)
	b := plugintest.Batch(t, lines...)
	for _, wbuf := range []int{512, 64 << 10} { // 64 KiB: a line is likely cut
		t.Run(fmt.Sprint(wbuf), func(t *testing.T) {
			srv := plugintest.NewStallServer(t)
			g, _ := newOutput(t, srv.Addr, func(g *Graphite) { g.WriteBuffer = wbuf })
			connect(t, g)
			if err := g.tcp.Conn().(*net.TCPConn).SetWriteBuffer(4096); err != nil {
				t.Fatal(err)
			}
			c := srv.Accept(t)
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			err := g.Write(ctx, b)
			cancel()
			if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, registry.ErrNotConnected) || !g.tcp.Connected() {
				t.Fatalf("Write to a stalled peer = %v (connected %v), want a deadline error, connection kept", err, g.tcp.Connected())
			}
			n := written(t, err)
			got := make(chan string, 1)
			go func() {
				_ = c.SetReadDeadline(time.Now().Add(wait))
				data, _ := io.ReadAll(c)
				got <- string(data)
			}()
			if err := g.Write(writeCtx(t), b[n:]); err != nil {
				t.Fatalf("the rest once the peer reads: %v", err)
			}
			g.Close()
			if want := strings.Join(lines, "\n") + "\n"; <-got != want {
				t.Fatal("the peer did not get every line once, whole and in order")
			}
		})
	}
}

// TestPartialWriteMidBatch: a batch that fails part way returns a
// *registry.PartialWriteError whose Written is the number of lines the
// connection took whole; a line it got only the start of is sent again
// whole, on the next connection, by a Write of b[Written:]. A Write that
// sees the peer closed before its first chunk takes nothing. The output
// remembers nothing: the same batch written again goes whole.
func TestPartialWriteMidBatch(t *testing.T) {
	srv := plugintest.NewStallServer(t)
	g, _ := newOutput(t, srv.Addr, func(g *Graphite) { g.WriteBuffer = 512 })
	lines := numbered("resume.me", 20000) // ~600 KB: far more than both socket buffers
	b := plugintest.Batch(t, lines...)

	// 1. The peer reads nothing: the write blocks and times out part way.
	connect(t, g)
	if err := g.tcp.Conn().(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	c1 := srv.Accept(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := g.Write(ctx, b)
	cancel()
	// a slow peer is not a dead one: the connection stays
	if errors.Is(err, registry.ErrNotConnected) || !errors.Is(err, os.ErrDeadlineExceeded) || !g.tcp.Connected() {
		t.Fatalf("Write to a stalled peer = %v (connected %v), want a deadline error, connection kept", err, g.tcp.Connected())
	}
	done := written(t, err)
	// the connection dies, perhaps with a line cut
	g.Close()
	got1 := readAll(t, c1) // everything the kernel took, then EOF
	if done == 0 || done >= len(lines) {
		t.Fatalf("%d lines went out before the timeout; the test needs a part of the batch", done)
	}
	if whole := strings.Count(got1, "\n"); whole != done {
		t.Fatalf("Written = %d, but the peer got %d whole lines", done, whole)
	}
	if whole := strings.Join(lines[:done], "\n") + "\n"; !strings.HasPrefix(got1, whole) {
		t.Fatal("the old connection did not get the first lines of the batch, in order")
	}
	if partial := got1[strings.LastIndexByte(got1, '\n')+1:]; !strings.HasPrefix(lines[done], partial) {
		t.Fatalf("the old connection ends with %q, not a prefix of line %d", partial, done)
	}
	rest := b[done:]

	// 2. The next peer closes at once: the output sees it before its first
	// chunk and takes nothing.
	connect(t, g)
	srv.Accept(t).Close()
	deadline := time.Now().Add(wait)
	for !g.tcp.PeerClosed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the FIN is in; the kernel usually has it already
	}
	if err := g.Write(writeCtx(t), rest); !errors.Is(err, registry.ErrNotConnected) || written(t, err) != 0 {
		t.Fatalf("Write to a closed peer = %v, want ErrNotConnected, nothing taken", err)
	}

	// 3. A peer that reads: the rest of the batch, from the cut line on.
	connect(t, g)
	c3 := srv.AcceptFast(t)
	got3 := make(chan string, 1)
	go func() {
		_ = c3.SetReadDeadline(time.Now().Add(wait))
		data, _ := io.ReadAll(c3)
		got3 <- string(data)
	}()
	if err := g.Write(writeCtx(t), rest); err != nil {
		t.Fatalf("Write after reconnect: %v", err)
	}
	g.Close()
	if want := strings.Join(lines[done:], "\n") + "\n"; <-got3 != want {
		t.Fatal("the new connection did not get exactly the rest of the batch")
	}

	// 4. The whole batch once more is a new write: from its first line.
	connect(t, g)
	c4 := srv.AcceptFast(t)
	got4 := make(chan string, 1)
	go func() {
		_ = c4.SetReadDeadline(time.Now().Add(wait))
		data, _ := io.ReadAll(c4)
		got4 <- string(data)
	}()
	if err := g.Write(writeCtx(t), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	g.Close()
	if want := strings.Join(lines, "\n") + "\n"; <-got4 != want {
		t.Fatal("the batch written again was not sent whole")
	}
}

// TestWriteUDP: lines are packed into datagrams of at most max_packet_size,
// never split; a line too long for one datagram is dropped and counted.
func TestWriteUDP(t *testing.T) {
	const maxPacket = 100
	line := func(n int, tag string) string { // a line of exactly n bytes with its '\n'
		s := tag + " 1 1700000000"
		return tag + strings.Repeat("x", n-1-len(s)) + " 1 1700000000"
	}
	var mixed []string
	for i := range 60 {
		mixed = append(mixed, line(20+(i*37)%81, fmt.Sprintf("m%d.", i))) // 20..100 bytes
	}
	for _, tc := range []struct {
		name      string
		in        []string
		want      []string // lines expected, in order
		wantGrams int      // 0 = don't check
		oversize  uint64
		refused   uint64 // by the codec
	}{
		{
			name:      "lines fill datagrams up to the limit",
			in:        []string{line(50, "a"), line(50, "b"), line(50, "c"), line(100, "d"), line(30, "e")},
			want:      []string{line(50, "a"), line(50, "b"), line(50, "c"), line(100, "d"), line(30, "e")},
			wantGrams: 4, // a+b, c, d, e
		},
		{
			name: "mixed sizes",
			in:   mixed,
			want: mixed,
		},
		{
			name:     "oversize lines first, between and last are dropped",
			in:       []string{line(101, "big1"), line(40, "a"), line(500, "big2"), line(40, "b"), line(101, "big3")},
			want:     []string{line(40, "a"), line(40, "b")},
			oversize: 3,
		},
		{
			name:     "only an oversize line",
			in:       []string{line(101, "big")},
			oversize: 1,
		},
		{
			name: "statsd metrics are rendered",
			in:   []string{"statsd:hits:3|c|T1700000000", "graphite:g 1 1"},
			want: []string{"hits 3 1700000000", "g 1 1"},
		},
		{
			name:     "refused and oversize metrics are left out together",
			in:       []string{"statsd:s:x|s", line(40, "a"), line(101, "big"), "statsd:m:1:2|ms", line(40, "b"), "statsd:s:y|s"},
			want:     []string{line(40, "a"), line(40, "b")},
			oversize: 1,
			refused:  3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := plugintest.NewUDPSink(t)
			g, m := newOutput(t, sink.Addr, func(g *Graphite) { g.Protocol, g.MaxPacketSize = "udp", maxPacket })
			connect(t, g)
			checkRefused(t, g.Write(writeCtx(t), plugintest.Batch(t, tc.in...)), int(tc.oversize+tc.refused))
			// a sentinel batch: once it is in, every datagram before it is too
			if err := g.Write(writeCtx(t), plugintest.Batch(t, "sentinel 0 0")); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if !sink.WaitLines(len(tc.want)+1, wait) {
				t.Fatalf("got %q, want %q and the sentinel", sink.Lines(), tc.want)
			}
			grams := sink.Datagrams()
			grams = grams[:len(grams)-1] // the sentinel's
			var got []string
			for i, d := range grams {
				if len(d) > maxPacket {
					t.Errorf("datagram %d has %d bytes, over %d", i, len(d), maxPacket)
				}
				if !strings.HasSuffix(d, "\n") {
					t.Errorf("datagram %d does not end a line: %q", i, d)
				}
				got = append(got, strings.Split(strings.TrimSuffix(d, "\n"), "\n")...)
				// packed greedily: the next line would not have fitted
				if i+1 < len(grams) {
					next, _, _ := strings.Cut(grams[i+1], "\n")
					if len(d)+len(next)+1 <= maxPacket {
						t.Errorf("datagram %d (%d bytes) had room for the next line (%d bytes)", i, len(d), len(next)+1)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got lines %q\nwant %q", got, tc.want)
			}
			if tc.wantGrams > 0 && len(grams) != tc.wantGrams {
				t.Errorf("%d datagrams, want %d", len(grams), tc.wantGrams)
			}
			if v := m.Get("oversize_dropped_total"); v != tc.oversize {
				t.Errorf("oversize_dropped_total = %d, want %d", v, tc.oversize)
			}
			if v := m.Get("conversion_refused_total"); v != tc.refused {
				t.Errorf("conversion_refused_total = %d, want %d", v, tc.refused)
			}
		})
	}
}

// flakyConn is a UDP connection that takes `ok` datagrams, then fails once.
type flakyConn struct {
	net.Conn
	ok    int
	grams []string
}

func (f *flakyConn) Write(p []byte) (int, error) {
	if f.ok == 0 {
		f.ok = -1 // fail once, then take everything
		return 0, errors.New("injected send failure")
	}
	f.ok--
	f.grams = append(f.grams, string(p))
	return len(p), nil
}

// TestUDPPartialWriteCountsRefused: a UDP write that fails part way
// returns a *registry.PartialWriteError: Written ends with the last
// datagram sent, and Refused counts the metrics left out (refused or
// oversize) before it. A Write of b[Written:] sends the rest and reports
// the others left out: each line goes once, each metric left out is counted
// once.
func TestUDPPartialWriteCountsRefused(t *testing.T) {
	g, m := newOutput(t, plugintest.NewUDPSink(t).Addr, func(g *Graphite) { g.Protocol, g.MaxPacketSize = "udp", 64 })
	connect(t, g)
	fake := &flakyConn{Conn: g.udp, ok: 2}
	g.udp = fake
	var in, want []string
	left := 0
	for i := range 40 {
		switch i % 5 {
		case 1:
			in = append(in, fmt.Sprintf("statsd:set.%d:member|s", i))
			left++
		case 3:
			in = append(in, fmt.Sprintf("long.%d.%s 1 1700000000", i, strings.Repeat("x", 64)))
			left++
		default:
			in = append(in, fmt.Sprintf("metric.number.%d %d 1700000000", i, i))
			want = append(want, fmt.Sprintf("metric.number.%d %d 1700000000", i, i))
		}
	}
	b := plugintest.Batch(t, in...)
	err := g.Write(writeCtx(t), b)
	var p *registry.PartialWriteError
	if !errors.As(err, &p) || errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write with a failing send = %v, want a partial write, retryable", err)
	}
	if len(fake.grams) != 2 {
		t.Fatalf("%d datagrams before the failure, want 2", len(fake.grams))
	}
	// the 2 datagrams hold 2 lines each: metrics 0 2 | 4 5; the failed
	// one starts at metric 7, after 3 left out (1, 3, 6)
	if p.Written != 7 || p.Refused != 3 {
		t.Fatalf("Written %d, Refused %d; want 7 and 3", p.Written, p.Refused)
	}
	if r, o := m.Get("conversion_refused_total"), m.Get("oversize_dropped_total"); r != 2 || o != 1 {
		t.Fatalf("after the partial write: conversion_refused_total %d, oversize_dropped_total %d; want 2 and 1", r, o)
	}
	checkRefused(t, g.Write(writeCtx(t), b[p.Written:]), left-p.Refused)
	var got []string
	for _, d := range fake.grams {
		got = append(got, strings.Split(strings.TrimSuffix(d, "\n"), "\n")...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("lines sent %q, want each once: %q", got, want)
	}
	if r, o := m.Get("conversion_refused_total"), m.Get("oversize_dropped_total"); r+o != uint64(left) || r != 8 {
		t.Fatalf("conversion_refused_total %d, oversize_dropped_total %d; want 8 and %d", r, o, left-8)
	}
	g.udp = fake.Conn
}

// discardServer accepts connections on 127.0.0.1 and throws their bytes away.
func discardServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// BenchmarkWriteTCP: a 5000-metric batch of untouched lines to a loopback
// sink that discards ("ns/line" is per metric).
func BenchmarkWriteTCP(b *testing.B) {
	const n = 5000
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "bench.output.path.%d %d.5 1700000000\n", i, i)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	batch := plugintest.Batch(b, lines...)
	p, _ := registry.Default.Lookup(registry.Outputs, "graphite")
	g := p.New().(*Graphite)
	g.Address = discardServer(b)
	if err := g.Init(registry.Env{Log: zerolog.Nop(), Metrics: plugintest.NewMetrics()}); err != nil {
		b.Fatal(err)
	}
	connect(b, g)
	defer g.Close()
	ctx := b.Context()
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if err := g.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
}

// BenchmarkWriteTCPLinks: BenchmarkWriteTCP's batch as pickle messages and
// over each compressed transport (one chunk of write_buffer compressed per
// write).
func BenchmarkWriteTCPLinks(b *testing.B) {
	const n = 5000
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "bench.output.path.%d %d.5 1700000000\n", i, i)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	batch := plugintest.Batch(b, lines...)
	for _, v := range []struct{ name, format, transport string }{
		{"pickle", "pickle", "none"}, {"gzip", "plaintext", "gzip"}, {"lz4", "plaintext", "lz4"}, {"snappy", "plaintext", "snappy"},
	} {
		b.Run(v.name, func(b *testing.B) {
			p, _ := registry.Default.Lookup(registry.Outputs, "graphite")
			g := p.New().(*Graphite)
			g.Address, g.Format, g.Transport = discardServer(b), v.format, v.transport
			if err := g.Init(registry.Env{Log: zerolog.Nop(), Metrics: plugintest.NewMetrics()}); err != nil {
				b.Fatal(err)
			}
			connect(b, g)
			defer g.Close()
			ctx := b.Context()
			b.ReportAllocs()
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				if err := g.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
		})
	}
}
