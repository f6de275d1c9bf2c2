package http_json

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// FuzzBatch feeds arbitrary bytes to the JSON batch parser, the
// single-metric JSON and form parsers, and as a key. Properties: nothing
// panics; a rejected request yields no metric; an accepted one yields
// metrics that are each exactly one StatsD line (no '\n' or '\r' anywhere,
// so no client can inject lines), whose name starts with the configured
// prefix, and that the codec writes back byte for byte.
func FuzzBatch(f *testing.F) {
	files, _ := filepath.Glob("testdata/batch/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`[]`, `[{"type":"count","key":"a"}]`, `{"value":1,"tags":"a=b"}`, `value=1&sampleRate=0.5&tags=a%3Db`,
		`[{"type":"gauge","key":"g","shift":"+3"}]`, `{"shift":-1e2}`, `{"time":"5"}`, `[{"type":"set","key":"s","value":5}]`,
		`[{"type":"count","key":"k","tags":"a=b,"}]`, "caf\xc3\xa9", "a\xffb",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, influx := range []bool{false, true} {
			cfg := &handlerConfig{prefix: "p.", influx: influx, maxBatch: 100, maxBody: 1 << 20}
			check := func(what string, b *builder, ferr *fieldError) {
				t.Helper()
				var batch metric.Batch
				if ferr == nil {
					batch, ferr = b.finish()
				}
				if ferr != nil {
					if batch != nil || ferr.msg == "" || ferr.status() < 400 {
						t.Fatalf("%s: bad rejection %+v with %d metrics", what, ferr, len(batch))
					}
					return
				}
				var packed []byte
				for i := range batch {
					m := &batch[i]
					raw := m.Raw()
					if bytes.ContainsAny(raw, "\n\r") {
						t.Fatalf("%s: metric %q spans lines", what, raw)
					}
					if !bytes.HasPrefix(m.Name(), []byte("p.")) {
						t.Fatalf("%s: metric %q escapes the prefix", what, raw)
					}
					out := codec.Append(nil, m, metric.Untyped)
					if !bytes.Equal(out, append(bytes.Clone(raw), '\n')) {
						t.Fatalf("%s: %q written back as %q", what, raw, out)
					}
					packed = append(packed, out...)
				}
				// packed into one datagram, it reads back as the same metrics
				n := 0
				for line := range bytes.SplitSeq(bytes.TrimSuffix(packed, []byte{'\n'}), []byte{'\n'}) {
					if len(packed) == 0 {
						break
					}
					var m metric.Metric
					if err := codec.Parse(line, &m); err != nil {
						t.Fatalf("%s: line %q does not parse: %v", what, line, err)
					}
					n++
				}
				if n != len(batch) {
					t.Fatalf("%s: %d metrics packed into %d lines", what, len(batch), n)
				}
			}
			b := &builder{cfg: cfg}
			check("batch", b, b.batchJSON(body))
			for _, typ := range []metric.Type{metric.Counter, metric.Gauge, metric.Timer, metric.Set} {
				b = &builder{cfg: cfg}
				check("json", b, b.oneJSON(typ, "k", body))
				b = &builder{cfg: cfg}
				check("form", b, b.oneForm(typ, "k", body))
				b = &builder{cfg: cfg}
				check("key", b, b.one(typ, string(body), &fields{}))
			}
		}
	})
}
