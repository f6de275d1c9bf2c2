package metric_test

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

func TestFormatString(t *testing.T) {
	tests := []struct {
		f    metric.Format
		want string
	}{
		{metric.FormatNone, "none"},
		{metric.Graphite, "graphite"},
		{metric.StatsD, "statsd"},
		{metric.Format(99), "none"},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Format(%d).String() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestType(t *testing.T) {
	tests := []struct {
		tok  string
		typ  metric.Type
		ok   bool
		name string // String() of the parsed type
	}{
		{"c", metric.Counter, true, "c"},
		{"g", metric.Gauge, true, "g"},
		{"ms", metric.Timer, true, "ms"},
		{"h", metric.Histogram, true, "h"},
		{"s", metric.Set, true, "s"},
		{"d", metric.Distribution, true, "d"},
		{"", metric.Untyped, false, ""},
		{"x", metric.Untyped, false, ""},
		{"C", metric.Untyped, false, ""},
		{"m", metric.Untyped, false, ""},
		{"sm", metric.Untyped, false, ""},
		{"mss", metric.Untyped, false, ""},
		{"cc", metric.Untyped, false, ""},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.tok), func(t *testing.T) {
			typ, ok := metric.ParseType([]byte(tc.tok))
			if typ != tc.typ || ok != tc.ok {
				t.Errorf("ParseType(%q) = %v, %v; want %v, %v", tc.tok, typ, ok, tc.typ, tc.ok)
			}
			if got := typ.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
		})
	}
	if got := metric.Type(200).String(); got != "" {
		t.Errorf("Type(200).String() = %q, want \"\"", got)
	}
}

func TestZeroMetric(t *testing.T) {
	var m metric.Metric
	if m.Format() != metric.FormatNone || m.Type() != metric.Untyped || !m.Modified() {
		t.Errorf("zero metric: format %v type %v modified %v", m.Format(), m.Type(), m.Modified())
	}
	if m.Raw() != nil || len(m.Path()) != 0 || len(m.Name()) != 0 || len(m.PathTags()) != 0 || m.ValueToken() != nil ||
		m.TimeToken() != nil || m.RateToken() != nil || m.Tags() != nil || m.Ext() != nil {
		t.Errorf("zero metric has bytes")
	}
	if m.Value() != 0 || m.Time() != 0 || m.Rate() != 0 {
		t.Errorf("zero metric: value %v time %v rate %v", m.Value(), m.Time(), m.Rate())
	}
}

func TestAssemble(t *testing.T) {
	line := []byte("api.req,host=a:5|ms|@0.5|#env:prod|T1700000000|c:x")
	p := metric.Parts{
		Raw: line, Path: line[:14], NameLen: 7, Value: line[15:16], Num: 5,
		Rate: line[21:24], Tags: line[26:34], Time: line[36:46], Ext: line[46:],
		Format: metric.StatsD, Type: metric.Timer,
	}
	m := assemble(&p)
	checks := []struct{ what, got, want string }{
		{"Raw", string(m.Raw()), string(line)},
		{"Path", string(m.Path()), "api.req,host=a"},
		{"Name", string(m.Name()), "api.req"},
		{"PathTags", string(m.PathTags()), ",host=a"},
		{"ValueToken", string(m.ValueToken()), "5"},
		{"RateToken", string(m.RateToken()), "0.5"},
		{"Tags", string(m.Tags()), "env:prod"},
		{"TimeToken", string(m.TimeToken()), "1700000000"},
		{"Ext", string(m.Ext()), "|c:x"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if m.Value() != 5 || m.Rate() != 0.5 || m.Time() != 1700000000 || m.Type() != metric.Timer || m.Format() != metric.StatsD || m.Modified() {
		t.Errorf("value %v rate %v time %v type %v format %v modified %v", m.Value(), m.Rate(), m.Time(), m.Type(), m.Format(), m.Modified())
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		tok  string
		want int64
	}{
		{"", 0},
		{"1700000000", 1700000000},
		{"+1700000000", 1700000000},
		{"-1", -1},
		{"0", 0},
		{"1700000000.9", 1700000000},
		{"-1.9", -1},
		{"1.7e9", 1700000000},
		{"0x10p0", 16},
		{"000000000000000000000000001700000000", 1700000000},
		{"9223372036854775807", math.MaxInt64},
		{"-9223372036854775808", math.MinInt64},
		{"9223372036854775808", 0},              // overflows int64
		{"-9223372036854775809", math.MinInt64}, // rounds to -2^63 as a float
		{"18446744073709551616", 0},             // 2^64: would wrap in a uint64
		{"99999999999999999999", 0},
		{"1e19", 0},
		{"-1e19", 0},
		{"1e400", 0},
		{"NaN", 0},
		{"Inf", 0},
		{"-Inf", 0},
		{"abc", 0},
		{"-", 0},
		{"+", 0},
		{"12abc", 0},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.tok), func(t *testing.T) {
			var m metric.Metric
			m.SetTimeToken([]byte(tc.tok))
			if got := m.Time(); got != tc.want {
				t.Errorf("Time(%q) = %d, want %d", tc.tok, got, tc.want)
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		tok  string
		want float64
	}{
		{"", 0},
		{"0.5", 0.5},
		{".1", 0.1},
		{"1", 1},
		{"1e-3", 0.001},
		{"abc", 0},
	}
	for _, tc := range tests {
		var m metric.Metric
		m.SetRate([]byte(tc.tok))
		if got := m.Rate(); got != tc.want {
			t.Errorf("Rate(%q) = %v, want %v", tc.tok, got, tc.want)
		}
	}
}

func parsed(format metric.Format) metric.Metric {
	line := []byte("a.b;k=v 1 1700000000")
	if format == metric.StatsD {
		line = []byte("a.b,k=v:1|c")
	}
	return assemble(&metric.Parts{Raw: line, Path: line[:7], NameLen: 3, Value: line[8:9], Num: 1, Format: format})
}

func TestSettersClearRaw(t *testing.T) {
	setters := []struct {
		name string
		set  func(m *metric.Metric)
	}{
		{"SetPath", func(m *metric.Metric) { m.SetPath(m.Path()) }},
		{"SetValue", func(m *metric.Metric) { m.SetValue(1) }},
		{"SetValueToken", func(m *metric.Metric) { m.SetValueToken([]byte("1"), 1) }},
		{"SetTime", func(m *metric.Metric) { m.SetTime(time.Unix(1, 0)) }},
		{"SetTimeToken", func(m *metric.Metric) { m.SetTimeToken(nil) }},
		{"SetRate", func(m *metric.Metric) { m.SetRate(nil) }},
		{"SetTags", func(m *metric.Metric) { m.SetTags(nil) }},
		{"SetType", func(m *metric.Metric) { m.SetType(metric.Counter) }},
	}
	for _, s := range setters {
		t.Run(s.name, func(t *testing.T) {
			orig := parsed(metric.Graphite)
			m := orig
			s.set(&m)
			if !m.Modified() || m.Raw() != nil {
				t.Errorf("%s did not clear Raw", s.name)
			}
			if orig.Modified() || orig.Raw() == nil {
				t.Errorf("%s on a copy changed the original", s.name)
			}
		})
	}
}

func TestSetPath(t *testing.T) {
	tests := []struct {
		format         metric.Format
		path           string
		name, pathTags string
	}{
		{metric.Graphite, "p.a.b;k=v;k2=v2", "p.a.b", ";k=v;k2=v2"},
		{metric.Graphite, "p.a,b", "p.a,b", ""},
		{metric.Graphite, ";k=v", "", ";k=v"},
		{metric.StatsD, "p.a.b,k=v", "p.a.b", ",k=v"},
		{metric.StatsD, "p.a;b", "p.a;b", ""},
		{metric.FormatNone, "x;k=v", "x", ";k=v"},
	}
	for _, tc := range tests {
		t.Run(tc.format.String()+"/"+tc.path, func(t *testing.T) {
			m := parsed(tc.format)
			if tc.format == metric.FormatNone {
				m = metric.Metric{}
			}
			m.SetPath([]byte(tc.path))
			if string(m.Path()) != tc.path || string(m.Name()) != tc.name || string(m.PathTags()) != tc.pathTags {
				t.Errorf("Path %q Name %q PathTags %q; want %q %q %q", m.Path(), m.Name(), m.PathTags(), tc.path, tc.name, tc.pathTags)
			}
		})
	}
}

func TestSetValue(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{1, "1"},
		{2.5, "2.5"},
		{-0.1, "-0.1"},
		{1e21, "1000000000000000000000"},
		{1e-7, "0.0000001"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "+Inf"},
		{math.Inf(-1), "-Inf"},
	}
	for _, tc := range tests {
		m := parsed(metric.Graphite)
		m.SetValue(tc.v)
		if got := string(m.ValueToken()); got != tc.want {
			t.Errorf("SetValue(%v) token %q, want %q", tc.v, got, tc.want)
		}
		if got := m.Value(); got != tc.v && !(math.IsNaN(got) && math.IsNaN(tc.v)) {
			t.Errorf("SetValue(%v) Value() = %v", tc.v, got)
		}
		// the token parses back to the value
		if f, err := strconv.ParseFloat(string(m.ValueToken()), 64); err != nil || (f != tc.v && !math.IsNaN(tc.v)) {
			t.Errorf("token %q parses to %v, %v", m.ValueToken(), f, err)
		}
	}
}

func TestSetTime(t *testing.T) {
	m := parsed(metric.Graphite)
	m.SetTime(time.Unix(1800000000, 999999999))
	if string(m.TimeToken()) != "1800000000" || m.Time() != 1800000000 {
		t.Errorf("SetTime: token %q time %d", m.TimeToken(), m.Time())
	}
}

func TestNewGraphite(t *testing.T) {
	m := metric.NewGraphite("a.b;k=v", 12.5, time.Unix(1700000000, 0))
	if m.Format() != metric.Graphite || m.Type() != metric.Untyped || !m.Modified() {
		t.Errorf("format %v type %v modified %v", m.Format(), m.Type(), m.Modified())
	}
	if string(m.Path()) != "a.b;k=v" || string(m.Name()) != "a.b" || string(m.PathTags()) != ";k=v" {
		t.Errorf("path %q name %q tags %q", m.Path(), m.Name(), m.PathTags())
	}
	if string(m.ValueToken()) != "12.5" || m.Value() != 12.5 || string(m.TimeToken()) != "1700000000" || m.Time() != 1700000000 {
		t.Errorf("value %q %v time %q %d", m.ValueToken(), m.Value(), m.TimeToken(), m.Time())
	}
	if m.RateToken() != nil || m.Tags() != nil || m.Ext() != nil {
		t.Errorf("StatsD parts set")
	}
}

func TestNewStatsD(t *testing.T) {
	tests := []struct {
		name      string
		spec      metric.StatsDSpec
		nameWant  string
		pathTags  string
		value     float64
		rateToken string
		tags      string
		hasTags   bool
	}{
		{"counter", metric.StatsDSpec{Path: "hits", Value: "1", Type: metric.Counter}, "hits", "", 1, "", "", false},
		{"rate", metric.StatsDSpec{Path: "hits", Value: "1", Type: metric.Counter, Rate: 0.1}, "hits", "", 1, "0.1", "", false},
		{"rate 1 dropped", metric.StatsDSpec{Path: "hits", Value: "1", Type: metric.Counter, Rate: 1}, "hits", "", 1, "", "", false},
		{"negative rate dropped", metric.StatsDSpec{Path: "hits", Value: "1", Type: metric.Counter, Rate: -1}, "hits", "", 1, "", "", false},
		{"gauge delta", metric.StatsDSpec{Path: "g", Value: "-2", Type: metric.Gauge}, "g", "", -2, "", "", false},
		{"set member", metric.StatsDSpec{Path: "u", Value: "user42", Type: metric.Set}, "u", "", math.NaN(), "", "", false},
		{"tags", metric.StatsDSpec{Path: "r,host=a", Value: "5", Type: metric.Timer, Tags: "env:prod,canary"}, "r", ",host=a", 5, "", "env:prod,canary", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metric.NewStatsD(tc.spec)
			if m.Format() != metric.StatsD || m.Type() != tc.spec.Type || !m.Modified() {
				t.Errorf("format %v type %v modified %v", m.Format(), m.Type(), m.Modified())
			}
			if string(m.Path()) != tc.spec.Path || string(m.Name()) != tc.nameWant || string(m.PathTags()) != tc.pathTags {
				t.Errorf("path %q name %q tags %q", m.Path(), m.Name(), m.PathTags())
			}
			if string(m.ValueToken()) != tc.spec.Value {
				t.Errorf("value token %q", m.ValueToken())
			}
			if v := m.Value(); v != tc.value && !(math.IsNaN(v) && math.IsNaN(tc.value)) {
				t.Errorf("value %v, want %v", v, tc.value)
			}
			if string(m.RateToken()) != tc.rateToken || string(m.Tags()) != tc.tags || (m.Tags() != nil) != tc.hasTags {
				t.Errorf("rate %q tags %q", m.RateToken(), m.Tags())
			}
			if m.TimeToken() != nil || m.Time() != 0 || m.Ext() != nil {
				t.Errorf("time %q ext %q", m.TimeToken(), m.Ext())
			}
		})
	}
}

func TestUnsafeString(t *testing.T) {
	if metric.UnsafeString(nil) != "" || metric.UnsafeString([]byte{}) != "" {
		t.Error("empty input should give \"\"")
	}
	if got := metric.UnsafeString([]byte("12.5")); got != "12.5" {
		t.Errorf("UnsafeString = %q", got)
	}
}

func TestGettersNoAlloc(t *testing.T) {
	line := []byte("a.b;k=v 1 1700000000.5")
	m := assemble(&metric.Parts{Raw: line, Path: line[:7], NameLen: 3, Value: line[8:9], Num: 1, Time: line[10:], Format: metric.Graphite})
	m.SetRate([]byte("0.5"))
	if n := testing.AllocsPerRun(100, func() { _, _, _ = m.Time(), m.Rate(), m.Name() }); n != 0 {
		t.Errorf("getters: %v allocs/op, want 0", n)
	}
}

// TestMetricSize: a queued metric costs this much besides its line (the
// agent's memory budget uses the same figure); a new field must not grow it
// unnoticed.
func TestMetricSize(t *testing.T) {
	if got := unsafe.Sizeof(metric.Metric{}); got != 56 {
		t.Errorf("sizeof(Metric) = %d, want 56", got)
	}
}

// TestWideMetrics: lines around and past 64 KiB (spans no longer fit 16
// bits) keep every field, through the Graphite and StatsD codecs, Assemble
// and every setter.
func TestWideMetrics(t *testing.T) {
	for _, pathLen := range []int{100, 65400, 65500, 65535, 65536, 70000, 200000} {
		name := strings.Repeat("n", pathLen)
		t.Run(strconv.Itoa(pathLen), func(t *testing.T) {
			// Graphite: name;tag value timestamp
			line := []byte(name + ";dc=ams 42.5 1700000000")
			var m metric.Metric
			if err := graphite.Parse(line, &m); err != nil {
				t.Fatal(err)
			}
			wantFields(t, "graphite", &m, string(line), name+";dc=ams", name, ";dc=ams", "42.5", "1700000000", "", "", "")
			if m.Value() != 42.5 || m.Time() != 1700000000 || m.Modified() {
				t.Errorf("value %v time %v modified %v", m.Value(), m.Time(), m.Modified())
			}
			if got := graphite.Append(nil, &m, 0); string(got) != string(line)+"\n" {
				t.Errorf("Append differs from the input (len %d, want %d)", len(got), len(line)+1)
			}
			arena := m.PrefixPath(nil, []byte("pre."))
			wantFields(t, "prefixed", &m, "pre."+string(line), "pre."+name+";dc=ams", "pre."+name, ";dc=ams", "42.5", "1700000000", "", "", "")
			if !m.Modified() || m.Raw() != nil || len(arena) < len(line) {
				t.Errorf("after PrefixPath: modified %v, raw %d bytes, arena %d", m.Modified(), len(m.Raw()), len(arena))
			}
			m.SetTags([]byte("k:v"))
			m.SetValue(7)
			wantFields(t, "graphite+tags", &m, "pre."+name+";dc=ams 7 1700000000", "pre."+name+";dc=ams", "pre."+name, ";dc=ams", "7", "1700000000", "", "k:v", "")

			// StatsD: every section, the long part in the tags
			tags := "big:" + name
			sline := []byte("api.req,host=a:5|ms|@0.5|#" + tags + "|T1700000000|x:y")
			var s metric.Metric
			if err := statsd.Parse(sline, &s); err != nil {
				t.Fatal(err)
			}
			wantFields(t, "statsd", &s, string(sline), "api.req,host=a", "api.req", ",host=a", "5", "1700000000", "0.5", tags, "|x:y")
			if s.Type() != metric.Timer || s.Rate() != 0.5 {
				t.Errorf("type %v rate %v", s.Type(), s.Rate())
			}
			s.SetRate([]byte("0.25"))
			wantFields(t, "statsd rate", &s, "api.req,host=a:5|ms|@0.25|#"+tags+"|T1700000000|x:y", "api.req,host=a", "api.req", ",host=a", "5", "1700000000", "0.25", tags, "|x:y")

			// Assemble with parts outside Raw (copied after the line)
			a := assemble(&metric.Parts{Path: []byte(name), NameLen: len(name), Value: []byte("1"), Num: 1,
				Tags: []byte("t:1"), Format: metric.Graphite})
			wantFields(t, "assembled", &a, "", name, name, "", "1", "", "", "t:1", "")
		})
	}
}

func wantFields(t *testing.T, what string, m *metric.Metric, line, path, name, pathTags, value, ts, rate, tags, ext string) {
	t.Helper()
	short := func(s string) string {
		if len(s) > 40 {
			return fmt.Sprintf("%q...(%d bytes)", s[:40], len(s))
		}
		return strconv.Quote(s)
	}
	for _, c := range []struct{ field, got, want string }{
		{"Line", string(m.Line()), line}, {"Path", string(m.Path()), path}, {"Name", string(m.Name()), name},
		{"PathTags", string(m.PathTags()), pathTags}, {"ValueToken", string(m.ValueToken()), value},
		{"TimeToken", string(m.TimeToken()), ts}, {"RateToken", string(m.RateToken()), rate},
		{"Tags", string(m.Tags()), tags}, {"Ext", string(m.Ext()), ext},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s = %s, want %s", what, c.field, short(c.got), short(c.want))
		}
	}
}

// TestParseOverwritesAll: the framers parse into reused slots, so the
// codecs' SetGraphite and AssembleInto (which set the fields one by one) must
// leave no trace of the metric that was there: the result equals a parse
// into a zero Metric, byte for byte, whatever the slot held (StatsD with
// tags and rate, modified, wide, Graphite).
func TestParseOverwritesAll(t *testing.T) {
	line := []byte("a.b;k=v 1.5 1700000000")
	var want metric.Metric
	if err := graphite.Parse(line, &want); err != nil {
		t.Fatal(err)
	}
	var olds []metric.Metric
	var s metric.Metric
	if err := statsd.Parse([]byte("x.y,k=v:3|c|@0.5|#t:1|T17|zz"), &s); err != nil {
		t.Fatal(err)
	}
	olds = append(olds, s)
	s.SetTags([]byte("a:b"))
	olds = append(olds, s)
	var w metric.Metric
	if err := graphite.Parse([]byte(strings.Repeat("w", 70000)+" 1 2"), &w); err != nil {
		t.Fatal(err)
	}
	olds = append(olds, w)
	olds = append(olds, metric.NewStatsD(metric.StatsDSpec{Path: "s", Type: metric.Set, Value: "u", Tags: "a:b"}))
	sline := []byte("c.d:2|ms")
	var swant metric.Metric
	if err := statsd.Parse(sline, &swant); err != nil {
		t.Fatal(err)
	}
	olds = append(olds, want)
	bytesOf := func(m *metric.Metric) string {
		return string(unsafe.Slice((*byte)(unsafe.Pointer(m)), unsafe.Sizeof(*m)))
	}
	for i, old := range olds {
		m := old
		if err := graphite.Parse(line, &m); err != nil {
			t.Fatal(err)
		}
		if a, b := bytesOf(&m), bytesOf(&want); a != b {
			t.Errorf("slot %d: Graphite parse into a used metric = %x, into a zero one %x", i, a, b)
		}
		m = old
		if err := statsd.Parse(sline, &m); err != nil {
			t.Fatal(err)
		}
		if a, b := bytesOf(&m), bytesOf(&swant); a != b {
			t.Errorf("slot %d: StatsD parse into a used metric = %x, into a zero one %x", i, a, b)
		}
	}
}

func assemble(p *metric.Parts) metric.Metric {
	var m metric.Metric
	metric.AssembleInto(&m, p)
	return m
}
