package graphite_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

var benchLines = []struct{ name, line string }{
	{"plain", "bench.metric.path.12345 12.5 1700000000"},
	{"tagged", "bench.metric.path.12345;dc=eu-west;host=web-12 12.5 1700000000"},
	{"float-ts-crlf", "bench.metric.path.12345\t-1.25e3\t1700000000.125\r"},
	{"invalid", "bench.metric.path.12345 twelve 1700000000"},
}

// reportPerLine adds ns/line for benchmarks that handle n lines per op.
func reportPerLine(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/line")
}

func BenchmarkParse(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) {
			line := []byte(bl.line)
			var m metric.Metric
			b.SetBytes(int64(len(line) + 1))
			b.ReportAllocs()
			for b.Loop() {
				_ = graphite.Parse(line, &m)
			}
			reportPerLine(b, 1)
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	parse := func(b *testing.B, line string) metric.Metric {
		var m metric.Metric
		if err := graphite.Parse([]byte(line), &m); err != nil {
			b.Fatal(err)
		}
		return m
	}
	b.Run("unmodified", func(b *testing.B) {
		m := parse(b, benchLines[0].line)
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst = graphite.Append(dst[:0], &m, 1700000001)
		}
		reportPerLine(b, 1)
	})
	b.Run("modified", func(b *testing.B) {
		m := parse(b, benchLines[1].line)
		m.SetPath(append([]byte("tenant."), m.Path()...)) // as processors.prefix does
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst = graphite.Append(dst[:0], &m, 1700000001)
		}
		reportPerLine(b, 1)
	})
	b.Run("from-statsd", func(b *testing.B) {
		var m metric.Metric
		if err := statsd.Parse([]byte("bench.statsd.latency,host=web-12:12.5|ms|@0.5|#env:prod,region:eu,canary"), &m); err != nil {
			b.Fatal(err)
		}
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst = graphite.Append(dst[:0], &m, 1700000001)
		}
		reportPerLine(b, 1)
	})
	b.Run("to-statsd", func(b *testing.B) {
		m := parse(b, benchLines[1].line)
		dst := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			dst = statsd.Append(dst[:0], &m, metric.Untyped)
		}
		reportPerLine(b, 1)
	})
}

// BenchmarkBatch parses 1000 lines into a batch and appends them all, as an
// input followed by a pass-through output does.
func BenchmarkBatch(b *testing.B) {
	const n = 1000
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "bench.metric.path.%d %d.5 1700000000\n", i, i)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	batch := make(metric.Batch, n)
	dst := make([]byte, 0, buf.Len())
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		for i, l := range lines {
			_ = graphite.Parse(l, &batch[i])
		}
		dst = dst[:0]
		for i := range batch {
			dst = graphite.Append(dst, &batch[i], 1700000001)
		}
	}
	if !bytes.Equal(dst, buf.Bytes()) {
		b.Fatal("batch did not round-trip")
	}
	reportPerLine(b, n)
}
