package rules

import (
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// TestMatchTag: match_tag as written in TOML (a string or a list per tag),
// alone or with match, on Graphite and DogStatsD tags; every key must
// match; a stop after a tag match does not make later rules unreachable.
func TestMatchTag(t *testing.T) {
	var file struct {
		Rules []Spec `toml:"rules"`
	}
	md, err := toml.Decode(`
[[rules]]
  match_tag = {env = "prod", dc = ["ams*", "fra1"]}
  send_to = ["a"]
  stop = true
[[rules]]
  match = '^servers\.'
  match_tag = {env = ["dev*"]}
  send_to = ["b"]
[[rules]]
  match = "*"
  send_to = ["c"]
`, &file)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	ch, err := Compile(file.Rules, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if w := ch.Unreachable(); len(w) > 0 {
		t.Errorf("Unreachable: %q", w)
	}
	for _, c := range []struct {
		line  string
		sends []string
	}{
		{"x;dc=ams2;env=prod 1 1", []string{"a"}},
		{"x;dc=fra1;env=prod 1 1", []string{"a"}},
		{"x;dc=fra2;env=prod 1 1", []string{"c"}},
		{"x;env=prod 1 1", []string{"c"}},
		{"servers.a;env=devel 1 1", []string{"b", "c"}},
		{"other.a;env=devel 1 1", []string{"c"}},
		{"servers.a 1 1", []string{"c"}},
		{"x:1|c|#env:prod,dc:ams", []string{"a"}},
		{"servers.x:1|c|#env:dev", []string{"b", "c"}},
	} {
		var m metric.Metric
		if strings.Contains(c.line, "|") {
			if err := statsd.Parse([]byte(c.line), &m); err != nil {
				t.Fatal(err)
			}
		} else {
			m = parse(t, c.line)
		}
		tr := ch.Explain(m)
		var got []string
		for _, s := range tr.Sends {
			got = append(got, s.Output)
		}
		if !slices.Equal(got, c.sends) {
			t.Errorf("%q: sends %q, want %q\n%s", c.line, got, c.sends, tr)
		}
		subs := ch.Route([]metric.Metric{m})
		var routed []string
		for i, b := range subs {
			for range b {
				routed = append(routed, ch.Outputs()[i])
			}
		}
		slices.Sort(routed)
		if !slices.Equal(routed, c.sends) {
			t.Errorf("%q: Route sends to %q, want %q", c.line, routed, c.sends)
		}
	}
	if d := file.Rules[0].Describe(); d != "match * tagged dc=ams*|fra1 env=prod send to a stop" {
		t.Errorf("Describe: %q", d)
	}
}

func TestMatchTagErrors(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		err  string
	}{
		{Spec{Rewrite: "a", Into: str("b"), MatchTag: map[string]Exprs{"k": {"v"}}}, "match_tag belongs to a match or aggregate rule"},
		{Spec{MatchTag: map[string]Exprs{"k": {"a[", "*"}}, SendTo: []string{"a"}}, `match_tag.k pattern "a["`},
		{Spec{MatchTag: map[string]Exprs{"k": {"v"}}}, "match needs send_to"},
	} {
		_, err := Compile([]Spec{c.spec}, func(string) bool { return true })
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.err)
		}
	}
}

func BenchmarkRouteMatchTag(b *testing.B) {
	ch, err := Compile([]Spec{
		{Match: Exprs{`^servers\.`}, MatchTag: map[string]Exprs{"env": {"prod"}}, SendTo: []string{"a"}, Stop: true},
		{Match: Exprs{"*"}, SendTo: []string{"b"}},
	}, func(string) bool { return true })
	if err != nil {
		b.Fatal(err)
	}
	batch := make(metric.Batch, 1000)
	lines := make([][]byte, len(batch))
	for i := range batch {
		env := "prod"
		if i%2 == 1 {
			env = "dev"
		}
		lines[i] = []byte("servers.web" + strings.Repeat("x", i%7) + ".cpu;dc=ams;env=" + env + " 1 1700000000")
		batch[i] = parse(b, string(lines[i]))
	}
	b.ReportAllocs()
	for b.Loop() {
		ch.Route(batch)
	}
}
