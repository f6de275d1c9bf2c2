package statsd_test

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
	{"counter", "bench.statsd.123:1|c"},
	{"dogstatsd", "bench.statsd.latency:12.5|ms|@0.5|#env:prod,region:eu,canary"},
	{"influx", "bench.statsd.latency,host=web-12,env=prod:12.5|ms|@0.5"},
	{"set", "bench.statsd.users:user-4711|s"},
	{"invalid", "bench.statsd.123:one|c"},
}

func BenchmarkParse(b *testing.B) {
	for _, bl := range benchLines {
		b.Run(bl.name, func(b *testing.B) { codectest.BenchParse(b, statsd.Parse, bl.line) })
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, bl := range benchLines[:2] {
		b.Run("unmodified-"+bl.name, func(b *testing.B) {
			codectest.BenchAppend(b, statsd.Parse, bl.line, nil, appendUntyped)
		})
	}
	b.Run("modified-dogstatsd", func(b *testing.B) {
		codectest.BenchAppend(b, statsd.Parse, benchLines[1].line, func(m *metric.Metric) {
			m.SetPath(append([]byte("tenant."), m.Path()...)) // as processors.prefix does
		}, appendUntyped)
	})
	b.Run("from-graphite", func(b *testing.B) {
		codectest.BenchAppend(b, graphite.Parse, "bench.metric.path.12345;dc=eu-west;host=web-12 12.5 1700000000", nil,
			func(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Counter) })
	})
}

// BenchmarkBatch parses 1000 lines into a batch and appends them all, as an
// input followed by a pass-through output does.
func BenchmarkBatch(b *testing.B) {
	var buf bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&buf, "bench.statsd.%d:%d|c|@0.5|#env:prod\n", i, i)
	}
	codectest.BenchBatch(b, sd, buf.Bytes())
}
