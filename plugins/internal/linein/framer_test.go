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

// TestFramerBatchesDoNotAlias: a batch stays valid after later reads (a
// chunk is reused only once no batch points into it).
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

// BenchmarkFrameGraphite: framing + parsing of 64 KiB reads that fill their
// chunk (handed over in place; ns per line in the "ns/line" metric).
// Allocations are per read, not per line.
func BenchmarkFrameGraphite(b *testing.B) { benchFrame(b, 64<<10) }

// BenchmarkFrameGraphiteSmallReads: reads of 4 KiB, which leave the chunk
// mostly empty, so their lines are copied out (the detach path).
func BenchmarkFrameGraphiteSmallReads(b *testing.B) { benchFrame(b, 4<<10) }

func benchFrame(b *testing.B, size int) {
	var in bytes.Buffer
	lines := 0
	for in.Len() < size-64 {
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

// TestFramerRetainsOnlyWhatItCharges: whatever the reads, every batch the
// framer hands over either points into no chunk (its lines were copied out)
// or into one its lines fill (metric.Dense), and its metrics are one
// allocation of about its size: so a queued metric holds at most
// metric.RetainedBytes. The attack of issue #16: each valid line followed
// by a 250 KB junk line, which used to keep a 256 KiB chunk per line.
func TestFramerRetainsOnlyWhatItCharges(t *testing.T) {
	junk := strings.Repeat("J", 250_000)
	var flood bytes.Buffer
	for i := range 20 {
		fmt.Fprintf(&flood, "valid.%d %d 1700000000\n%s\n", i, i, junk)
	}
	var dense bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&dense, "dense.metric.path.%d %d 1700000000\n", i, i)
	}
	short := bytes.Repeat([]byte("x\n"), 100_000)
	short = append(short, "ok.1 1 1\n"...)
	tests := []struct {
		name  string
		data  []byte
		step  int
		lines int
	}{
		{"valid line + 250 KB junk", flood.Bytes(), 64 << 10, 20},
		{"same, small reads", flood.Bytes(), 3000, 20},
		{"dense, large reads", dense.Bytes(), 1 << 20, 20000},
		{"dense, small reads", dense.Bytes(), 1000, 20000},
		{"short junk lines", short, 1 << 20, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _, _ := counters()
			f := NewFramer(graphite.Parse, 300_000, c, nil)
			data := tc.data
			got := 0
			inPlace := 0
			check := func(b metric.Batch) {
				if len(b) == 0 {
					return
				}
				got += len(b)
				if !metric.Dense(len(b), cap(b)) {
					t.Fatalf("batch of %d metrics in %d slots", len(b), cap(b))
				}
				used := metric.Backing(b, f.chunk)
				switch {
				case used == 0:
				case metric.Dense(used, len(f.chunk)):
					inPlace++
				default:
					t.Fatalf("%d metrics (%d bytes) keep a %d-byte chunk alive", len(b), used, len(f.chunk))
				}
			}
			for len(data) > 0 {
				buf := f.Space(1)
				n := copy(buf[:min(len(buf), tc.step)], data)
				data = data[n:]
				check(f.Advance(n))
			}
			check(f.Final())
			if got != tc.lines {
				t.Fatalf("%d metrics, want %d", got, tc.lines)
			}
			if tc.name == "dense, large reads" && inPlace == 0 {
				t.Fatal("reads that fill their chunk were copied: the zero-copy path is gone")
			}
		})
	}
}

// TestFramerReusesItsChunk: reads that leave their chunk mostly empty are
// copied out and the chunk is read into again: a steady trickle allocates
// only its batches.
func TestFramerReusesItsChunk(t *testing.T) {
	c, _, _, _ := counters()
	f := NewFramer(graphite.Parse, 1024, c, nil)
	line := []byte("trickle.metric 1 1700000000\n")
	read := func() {
		buf := f.Space(2048)
		n := copy(buf, line)
		if b := f.Advance(n); len(b) != 1 {
			t.Fatalf("%d metrics", len(b))
		}
	}
	read()
	chunk := &f.chunk[0]
	allocs := testing.AllocsPerRun(100, read)
	if &f.chunk[0] != chunk {
		t.Fatal("the chunk was replaced")
	}
	if allocs > 2 {
		t.Fatalf("%.1f allocations per read, want 2 (the batch and its bytes)", allocs)
	}
}

// FuzzFramer: whatever the bytes and however they are cut into reads, the
// framer hands over exactly the lines that parse, in order, each batch
// exact-size and keeping no chunk its lines do not fill (see
// TestFramerRetainsOnlyWhatItCharges), and its batches stay valid after
// later reads (chunks are reused only once nothing points into them).
func FuzzFramer(f *testing.F) {
	f.Add([]byte("a 1 1\nb 2 2\n"), uint16(3), uint16(64))
	f.Add([]byte("x\n\n\r\nok.1 1 1\r\n"+strings.Repeat("J", 300)+"\nok.2 2 2"), uint16(17), uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, step, maxLine uint16) {
		if step == 0 {
			step = 1
		}
		if maxLine == 0 {
			maxLine = 1
		}
		// the reference: split, then parse what is short enough
		var want []string
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			if len(line) == 0 || len(line) > int(maxLine) || (len(line) == 1 && line[0] == '\r') {
				continue
			}
			var m metric.Metric
			if graphite.Parse(line, &m) == nil {
				want = append(want, string(line))
			}
		}
		c, _, _, _ := counters()
		fr := NewFramer(graphite.Parse, int(maxLine), c, nil)
		var batches []metric.Batch
		check := func(b metric.Batch) {
			if len(b) == 0 {
				return
			}
			if !metric.Dense(len(b), cap(b)) {
				t.Fatalf("batch of %d in %d slots", len(b), cap(b))
			}
			if used := metric.Backing(b, fr.chunk); used != 0 && !metric.Dense(used, len(fr.chunk)) {
				t.Fatalf("%d bytes of lines keep a %d-byte chunk", used, len(fr.chunk))
			}
			batches = append(batches, b)
		}
		rest := data
		for len(rest) > 0 {
			buf := fr.Space(1)
			n := copy(buf[:min(len(buf), int(step))], rest)
			rest = rest[n:]
			check(fr.Advance(n))
		}
		check(fr.Final())
		var got []string
		for _, b := range batches {
			for i := range b {
				got = append(got, string(b[i].Raw()))
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
