package jsonmetric

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// TestAppendFromLines: line-protocol metrics and the object each becomes,
// which Parse turns back into the same line.
func TestAppendFromLines(t *testing.T) {
	cases := []struct {
		format, line, want string
		back               string // the line Parse rebuilds ("": line)
	}{
		{"graphite", "servers.a.cpu 0.5 1700000000", `{"name":"servers.a.cpu","value":0.5,"timestamp":1700000000}`, ""},
		{"graphite", "disk.used;dc=par;rack=r1 3 1700000000", `{"name":"disk.used","value":3,"timestamp":1700000000,"tags":{"dc":"par","rack":"r1"}}`, ""},
		{"graphite", "a;bare;k=v=w 1 2", `{"name":"a","value":1,"timestamp":2,"tags":{"bare":null,"k":"v=w"}}`, ""},
		{"graphite", `q"\x 1_000 1700000000.5`, `{"name":"q\"\\x","value":1000,"timestamp":1700000000.5}`, `q"\x 1000 1700000000.5`},
		{"graphite", "héllo 1e3 17", `{"name":"héllo","value":1e3,"timestamp":17}`, ""},
		{"statsd", "api.hits:1|c", `{"name":"api.hits","value":1,"type":"c"}`, ""},
		{"statsd", "api.hits:+1|c|@0.1", `{"name":"api.hits","value":1,"type":"c","rate":0.1}`, "api.hits:1|c|@0.1"},
		{"statsd", "q:-2|g", `{"name":"q","value":-2,"type":"g","delta":true}`, ""},
		{"statsd", "q:+3|g", `{"name":"q","value":3,"type":"g","delta":true}`, ""},
		{"statsd", "q:3|g", `{"name":"q","value":3,"type":"g"}`, ""},
		{"statsd", "u:u42|s", `{"name":"u","value":"u42","type":"s"}`, ""},
		{"statsd", "u:42|s", `{"name":"u","value":"42","type":"s"}`, ""},
		{"statsd", "t:12|ms|#env:prod,canary,url:http://x|T1700000000", `{"name":"t","value":12,"type":"ms","timestamp":1700000000,"tags":{"env":"prod","canary":null,"url":"http://x"}}`, ""},
		{"statsd", "t,host=a,b:12|h|#", `{"name":"t","value":12,"type":"h","tags":{},"key_tags":{"host":"a","b":null}}`, ""},
		{"statsd", "d:.5|d", `{"name":"d","value":0.5,"type":"d"}`, "d:0.5|d"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			var m metric.Metric
			var err error
			if c.format == "graphite" {
				err = graphite.Parse([]byte(c.line), &m)
			} else {
				err = statsd.Parse([]byte(c.line), &m)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := Append([]byte("x"), &m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got[1:]) != c.want {
				t.Fatalf("Append\n got %s\nwant %s", got[1:], c.want)
			}
			if !json.Valid(got[1:]) {
				t.Fatalf("not JSON: %s", got[1:])
			}
			var back metric.Metric
			if _, err := Parse(got[1:], &back, nil); err != nil {
				t.Fatal(err)
			}
			want := c.back
			if want == "" {
				want = c.line
			}
			if string(back.Line()) != want {
				t.Fatalf("Parse: line %q, want %q", back.Line(), want)
			}
		})
	}
}

// TestRefuse: what neither Append nor Parse carries.
func TestRefuse(t *testing.T) {
	lines := []struct{ format, line string }{
		{"statsd", "multi:1:2:3|ms"},
		{"statsd", "etsy:1|c:2|ms"},
		{"statsd", "x:1|c|zz"},
		{"statsd", "a b:1|c"},
		{"statsd", "a|b:1|c"},
		{"statsd", "t:1|c|#k|x"},
		{"graphite", "bad\xff 1 2"},
		{"graphite", "a\x01b 1 2"},
		{"graphite", "a;k=\x7f 1 2"},
	}
	for _, c := range lines {
		var m metric.Metric
		var err error
		if c.format == "graphite" {
			err = graphite.Parse([]byte(c.line), &m)
		} else {
			err = statsd.Parse([]byte(c.line), &m)
		}
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		if out, err := Append([]byte("keep"), &m); err == nil || string(out) != "keep" {
			t.Errorf("Append(%q) = %q, %v; want a refusal, dst unchanged", c.line, out, err)
		}
	}
	var op metric.Metric
	if err := statsd.ParseOpaque([]byte("_e{1,1}:a|b"), &op); err != nil {
		t.Fatal(err)
	}
	if _, err := Append(nil, &op); !errors.Is(err, ErrOpaque) {
		t.Errorf("opaque: %v", err)
	}
	nan := metric.NewGraphite("a", math.NaN(), time.Unix(1, 0))
	if _, err := Append(nil, &nan); !errors.Is(err, ErrNotNumber) {
		t.Errorf("NaN: %v", err)
	}
	inf := metric.NewGraphite("a", math.Inf(1), time.Unix(1, 0))
	if _, err := Append(nil, &inf); !errors.Is(err, ErrNotNumber) {
		t.Errorf("Inf: %v", err)
	}

	objs := []string{
		``, `[]`, `{}`, `{"name":"a"}`, `{"value":1}`, `{"name":"a","value":1} {"name":"b","value":2}`,
		`{"name":"a b","value":1}`, `{"name":"a\nb 2 3","value":1}`, `{"name":"a;x=y","value":1}`,
		`{"name":"a\u0000","value":1}`, `{"name":"","value":1}`, `{"name":"a","value":"1"}`,
		`{"name":"a","value":1e400}`, `{"name":"a","value":1,"timestamp":"now"}`,
		`{"name":"a","value":1,"tags":{"k":"v w"}}`, `{"name":"a","value":1,"tags":{"k;":"v"}}`,
		`{"name":"a","value":1,"tags":{"k":1}}`, `{"name":"a","value":1,"rate":0.5}`,
		`{"name":"a:1|c","value":1,"type":"c"}`, `{"name":"a\n","value":1,"type":"c"}`,
		`{"name":"a,b=c","value":1,"type":"c"}`, `{"name":"a","value":1,"type":"x"}`,
		`{"name":"a","value":"v","type":"c"}`, `{"name":"a","value":1,"type":"c","delta":true}`,
		`{"name":"a","value":-1,"type":"g"}`, `{"name":"a","value":1,"type":"c","rate":0}`,
		`{"name":"a","value":1,"type":"c","rate":"x"}`, `{"name":"a","value":1,"type":"c","timestamp":1.5}`,
		`{"name":"a","value":1,"type":"c","timestamp":-1}`, `{"name":"a","value":"x:1|c","type":"s"}`,
		`{"name":"a","value":"x\n","type":"s"}`, `{"name":"a","value":"","type":"s"}`,
		`{"name":"a","value":1,"type":"c","tags":{"k":"v|x"}}`, `{"name":"a","value":1,"type":"c","tags":{"k:":"v"}}`,
		`{"name":"a","value":1,"type":"c","key_tags":{"k":"v:2|c"}}`, `{"name":"a","value":NaN}`,
	}
	for _, o := range objs {
		var m metric.Metric
		arena := make([]byte, 3, 100)
		got, err := Parse([]byte(o), &m, arena)
		if err == nil {
			t.Errorf("Parse(%s) = %q, want a refusal", o, m.Line())
		}
		if len(got) != 3 && cap(got) == cap(arena) {
			t.Errorf("Parse(%s): arena grew on a refusal", o)
		}
	}
}

// TestParseArena: metrics parsed one after another keep their bytes; a full
// arena is replaced, not reallocated under earlier metrics.
func TestParseArena(t *testing.T) {
	arena := make([]byte, 0, 80)
	var ms []metric.Metric
	var want []string
	for i := range 50 {
		var m metric.Metric
		var obj string
		if i%2 == 0 {
			obj = `{"name":"svc.` + strings.Repeat("x", i) + `","value":` + strconvItoa(i) + `,"timestamp":17}`
		} else {
			obj = `{"name":"svc.` + strings.Repeat("y", i) + `","value":` + strconvItoa(i) + `,"type":"c"}`
		}
		var err error
		arena, err = Parse([]byte(obj), &m, arena)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
		want = append(want, string(m.Line()))
	}
	for i := range ms {
		if string(ms[i].Line()) != want[i] {
			t.Fatalf("metric %d: %q, want %q", i, ms[i].Line(), want[i])
		}
	}
	if cap(arena) < minArena {
		t.Errorf("arena cap %d, want a new one of at least %d", cap(arena), minArena)
	}
	// invalid UTF-8 decodes longer than it was: still correct
	var m metric.Metric
	small := make([]byte, 0, len(`{"name":"","value":1,"type":"c"}`)+200)
	obj := []byte(`{"name":"` + strings.Repeat("\xff", 150) + `","value":1,"type":"c"}`)
	got, err := Parse(obj, &m, small)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(m.Name(), []byte("\uFFFD")); n != 150 {
		t.Fatalf("name has %d U+FFFD", n)
	}
	_ = got
}

func strconvItoa(i int) string { return string(appendNumber(nil, nil, float64(i))) }

// TestGraphiteNoTimestamp: an object without timestamp is stamped now.
func TestGraphiteNoTimestamp(t *testing.T) {
	var m metric.Metric
	before := time.Now().Unix()
	if _, err := Parse([]byte(` {"name":"a","value":2} `), &m, nil); err != nil {
		t.Fatal(err)
	}
	if ts := m.Time(); ts < before || ts > time.Now().Unix() {
		t.Fatalf("timestamp %d", ts)
	}
}

// TestParseUnknownKeys: keys the format does not know are ignored.
func TestParseUnknownKeys(t *testing.T) {
	var m metric.Metric
	if _, err := Parse([]byte(`{"name":"a","value":2,"type":"c","host":"x"}`), &m, nil); err != nil {
		t.Fatal(err)
	}
	if string(m.Line()) != "a:2|c" {
		t.Fatalf("%q", m.Line())
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"name":"servers.a.cpu","value":0.5,"timestamp":1700000000}`,
		`{"name":"disk.used","value":3,"timestamp":1700000000,"tags":{"dc":"par","rack":"r1"}}`,
		`{"name":"api.hits","value":1,"type":"c","rate":0.1}`,
		`{"name":"q","value":-2,"type":"g","delta":true}`,
		`{"name":"u","value":"u42","type":"s"}`,
		`{"name":"t","value":12,"type":"ms","timestamp":1700000000,"tags":{"env":"prod","canary":null},"key_tags":{"h":"a"}}`,
		`{"name":"\u00e9\"","value":1e-7,"type":"d","tags":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		var m metric.Metric
		arena, err := Parse(obj, &m, make([]byte, 0, 16))
		if err != nil {
			return
		}
		line := string(m.Line())
		if strings.ContainsAny(line, "\n\r") {
			t.Fatalf("line %q has a line break", line)
		}
		y, err := Append(nil, &m)
		if err != nil {
			t.Fatalf("Append refuses what Parse took (%q): %v", line, err)
		}
		if !json.Valid(y) {
			t.Fatalf("Append wrote %q", y)
		}
		var m2 metric.Metric
		if _, err := Parse(y, &m2, arena); err != nil {
			t.Fatalf("Parse(%s): %v", y, err)
		}
		if string(m.Line()) != line {
			t.Fatalf("second Parse overwrote the first metric")
		}
		z, err := Append(nil, &m2)
		if err != nil || !bytes.Equal(y, z) {
			t.Fatalf("not stable:\n%s\n%s (%v)", y, z, err)
		}
		if m.Format() == metric.StatsD && string(m2.Line()) != line {
			t.Fatalf("statsd line %q became %q", line, m2.Line())
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	var m metric.Metric
	if err := statsd.Parse([]byte("api.requests.latency:12.5|ms|@0.5|#env:prod,region:eu"), &m); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst, _ = Append(dst[:0], &m)
	}
}

func BenchmarkParse(b *testing.B) {
	obj := []byte(`{"name":"api.requests.latency","value":12.5,"type":"ms","rate":0.5,"tags":{"env":"prod","region":"eu"}}`)
	b.ReportAllocs()
	var m metric.Metric
	arena := make([]byte, 0, minArena)
	for b.Loop() {
		var err error
		if arena, err = Parse(obj, &m, arena[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAppendLines: for any line the codecs parse, Append refuses it or
// writes valid JSON that Parse reads back, whose Append is the same
// object.
func FuzzAppendLines(f *testing.F) {
	for _, s := range []string{
		"servers.a.cpu 0.5 1700000000", "disk;dc=par;x 1_000 17", "a:1|c|@0.1|#k:v,b|T0123",
		"q:+3|g", "q:-0x10|g", "u:u42|s", "t,h=a:00012|ms", "x:1|c:2|ms", "e:1|c|#a,,b",
	} {
		f.Add([]byte(s), s[0] == 's' || s[0] == 'd')
	}
	f.Fuzz(func(t *testing.T, line []byte, isGraphite bool) {
		var m metric.Metric
		var err error
		if isGraphite {
			err = graphite.Parse(line, &m)
		} else {
			err = statsd.Parse(line, &m)
		}
		if err != nil {
			return
		}
		y, err := Append(nil, &m)
		if err != nil {
			return
		}
		if !json.Valid(y) {
			t.Fatalf("%q: Append wrote %s", line, y)
		}
		var m2 metric.Metric
		if _, err := Parse(y, &m2, nil); err != nil {
			t.Fatalf("%q: Parse(%s): %v", line, y, err)
		}
		z, err := Append(nil, &m2)
		if err != nil || !bytes.Equal(y, z) {
			t.Fatalf("%q: not stable:\n%s\n%s (%v)", line, y, z, err)
		}
	})
}
