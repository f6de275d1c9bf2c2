package http_json

import (
	"strconv"
	"testing"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// BenchmarkEncode: one 1000-metric /batch body of tagged StatsD metrics of
// every type /batch carries, into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	lines := make([]string, 1000)
	types := []string{"1|c|@0.5", "42|g", "-3|g", "320|ms", "user-7|s"}
	for i := range lines {
		lines[i] = "statsd:app.metric." + strconv.Itoa(i) + ":" + types[i%len(types)] + "|#env:prod,dc:x"
	}
	batch := plugintest.Batch(b, lines...)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = append(buf[:0], '[')
		for i := range batch {
			var err error
			if buf, err = appendMetric(buf, &batch[i], i == 0); err != nil {
				b.Fatal(err)
			}
		}
		buf = append(buf, ']')
	}
	b.SetBytes(int64(len(buf)))
}
