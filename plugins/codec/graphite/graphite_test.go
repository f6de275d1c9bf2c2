package graphite_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/internal/codectest"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// gr is the Graphite codec under test: Append gives a metric without a
// timestamp 1, Convert writes StatsD.
var gr = codectest.Codec{Parse: graphite.Parse, Append: appendAt1, Convert: appendStatsD}

func appendAt1(dst []byte, m *metric.Metric) []byte { return graphite.Append(dst, m, 1) }

func appendStatsD(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Untyped) }

type fields = codectest.Fields

var num = codectest.Num

// gfields builds the expected fields of a Graphite line.
func gfields(name, pathTags, value string, n float64, ts string, t int64) fields {
	return fields{
		Name: name, Path: name + pathTags, PathTags: pathTags,
		Value: value, Num: num(n), Rate: "0",
		TimeToken: ts, Time: t, Format: metric.Graphite,
	}
}

type validCase struct {
	name string
	line string
	want fields
}

var validCases = []validCase{
	{"plain", "foo.bar 12.5 1700000000", gfields("foo.bar", "", "12.5", 12.5, "1700000000", 1700000000)},
	{"bench line", "bench.metric.path.12345 12.5 1700000000", gfields("bench.metric.path.12345", "", "12.5", 12.5, "1700000000", 1700000000)},
	{"integer value", "foo 42 1700000000", gfields("foo", "", "42", 42, "1700000000", 1700000000)},
	{"tags", "a.b;k=v;k2=v2 1 1700000000", gfields("a.b", ";k=v;k2=v2", "1", 1, "1700000000", 1700000000)},
	{"one tag", "cpu.load;host=web-1 0.75 1700000000", gfields("cpu.load", ";host=web-1", "0.75", 0.75, "1700000000", 1700000000)},
	{"empty tag part", "a.b; 1 1700000000", gfields("a.b", ";", "1", 1, "1700000000", 1700000000)},
	{"only tags", ";k=v 1 1700000000", gfields("", ";k=v", "1", 1, "1700000000", 1700000000)},
	{"tabs", "foo\t1\t1700000000", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"multiple spaces", "foo   1    1700000000", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"mixed blanks", "foo \t 1\t \t1700000000", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"leading and trailing blanks", "  \tfoo 1 1700000000 \t ", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"trailing CR", "foo 1 1700000000\r", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"blanks before CR", " foo 1 1700000000 \t\r", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"two CRs", "foo 1 1700000000\r\r", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"blanks and CRs mixed", "foo 1 1700000000\r \t\r", gfields("foo", "", "1", 1, "1700000000", 1700000000)},
	{"float timestamp", "foo 1 1700000000.75", gfields("foo", "", "1", 1, "1700000000.75", 1700000000)},
	{"scientific timestamp", "foo 1 1.7e9", gfields("foo", "", "1", 1, "1.7e9", 1700000000)},
	{"signed timestamp", "foo 1 +1700000000", gfields("foo", "", "1", 1, "+1700000000", 1700000000)},
	{"negative timestamp", "foo 1 -1", gfields("foo", "", "1", 1, "-1", -1)},
	{"zero-padded timestamp", "foo 1 0000000000000000000001700000000", gfields("foo", "", "1", 1, "0000000000000000000001700000000", 1700000000)},
	{"max int64 timestamp", "foo 1 9223372036854775807", gfields("foo", "", "1", 1, "9223372036854775807", math.MaxInt64)},
	{"min int64 timestamp", "foo 1 -9223372036854775808", gfields("foo", "", "1", 1, "-9223372036854775808", math.MinInt64)},
	{"timestamp beyond int64", "foo 1 99999999999999999999", gfields("foo", "", "1", 1, "99999999999999999999", 0)},
	{"308-digit timestamp", "foo 1 " + strings.Repeat("9", 308), gfields("foo", "", "1", 1, strings.Repeat("9", 308), 0)},
	{"long zero-padded timestamp", "foo 1 " + strings.Repeat("0", 400) + "1700000000", gfields("foo", "", "1", 1, strings.Repeat("0", 400)+"1700000000", 1700000000)},
	{"negative value", "foo -3.25 1700000000", gfields("foo", "", "-3.25", -3.25, "1700000000", 1700000000)},
	{"plus value", "foo +3 1700000000", gfields("foo", "", "+3", 3, "1700000000", 1700000000)},
	{"Inf", "foo Inf 1700000000", gfields("foo", "", "Inf", math.Inf(1), "1700000000", 1700000000)},
	{"minus inf", "foo -inf 1700000000", gfields("foo", "", "-inf", math.Inf(-1), "1700000000", 1700000000)},
	{"infinity", "foo +Infinity 1700000000", gfields("foo", "", "+Infinity", math.Inf(1), "1700000000", 1700000000)},
	{"scientific", "foo 1.5e3 1700000000", gfields("foo", "", "1.5e3", 1500, "1700000000", 1700000000)},
	{"scientific upper negative exponent", "foo -2E-3 1700000000", gfields("foo", "", "-2E-3", -0.002, "1700000000", 1700000000)},
	{"overflow is Inf", "foo 1e400 1700000000", gfields("foo", "", "1e400", math.Inf(1), "1700000000", 1700000000)},
	{"underflow is 0", "foo 1e-400 1700000000", gfields("foo", "", "1e-400", 0, "1700000000", 1700000000)},
	{"leading dot", "foo .5 1700000000", gfields("foo", "", ".5", 0.5, "1700000000", 1700000000)},
	{"trailing dot", "foo 5. 1700000000", gfields("foo", "", "5.", 5, "1700000000", 1700000000)},
	{"digit separators", "foo 1_000 1700000000", gfields("foo", "", "1_000", 1000, "1700000000", 1700000000)},
	{"digit separators everywhere", "foo 1_0.2_5e0_1 1700000000", gfields("foo", "", "1_0.2_5e0_1", 102.5, "1700000000", 1700000000)},
	{"Unicode digits", "foo \u0661\u0662.\u0665 1700000000", gfields("foo", "", "\u0661\u0662.\u0665", 12.5, "1700000000", 1700000000)},
	{"fullwidth digits", "foo \uff14\uff12 1700000000", gfields("foo", "", "\uff14\uff12", 42, "1700000000", 1700000000)},
	{"minus nothing is minus zero", "foo -0 1700000000", gfields("foo", "", "-0", math.Copysign(0, -1), "1700000000", 1700000000)},
	{"CR after the value", "foo 1\r 1700000000", gfields("foo", "", "1\r", 1, "1700000000", 1700000000)},
	{"no-break space after the value", "foo 1\u00a0 1700000000", gfields("foo", "", "1\u00a0", 1, "1700000000", 1700000000)},
	{"timestamp with digit separators", "foo 1 1_700_000_000", gfields("foo", "", "1", 1, "1_700_000_000", 1700000000)},
	{"NUL in name", "foo\x00bar 1 1700000000", gfields("foo\x00bar", "", "1", 1, "1700000000", 1700000000)},
	{"invalid UTF-8 in name", "foo\xff\xfe.b\xc3 1 1700000000", gfields("foo\xff\xfe.b\xc3", "", "1", 1, "1700000000", 1700000000)},
	{"UTF-8 name", "température.salle;lieu=côté 21.5 1700000000", gfields("température.salle", ";lieu=côté", "21.5", 21.5, "1700000000", 1700000000)},
	{"CR inside name", "fo\ro 1 1700000000", gfields("fo\ro", "", "1", 1, "1700000000", 1700000000)},
	{"StatsD-looking name", "foo:1|c 1 1700000000", gfields("foo:1|c", "", "1", 1, "1700000000", 1700000000)},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			codectest.ParseValid(t, gr, tc.line, tc.want, func(t *testing.T, m *metric.Metric) {
				if rt := m.RateToken(); rt != nil || m.Tags() != nil || m.Ext() != nil || m.Type() != metric.Untyped {
					t.Errorf("Graphite metric has StatsD parts: rate %q tags %q ext %q type %v", rt, m.Tags(), m.Ext(), m.Type())
				}
			})
		})
	}
}

var invalidCases = []struct {
	name, line string
	err        error
}{
	{"empty", "", graphite.ErrEmpty},
	{"blanks", " \t ", graphite.ErrEmpty},
	{"CR only", "\r", graphite.ErrEmpty},
	{"blanks and CR", " \t\r", graphite.ErrEmpty},
	{"one field", "foo", graphite.ErrFields},
	{"two fields", "foo 1", graphite.ErrFields},
	{"two fields trailing blank", "foo 1 ", graphite.ErrFields},
	{"four fields", "foo 1 1700000000 extra", graphite.ErrFields},
	{"four fields numeric", "foo 1 2 3", graphite.ErrFields},
	{"CR inside timestamp", "foo 1 17000\r00000", graphite.ErrTimestamp},
	{"CR between fields", "foo 1\r1700000000", graphite.ErrFields},
	{"LF inside", "foo 1 1700000000\nbar 1 1700000000", graphite.ErrFields},
	{"non-numeric value", "foo abc 1700000000", graphite.ErrValue},
	{"comma decimal", "foo 1,5 1700000000", graphite.ErrValue},
	{"NaN", "foo NaN 1700000000", graphite.ErrNaN},
	{"nan lower case", "foo nan 1700000000", graphite.ErrNaN},
	{"signed nan", "foo +nan 1700000000", graphite.ErrNaN},
	{"minus nan", "foo -nan 1700000000", graphite.ErrNaN},
	{"NaN and an Inf timestamp: NaN first, as carbon", "foo nan inf", graphite.ErrNaN},
	{"NaN and a bad timestamp: the bad field first, as carbon", "foo nan abc", graphite.ErrTimestamp},
	{"nan with a payload", "foo nan(1) 1700000000", graphite.ErrValue},
	{"hex float", "foo 0x1p3 1700000000", graphite.ErrValue},
	{"hex float with separator", "foo 0x_1p3 1700000000", graphite.ErrValue},
	{"underscore before the exponent", "foo 1_e5 1700000000", graphite.ErrValue},
	{"double underscore", "foo 1__0 1700000000", graphite.ErrValue},
	{"infinit", "foo infinit 1700000000", graphite.ErrValue},
	{"Unicode 15 digit (Kawi), not in Python 3.11", "foo \U00011f51 1700000000", graphite.ErrValue},
	{"superscript two", "foo \u00b2 1700000000", graphite.ErrValue},
	{"invalid UTF-8 value", "foo 1\xff 1700000000", graphite.ErrValue},
	{"file separator after the value", "foo 1\x1c 1700000000", graphite.ErrValue},
	{"hex without exponent", "foo 0x10 1700000000", graphite.ErrValue},
	{"trailing underscore", "foo 1_ 1700000000", graphite.ErrValue},
	{"NUL value", "foo \x00 1700000000", graphite.ErrValue},
	{"value with unit", "foo 10ms 1700000000", graphite.ErrValue},
	{"non-numeric timestamp", "foo 1 abc", graphite.ErrTimestamp},
	{"NaN timestamp", "foo 1 NaN", graphite.ErrTimestamp},
	{"Inf timestamp", "foo 1 Inf", graphite.ErrTimestamp},
	{"overflowing timestamp", "foo 1 1e400", graphite.ErrTimestamp},
	{"integer timestamp beyond float64 (range error)", "foo 1 1" + strings.Repeat("0", 309), graphite.ErrTimestamp},
	{"hex timestamp", "foo 1 0x1p30", graphite.ErrTimestamp},
	{"minus nan timestamp", "foo 1 -nan", graphite.ErrTimestamp},
	{"sign-only timestamp", "foo 1 -", graphite.ErrTimestamp},
	{"plus-only timestamp", "foo 1 +", graphite.ErrTimestamp},
	{"date timestamp", "foo 1 2023-11-14", graphite.ErrTimestamp},
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) { codectest.ParseInvalid(t, gr, tc.line, tc.err) })
	}
}

// TestNoAlloc pins the hot-path promise: parsing (good and bad lines) and
// appending unmodified or rendered metrics do not allocate.
func TestNoAlloc(t *testing.T) {
	lines := []string{"bench.metric.path.12345 12.5 1700000000", "a.b;k=v 1 1700000000.5", ""}
	for _, tc := range invalidCases {
		if !strings.Contains(tc.line, "e400") && !strings.Contains(tc.name, "range error") { // out of range: strconv allocates its error
			lines = append(lines, tc.line)
		}
	}
	dst := make([]byte, 0, 4096)
	for _, l := range lines {
		line := []byte(l)
		var m metric.Metric
		if n := testing.AllocsPerRun(100, func() { _ = graphite.Parse(line, &m) }); n != 0 {
			t.Errorf("Parse(%q): %v allocs/op, want 0", l, n)
		}
	}
	var m metric.Metric
	if err := graphite.Parse([]byte("bench.metric.path.12345 12.5 1700000000"), &m); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { dst = graphite.Append(dst[:0], &m, 1) }); n != 0 {
		t.Errorf("Append unmodified: %v allocs/op, want 0", n)
	}
	m.SetPath([]byte("prefix.bench.metric.path.12345"))
	if n := testing.AllocsPerRun(100, func() { dst = graphite.Append(dst[:0], &m, 1) }); n != 0 {
		t.Errorf("Append modified: %v allocs/op, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { dst = statsd.Append(dst[:0], &m, metric.Untyped) }); n != 0 {
		t.Errorf("statsd.Append of a Graphite metric: %v allocs/op, want 0", n)
	}
}

func mustParse(t *testing.T, line string) metric.Metric {
	return codectest.MustParse(t, graphite.Parse, line)
}

func TestAppendModified(t *testing.T) {
	at1234 := gr
	at1234.Append = func(dst []byte, m *metric.Metric) []byte { return graphite.Append(dst, m, 1234) }
	tests := []struct {
		name   string
		line   string
		modify func(m *metric.Metric)
		want   string
	}{
		{"same path renders", "foo.bar 12.5 1700000000", func(m *metric.Metric) { m.SetPath(m.Path()) }, "foo.bar 12.5 1700000000\n"},
		{"render normalises blanks and CR", " foo\t\t1   1700000000.5 \r", func(m *metric.Metric) { m.SetPath(m.Path()) },
			"foo 1 1700000000.5\n"},
		{"prefix", "foo.bar 12.5 1700000000", func(m *metric.Metric) { m.SetPath(append([]byte("tenant."), m.Path()...)) },
			"tenant.foo.bar 12.5 1700000000\n"},
		{"prefix keeps tags", "a.b;k=v;k2=v2 1 1700000000", func(m *metric.Metric) { m.SetPath(append([]byte("p."), m.Path()...)) },
			"p.a.b;k=v;k2=v2 1 1700000000\n"},
		{"value tokens kept as received", "foo 1.50e0 +1700000000", func(m *metric.Metric) { m.SetPath([]byte("bar")) },
			"bar 1.50e0 +1700000000\n"},
		{"SetValue", "foo 1 1700000000", func(m *metric.Metric) { m.SetValue(2.5) }, "foo 2.5 1700000000\n"},
		{"SetValue large", "foo 1 1700000000", func(m *metric.Metric) { m.SetValue(1e21) }, "foo 1000000000000000000000 1700000000\n"},
		{"SetValue NaN", "foo 1 1700000000", func(m *metric.Metric) { m.SetValue(math.NaN()) }, "foo NaN 1700000000\n"},
		{"SetValueToken", "foo 1 1700000000", func(m *metric.Metric) { m.SetValueToken([]byte("7e1"), 70) }, "foo 7e1 1700000000\n"},
		{"SetValueToken nil renders the number", "foo 1 1700000000", func(m *metric.Metric) { m.SetValueToken(nil, 0.25) },
			"foo 0.25 1700000000\n"},
		{"SetTime", "foo 1 1700000000", func(m *metric.Metric) { m.SetTime(time.Unix(1800000000, 0)) }, "foo 1 1800000000\n"},
		{"SetTimeToken", "foo 1 1700000000", func(m *metric.Metric) { m.SetTimeToken([]byte("1800000000.5")) }, "foo 1 1800000000.5\n"},
		{"no timestamp gets now", "foo 1 1700000000", func(m *metric.Metric) { m.SetTimeToken(nil) }, "foo 1 1234\n"},
		{"SetTags become Graphite tags", "foo;a=b 1 1700000000", func(m *metric.Metric) { m.SetTags([]byte("env:prod,bare,k:")) },
			"foo;a=b;env=prod 1 1700000000\n"},
		{"SetRate and SetType are not Graphite", "foo 1 1700000000", func(m *metric.Metric) {
			m.SetRate([]byte("0.5"))
			m.SetType(metric.Counter)
		}, "foo 1 1700000000\n"},
	}
	// the rendered line is valid Graphite (carbon, and Parse, drop a NaN
	// value)
	nan := func(err error, m *metric.Metric) bool {
		return errors.Is(err, graphite.ErrNaN) && math.IsNaN(m.Value())
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { codectest.AppendModified(t, at1234, tc.line, tc.modify, tc.want, nan) })
	}
}

// TestToStatsD covers Graphite -> StatsD conversion (statsd.Append of a
// Graphite metric).
func TestToStatsD(t *testing.T) {
	tests := []struct {
		name string
		line string
		as   metric.Type
		want string
	}{
		{"gauge by default", "foo.bar 12.5 1700000000", metric.Untyped, "foo.bar:12.5|g\n"},
		{"as counter", "foo.bar 12.5 1700000000", metric.Counter, "foo.bar:12.5|c\n"},
		{"as timer", "foo.bar 12.5 1700000000", metric.Timer, "foo.bar:12.5|ms\n"},
		{"as gauge", "foo.bar 12.5 1700000000", metric.Gauge, "foo.bar:12.5|g\n"},
		{"tags", "a.b;k=v;k2=v2 1 1700000000", metric.Untyped, "a.b:1|g|#k:v,k2:v2\n"},
		{"tags as counter", "a.b;k=v 3 1700000000", metric.Counter, "a.b:3|c|#k:v\n"},
		{"only the first = of a tag", "a.b;expr=x=y 1 1700000000", metric.Untyped, "a.b:1|g|#expr:x=y\n"},
		{"empty tag part", "a.b; 1 1700000000", metric.Untyped, "a.b:1|g\n"},
		{"raw layout dropped", "  foo\t2.5  1700000000.5 \r", metric.Untyped, "foo:2.5|g\n"},
		{"value token kept", "foo 1.5e3 1700000000", metric.Untyped, "foo:1.5e3|g\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.line)
			got := string(statsd.Append(nil, &m, tc.as))
			if got != tc.want {
				t.Fatalf("statsd.Append = %q, want %q", got, tc.want)
			}
			var s metric.Metric
			if err := statsd.Parse([]byte(got[:len(got)-1]), &s); err != nil {
				t.Fatalf("converted line %q does not parse as StatsD: %v", got, err)
			}
			if string(s.Name()) != string(m.Name()) || s.Value() != m.Value() {
				t.Errorf("converted metric: name %q value %v, want %q %v", s.Name(), s.Value(), m.Name(), m.Value())
			}
		})
	}
	t.Run("modified Graphite metric keeps its type, rate and extra tags", func(t *testing.T) {
		m := mustParse(t, "a.b;k=v 1 1700000000")
		m.SetType(metric.Timer)
		m.SetRate([]byte("0.5"))
		m.SetTags([]byte("env:prod"))
		if got, want := string(statsd.Append(nil, &m, metric.Counter)), "a.b:1|ms|@0.5|#k:v,env:prod\n"; got != want {
			t.Errorf("statsd.Append = %q, want %q", got, want)
		}
	})
}

// TestFromStatsD covers StatsD -> Graphite conversion (graphite.Append of a
// StatsD metric).
func TestFromStatsD(t *testing.T) {
	const now = 1800000000
	tests := []struct {
		name, line, want string
	}{
		{"counter", "foo.bar:1|c", "foo.bar 1 1800000000\n"},
		{"rate dropped", "foo:1|c|@0.1", "foo 1 1800000000\n"},
		{"timer", "lat:320|ms", "lat 320 1800000000\n"},
		{"gauge delta keeps its token", "g:+3|g", "g +3 1800000000\n"},
		{"negative gauge", "g:-2|g", "g -2 1800000000\n"},
		{"influx tags, sorted", "api.req,host=a,env=prod:5|ms", "api.req;env=prod;host=a 5 1800000000\n"},
		{"dogstatsd tags, bare dropped", "foo:1|c|#env:prod,canary,region:eu", "foo;env=prod;region=eu 1 1800000000\n"},
		{"dogstatsd tags with empty key or value dropped", "foo:1|c|#:x,k:,a:b", "foo;a=b 1 1800000000\n"},
		{"dogstatsd tag value with colon", "foo:1|c|#url:http://x", "foo;url=http://x 1 1800000000\n"},
		{"influx and dogstatsd tags, sorted", "foo,host=a:1|g|#env:prod", "foo;env=prod;host=a 1 1800000000\n"},
		{"a key written twice: the last", "foo:1|c|#env:dev,env:prod", "foo;env=prod 1 1800000000\n"},
		{"name tag: carbon's name", "foo:1|c|#name:bar,a:b", "foo;a=b 1 1800000000\n"},
		{"tagged name: leading '~' stripped", "~foo:1|c|#a:b", "foo;a=b 1 1800000000\n"},
		{"untagged name keeps its '~'", "~foo:1|c", "~foo 1 1800000000\n"},
		{"tagged name of '~'s only: as written", "~~:1|c|#a:b", "~~;a=b 1 1800000000\n"},
		{"sorted as strings, not by key", "foo:1|c|#a:1,a-b:2", "foo;a-b=2;a=1 1 1800000000\n"},
		{"empty tags section", "foo:1|c|#", "foo 1 1800000000\n"},
		{"T timestamp used", "foo:1|g|T1700000000", "foo 1 1700000000\n"},
		{"T0 means now", "foo:1|g|T0", "foo 1 1800000000\n"},
		{"unknown sections dropped", "foo:1|c|c:container|e:x", "foo 1 1800000000\n"},
		{"numeric set member", "users:42|s", "users 42 1800000000\n"},
		{"CR dropped", "foo:1|c\r", "foo 1 1800000000\n"},
		{"histogram", "h:2|h", "h 2 1800000000\n"},
		{"distribution", "d:2|d|#a:b", "d;a=b 2 1800000000\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m metric.Metric
			if err := statsd.Parse([]byte(tc.line), &m); err != nil {
				t.Fatalf("statsd.Parse(%q): %v", tc.line, err)
			}
			got := string(graphite.Append(nil, &m, now))
			if got != tc.want {
				t.Fatalf("graphite.Append = %q, want %q", got, tc.want)
			}
			var g metric.Metric
			if err := graphite.Parse([]byte(got[:len(got)-1]), &g); err != nil {
				t.Fatalf("converted line %q does not parse as Graphite: %v", got, err)
			}
		})
	}
	t.Run("prefixed StatsD metric", func(t *testing.T) {
		var m metric.Metric
		if err := statsd.Parse([]byte("foo,host=a:1|c|#env:prod"), &m); err != nil {
			t.Fatal(err)
		}
		m.SetPath(append([]byte("p."), m.Path()...))
		if got, want := string(graphite.Append(nil, &m, now)), "p.foo;env=prod;host=a 1 1800000000\n"; got != want {
			t.Errorf("graphite.Append = %q, want %q", got, want)
		}
	})
}

func TestNewGraphite(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	tests := []struct {
		name          string
		path          string
		value         float64
		graphite, sd  string
		wantName, tag string
	}{
		{"plain", "router.self.lines", 12.5, "router.self.lines 12.5 1700000000\n", "router.self.lines:12.5|g\n", "router.self.lines", ""},
		{"tagged", "a.b;k=v", 3, "a.b;k=v 3 1700000000\n", "a.b:3|g|#k:v\n", "a.b", ";k=v"},
		{"negative", "x", -0.5, "x -0.5 1700000000\n", "x:0|g\nx:-0.5|g\n", "x", ""},
		{"big", "x", 1e21, "x 1000000000000000000000 1700000000\n", "x:1000000000000000000000|g\n", "x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metric.NewGraphite(tc.path, tc.value, ts)
			if m.Format() != metric.Graphite || !m.Modified() || m.Raw() != nil {
				t.Errorf("format %v modified %v raw %q", m.Format(), m.Modified(), m.Raw())
			}
			if string(m.Name()) != tc.wantName || string(m.PathTags()) != tc.tag || m.Value() != tc.value || m.Time() != ts.Unix() {
				t.Errorf("getters: name %q tags %q value %v time %d", m.Name(), m.PathTags(), m.Value(), m.Time())
			}
			if got := string(graphite.Append(nil, &m, 1)); got != tc.graphite {
				t.Errorf("graphite.Append = %q, want %q", got, tc.graphite)
			}
			if got := string(statsd.Append(nil, &m, metric.Untyped)); got != tc.sd {
				t.Errorf("statsd.Append = %q, want %q", got, tc.sd)
			}
		})
	}
}

// TestConcurrentAppend: after the last processor, metrics are shared
// read-only by all outputs; appending them concurrently must be race-free.
func TestConcurrentAppend(t *testing.T) {
	toCounter := gr
	toCounter.Convert = func(dst []byte, m *metric.Metric) []byte { return statsd.Append(dst, m, metric.Counter) }
	codectest.ConcurrentAppend(t, toCounter, []string{"foo.bar 12.5 1700000000", "a.b;k=v 1 1700000000.5"},
		"p.a.b;k=v", "foo.bar 12.5 1700000000\np.a.b;k=v 1 1700000000.5\n")
}

// FuzzGraphiteRoundTrip checks that Parse never panics, that an unmodified
// metric appends to exactly its input, that the output parses to the same
// fields, and that a rendered (modified) metric parses back to them too;
// that a metric Parse keeps has no value carbon drops (NaN) nor one
// Python's float() never reads, whatever strconv says (hexadecimal); and
// that its conversion to StatsD does not panic.
func FuzzGraphiteRoundTrip(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.line))
	}
	for _, tc := range invalidCases {
		f.Add([]byte(tc.line))
	}
	for _, l := range graphite.CarbonSeeds(f) {
		f.Add(l)
	}
	codectest.FuzzRoundTrip(f, gr, func(t *testing.T, orig []byte, m *metric.Metric) {
		if math.IsNaN(m.Value()) || bytes.ContainsAny(m.ValueToken(), "xXpP(\x00") || bytes.ContainsAny(m.TimeToken(), "xXpP(\x00") {
			t.Fatalf("Parse(%q) kept value %q (%v) timestamp %q: carbon drops it", orig, m.ValueToken(), m.Value(), m.TimeToken())
		}
	})
}

func TestTestdataRoundTrip(t *testing.T) { codectest.TestdataRoundTrip(t, gr) }
