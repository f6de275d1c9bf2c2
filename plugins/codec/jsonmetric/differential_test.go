package jsonmetric

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
)

// differentialSeeds: the objects of the other tests and hostile shapes.
func differentialSeeds() []string {
	deep := func(n int) string {
		return `{"name":"a","value":1,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	deepObj := func(n int) string {
		return `{"name":"a","value":1,"x":` + strings.Repeat(`{"k":`, n) + `0` + strings.Repeat("}", n) + `}`
	}
	return []string{
		`{"name":"servers.a.cpu","value":0.5,"timestamp":1700000000}`,
		`{"name":"disk.used","value":3,"timestamp":1700000000,"tags":{"dc":"par","rack":"r1"}}`,
		`{"name":"a","value":1,"timestamp":2,"tags":{"bare":null,"k":"v=w"}}`,
		`{"name":"q\"\\x","value":1000,"timestamp":1700000000.5}`,
		`{"name":"héllo","value":1e3,"timestamp":17}`,
		`{"name":"api.hits","value":1,"type":"c"}`,
		`{"name":"api.hits","value":1,"type":"c","rate":0.1}`,
		`{"name":"q","value":-2,"type":"g","delta":true}`,
		`{"name":"q","value":3,"type":"g","delta":true}`,
		`{"name":"q","value":3,"type":"g"}`,
		`{"name":"u","value":"u42","type":"s"}`,
		`{"name":"u","value":42,"type":"s"}`,
		`{"name":"t","value":12,"type":"ms","timestamp":1700000000,"tags":{"env":"prod","canary":null,"url":"http://x"}}`,
		`{"name":"t","value":12,"type":"h","tags":{},"key_tags":{"host":"a","b":null}}`,
		`{"name":"d","value":0.5,"type":"d"}`,
		`{"name":"\u00e9\"","value":1e-7,"type":"d","tags":{}}`,
		`{"name":"api.requests.latency","value":12.5,"type":"ms","rate":0.5,"tags":{"env":"prod","region":"eu"}}`,
		`{"name":"a","value":2,"type":"c","host":"x"}`,
		` {"name":"a","value":2} `,
		``, `[]`, `{}`, `null`, `"x"`, `1`, `{"name":"a"}`, `{"value":1}`,
		`{"name":"a","value":1} {"name":"b","value":2}`,
		`{"name":"a","value":1}{"name":"b","value":2}`,
		`{"name":"a","value":1}x`, `{"name":"a","value":1},`,
		"\ufeff" + `{"name":"a","value":1}`,
		`{"name":"a\u0000","value":1}`, "{\"name\":\"a\x00\",\"value\":1}", "{\"name\":\"a\",\"value\":1}\x00",
		`{"name":"a b","value":1}`, `{"name":"a\nb 2 3","value":1}`, `{"name":"a;x=y","value":1}`,
		`{"name":"","value":1}`, `{"name":"a","value":"1"}`, `{"name":"a","value":1e400}`,
		`{"name":"a","value":123456789012345678901234567890123456789012345678901234567890}`,
		`{"name":"a","value":-0.0000000000000000000000000000000000000000000000000001e-400}`,
		`{"name":"a","value":1,"timestamp":"now"}`, `{"name":"a","value":1,"timestamp":null}`,
		`{"name":"a","value":1,"timestamp":1e400}`,
		`{"name":"a","value":1,"tags":{"k":"v w"}}`, `{"name":"a","value":1,"tags":{"k;":"v"}}`,
		`{"name":"a","value":1,"tags":{"k":1}}`, `{"name":"a","value":1,"tags":{"k":1},"tags":{}}`,
		`{"name":"a","value":1,"tags":"x"}`, `{"name":"a","value":1,"tags":null}`, `{"name":"a","value":1,"tags":[]}`,
		`{"name":"a","value":1,"tags":{"":null,"":"v"}}`, `{"name":"a","value":1,"type":"c","tags":{"":null,"x":null}}`,
		`{"name":"a","value":1,"rate":0.5}`, `{"name":"a","value":1,"rate":null}`,
		`{"name":"a:1|c","value":1,"type":"c"}`, `{"name":"a\n","value":1,"type":"c"}`,
		`{"name":"a,b=c","value":1,"type":"c"}`, `{"name":"a","value":1,"type":"x"}`,
		`{"name":"a","value":"v","type":"c"}`, `{"name":"a","value":1,"type":"c","delta":true}`,
		`{"name":"a","value":-1,"type":"g"}`, `{"name":"a","value":-0,"type":"g"}`, `{"name":"a","value":1,"type":"c","rate":0}`,
		`{"name":"a","value":1,"type":"c","rate":"x"}`, `{"name":"a","value":1,"type":"c","timestamp":1.5}`,
		`{"name":"a","value":1,"type":"c","timestamp":-1}`, `{"name":"a","value":"x:1|c","type":"s"}`,
		`{"name":"a","value":"x\n","type":"s"}`, `{"name":"a","value":"","type":"s"}`,
		`{"name":"a","value":1,"type":"c","tags":{"k":"v|x"}}`, `{"name":"a","value":1,"type":"c","tags":{"k:":"v"}}`,
		`{"name":"a","value":1,"type":"c","key_tags":{"k":"v:2|c"}}`, `{"name":"a","value":NaN}`,
		`{"name":"a","value":1,"type":null}`, `{"name":"a","value":1,"type":"c","type":null}`,
		`{"name":"a","name":null,"value":1}`, `{"name":1,"value":1}`, `{"name":"a","value":1,"type":1}`,
		`{"name":"q","value":3,"type":"g","delta":true,"delta":null}`, `{"name":"q","value":3,"type":"g","delta":"true"}`,
		`{"name":"a","value":1,"key_tags":null}`, `{"name":"a","value":1,"key_tags":{}}`,
		`{"NAME":"a","Value":1,"TyPe":"c"}`, `{"n\u0061me":"a","value":1}`, `{"tagſ":{"k":"v"},"name":"a","value":1}`,
		`{"\u212aey_tags":{"k":"v"},"name":"a","value":1,"type":"c"}`, `{"name":"a","value":1,"type":"\u0063"}`,
		`{"name":"a\ud83d\ude00b","value":1}`, `{"name":"a\ud83db","value":1}`, `{"name":"a\ude00\ud83d","value":1}`,
		`{"name":"a\ud83d\u0041","value":1}`, "{\"name\":\"a\xff\xfeb\",\"value\":1}", "{\"name\":\"a\xed\xa0\x80\",\"value\":1}",
		"{\"name\":\"" + strings.Repeat("\xff", 150) + "\",\"value\":1,\"type\":\"c\"}",
		`{"name":"a\/b","value":1}`, `{"name":"a\'b","value":1}`, `{"name":"a\x","value":1}`, `{"name":"a\u12","value":1}`,
		`{"name":"a","value":01}`, `{"name":"a","value":1.}`, `{"name":"a","value":.5}`, `{"name":"a","value":+1}`,
		`{"name":"a","value":1,}`, `{"name":"a" "value":1}`, `{"name":"a","value":tru}`, `{"name":"a","value":1,"x":[1,]}`,
		`{"name":"a","value":1,"x":{"a":[1,{"b":null}],"c":"\u0000"}}`,
		deep(9998), deep(9999), deep(10000), deepObj(9999), deepObj(10000),
	}
}

// FuzzParseDifferential: Parse and the encoding/json reference accept and
// refuse the same objects, and make the same metrics.
func FuzzParseDifferential(f *testing.F) {
	for _, s := range differentialSeeds() {
		f.Add([]byte(s))
	}
	now := func() time.Time { return time.Unix(1700000000, 0) }
	f.Fuzz(func(t *testing.T, obj []byte) {
		var got, want metric.Metric
		ga, gerr := parse(obj, &got, make([]byte, 2, 64), now)
		wa, werr := parseReference(obj, &want, make([]byte, 2, 64), now)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: Parse error %v, reference error %v", obj, gerr, werr)
		}
		if len(ga) != len(wa) || cap(ga) != cap(wa) {
			t.Fatalf("%q: arena len/cap %d/%d, reference %d/%d", obj, len(ga), cap(ga), len(wa), cap(wa))
		}
		if gerr != nil {
			return
		}
		if !bytes.Equal(got.Raw(), want.Raw()) || got.Format() != want.Format() || !bytes.Equal(got.Line(), want.Line()) {
			t.Fatalf("%q: Parse made %q (%v), reference %q (%v)", obj, got.Raw(), got.Format(), want.Raw(), want.Format())
		}
	})
}

// TestParseNoAlloc: the common shapes parse without allocating.
func TestParseNoAlloc(t *testing.T) {
	for _, s := range []string{
		`{"name":"api.requests.latency","value":12.5,"type":"ms","rate":0.5,"tags":{"env":"prod","region":"eu"}}`,
		`{"name":"disk.used","value":3,"timestamp":1700000000,"tags":{"dc":"par","rack":"r1"}}`,
		`{"name":"t","value":12,"type":"h","tags":{},"key_tags":{"host":"a","b":null},"x":[1,{"y":null}]}`,
		`{"name":"h\u00e9\"llo","value":"u\ud83d\ude00","type":"s"}`,
	} {
		obj := []byte(s)
		var m metric.Metric
		arena := make([]byte, 0, minArena)
		n := testing.AllocsPerRun(100, func() {
			var err error
			if arena, err = Parse(obj, &m, arena[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: %v allocations", s, n)
		}
	}
}

func BenchmarkParseReference(b *testing.B) {
	obj := []byte(`{"name":"api.requests.latency","value":12.5,"type":"ms","rate":0.5,"tags":{"env":"prod","region":"eu"}}`)
	b.ReportAllocs()
	var m metric.Metric
	arena := make([]byte, 0, minArena)
	for b.Loop() {
		var err error
		if arena, err = parseReference(obj, &m, arena[:0], time.Now); err != nil {
			b.Fatal(err)
		}
	}
}
