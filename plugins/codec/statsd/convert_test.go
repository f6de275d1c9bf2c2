package statsd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

var updatePeers = flag.Bool("peers", false, "write testdata/etsy/lines.txt, the writes that testdata/etsy/reads.js shows to Etsy statsd")

// toStatsDCase is a Graphite metric, what statsd.Append writes for it, and
// what Etsy statsd 0.9.0 reads from that.
type toStatsDCase struct {
	name string
	in   string               // a Graphite line, parsed (when mk is nil)
	mk   func() metric.Metric // a metric a parsed line cannot be
	as   metric.Type
	want string // the exact bytes written; "" = refused
	err  error  // why it is refused
	// etsy is what Etsy statsd holds after reading want: "kind key value"
	// with kind c (counter), g (gauge) or ms (timer), its key sanitised
	// (whitespace to '_', '/' to '-', then all but [A-Za-z0-9_.;=-]
	// removed) and DogStatsD tags folded into it as ";k=v". Nothing else,
	// and no bad line.
	etsy string
}

func graphiteNamed(path string, v float64) func() metric.Metric {
	return func() metric.Metric { return metric.NewGraphite(path, v, time.Unix(1700000000, 0)) }
}

// toStatsDCases: every separator of the StatsD formats (Etsy, DogStatsD,
// Influx-style) in a Graphite name and its tags, and the values StatsD
// cannot carry.
var toStatsDCases = []toStatsDCase{
	// the name: ':' '|' ',' '\n' and blanks would split the line
	{name: "issue 16: a StatsD line in a Graphite name", in: "evil:666|c 1 1700000000", want: "evil_666_c:1|g\n", etsy: "g evil_666_c 1"},
	{name: "colon", in: "a:b 1 1700000000", want: "a_b:1|g\n", etsy: "g a_b 1"},
	{name: "pipe", in: "a|b 1 1700000000", want: "a_b:1|g\n", etsy: "g a_b 1"},
	{name: "pipe hash: DogStatsD tags", in: "a|#k:v 1 1700000000", want: "a_#k_v:1|g\n", etsy: "g a_k_v 1"},
	{name: "comma: Influx-style tags", in: "a,host=evil 1 1700000000", want: "a_host=evil:1|g\n", etsy: "g a_host=evil 1"},
	{name: "newline", mk: graphiteNamed("a\nevil:666|c", 1), want: "a_evil_666_c:1|g\n", etsy: "g a_evil_666_c 1"},
	{name: "CR inside the name", in: "a\rb 1 1700000000", want: "a_b:1|g\n", etsy: "g a_b 1"},
	{name: "space", mk: graphiteNamed("a b", 1), want: "a_b:1|g\n", etsy: "g a_b 1"},
	{name: "tab", mk: graphiteNamed("a\tb", 1), want: "a_b:1|g\n", etsy: "g a_b 1"},
	{name: "NUL and DEL", in: "a\x00b\x7fc 1 1700000000", want: "a_b_c:1|g\n", etsy: "g a_b_c 1"},
	{name: "DogStatsD event syntax", in: "_e{1,1}:a|b 1 1700000000", want: "_e{1_1}_a_b:1|g\n", etsy: "g _e1_1_a_b 1"},
	// inert in a name: kept
	{name: "at sign", in: "a@0.1 1 1700000000", want: "a@0.1:1|g\n", etsy: "g a0.1 1"},
	{name: "hash", in: "a#b 1 1700000000", want: "a#b:1|g\n", etsy: "g ab 1"},
	{name: "equals", in: "a=b 1 1700000000", want: "a=b:1|g\n", etsy: "g a=b 1"},
	{name: "UTF-8", in: "température.salle 21.5 1700000000", want: "température.salle:21.5|g\n", etsy: "g temprature.salle 21.5"},
	{name: "invalid UTF-8", in: "a\xffb 1 1700000000", want: "a\xffb:1|g\n", etsy: "g ab 1"},
	// Graphite tags become DogStatsD tags
	{name: "tags", in: "a;k=v;k2=v2 1 1700000000", want: "a:1|g|#k:v,k2:v2\n", etsy: "g a;k=v;k2=v2 1"},
	{name: "colon in a tag key", in: "a;k:x=v 1 1700000000", want: "a:1|g|#k_x:v\n", etsy: "g a;k_x=v 1"},
	{name: "colon in a tag value is kept", in: "a;url=http://x 1 1700000000", want: "a:1|g|#url:http://x\n", etsy: "g a;url=http--x 1"},
	{name: "comma in a tag value", in: "a;k=v,evil:666 1 1700000000", want: "a:1|g|#k:v_evil:666\n", etsy: "g a;k=v_evil666 1"},
	{name: "comma in a tag key", in: "a;k,x=v 1 1700000000", want: "a:1|g|#k_x:v\n", etsy: "g a;k_x=v 1"},
	{name: "pipe in a tag value", in: "a;k=v|c 1 1700000000", want: "a:1|g|#k:v_c\n", etsy: "g a;k=v_c 1"},
	{name: "pipe in a tag key", in: "a;k|c=v 1 1700000000", want: "a:1|g|#k_c:v\n", etsy: "g a;k_c=v 1"},
	{name: "pipe in a bare tag", in: "a;evil|c 1 1700000000", want: "a:1|g|#evil_c\n", etsy: "g a;evil_c 1"},
	{name: "at and hash in a tag", in: "a;k=#v@0.5 1 1700000000", want: "a:1|g|#k:#v@0.5\n", etsy: "g a;k=v0.5 1"},
	{name: "equals in a tag value", in: "a;k=x=y 1 1700000000", want: "a:1|g|#k:x=y\n", etsy: "g a;k=x=y 1"},
	{name: "bare tag", in: "a;k 1 1700000000", want: "a:1|g|#k\n", etsy: "g a;k 1"},
	{name: "bare tag with a colon", in: "a;k:x 1 1700000000", want: "a:1|g|#k_x\n", etsy: "g a;k_x 1"},
	{name: "empty tags left out", in: "a;;k=v; 1 1700000000", want: "a:1|g|#k:v\n", etsy: "g a;k=v 1"},
	{name: "newline in a tag", mk: graphiteNamed("a;k=v\nb:1|c", 1), want: "a:1|g|#k:v_b:1_c\n", etsy: "g a;k=v_b1_c 1"},
	{name: "space in a tag", mk: graphiteNamed("a;k x=v y", 1), want: "a:1|g|#k_x:v_y\n", etsy: "g a;k_x=v_y 1"},
	{name: "tags set with SetTags", mk: func() metric.Metric {
		m := graphiteNamed("a;k=v", 1)()
		m.SetTags([]byte("env:prod|c\nevil:1|c,x"))
		return m
	}, want: "a:1|g|#k:v,env:prod_c_evil:1_c,x\n", etsy: "g a;k=v;env=prod_c_evil1_c;x 1"},
	// values
	{name: "plus sign dropped: it would be a gauge delta", in: "a +5 1700000000", want: "a:5|g\n", etsy: "g a 5"},
	{name: "negative gauge: set to 0, then the delta", in: "a -5 1700000000", want: "a:0|g\na:-5|g\n", etsy: "g a -5"},
	{name: "negative gauge with tags", in: "a;k=v -2.5 1700000000", want: "a:0|g|#k:v\na:-2.5|g|#k:v\n", etsy: "g a;k=v -2.5"},
	{name: "negative gauge, name mapped", in: "x:1|c -1 1700000000", want: "x_1_c:0|g\nx_1_c:-1|g\n", etsy: "g x_1_c -1"},
	{name: "minus zero", in: "a -0 1700000000", want: "a:0|g\n", etsy: "g a 0"},
	{name: "minus zero point zero", in: "a -0.0 1700000000", want: "a:0|g\n", etsy: "g a 0"},
	{name: "minus zero with digit separators", in: "a -0_0 1700000000", want: "a:0|g\n", etsy: "g a 0"},
	{name: "negative counter", in: "a -5 1700000000", as: metric.Counter, want: "a:-5|c\n", etsy: "c a -5"},
	{name: "counter", in: "a 2 1700000000", as: metric.Counter, want: "a:2|c\n", etsy: "c a 2"},
	{name: "timer", in: "a 2.5 1700000000", as: metric.Timer, want: "a:2.5|ms\n", etsy: "ms a 2.5"},
	{name: "Unicode digit", in: "a \u0668 1700000000", want: "a:8|g\n", etsy: "g a 8"}, // carbon's float("٨") is 8.0
	{name: "digit separators", in: "a 1_000 1700000000", want: "a:1000|g\n", etsy: "g a 1000"},
	{name: "scientific", in: "a 1.5e3 1700000000", want: "a:1.5e3|g\n", etsy: "g a 1500"},
	{name: "leading dot", in: "a .5 1700000000", want: "a:.5|g\n", etsy: "g a 0.5"},
	{name: "trailing dot", in: "a 5. 1700000000", want: "a:5.|g\n", etsy: "g a 5"},
	{name: "timestamp dropped", in: "a 1 1.7e9", want: "a:1|g\n", etsy: "g a 1"},
	// refused
	{name: "NaN", mk: graphiteNamed("a", math.NaN()), err: statsd.ErrNotNumber}, // graphite.Parse refuses "NaN"; a processor may set it
	{name: "Inf", in: "a Inf 1700000000", err: statsd.ErrNotNumber},
	{name: "minus infinity", in: "a -infinity 1700000000", err: statsd.ErrNotNumber},
	{name: "out of range", in: "a 1e400 1700000000", as: metric.Counter, err: statsd.ErrNotNumber},
	{name: "negative timer", in: "a -1 1700000000", as: metric.Timer, err: statsd.ErrNegativeTimer},
	{name: "no name", in: ";k=v 1 1700000000", err: statsd.ErrNoName},
}

func (tc toStatsDCase) metric(t *testing.T) metric.Metric {
	t.Helper()
	if tc.mk != nil {
		return tc.mk()
	}
	var m metric.Metric
	if err := graphite.Parse([]byte(tc.in), &m); err != nil {
		t.Fatalf("graphite.Parse(%q): %v", tc.in, err)
	}
	return m
}

// TestToStatsDSeparators: the exact bytes statsd.Append writes for each
// case, that they parse back as the one metric of the mapped name (two
// lines for a negative gauge), and what Etsy statsd itself read from them
// (testdata/etsy/reads.json).
func TestToStatsDSeparators(t *testing.T) {
	reads := etsyReads(t)
	var units []string
	for _, tc := range toStatsDCases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.metric(t)
			got := string(statsd.Append([]byte("prefix\n"), &m, tc.as))[len("prefix\n"):]
			if got != tc.want {
				t.Fatalf("statsd.Append = %q, want %q", got, tc.want)
			}
			if err := statsd.Refused(&m, tc.as); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Refused = %v, want %v", err, tc.err)
			}
			dst := make([]byte, 0, 256)
			if n := testing.AllocsPerRun(20, func() { dst = statsd.Append(dst[:0], &m, tc.as); _ = statsd.Refused(&m, tc.as) }); n != 0 {
				t.Errorf("Append and Refused: %v allocs/op, want 0", n)
			}
			if tc.want == "" {
				return
			}
			checkStatsDLines(t, &m, tc.as, []byte(got))
			units = append(units, got)
			r, ok := reads[fmt.Sprintf("%x", got)]
			if !ok {
				if !*updatePeers {
					t.Errorf("%q is not in testdata/etsy/reads.json: go test -run TestToStatsDSeparators -peers, then node testdata/etsy/reads.js", got)
				}
				return
			}
			if g := r.summary(); g != tc.etsy {
				t.Errorf("Etsy statsd read %q, want %q", g, tc.etsy)
			}
		})
	}
	if *updatePeers {
		var b strings.Builder
		for _, u := range units {
			fmt.Fprintf(&b, "%x\n", u)
		}
		if err := os.WriteFile(filepath.Join("testdata", "etsy", "lines.txt"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkStatsDLines checks what statsd.Append wrote for the Graphite metric
// g: one line, or for a negative gauge "name:0|g…" and then the value with
// the same sections; each parses as StatsD, with the mapped name, no
// Influx-style tags, the type, g's value, and g's tags as DogStatsD tags.
func checkStatsDLines(t *testing.T, g *metric.Metric, as metric.Type, out []byte) {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != '\n' {
		t.Fatalf("%q does not end with a newline", out)
	}
	lines := bytes.Split(out[:len(out)-1], []byte("\n"))
	typ := g.Type()
	if typ == metric.Untyped {
		typ = as
	}
	if typ == metric.Untyped {
		typ = metric.Gauge
	}
	pair := typ == metric.Gauge && g.Value() < 0
	if want := 1 + b2i(pair); len(lines) != want {
		t.Fatalf("%q: %d lines, want %d", out, len(lines), want)
	}
	wantName := refStatsDName(g.Name())
	wantTags := refDogTags(g)
	var rest [2][]byte // each line after its value
	for i, l := range lines {
		var s metric.Metric
		if err := statsd.Parse(l, &s); err != nil {
			t.Fatalf("line %q does not parse as StatsD: %v", l, err)
		}
		v := g.Value()
		if pair && i == 0 {
			v = 0
		}
		if string(s.Name()) != wantName || s.PathTags() != nil || s.Type() != typ || s.Value() != v || len(s.Ext()) != 0 {
			t.Fatalf("line %q reads as name %q path tags %q type %v value %v ext %q; want %q, none, %v, %v, none",
				l, s.Name(), s.PathTags(), s.Type(), s.Value(), s.Ext(), wantName, typ, v)
		}
		if string(s.Tags()) != wantTags {
			t.Fatalf("line %q has tags %q, want %q", l, s.Tags(), wantTags)
		}
		tok := s.ValueToken()
		if bytes.IndexByte(tok, ':') >= 0 || tok[0] == '+' || (tok[0] == '-' && typ == metric.Gauge && i == 0) {
			t.Fatalf("line %q: value token %q is a multi-value or a delta", l, tok)
		}
		rest[i] = l[len(wantName)+1+len(tok):]
	}
	if pair && !bytes.Equal(rest[0], rest[1]) {
		t.Fatalf("%q: the two lines of a negative gauge differ in their sections", out)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// refStatsDName is the name mapping of the package doc, written plainly:
// ':', '|', ',', space and ASCII control bytes become '_'.
func refStatsDName(name []byte) string {
	var b strings.Builder
	for _, c := range name {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" :|,", c) >= 0 {
			c = '_'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// refDogTags is the tag mapping of the package doc, written plainly: the
// Graphite tags, then those set with SetTags.
func refDogTags(g *metric.Metric) string {
	under := func(s, special string) string {
		var b strings.Builder
		for _, c := range []byte(s) {
			if c < 0x20 || c == 0x7f || strings.IndexByte(special, c) >= 0 {
				c = '_'
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	var tags []string
	for _, tag := range strings.Split(string(g.PathTags()), ";") {
		if tag == "" {
			continue
		}
		k, v, ok := strings.Cut(tag, "=")
		if !ok {
			tags = append(tags, under(k, " :|,"))
			continue
		}
		tags = append(tags, under(k, " :|,")+":"+under(v, " |,"))
	}
	if d := g.Tags(); len(d) > 0 {
		tags = append(tags, under(string(d), "|"))
	}
	return strings.Join(tags, ",")
}

// etsyRead is what Etsy statsd held after reading one write: its user
// metrics (not its own "statsd.*" ones) and bad lines.
type etsyRead struct {
	Counters map[string]float64   `json:"counters"`
	Gauges   map[string]float64   `json:"gauges"`
	Timers   map[string][]float64 `json:"timers"`
	BadLines float64              `json:"bad_lines"`
}

// summary is "kind key value" when Etsy read exactly one metric with one
// value and no bad line, else a description of what it read.
func (r etsyRead) summary() string {
	var all []string
	for k, v := range r.Counters {
		all = append(all, "c "+k+" "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	for k, v := range r.Gauges {
		all = append(all, "g "+k+" "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	for k, vs := range r.Timers {
		for _, v := range vs {
			all = append(all, "ms "+k+" "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	sort.Strings(all)
	if r.BadLines > 0 {
		all = append(all, "bad lines "+strconv.FormatFloat(r.BadLines, 'g', -1, 64))
	}
	return strings.Join(all, " | ")
}

// etsyReads loads testdata/etsy/reads.json: hex of a write -> what Etsy
// statsd 0.9.0 read from it.
func etsyReads(t *testing.T) map[string]etsyRead {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "etsy", "reads.json"))
	if err != nil {
		t.Fatal(err)
	}
	var reads map[string]etsyRead
	if err := json.Unmarshal(data, &reads); err != nil {
		t.Fatal(err)
	}
	return reads
}

// FuzzToStatsD: for any Graphite line, statsd.Append writes nothing exactly
// when Refused says why, and otherwise lines that parse as StatsD: one
// metric, or the two lines of a negative gauge, with the mapped name, no
// Influx-style tags, the Graphite value and the mapped tags.
func FuzzToStatsD(f *testing.F) {
	for _, tc := range toStatsDCases {
		if tc.mk == nil {
			f.Add([]byte(tc.in), uint8(tc.as))
		}
	}
	for _, l := range graphiteSeeds(f) {
		f.Add(l, uint8(0))
	}
	f.Fuzz(func(t *testing.T, line []byte, as uint8) {
		typ := []metric.Type{metric.Untyped, metric.Gauge, metric.Counter, metric.Timer}[as%4]
		var m metric.Metric
		if graphite.Parse(line, &m) != nil {
			return
		}
		out := statsd.Append(nil, &m, typ)
		err := statsd.Refused(&m, typ)
		if (len(out) == 0) != (err != nil) {
			t.Fatalf("Append(%q) = %q but Refused = %v", line, out, err)
		}
		if err != nil {
			if v := m.Value(); len(m.Name()) > 0 && !math.IsNaN(v) && !math.IsInf(v, 0) && !(v < 0 && typ == metric.Timer) {
				t.Fatalf("%q refused (%v) but StatsD carries it", line, err)
			}
			return
		}
		checkStatsDLines(t, &m, typ, out)
	})
}

// graphiteSeeds returns the lines of the Graphite codec's testdata files.
func graphiteSeeds(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("..", "graphite", "testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no Graphite seed files: %v", err)
	}
	var lines [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, bytes.Split(data, []byte("\n"))...)
	}
	return lines
}
