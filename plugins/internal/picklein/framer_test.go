package picklein

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/pickle"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
)

func frame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

type counters struct{ parse, long, trunc, refused atomic.Uint64 }

func (c *counters) framer(max int) *Framer {
	return NewFramer(max, linein.Counters{ParseErrors: &c.parse, TooLong: &c.long, Truncated: &c.trunc}, &c.refused, nil)
}

// collect appends the lines of b, and overwrites the batch's bytes it
// does not own afterwards (the framer's buffers are reused).
func collect(out []byte, b metric.Batch) []byte {
	for i := range b {
		out = append(out, b[i].Line()...)
		out = append(out, '\n')
	}
	return out
}

// TestFramerTCP: golden messages, an oversize one, a forbidden one and a
// malformed one sent over a real loopback connection in small writes
// arrive as the golden lines, each refusal counted.
func TestFramerTCP(t *testing.T) {
	gs := loadGolden(t)
	var stream, want []byte
	var skipped uint64
	for i, g := range gs {
		stream = append(stream, frame(g.msg)...)
		want = append(want, g.lines...)
		skipped += uint64(g.skipped)
		switch i {
		case 1:
			stream = append(stream, frame(bytes.Repeat([]byte("x"), 3<<20))...) // too long
		case 2:
			stream = append(stream, frame([]byte("cos\nsystem\n(S'true'\ntR."))...)
		case 3:
			stream = append(stream, frame([]byte("]K"))...)
		}
	}
	stream = append(stream, 0, 0, 1, 0, ']') // cut by the end of the stream
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		for s := stream; len(s) > 0; {
			n := min(len(s), 1+len(s)%7919)
			if _, err := c.Write(s[:n]); err != nil {
				return
			}
			s = s[n:]
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var cs counters
	f := cs.framer(2 << 20)
	var got []byte
	var batches []metric.Batch
	for {
		n, err := c.Read(f.Space(2048))
		if b := f.Advance(n); len(b) > 0 {
			batches = append(batches, b)
		}
		if err == io.EOF {
			batches = append(batches, f.Final())
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range batches {
		got = collect(got, b)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("lines differ: got %d bytes, want %d", len(got), len(want))
	}
	if cs.long.Load() != 1 || cs.refused.Load() != 1 || cs.trunc.Load() != 1 || cs.parse.Load() != skipped+1 {
		t.Errorf("too long %d, refused %d, truncated %d, parse errors %d (want 1, 1, 1, %d)",
			cs.long.Load(), cs.refused.Load(), cs.trunc.Load(), cs.parse.Load(), skipped+1)
	}
	if cap(f.buf) > 3<<20 {
		t.Errorf("the oversize message was buffered: %d bytes", cap(f.buf))
	}
}

// TestFramerHandOver: Pending and Resume carry an incomplete message and
// the bytes left to skip of a message too long to the next framer.
func TestFramerHandOver(t *testing.T) {
	msg := frame([]byte("](X\x01\x00\x00\x00aK\x01K\x02\x86\x86e."))
	long := frame([]byte(strings.Repeat("y", 100)))
	for cut := 0; cut <= len(long)+len(msg); cut++ {
		stream := append(append([]byte{}, long...), msg...)
		var cs counters
		f := cs.framer(50)
		got := collect(nil, f.Advance(copy(f.Space(cut), stream[:cut])))
		tail, state := f.Pending()
		g := cs.framer(50)
		g.Resume(state)
		rest := append(tail, stream[cut:]...)
		got = collect(got, g.Advance(copy(g.Space(len(rest)), rest)))
		if string(got) != "a 2 1\n" || cs.long.Load() != 1 {
			t.Fatalf("cut %d: %q, %d too long", cut, got, cs.long.Load())
		}
	}
}

// TestFramerBatchOwnsBytes: a batch's metrics stay intact while the
// framer goes on.
func TestFramerBatchOwnsBytes(t *testing.T) {
	var cs counters
	f := cs.framer(0)
	m1 := frame([]byte("](X\x01\x00\x00\x00aK\x01K\x02\x86\x86e."))
	m2 := frame([]byte("](X\x01\x00\x00\x00bK\x03K\x04\x86\x86e."))
	b1 := f.Advance(copy(f.Space(len(m1)), m1))
	for range 100 {
		f.Advance(copy(f.Space(len(m2)), m2))
	}
	if got := string(collect(nil, b1)); got != "a 2 1\n" {
		t.Fatalf("first batch now reads %q", got)
	}
}

// golden is a message of plugins/codec/pickle's golden files, with the
// lines it decodes to and how many entries it skips.
type golden struct {
	name    string
	msg     []byte
	lines   []byte
	skipped int
}

// loadGolden reads the codec's golden messages (testdata/README.md there
// says how they were made).
func loadGolden(tb testing.TB) []golden {
	tb.Helper()
	files, err := filepath.Glob("../../codec/pickle/testdata/golden/*.pickle")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden messages: %v", err)
	}
	var gs []golden
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(f, ".pickle") + ".txt")
		if err != nil {
			tb.Fatal(err)
		}
		head, lines, _ := bytes.Cut(want, []byte("\n"))
		n, err := strconv.Atoi(strings.TrimPrefix(string(head), "# skipped "))
		if err != nil {
			tb.Fatalf("%s: bad header %q", f, head)
		}
		gs = append(gs, golden{filepath.Base(f), msg, lines, n})
	}
	return gs
}

// BenchmarkFramer: a protocol-2 message of 500 datapoints (as carbon-relay
// writes them), framed and parsed into a batch.
func BenchmarkFramer(b *testing.B) {
	var enc pickle.Encoder
	msg := enc.Begin(nil)
	for i := range 500 {
		var err error
		msg, err = enc.Append(msg, fmt.Appendf(nil, "servers.host%d.cpu.user", i), []byte("1700000000"), float64(i)+0.25, 0)
		if err != nil {
			b.Fatal(err)
		}
	}
	msg = enc.End(msg)
	var cs counters
	f := cs.framer(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if bt := f.Advance(copy(f.Space(len(msg)), msg)); len(bt) != 500 {
			b.Fatalf("%d metrics", len(bt))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/datapoint")
}
