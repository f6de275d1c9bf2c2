package statsd_test

import (
	"math"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/internal/codectest"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// sd is the StatsD codec under test: Append leaves the type of an untyped
// metric to the metric (metric.Untyped), Convert writes Graphite.
var sd = codectest.Codec{Parse: statsd.Parse, Append: appendUntyped, Convert: appendGraphite}

func appendUntyped(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Untyped) }

func appendGraphite(dst []byte, m *metric.Metric) []byte { return graphite.Append(dst, m, 1) }

type fields = codectest.Fields

var num = codectest.Num

// f is a compact constructor for expected StatsD fields; the options fill
// the optional parts.
func f(path, value string, n float64, typ metric.Type, opts ...func(*fields)) fields {
	nl := strings.IndexByte(path, ',')
	if nl < 0 {
		nl = len(path)
	}
	w := fields{
		Name: path[:nl], Path: path, PathTags: path[nl:],
		Value: value, Num: num(n), Type: typ, Rate: "0", Format: metric.StatsD,
	}
	for _, o := range opts {
		o(&w)
	}
	return w
}

func rate(tok string, r float64) func(*fields) {
	return func(w *fields) { w.RateToken, w.Rate = tok, num(r) }
}

func tags(t string) func(*fields) { return func(w *fields) { w.Tags, w.HasTags = t, true } }

func ext(e string) func(*fields) { return func(w *fields) { w.Ext = e } }

func ts(tok string, t int64) func(*fields) { return func(w *fields) { w.TimeToken, w.Time = tok, t } }

var nan = math.NaN()

type validCase struct {
	name string
	line string
	want fields
}

var validCases = []validCase{
	{"counter", "foo:1|c", f("foo", "1", 1, metric.Counter)},
	{"bench counter", "bench.statsd.123:1|c", f("bench.statsd.123", "1", 1, metric.Counter)},
	{"counter with rate", "foo:1|c|@0.1", f("foo", "1", 1, metric.Counter, rate("0.1", 0.1))},
	{"counter with leading-dot rate", "foo:3|c|@.25", f("foo", "3", 3, metric.Counter, rate(".25", 0.25))},
	{"counter rate above 1", "foo:1|c|@2", f("foo", "1", 1, metric.Counter, rate("2", 2))},
	{"negative counter", "foo:-4|c", f("foo", "-4", -4, metric.Counter)},
	{"gauge", "temp:21.5|g", f("temp", "21.5", 21.5, metric.Gauge)},
	{"gauge increment", "temp:+3|g", f("temp", "+3", 3, metric.Gauge)},
	{"gauge decrement", "temp:-2|g", f("temp", "-2", -2, metric.Gauge)},
	{"set string member", "users:user42|s", f("users", "user42", nan, metric.Set)},
	{"set numeric member", "users:42|s", f("users", "42", 42, metric.Set)},
	{"set member with dots", "ips:10.0.0.1|s", f("ips", "10.0.0.1", nan, metric.Set)},
	{"set member Inf is text", "s:Inf|s", f("s", "Inf", math.Inf(1), metric.Set)},
	{"set multi-member", "s:a:b|s", f("s", "a:b", nan, metric.Set)},
	{"timer", "lat:320|ms", f("lat", "320", 320, metric.Timer)},
	{"timer with rate", "lat:320|ms|@0.5", f("lat", "320", 320, metric.Timer, rate("0.5", 0.5))},
	{"timer scientific", "lat:-1.5e-3|ms", f("lat", "-1.5e-3", -0.0015, metric.Timer)},
	{"histogram", "h:1.5|h", f("h", "1.5", 1.5, metric.Histogram)},
	{"distribution", "d:2.5|d", f("d", "2.5", 2.5, metric.Distribution)},
	{"scientific counter", "foo:1e3|c", f("foo", "1e3", 1000, metric.Counter)},
	{"dogstatsd tags", "foo:1|c|#env:prod,canary", f("foo", "1", 1, metric.Counter, tags("env:prod,canary"))},
	{"dogstatsd bare tags only", "foo:1|c|#canary,blue", f("foo", "1", 1, metric.Counter, tags("canary,blue"))},
	{"dogstatsd tag value with colon", "foo:1|c|#url:http://x:80", f("foo", "1", 1, metric.Counter, tags("url:http://x:80"))},
	{"rate then tags", "foo:1|c|@0.5|#env:prod", f("foo", "1", 1, metric.Counter, rate("0.5", 0.5), tags("env:prod"))},
	{"tags then rate", "foo:1|c|#env:prod|@0.5", f("foo", "1", 1, metric.Counter, rate("0.5", 0.5), tags("env:prod"))},
	{"empty tags section", "foo:1|c|#", f("foo", "1", 1, metric.Counter, tags(""))},
	{"timestamp", "foo:1|g|T1700000000", f("foo", "1", 1, metric.Gauge, ts("1700000000", 1700000000))},
	{"timestamp beyond int64", "foo:1|g|T99999999999999999999", f("foo", "1", 1, metric.Gauge, ts("99999999999999999999", 0))},
	{"container id", "foo:1|c|c:abc123", f("foo", "1", 1, metric.Counter, ext("|c:abc123"))},
	{"all sections", "foo:1|c|@0.5|#a:b|T1700000000|c:abc|e:xyz",
		f("foo", "1", 1, metric.Counter, rate("0.5", 0.5), tags("a:b"), ts("1700000000", 1700000000), ext("|c:abc|e:xyz"))},
	{"known sections after unknown are kept verbatim", "foo:1|c|x|@0.5|#a", f("foo", "1", 1, metric.Counter, ext("|x|@0.5|#a"))},
	{"second rate is unknown", "foo:1|c|@0.5|@0.2", f("foo", "1", 1, metric.Counter, rate("0.5", 0.5), ext("|@0.2"))},
	{"second tags are unknown", "foo:1|c|#a|#b", f("foo", "1", 1, metric.Counter, tags("a"), ext("|#b"))},
	{"bare T is unknown", "foo:1|c|T", f("foo", "1", 1, metric.Counter, ext("|T"))},
	{"non-digit T is unknown", "foo:1|c|T-5", f("foo", "1", 1, metric.Counter, ext("|T-5"))},
	{"empty section", "foo:1|c|", f("foo", "1", 1, metric.Counter, ext("|"))},
	{"empty middle section", "foo:1|c||#a", f("foo", "1", 1, metric.Counter, ext("||#a"))},
	{"influx tags", "api.req,host=a,env=prod:5|ms", f("api.req,host=a,env=prod", "5", 5, metric.Timer)},
	{"influx and dogstatsd tags", "api.req,host=a:5|ms|#env:prod", f("api.req,host=a", "5", 5, metric.Timer, tags("env:prod"))},
	{"multi-value", "t:1:2:3|ms", f("t", "1:2:3", 1, metric.Timer)},
	{"multi-value with rate", "t:1.5:-2|h|@0.5", f("t", "1.5:-2", 1.5, metric.Histogram, rate("0.5", 0.5))},
	{"etsy multi-metric", "foo:1|c:2|ms", f("foo", "1", 1, metric.Counter, ext(":2|ms"))},
	{"etsy multi-metric three", "foo:1|c:2|ms:3|g", f("foo", "1", 1, metric.Counter, ext(":2|ms:3|g"))},
	{"etsy multi-metric rate on first", "foo:1|c|@0.1:2|ms", f("foo", "1", 1, metric.Counter, ext("|@0.1:2|ms"))},
	{"trailing CR", "foo:1|c\r", f("foo", "1", 1, metric.Counter)},
	{"trailing CR after tags", "foo:1|c|#a:b\r", f("foo", "1", 1, metric.Counter, tags("a:b"))},
	{"two CRs", "foo:1|c\r\r", f("foo", "1", 1, metric.Counter)},
	{"two CRs after unknown section", "0:0|c|\r\r", f("0", "0", 0, metric.Counter, ext("|"))},
	{"CR inside tags kept", "foo:1|c|#a\rb\r", f("foo", "1", 1, metric.Counter, tags("a\rb"))},
	{"NUL in name", "foo\x00bar:1|c", f("foo\x00bar", "1", 1, metric.Counter)},
	{"invalid UTF-8 in name", "\xff\xfe.x:1|c", f("\xff\xfe.x", "1", 1, metric.Counter)},
	{"space in name", "my metric:1|c", f("my metric", "1", 1, metric.Counter)},
	{"digit separators", "foo:1_000|c", f("foo", "1_000", 1000, metric.Counter)},
}

func TestParseValid(t *testing.T) {
	// a parsed metric has its type: the default for untyped ones changes nothing
	asGauge := sd
	asGauge.Append = func(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Gauge) }
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) { codectest.ParseValid(t, asGauge, tc.line, tc.want, nil) })
	}
}

var invalidCases = []struct {
	name, line string
	err        error
}{
	{"empty", "", statsd.ErrEmpty},
	{"CR only", "\r", statsd.ErrEmpty},
	{"no type", "foo:1", statsd.ErrType},
	{"name only", "foo", statsd.ErrName},
	{"no name", ":1|c", statsd.ErrName},
	{"only influx tags", ",k=v:1|c", statsd.ErrName},
	{"no value", "foo:|c", statsd.ErrValue},
	{"unknown type", "foo:1|x", statsd.ErrType},
	{"empty type", "foo:1|", statsd.ErrType},
	{"upper-case type", "foo:1|C", statsd.ErrType},
	{"long type", "foo:1|msx", statsd.ErrType},
	{"CRs only", "\r\r", statsd.ErrEmpty},
	{"CR inside type", "foo:1|c\rx", statsd.ErrType},
	{"non-numeric value", "foo:abc|c", statsd.ErrValue},
	{"NaN value", "foo:NaN|c", statsd.ErrValue},
	{"Inf value", "foo:Inf|g", statsd.ErrValue},
	{"overflowing value", "foo:1e400|c", statsd.ErrValue},
	{"value with unit", "foo:10ms|ms", statsd.ErrValue},
	{"bad multi-value", "foo:1:abc|ms", statsd.ErrValue},
	{"empty multi-value", "foo:1:|ms", statsd.ErrValue},
	{"empty first multi-value", "foo::1|ms", statsd.ErrValue},
	{"zero rate", "foo:1|c|@0", statsd.ErrRate},
	{"non-numeric rate", "foo:1|c|@abc", statsd.ErrRate},
	{"empty rate", "foo:1|c|@", statsd.ErrRate},
	{"negative rate", "foo:1|c|@-0.5", statsd.ErrRate},
	{"Inf rate", "foo:1|c|@inf", statsd.ErrRate},
	{"NaN rate", "foo:1|c|@NaN", statsd.ErrRate},
	{"bad rate before multi-metric", "foo:1|c|@x:2|ms", statsd.ErrRate},
	{"dogstatsd event", "_e{5,4}:title|text", statsd.ErrType},
	{"dogstatsd service check", "_sc|my.check|0", statsd.ErrName},
	{"graphite line", "foo.bar 1 1700000000", statsd.ErrName},
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) { codectest.ParseInvalid(t, sd, tc.line, tc.err) })
	}
}

// TestNoAlloc pins the hot-path promise: parsing (good and bad lines) and
// appending unmodified or rendered metrics do not allocate.
func TestNoAlloc(t *testing.T) {
	var lines []string
	for _, tc := range validCases {
		lines = append(lines, tc.line)
	}
	for _, tc := range invalidCases {
		if !strings.Contains(tc.line, "e400") { // out of range: strconv allocates its error
			lines = append(lines, tc.line)
		}
	}
	dst := make([]byte, 0, 4096)
	for _, l := range lines {
		line := []byte(l)
		var m metric.Metric
		if n := testing.AllocsPerRun(100, func() { _ = statsd.Parse(line, &m) }); n != 0 {
			t.Errorf("Parse(%q): %v allocs/op, want 0", l, n)
		}
		if m.Raw() == nil {
			continue
		}
		if n := testing.AllocsPerRun(100, func() { dst = statsd.Append(dst[:0], &m, metric.Untyped) }); n != 0 {
			t.Errorf("Append(%q) unmodified: %v allocs/op, want 0", l, n)
		}
		m.SetPath(m.Path())
		if n := testing.AllocsPerRun(100, func() { dst = statsd.Append(dst[:0], &m, metric.Untyped) }); n != 0 {
			t.Errorf("Append(%q) modified: %v allocs/op, want 0", l, n)
		}
		if n := testing.AllocsPerRun(100, func() { dst = graphite.Append(dst[:0], &m, 1) }); n != 0 {
			t.Errorf("graphite.Append(%q): %v allocs/op, want 0", l, n)
		}
	}
}

func TestAppendModified(t *testing.T) {
	timer := sd
	timer.Append = func(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Timer) }
	tests := []struct {
		name   string
		line   string
		modify func(m *metric.Metric)
		want   string
	}{
		{"same path renders", "foo:1|c", func(m *metric.Metric) { m.SetPath(m.Path()) }, "foo:1|c\n"},
		{"render drops CR", "foo:1|c|#a\r", func(m *metric.Metric) { m.SetPath(m.Path()) }, "foo:1|c|#a\n"},
		{"render orders known sections", "foo:1|c|T1700000000|#a|@0.5", func(m *metric.Metric) { m.SetPath(m.Path()) },
			"foo:1|c|@0.5|#a|T1700000000\n"},
		{"prefix", "foo:1|c|@0.1|#a:b", func(m *metric.Metric) { m.SetPath(append([]byte("tenant."), m.Path()...)) },
			"tenant.foo:1|c|@0.1|#a:b\n"},
		{"prefix keeps influx tags", "foo,k=v:1|c", func(m *metric.Metric) { m.SetPath(append([]byte("p."), m.Path()...)) },
			"p.foo,k=v:1|c\n"},
		{"prefix keeps unknown sections", "foo:1|c|c:abc|x", func(m *metric.Metric) { m.SetPath([]byte("p.foo")) },
			"p.foo:1|c|c:abc|x\n"},
		{"prefix keeps etsy multi-metric", "foo:1|c:2|ms", func(m *metric.Metric) { m.SetPath([]byte("p.foo")) },
			"p.foo:1|c:2|ms\n"},
		{"prefix keeps multi-value", "t:1:2:3|ms", func(m *metric.Metric) { m.SetPath([]byte("p.t")) }, "p.t:1:2:3|ms\n"},
		{"prefix keeps gauge delta", "g:-2|g", func(m *metric.Metric) { m.SetPath([]byte("p.g")) }, "p.g:-2|g\n"},
		{"prefix keeps set member", "s:user42|s", func(m *metric.Metric) { m.SetPath([]byte("p.s")) }, "p.s:user42|s\n"},
		{"SetValue", "foo:1|c|@0.5", func(m *metric.Metric) { m.SetValue(2.5) }, "foo:2.5|c|@0.5\n"},
		{"SetValueToken", "g:1|g", func(m *metric.Metric) { m.SetValueToken([]byte("+7"), 7) }, "g:+7|g\n"},
		{"SetValueToken nil renders the number", "g:1|g", func(m *metric.Metric) { m.SetValueToken(nil, -0.5) }, "g:-0.5|g\n"},
		{"SetTags", "foo:1|c", func(m *metric.Metric) { m.SetTags([]byte("env:prod,canary")) }, "foo:1|c|#env:prod,canary\n"},
		{"SetTags replaces", "foo:1|c|@0.5|#a:b", func(m *metric.Metric) { m.SetTags([]byte("x:y")) }, "foo:1|c|@0.5|#x:y\n"},
		{"SetTags nil removes", "foo:1|c|#a:b|T1700000000", func(m *metric.Metric) { m.SetTags(nil) }, "foo:1|c|T1700000000\n"},
		{"SetRate", "foo:1|c", func(m *metric.Metric) { m.SetRate([]byte("0.25")) }, "foo:1|c|@0.25\n"},
		{"SetRate replaces", "foo:1|c|@0.5|#a", func(m *metric.Metric) { m.SetRate([]byte("0.1")) }, "foo:1|c|@0.1|#a\n"},
		{"SetRate nil removes", "foo:1|c|@0.5|#a", func(m *metric.Metric) { m.SetRate(nil) }, "foo:1|c|#a\n"},
		{"SetType", "foo:1|c", func(m *metric.Metric) { m.SetType(metric.Gauge) }, "foo:1|g\n"},
		{"SetType Untyped takes as", "foo:1|c", func(m *metric.Metric) { m.SetType(metric.Untyped) }, "foo:1|ms\n"},
		{"SetTimeToken", "foo:1|g", func(m *metric.Metric) { m.SetTimeToken([]byte("1800000000")) }, "foo:1|g|T1800000000\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { codectest.AppendModified(t, timer, tc.line, tc.modify, tc.want, nil) })
	}
}

func TestNewStatsD(t *testing.T) {
	tests := []struct {
		name          string
		spec          metric.StatsDSpec
		want          string
		graphite      string
		wantName, tag string
		value         float64
		rate          float64
	}{
		{"counter", metric.StatsDSpec{Path: "api.hits", Value: "1", Type: metric.Counter},
			"api.hits:1|c\n", "api.hits 1 1700000000\n", "api.hits", "", 1, 0},
		{"rate 1 is no section", metric.StatsDSpec{Path: "api.hits", Value: "1", Type: metric.Counter, Rate: 1},
			"api.hits:1|c\n", "api.hits 1 1700000000\n", "api.hits", "", 1, 0},
		{"rate", metric.StatsDSpec{Path: "api.hits", Value: "3", Type: metric.Counter, Rate: 0.25},
			"api.hits:3|c|@0.25\n", "api.hits 3 1700000000\n", "api.hits", "", 3, 0.25},
		{"tiny rate", metric.StatsDSpec{Path: "x", Value: "1", Type: metric.Counter, Rate: 1e-7},
			"x:1|c|@1e-07\n", "x 1 1700000000\n", "x", "", 1, 1e-7},
		{"gauge delta", metric.StatsDSpec{Path: "temp", Value: "+3", Type: metric.Gauge},
			"temp:+3|g\n", "temp +3 1700000000\n", "temp", "", 3, 0},
		{"timer", metric.StatsDSpec{Path: "lat", Value: "320", Type: metric.Timer},
			"lat:320|ms\n", "lat 320 1700000000\n", "lat", "", 320, 0},
		{"set member", metric.StatsDSpec{Path: "users", Value: "user42", Type: metric.Set},
			"users:user42|s\n", "", "users", "", nan, 0}, // no Graphite line carries it
		{"influx and dogstatsd tags", metric.StatsDSpec{Path: "api.req,host=a", Value: "5", Type: metric.Timer, Rate: 0.5, Tags: "env:prod,canary"},
			"api.req,host=a:5|ms|@0.5|#env:prod,canary\n", "api.req;env=prod;host=a 5 1700000000\n", "api.req", ",host=a", 5, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metric.NewStatsD(tc.spec)
			if m.Format() != metric.StatsD || !m.Modified() || m.Type() != tc.spec.Type {
				t.Errorf("format %v modified %v type %v", m.Format(), m.Modified(), m.Type())
			}
			if string(m.Name()) != tc.wantName || string(m.PathTags()) != tc.tag || num(m.Value()) != num(tc.value) || m.Rate() != tc.rate {
				t.Errorf("getters: name %q tags %q value %v rate %v", m.Name(), m.PathTags(), m.Value(), m.Rate())
			}
			got := string(statsd.Append(nil, &m, metric.Untyped))
			if got != tc.want {
				t.Errorf("statsd.Append = %q, want %q", got, tc.want)
			}
			var p metric.Metric
			if err := statsd.Parse([]byte(got[:len(got)-1]), &p); err != nil {
				t.Fatalf("rendered %q does not parse: %v", got, err)
			}
			if g := string(graphite.Append(nil, &m, 1700000000)); g != tc.graphite {
				t.Errorf("graphite.Append = %q, want %q", g, tc.graphite)
			}
		})
	}
}

// TestConcurrentAppend: after the last processor, metrics are shared
// read-only by all outputs; appending them concurrently must be race-free.
func TestConcurrentAppend(t *testing.T) {
	codectest.ConcurrentAppend(t, sd, []string{"foo:1|c|@0.5|#a:b", "api.req,host=a:5|ms|T1700000000"},
		"p.api.req,host=a", "foo:1|c|@0.5|#a:b\np.api.req,host=a:5|ms|T1700000000\n")
}

// FuzzStatsDRoundTrip checks that Parse never panics, that an unmodified
// metric appends to exactly its input, that the output parses to the same
// fields, and that a rendered (modified) metric parses back to them too; and
// that its conversion to Graphite does not panic.
func FuzzStatsDRoundTrip(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.line))
	}
	for _, tc := range invalidCases {
		f.Add([]byte(tc.line))
	}
	codectest.FuzzRoundTrip(f, sd, nil)
}

func TestTestdataRoundTrip(t *testing.T) { codectest.TestdataRoundTrip(t, sd) }
