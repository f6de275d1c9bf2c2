package codectest

import (
	"bytes"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
)

// ReportPerLine adds ns/line for benchmarks that handle n lines per op.
func ReportPerLine(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
}

// BenchParse benchmarks parse on line.
func BenchParse(b *testing.B, parse func([]byte, *metric.Metric) error, line string) {
	l := []byte(line)
	var m metric.Metric
	b.SetBytes(int64(len(l) + 1))
	b.ReportAllocs()
	for b.Loop() {
		_ = parse(l, &m)
	}
	ReportPerLine(b, 1)
}

// BenchAppend benchmarks appending m, parsed from line by parse and then
// changed by modify (if not nil), with app.
func BenchAppend(b *testing.B, parse func([]byte, *metric.Metric) error, line string, modify func(*metric.Metric), app func([]byte, *metric.Metric) []byte) {
	m := MustParse(b, parse, line)
	if modify != nil {
		modify(&m)
	}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = app(dst[:0], &m)
	}
	ReportPerLine(b, 1)
}

// BenchBatch parses the lines of text (each ending in '\n') into a batch and
// appends them all, as an input followed by a pass-through output does; the
// result must be text again.
func BenchBatch(b *testing.B, c Codec, text []byte) {
	lines := bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n"))
	batch := make(metric.Batch, len(lines))
	dst := make([]byte, 0, len(text))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		for i, l := range lines {
			_ = c.Parse(l, &batch[i])
		}
		dst = dst[:0]
		for i := range batch {
			dst = c.Append(dst, &batch[i])
		}
	}
	if !bytes.Equal(dst, text) {
		b.Fatal("batch did not round-trip")
	}
	ReportPerLine(b, len(lines))
}
