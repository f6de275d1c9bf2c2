package linein

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

func counters() (Counters, *atomic.Uint64, *atomic.Uint64, *atomic.Uint64) {
	c := Counters{ParseErrors: new(atomic.Uint64), TooLong: new(atomic.Uint64), Truncated: new(atomic.Uint64)}
	return c, c.ParseErrors, c.TooLong, c.Truncated
}

// feed pushes data through the framer in reads of at most step bytes.
func feed(f *Framer, data []byte, step int, final bool) []string {
	var out []string
	add := func(b metric.Batch) {
		for i := range b {
			out = append(out, string(b[i].Raw()))
		}
	}
	for len(data) > 0 {
		buf := f.Space(1)
		n := copy(buf[:min(len(buf), step)], data)
		data = data[n:]
		add(f.Advance(n))
	}
	if final {
		add(f.Final())
	}
	return out
}

func TestFramerSplitsAcrossReads(t *testing.T) {
	var in bytes.Buffer
	var want []string
	for i := 0; i < 5000; i++ {
		l := fmt.Sprintf("a.b.c.%d %d 1700000000", i, i)
		want = append(want, l)
		in.WriteString(l + "\n")
	}
	for _, step := range []int{1, 7, 100, 4096, 1 << 20} {
		c, pe, _, _ := counters()
		f := NewFramer(graphite.Parse, 1024, c, nil)
		got := feed(f, in.Bytes(), step, true)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("step %d: %d lines, first diff somewhere", step, len(got))
		}
		if pe.Load() != 0 {
			t.Fatalf("step %d: %d parse errors", step, pe.Load())
		}
	}
}

func TestFramerBadAndLongLines(t *testing.T) {
	c, pe, tl, _ := counters()
	var bad []string
	f := NewFramer(graphite.Parse, 64, c, func(line []byte, err error) { bad = append(bad, string(line)) })
	long := strings.Repeat("x", 500)
	data := "ok.1 1 1\n" + "garbage\n" + long + " 1 1\n" + "\n\r\n" + "ok.2 2 2\r\n" + "ok.3 3 3"
	got := feed(f, []byte(data), 13, true)
	want := []string{"ok.1 1 1", "ok.2 2 2\r", "ok.3 3 3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if pe.Load() != 1 || tl.Load() != 1 {
		t.Fatalf("parse errors %d, too long %d; want 1 and 1", pe.Load(), tl.Load())
	}
	if len(bad) != 2 || bad[0] != "garbage" {
		t.Fatalf("onError calls: %q", bad)
	}
}

func TestFramerDropPartialAndDatagram(t *testing.T) {
	c, _, _, tr := counters()
	f := NewFramer(graphite.Parse, 1024, c, nil)
	got := feed(f, []byte("a 1 1\nb 2 2\nhalf.li"), 1000, false)
	if len(got) != 2 {
		t.Fatalf("got %q", got)
	}
	f.DropPartial()
	if tr.Load() != 1 {
		t.Fatalf("truncated = %d", tr.Load())
	}
	buf := f.Space(100)
	n := copy(buf, "c 3 3\nd 4 4")
	b := f.Datagram(n)
	if len(b) != 2 || string(b[1].Raw()) != "d 4 4" {
		t.Fatalf("datagram: %d metrics", len(b))
	}
}

// TestFramerBatchesDoNotAlias: a batch stays valid after later reads (chunks
// are never reused).
func TestFramerBatchesDoNotAlias(t *testing.T) {
	c, _, _, _ := counters()
	f := NewFramer(graphite.Parse, 1024, c, nil)
	var batches []metric.Batch
	for i := 0; i < 2000; i++ {
		buf := f.Space(64)
		n := copy(buf, fmt.Sprintf("m.%d %d 1\n", i, i))
		if b := f.Advance(n); len(b) > 0 {
			batches = append(batches, b)
		}
	}
	i := 0
	for _, b := range batches {
		for k := range b {
			if want := fmt.Sprintf("m.%d %d 1", i, i); string(b[k].Raw()) != want {
				t.Fatalf("metric %d = %q, want %q", i, b[k].Raw(), want)
			}
			i++
		}
	}
	if i != 2000 {
		t.Fatalf("%d metrics", i)
	}
}

// BenchmarkFrameGraphite: framing + parsing of 64 KiB reads (ns per line in
// the "ns/line" metric). Allocations are per read, not per line.
func BenchmarkFrameGraphite(b *testing.B) {
	var in bytes.Buffer
	lines := 0
	for in.Len() < 64<<10-64 {
		fmt.Fprintf(&in, "bench.metric.path.%d %d.5 1700000000\n", lines, lines)
		lines++
	}
	data := in.Bytes()
	c, _, _, _ := counters()
	f := NewFramer(graphite.Parse, 64<<10, c, nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf := f.Space(len(data))
		n := copy(buf, data)
		if got := f.Advance(n); len(got) != lines {
			b.Fatalf("%d lines", len(got))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
	b.ReportMetric(float64(lines), "lines/op")
}
