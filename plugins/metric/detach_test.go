package metric_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// parseLines parses the '\n'-separated lines of buf that parse, in place.
func parseLines(t *testing.T, buf []byte, parse func([]byte, *metric.Metric) error) metric.Batch {
	t.Helper()
	var b metric.Batch
	for len(buf) > 0 {
		line := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i:i], buf[i+1:]
		} else {
			buf = nil
		}
		var m metric.Metric
		if parse(line, &m) == nil {
			b = append(b, m)
		}
	}
	return b
}

// TestDetach: after Detach the metrics read the same although the buffer
// they were parsed from is overwritten; lines that follow one another are
// copied as one run (the new buffer is their span), lines separated by junk
// are copied without it, and metrics outside the buffer are left alone.
func TestDetach(t *testing.T) {
	junk := strings.Repeat("J", 5000)
	tests := []struct {
		name     string
		in       string
		parse    func([]byte, *metric.Metric) error
		wantSize int
	}{
		{"adjacent", "a.b 1 1\nc.d 2 2\r\ne.f 3 3\n", graphite.Parse, len("a.b 1 1\nc.d 2 2\r\ne.f 3 3")},
		{"junk between", "a.b 1 1\n" + junk + "\nc.d 2 2\n\n\n\ne.f 3 3", graphite.Parse, 3 * len("a.b 1 1")},
		{"statsd with tags", "a:1|c|#k:v\nb:2|g\n" + junk + "\nc:3|ms|@0.5", statsd.Parse, len("a:1|c|#k:v\nb:2|g") + len("c:3|ms|@0.5")},
		{"one line", junk + "\nx 1 1\n" + junk, graphite.Parse, len("x 1 1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := []byte(tc.in)
			b := parseLines(t, buf, tc.parse)
			var want []string
			for i := range b {
				want = append(want, string(b[i].Line()))
			}
			used := 0
			for _, w := range want {
				used += len(w)
			}
			if got := metric.Backing(b, buf); got != used {
				t.Fatalf("Backing = %d, want %d", got, used)
			}
			outside := metric.NewGraphite("own.buffer", 1, time.Unix(1, 0))
			b = append(b, outside)
			ownLine := string(outside.Line())
			if size := metric.Detach(b, buf); size != tc.wantSize {
				t.Fatalf("Detach size = %d, want %d", size, tc.wantSize)
			}
			for i := range buf {
				buf[i] = '#'
			}
			if metric.Backing(b, buf) != 0 {
				t.Fatal("metrics still point into the buffer")
			}
			for i, w := range want {
				if got := string(b[i].Line()); got != w || string(b[i].Raw()) != w {
					t.Fatalf("metric %d = %q after Detach, want %q", i, got, w)
				}
			}
			if got := string(b[len(b)-1].Line()); got != ownLine {
				t.Fatalf("metric outside the buffer = %q, want %q", got, ownLine)
			}
			// fields still read
			if len(b[0].Path()) == 0 || len(b[0].ValueToken()) == 0 {
				t.Fatal("fields lost")
			}
		})
	}
}

// TestDetachNothingInside: a batch none of whose metrics point into buf is
// not touched and costs nothing.
func TestDetachNothingInside(t *testing.T) {
	b := metric.Batch{metric.NewGraphite("x", 1, time.Unix(1, 0))}
	other := []byte("x 1 1")
	if n := metric.Detach(b, other); n != 0 {
		t.Fatalf("Detach = %d", n)
	}
	if metric.Detach(nil, other) != 0 || metric.Backing(b, nil) != 0 {
		t.Fatal("empty cases")
	}
}

// TestDense and RetainedBytes: the rule the inputs apply, and the charge
// that covers it.
func TestDenseAndRetained(t *testing.T) {
	if !metric.Dense(16, 17) || metric.Dense(15, 17) || !metric.Dense(100, 100) || metric.Dense(0, 1) {
		t.Fatal("Dense")
	}
	var m metric.Metric
	if err := graphite.Parse([]byte("a.b 1 1"), &m); err != nil {
		t.Fatal(err)
	}
	per := metric.Overhead + 7
	if got := metric.RetainedBytes(metric.Batch{m, m}); got != 2*per+2*per/16 {
		t.Fatalf("RetainedBytes = %d", got)
	}
}

// detachBench is 64 KiB of lines and their metrics, parsed in place.
func detachBench(b *testing.B) ([]byte, metric.Batch) {
	var in bytes.Buffer
	for in.Len() < 64<<10 {
		in.WriteString("bench.metric.path.123456 42.5 1700000000\n")
	}
	buf := in.Bytes()
	var batch metric.Batch
	for line := range bytes.SplitSeq(bytes.TrimSuffix(buf, []byte{'\n'}), []byte{'\n'}) {
		var m metric.Metric
		if err := graphite.Parse(line, &m); err != nil {
			b.Fatal(err)
		}
		batch = append(batch, m)
	}
	return buf, batch
}

// BenchmarkDetach: copying a read's lines out of its buffer (one run).
func BenchmarkDetach(b *testing.B) {
	buf, batch := detachBench(b)
	work := make(metric.Batch, len(batch))
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		copy(work, batch)
		metric.Detach(work, buf)
	}
}

// BenchmarkDetachCopyOnly: what BenchmarkDetach spends restoring the batch.
func BenchmarkDetachCopyOnly(b *testing.B) {
	_, batch := detachBench(b)
	work := make(metric.Batch, len(batch))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, batch)
	}
}
