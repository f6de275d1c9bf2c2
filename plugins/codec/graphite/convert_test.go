package graphite_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

var updatePeers = flag.Bool("peers", false, "write testdata/carbon/lines.txt, the lines that testdata/carbon/reads.py shows to carbon")

const now = 1800000000

// fromStatsDCase is a StatsD metric, the Graphite line graphite.Append
// writes for it, and what carbon 1.1.7 reads from that line.
type fromStatsDCase struct {
	name string
	in   string               // a StatsD line, parsed (when mk is nil)
	mk   func() metric.Metric // a metric a parsed line cannot be
	want string               // the exact bytes written; "" = refused
	err  error                // why it is refused
	// carbon is the series carbon's line receiver stores the value under
	// (its tags sorted, as carbon names a tagged series), or "" for none.
	carbon string
}

func statsdNamed(path string) func() metric.Metric {
	return func() metric.Metric {
		return metric.NewStatsD(metric.StatsDSpec{Path: path, Value: "1", Type: metric.Counter})
	}
}

// fromStatsDCases: every separator of carbon's line receiver (whitespace,
// Unicode included, and invalid UTF-8, on which it drops the connection) and
// of its tags (';', '=', '!', '^', '~') in a StatsD name and its tags, and
// the values a Graphite line cannot carry.
var fromStatsDCases = []fromStatsDCase{
	// the name: whitespace would make more than three fields
	{name: "issue 16: a space in the name", in: "my metric:1|c", want: "my_metric 1 1800000000\n", carbon: "my_metric"},
	{name: "two spaces: five fields", in: "a b c:1|c", want: "a_b_c 1 1800000000\n", carbon: "a_b_c"},
	{name: "tab", in: "a\tb:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "CR inside the name", in: "a\rb:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "newline", mk: statsdNamed("a\nevil 666 1700000000"), want: "a_evil_666_1700000000 1 1800000000\n", carbon: "a_evil_666_1700000000"},
	{name: "vertical tab and form feed", in: "a\vb\fc:1|c", want: "a_b_c 1 1800000000\n", carbon: "a_b_c"},
	{name: "file, group, record, unit separators", in: "a\x1cb\x1dc\x1ed\x1fe:1|c", want: "a_b_c_d_e 1 1800000000\n", carbon: "a_b_c_d_e"},
	{name: "NUL and DEL", in: "a\x00b\x7fc:1|c", want: "a_b_c 1 1800000000\n", carbon: "a_b_c"},
	{name: "NEL", in: "a\u0085b:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "no-break space", in: "a\u00a0b:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "ogham space", in: "a\u1680b:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "en quad and hair space", in: "a\u2000b\u200ac:1|c", want: "a_b_c 1 1800000000\n", carbon: "a_b_c"},
	{name: "line and paragraph separators", in: "a\u2028b\u2029c:1|c", want: "a_b_c 1 1800000000\n", carbon: "a_b_c"},
	{name: "narrow no-break, math and ideographic spaces", in: "a\u202fb\u205fc\u3000d:1|c", want: "a_b_c_d 1 1800000000\n", carbon: "a_b_c_d"},
	{name: "zero width space and BOM are not whitespace", in: "a\u200bb\ufeffc:1|c", want: "a\u200bb\ufeffc 1 1800000000\n", carbon: "a\u200bb\ufeffc"},
	{name: "invalid UTF-8", in: "a\xffb:1|c", want: "a_b 1 1800000000\n", carbon: "a_b"},
	{name: "truncated UTF-8", in: "a\xc3:1|c", want: "a_ 1 1800000000\n", carbon: "a_"},
	{name: "UTF-16 surrogate", in: "a\xed\xa0\x80:1|c", want: "a___ 1 1800000000\n", carbon: "a___"},
	{name: "overlong encoding", in: "a\xc0\xafb:1|c", want: "a__b 1 1800000000\n", carbon: "a__b"},
	{name: "UTF-8", in: "température.salle:21.5|g", want: "température.salle 21.5 1800000000\n", carbon: "température.salle"},
	// the name: ';' would start tags
	{name: "semicolon: Graphite tags", in: "a;evil=1:1|c", want: "a_evil=1 1 1800000000\n", carbon: "a_evil=1"},
	// inert in a name: kept
	{name: "equals", in: "a=b:1|c", want: "a=b 1 1800000000\n", carbon: "a=b"},
	{name: "pipe, at, hash", in: "a|b@c#d:1|c", want: "a|b@c#d 1 1800000000\n", carbon: "a|b@c#d"},
	{name: "tag-forbidden characters in the name", in: "a!b^c~d:1|c", want: "a!b^c~d 1 1800000000\n", carbon: "a!b^c~d"},
	// Influx-style tags
	{name: "influx tags", in: "a,k=v,k2=v2:1|c", want: "a;k2=v2;k=v 1 1800000000\n", carbon: "a;k2=v2;k=v"},
	{name: "influx tag key with a space", in: "a,k x=v:1|c", want: "a;k_x=v 1 1800000000\n", carbon: "a;k_x=v"},
	{name: "influx tag value with a space", in: "a,k=v w:1|c", want: "a;k=v_w 1 1800000000\n", carbon: "a;k=v_w"},
	{name: "influx tag value with a semicolon", in: "a,k=v;evil=1:1|c", want: "a;k=v_evil=1 1 1800000000\n", carbon: "a;k=v_evil=1"},
	{name: "influx tag key with ! and ^", in: "a,k!^=v:1|c", want: "a;k__=v 1 1800000000\n", carbon: "a;k__=v"},
	{name: "influx tag value starting with ~", in: "a,k=~v:1|c", want: "a;k=_v 1 1800000000\n", carbon: "a;k=_v"},
	{name: "influx tag value with = and ~ inside", in: "a,k=x=y~z:1|c", want: "a;k=x=y~z 1 1800000000\n", carbon: "a;k=x=y~z"},
	{name: "influx tags without key, value or '=' left out", in: "a,=v,k=,bare,k2=v2:1|c", want: "a;k2=v2 1 1800000000\n", carbon: "a;k2=v2"},
	// DogStatsD tags
	{name: "dogstatsd tags", in: "a:1|c|#k:v,k2:v2", want: "a;k2=v2;k=v 1 1800000000\n", carbon: "a;k2=v2;k=v"},
	{name: "dogstatsd tag key with =", in: "a:1|c|#k=x:v", want: "a;k_x=v 1 1800000000\n", carbon: "a;k_x=v"},
	{name: "dogstatsd tag value with ;", in: "a:1|c|#k:v;evil=1", want: "a;k=v_evil=1 1 1800000000\n", carbon: "a;k=v_evil=1"},
	{name: "dogstatsd tag with spaces", in: "a:1|c|#k x:v w", want: "a;k_x=v_w 1 1800000000\n", carbon: "a;k_x=v_w"},
	{name: "dogstatsd tag value with a colon", in: "a:1|c|#url:http://x:80", want: "a;url=http://x:80 1 1800000000\n", carbon: "a;url=http://x:80"},
	{name: "dogstatsd tag key with ! and value starting with ~", in: "a:1|c|#k!:~v", want: "a;k_=_v 1 1800000000\n", carbon: "a;k_=_v"},
	{name: "dogstatsd bare and empty tags left out", in: "a:1|c|#bare,k:,:v,,k2:v2", want: "a;k2=v2 1 1800000000\n", carbon: "a;k2=v2"},
	{name: "dogstatsd tag with a tab", mk: func() metric.Metric {
		return metric.NewStatsD(metric.StatsDSpec{Path: "a", Value: "1", Type: metric.Counter, Tags: "k:v\tw"})
	}, want: "a;k=v_w 1 1800000000\n", carbon: "a;k=v_w"},
	{name: "dogstatsd key written twice: the last", in: "a:1|c|#k:1,j:x,k:2", want: "a;j=x;k=2 1 1800000000\n", carbon: "a;j=x;k=2"},
	{name: "dogstatsd name tag: carbon's is the name", in: "a:1|c|#name:x,k:v", want: "a;k=v 1 1800000000\n", carbon: "a;k=v"},
	{name: "tagged name with a leading ~", in: "~a:1|c|#k:v", want: "a;k=v 1 1800000000\n", carbon: "a;k=v"},
	{name: "tags sorted as ;k=v strings", in: "a:1|c|#k:1,k-x:2", want: "a;k-x=2;k=1 1 1800000000\n", carbon: "a;k-x=2;k=1"},
	{name: "influx and dogstatsd tags", in: "a,k=v:1|c|#k2:v2", want: "a;k2=v2;k=v 1 1800000000\n", carbon: "a;k2=v2;k=v"},
	// values
	{name: "gauge delta keeps its sign", in: "g:+3|g", want: "g +3 1800000000\n", carbon: "g"},
	{name: "negative gauge", in: "g:-2|g", want: "g -2 1800000000\n", carbon: "g"},
	{name: "hexadecimal float", in: "a:0x1p3|c", want: "a 8 1800000000\n", carbon: "a"},
	{name: "digit separators", in: "a:1_000|c", want: "a 1000 1800000000\n", carbon: "a"},
	{name: "scientific", in: "a:1.5e3|ms", want: "a 1.5e3 1800000000\n", carbon: "a"},
	{name: "leading and trailing dots", in: "a:.5|ms|#x:5.", want: "a;x=5. .5 1800000000\n", carbon: "a;x=5."},
	{name: "numeric set member", in: "users:42|s", want: "users 42 1800000000\n", carbon: "users"},
	{name: "DogStatsD timestamp", in: "a:1|g|T1700000000", want: "a 1 1700000000\n", carbon: "a"},
	{name: "type, rate and unknown sections dropped", in: "a:1|c|@0.5|c:abc|e:x", want: "a 1 1800000000\n", carbon: "a"},
	// refused
	{name: "set member", in: "users:user42|s", err: graphite.ErrNotNumber},
	{name: "set member NaN", in: "s:nan|s", err: graphite.ErrNotNumber},
	{name: "set member Inf", in: "s:Inf|s", err: graphite.ErrNotNumber},
	{name: "set member out of range", in: "s:1e999|s", err: graphite.ErrNotNumber},
	{name: "DogStatsD multi-value", in: "t:1:2:3|ms", err: graphite.ErrManyValues},
	{name: "set multi-member", in: "s:1:2|s", err: graphite.ErrManyValues},
	{name: "Etsy multi-metric", in: "a:1|c:2|ms", err: graphite.ErrManyValues},
	{name: "Etsy multi-metric after a rate", in: "a:1|c|@0.1:2|ms", err: graphite.ErrManyValues},
	{name: "no name", mk: statsdNamed(""), err: graphite.ErrNoName},
}

func (tc fromStatsDCase) metric(t *testing.T) metric.Metric {
	t.Helper()
	if tc.mk != nil {
		return tc.mk()
	}
	var m metric.Metric
	if err := statsd.Parse([]byte(tc.in), &m); err != nil {
		t.Fatalf("statsd.Parse(%q): %v", tc.in, err)
	}
	return m
}

// TestFromStatsDSeparators: the exact bytes graphite.Append writes for each
// case, that they parse back as the one metric of the mapped name, and what
// carbon itself read from them (testdata/carbon/reads.json).
func TestFromStatsDSeparators(t *testing.T) {
	reads := carbonReads(t)
	var lines []string
	for _, tc := range fromStatsDCases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.metric(t)
			got := string(graphite.Append([]byte("prefix\n"), &m, now))[len("prefix\n"):]
			if got != tc.want {
				t.Fatalf("graphite.Append = %q, want %q", got, tc.want)
			}
			if err := graphite.Refused(&m); !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("Refused = %v, want %v", err, tc.err)
			}
			dst := make([]byte, 0, 256)
			if n := testing.AllocsPerRun(20, func() { dst = graphite.Append(dst[:0], &m, now); _ = graphite.Refused(&m) }); n != 0 {
				t.Errorf("Append and Refused: %v allocs/op, want 0", n)
			}
			if tc.want == "" {
				return
			}
			checkGraphiteLine(t, &m, []byte(got))
			line := got[:len(got)-1]
			lines = append(lines, line)
			r, ok := reads[fmt.Sprintf("%x", line)]
			if !ok {
				if !*updatePeers {
					t.Errorf("%q is not in testdata/carbon/reads.json: go test -run TestFromStatsDSeparators -peers, then python3 testdata/carbon/reads.py", line)
				}
				return
			}
			if r.Read != "stored" || r.Metric != tc.carbon || r.Value != m.Value() {
				t.Errorf("carbon read %+v, want %q stored with value %v", r, tc.carbon, m.Value())
			}
		})
	}
	if *updatePeers {
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintf(&b, "%x\n", l)
		}
		if err := os.WriteFile(filepath.Join("testdata", "carbon", "lines.txt"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkGraphiteLine checks the line graphite.Append wrote for the StatsD
// metric s: it parses as Graphite with the mapped name, the mapped tags and
// s's value; and it is what carbon's line receiver reads as one metric
// (valid UTF-8, three fields whatever whitespace it splits on, valid tags).
func checkGraphiteLine(t *testing.T, s *metric.Metric, out []byte) {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != '\n' || bytes.IndexByte(out[:len(out)-1], '\n') >= 0 {
		t.Fatalf("%q is not one line", out)
	}
	line := out[:len(out)-1]
	var g metric.Metric
	if err := graphite.Parse(line, &g); err != nil {
		t.Fatalf("%q does not parse as Graphite: %v", line, err)
	}
	wantName, wantTags := refCanonical(refGraphiteName(s.Name()), refGraphiteTags(s))
	if string(g.Name()) != wantName {
		t.Fatalf("%q: name %q, want %q", line, g.Name(), wantName)
	}
	if string(g.PathTags()) != wantTags {
		t.Fatalf("%q: tags %q, want %q", line, g.PathTags(), wantTags)
	}
	if g.Value() != s.Value() {
		t.Fatalf("%q: value %v, want %v", line, g.Value(), s.Value())
	}
	if !utf8.Valid(line) {
		t.Fatalf("%q is not valid UTF-8: carbon drops the connection", line)
	}
	if f := strings.FieldsFunc(string(line), pythonSpace); len(f) != 3 {
		t.Fatalf("%q: carbon splits it into %d fields", line, len(f))
	}
	for _, tag := range strings.Split(string(g.PathTags()), ";")[1:] {
		k, v, _ := strings.Cut(tag, "=")
		if k == "" || v == "" || strings.ContainsAny(k, ";!^=") || strings.Contains(v, ";") || v[0] == '~' {
			t.Fatalf("%q: carbon refuses the tag %q", line, tag)
		}
	}
}

// pythonSpace reports the characters Python's str.split splits on.
func pythonSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// refGraphiteName is the name mapping of the package doc, written plainly:
// each ASCII control byte, ';', whitespace character and byte not part of
// valid UTF-8 becomes '_'.
func refGraphiteName(name []byte) string {
	return refGraphite(string(name), ";")
}

func refGraphite(s, special string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f, unicode.IsSpace(r), strings.ContainsRune(special, r):
			b.WriteByte('_')
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// refGraphiteTags is the tag mapping of the package doc, written plainly.
func refGraphiteTags(s *metric.Metric) string {
	var b strings.Builder
	add := func(list, sep string) {
		for _, tag := range strings.Split(list, ",") {
			k, v, ok := strings.Cut(tag, sep)
			if !ok || k == "" || v == "" {
				continue
			}
			v = refGraphite(v, ";")
			if v[0] == '~' {
				v = "_" + v[1:]
			}
			b.WriteString(";" + refGraphite(k, ";!^=") + "=" + v)
		}
	}
	add(string(s.PathTags()), "=")
	add(string(s.Tags()), ":")
	return b.String()
}

// refCanonical is carbon's canonical form of name and its tags
// (";k=v;..."), written plainly: the last value of each key, no "name"
// tag, the ";k=v" strings sorted, the name's leading '~'s stripped; name
// and tags as they are when there are no tags or the name is '~'s only.
func refCanonical(name, tags string) (string, string) {
	trimmed := strings.TrimLeft(name, "~")
	if tags == "" || trimmed == "" {
		return name, tags
	}
	last := map[string]string{}
	for _, tag := range strings.Split(tags, ";")[1:] {
		k, v, _ := strings.Cut(tag, "=")
		last[k] = v
	}
	var list []string
	for k, v := range last {
		if k != "name" {
			list = append(list, ";"+k+"="+v)
		}
	}
	slices.Sort(list)
	return trimmed, strings.Join(list, "")
}

// carbonRead is what carbon's line receiver did with one line: "stored"
// (Metric and Value: the series and the value it stored), "invalid line",
// "nan dropped", "bad tags" (stored under the line's own name, with an error
// logged) or "connection dropped".
type carbonRead struct {
	Read   string  `json:"read"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// carbonReads loads testdata/carbon/reads.json: hex of a line -> what carbon
// 1.1.7 read from it.
func carbonReads(t *testing.T) map[string]carbonRead {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "carbon", "reads.json"))
	if err != nil {
		t.Fatal(err)
	}
	var reads map[string]carbonRead
	if err := json.Unmarshal(data, &reads); err != nil {
		t.Fatal(err)
	}
	return reads
}

// FuzzFromStatsD: for any StatsD line, graphite.Append writes nothing
// exactly when Refused says why, and otherwise one line that parses as
// Graphite with the mapped name and tags and the StatsD value, and that
// carbon reads as one metric.
func FuzzFromStatsD(f *testing.F) {
	for _, tc := range fromStatsDCases {
		if tc.mk == nil {
			f.Add([]byte(tc.in))
		}
	}
	for _, l := range statsdSeeds(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m metric.Metric
		if statsd.Parse(line, &m) != nil {
			return
		}
		out := graphite.Append(nil, &m, now)
		err := graphite.Refused(&m)
		if (len(out) == 0) != (err != nil) {
			t.Fatalf("Append(%q) = %q but Refused = %v", line, out, err)
		}
		if err != nil {
			// several values: a multi-value, or the rest of an Etsy
			// multi-metric line after the type or after a rate
			ext := m.Ext()
			many := bytes.IndexByte(m.ValueToken(), ':') >= 0 || bytes.HasPrefix(ext, []byte(":")) ||
				bytes.HasPrefix(ext, []byte("|@")) && m.RateToken() == nil && bytes.IndexByte(bytes.SplitN(ext[1:], []byte("|"), 2)[0], ':') >= 0
			if v := m.Value(); !many && !math.IsNaN(v) && !math.IsInf(v, 0) {
				t.Fatalf("%q refused (%v) but a Graphite line carries it", line, err)
			}
			if many != errors.Is(err, graphite.ErrManyValues) {
				t.Fatalf("%q refused (%v), several values: %v", line, err, many)
			}
			return
		}
		checkGraphiteLine(t, &m, out)
	})
}

// statsdSeeds returns the lines of the StatsD codec's testdata files.
func statsdSeeds(tb testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("..", "statsd", "testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no StatsD seed files: %v", err)
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
