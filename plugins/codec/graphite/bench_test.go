package graphite_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/internal/codectest"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

var benchLines = []struct{ name, line string }{
	{"plain", "bench.metric.path.12345 12.5 1700000000"},
	{"tagged", "bench.metric.path.12345;dc=eu-west;host=web-12 12.5 1700000000"},
	{"float-ts-crlf", "bench.metric.path.12345\t-1.25e3\t1700000000.125\r"},
	{"invalid", "bench.metric.path.12345 twelve 1700000000"},
}

func appendNow(dst []byte, m *metric.Metric) []byte { return graphite.Append(dst, m, 1700000001) }

func BenchmarkParse(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) { codectest.BenchParse(b, graphite.Parse, bl.line) })
	}
}

func BenchmarkAppend(b *testing.B) {
	b.Run("unmodified", func(b *testing.B) {
		codectest.BenchAppend(b, graphite.Parse, benchLines[0].line, nil, appendNow)
	})
	b.Run("modified", func(b *testing.B) {
		codectest.BenchAppend(b, graphite.Parse, benchLines[1].line, func(m *metric.Metric) {
			m.SetPath(append([]byte("tenant."), m.Path()...)) // as processors.prefix does
		}, appendNow)
	})
	b.Run("from-statsd", func(b *testing.B) {
		codectest.BenchAppend(b, statsd.Parse, "bench.statsd.latency,host=web-12:12.5|ms|@0.5|#env:prod,region:eu,canary", nil, appendNow)
	})
	b.Run("to-statsd", func(b *testing.B) {
		codectest.BenchAppend(b, graphite.Parse, benchLines[1].line, nil, func(dst []byte, m *metric.Metric) []byte {
			return statsd.Append(dst, m, metric.Untyped)
		})
	})
}

// BenchmarkBatch parses 1000 lines into a batch and appends them all, as an
// input followed by a pass-through output does.
func BenchmarkBatch(b *testing.B) {
	var buf bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&buf, "bench.metric.path.%d %d.5 1700000000\n", i, i)
	}
	codectest.BenchBatch(b, codectest.Codec{Parse: graphite.Parse, Append: appendNow}, buf.Bytes())
}
