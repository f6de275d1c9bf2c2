package selector

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/glob"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// parseLine parses a Graphite line, or a StatsD one (it has a '|').
func parseLine(tb testing.TB, line string) metric.Metric {
	tb.Helper()
	var m metric.Metric
	var err error
	if strings.Contains(line, "|") {
		err = statsd.Parse([]byte(line), &m)
	} else {
		err = graphite.Parse([]byte(line), &m)
	}
	if err != nil {
		tb.Fatalf("parse %q: %v", line, err)
	}
	return m
}

var tagCases = []struct {
	name       string
	pass, drop map[string][]string
	namepass   []string
	in         string
	want       bool
}{
	{name: "graphite tag passes", pass: map[string][]string{"env": {"prod"}}, in: "a.b;env=prod 1 2", want: true},
	{name: "graphite tag other value", pass: map[string][]string{"env": {"prod"}}, in: "a.b;env=dev 1 2"},
	{name: "no tags: tagpass fails", pass: map[string][]string{"env": {"prod"}}, in: "a.b 1 2"},
	{name: "no tags: tagdrop passes", drop: map[string][]string{"env": {"prod"}}, in: "a.b 1 2", want: true},
	{name: "glob on the value", pass: map[string][]string{"env": {"prod", "dev*"}}, in: "a;dc=x;env=devel 1 2", want: true},
	{name: "keys are ORed", pass: map[string][]string{"env": {"prod"}, "dc": {"ams"}}, in: "a;dc=ams;env=dev 1 2", want: true},
	{name: "tagdrop any", drop: map[string][]string{"env": {"dev"}, "dc": {"ams"}}, in: "a;dc=ams;env=prod 1 2"},
	{name: "tagdrop after tagpass", pass: map[string][]string{"env": {"prod"}}, drop: map[string][]string{"dc": {"ams"}}, in: "a;dc=ams;env=prod 1 2"},
	{name: "tagpass and tagdrop both fine", pass: map[string][]string{"env": {"prod"}}, drop: map[string][]string{"dc": {"ams"}}, in: "a;dc=fra;env=prod 1 2", want: true},
	{name: "name lists first", namepass: []string{"b.*"}, pass: map[string][]string{"env": {"prod"}}, in: "a.x;env=prod 1 2"},
	{name: "name lists see the name without tags", namepass: []string{"a.x"}, pass: map[string][]string{"env": {"prod"}}, in: "a.x;env=prod 1 2", want: true},
	{name: "key with an empty list matches nothing", pass: map[string][]string{"env": {}}, in: "a;env=prod 1 2"},
	{name: "plain names are exact", pass: map[string][]string{"env": {"{prod,dev}"}}, in: "a;env=prod 1 2"},
	{name: "a key written twice: each value", pass: map[string][]string{"env": {"prod"}}, in: "a;env=dev;env=prod 1 2", want: true},
	{name: "value with '='", pass: map[string][]string{"k": {"x=y"}}, in: "a;k=x=y 1 2", want: true},
	{name: "the name is not a tag", pass: map[string][]string{"name": {"a"}}, in: "a;env=x 1 2"},
	{name: "dogstatsd tag", pass: map[string][]string{"env": {"prod"}}, in: "a:1|c|#env:prod,dc:ams", want: true},
	{name: "dogstatsd value with ':'", pass: map[string][]string{"url": {"http://*"}}, in: "a:1|c|#url:http://x:80", want: true},
	{name: "dogstatsd bare tag: empty value", pass: map[string][]string{"canary": {"*"}}, in: "a:1|c|#canary,env:prod", want: true},
	{name: "dogstatsd bare tag: exact empty", pass: map[string][]string{"canary": {""}}, in: "a:1|c|#canary", want: true},
	{name: "dogstatsd bare tag: not true", pass: map[string][]string{"canary": {"true"}}, in: "a:1|c|#canary"},
	{name: "dogstatsd tagdrop", drop: map[string][]string{"env": {"dev"}}, in: "a:1|c|#env:dev"},
	{name: "influx tags of a statsd path", pass: map[string][]string{"env": {"prod"}}, in: "a,env=prod,dc=x:1|c", want: true},
	{name: "influx and dogstatsd tags", pass: map[string][]string{"dc": {"ams"}}, in: "a,env=prod:1|c|#dc:ams", want: true},
	{name: "statsd without tags", drop: map[string][]string{"env": {"dev"}}, in: "a:1|c", want: true},
	{name: "empty dogstatsd tags", pass: map[string][]string{"env": {"*"}}, in: "a:1|c|#"},
	{name: "graphite: ',' is not a tag separator", pass: map[string][]string{"env": {"prod"}}, in: "a,env=prod 1 2"},
}

func TestTagPassTagDrop(t *testing.T) {
	for _, c := range tagCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Spec{NamePass: c.namepass, TagPass: c.pass, TagDrop: c.drop})
			if err != nil {
				t.Fatal(err)
			}
			m := parseLine(t, c.in)
			if got := s.PassMetric(&m); got != c.want {
				t.Fatalf("PassMetric(%q) = %v, want %v", c.in, got, c.want)
			}
			if s.Empty() {
				t.Fatal("Empty() with tag tables")
			}
			if n := testing.AllocsPerRun(20, func() { s.PassMetric(&m) }); n != 0 && !raceEnabled {
				t.Fatalf("PassMetric: %v allocs/op", n)
			}
		})
	}
}

func TestTagsAll(t *testing.T) {
	tags, err := CompileTags("match_tag", map[string][]string{"env": {"prod"}, "dc": {"ams", "fra*"}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]bool{
		"a;dc=ams;env=prod 1 2":       true,
		"a;env=prod;dc=frankfurt 1 2": true,
		"a;env=prod 1 2":              false,
		"a;dc=ams;env=dev 1 2":        false,
		"a:1|c|#env:prod,dc:ams":      true,
		"a,dc=fra:1|c|#env:prod":      true,
	} {
		m := parseLine(t, in)
		if got := tags.All(&m); got != want {
			t.Errorf("All(%q) = %v, want %v", in, got, want)
		}
	}
	var none Tags
	m := parseLine(t, "a 1 2")
	if !none.All(&m) || none.Any(&m) || none.On() {
		t.Error("zero Tags")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Spec{TagPass: map[string][]string{"env": {"a[", "b*"}}}); err == nil || !strings.HasPrefix(err.Error(), `tagpass.env pattern "a["`) {
		t.Errorf("tagpass error: %v", err)
	}
	if _, err := New(Spec{TagDrop: map[string][]string{"k": {"{x", "y*"}, "j": {"*"}}}); err == nil || !strings.HasPrefix(err.Error(), `tagdrop.k pattern "{x"`) {
		t.Errorf("tagdrop error: %v", err)
	}
	if s, err := New(Spec{TagPass: map[string][]string{}}); err != nil || s != nil {
		t.Errorf("empty tables: %v, %v", s, err)
	}
}

// telegrafTagsPass is Telegraf's models/filter.go ShouldTagsPass (snapshot
// b272631), written plainly over a tag list: tagpass passes when a tag of
// the list has a filter's key and a value the filter matches; tagdrop drops
// on the same; both set: pass and not drop. A filter with no patterns is
// nil and skipped.
func telegrafTagsPass(pass, drop map[string][]string, tags [][2]string) bool {
	match := func(f map[string][]string) bool {
		for key, pats := range f {
			if len(pats) == 0 {
				continue
			}
			globbed := false
			for _, p := range pats {
				globbed = globbed || strings.ContainsAny(p, "*?[")
			}
			for _, tag := range tags {
				if tag[0] != key {
					continue
				}
				for _, p := range pats {
					if !globbed && p == tag[1] {
						return true
					}
					if globbed && glob.MustCompile(p).Match(tag[1]) {
						return true
					}
				}
			}
		}
		return false
	}
	ok := true
	if pass != nil {
		ok = match(pass)
	}
	if drop != nil && match(drop) {
		ok = false
	}
	return ok
}

// TestTagsAgainstTelegraf: random tables and tagged metrics, decided by the
// selector and by Telegraf's rule.
func TestTagsAgainstTelegraf(t *testing.T) {
	r := rand.New(rand.NewPCG(22, 22))
	keys := []string{"env", "dc", "host", "k"}
	values := []string{"prod", "dev", "ams", "a", "x=y", "web01"}
	pats := []string{"prod", "dev*", "a?s", "*", "web0[12]", "a", "x=*", "{ams,fra}"}
	table := func() map[string][]string {
		if r.IntN(3) == 0 {
			return nil
		}
		m := map[string][]string{}
		for range 1 + r.IntN(3) {
			var l []string
			for range r.IntN(3) {
				l = append(l, pats[r.IntN(len(pats))])
			}
			m[keys[r.IntN(len(keys))]] = l
		}
		return m
	}
	for i := range 5000 {
		pass, drop := table(), table()
		var tags [][2]string
		seen := map[string]bool{}
		line := "m"
		for range r.IntN(4) {
			k := keys[r.IntN(len(keys))]
			if seen[k] {
				continue // Telegraf's tags are a map
			}
			seen[k] = true
			v := values[r.IntN(len(values))]
			tags = append(tags, [2]string{k, v})
			line += ";" + k + "=" + v
		}
		s, err := New(Spec{TagPass: pass, TagDrop: drop})
		if err != nil {
			t.Fatal(err)
		}
		m := parseLine(t, line+" 1 2")
		if got, want := s.PassMetric(&m), telegrafTagsPass(pass, drop, tags); got != want {
			t.Fatalf("%d: tagpass %v tagdrop %v on %q: %v, Telegraf %v", i, pass, drop, line, got, want)
		}
	}
}

func BenchmarkPassMetricTags(b *testing.B) {
	sel, err := New(Spec{TagPass: map[string][]string{"env": {"prod", "staging"}, "dc": {"ams*"}}, TagDrop: map[string][]string{"canary": {"*"}}})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ label, in string }{
		{"graphite/pass", "servers.web01.cpu.user;dc=fra1;env=prod;host=web01 42 1700000000"},
		{"graphite/fail", "servers.web01.cpu.user;dc=fra1;env=dev;host=web01 42 1700000000"},
		{"dogstatsd/pass", "servers.web01.cpu.user:42|ms|#host:web01,env:prod,dc:fra1"},
	} {
		m := parseLine(b, c.in)
		if want := strings.HasSuffix(c.label, "pass"); sel.PassMetric(&m) != want {
			b.Fatalf("%s: PassMetric != %v", c.label, want)
		}
		b.Run(c.label, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sel.PassMetric(&m)
			}
		})
	}
}
