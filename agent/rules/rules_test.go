package rules

import (
	"slices"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		expr string
		kind matchKind
		lit  string
	}{
		{`foo`, kindContains, "foo"},
		{`foo\.bar`, kindContains, "foo.bar"},
		{`^foo\.`, kindPrefix, "foo."},
		{`\.count$`, kindSuffix, ".count"},
		{`^a_b-c$`, kindExact, "a_b-c"},
		{`^`, kindPrefix, ""},
		{`foo.bar`, kindRegex, ""},
		{`^foo\d`, kindRegex, ""},
		{`a\$`, kindRegex, ""},
		{`a$b`, kindRegex, ""},
		{`[ab]`, kindRegex, ""},
		{`a\\b`, kindContains, `a\b`},
		{`a\*b\+`, kindContains, "a*b+"},
		{`a^b`, kindRegex, ""},
	} {
		k, lit := classify(c.expr)
		if k != c.kind || string(lit) != c.lit {
			t.Errorf("classify(%q) = %v %q, want %v %q", c.expr, k, lit, c.kind, c.lit)
		}
	}
}

func TestRegexLiterals(t *testing.T) {
	for _, c := range []struct{ src, pre, suf string }{
		{`^abc\.(x|y)`, "abc.", ""},
		{`^a(bc|bd)e`, "ab", ""},
		{`(x|y)\.count$`, "", ".count"},
		{`^bench\.(450|4500)[0-9]*5$`, "bench.450", "5"},
		{`^(ab)(cd)x*`, "abcd", ""},
		{`abc`, "", ""},
		{`^[ab]c`, "", ""},
	} {
		pre, suf := regexLiterals(c.src)
		if string(pre) != c.pre || string(suf) != c.suf {
			t.Errorf("regexLiterals(%q) = %q %q, want %q %q", c.src, pre, suf, c.pre, c.suf)
		}
	}
}

func TestTranslateGNU(t *testing.T) {
	for _, c := range []struct{ in, out, err string }{
		{`a\w+`, `a[[:alnum:]_]+`, ""},
		{`\S\s\W`, `[^[:space:]][[:space:]][^[:alnum:]_]`, ""},
		{`[\w]`, `[\w]`, ""}, // inside brackets a backslash is a member
		{`a\ b`, `a b`, ""},
		{`a\.b`, `a\.b`, ""},
		{`\bword`, "", "not supported"},
		{`(a)\1`, "", "back references"},
	} {
		got, err := translateGNU(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("translateGNU(%q): err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.out {
			t.Errorf("translateGNU(%q) = %q, %v; want %q", c.in, got, err, c.out)
		}
	}
}

func TestExpand(t *testing.T) {
	// Outputs carbon-c-relay 3.7 (and 3.9 for \g) gives for
	// ^([^.]+)\.([^.]+)\.(.*)$ on "Srv.WEB01.cpu.Idle".
	name := []byte("Srv.WEB01.cpu.Idle")
	p, err := compilePattern(`^([^.]+)\.([^.]+)\.(.*)$`)
	if err != nil {
		t.Fatal(err)
	}
	var loc [20]int
	n := p.match(name, loc[:])
	for _, c := range []struct{ repl, want string }{
		{`\1`, "Srv"},
		{`x.\2.\3`, "x.WEB01.cpu.Idle"},
		{`\_2`, "web01"},
		{`\^3`, "CPU.IDLE"},
		{`\.3`, "cpu_Idle"},
		{`\_.3`, "cpu_idle"},
		{`\^.3`, "CPU_IDLE"},
		{`\1\2`, "SrvWEB01"},
		{`\_1\2`, "srvweb01"}, // the case flag carries over, as in c-relay
		{`\g{1}00`, "Srv00"},
		{`\g{_2}`, "web01"},
		{`\9`, ""},
		{`a\\b`, "ab"},
		{`\x`, "x"},
	} {
		if got := string(expand(nil, name, c.repl, loc[:], n)); got != c.want {
			t.Errorf("expand(%q) = %q, want %q", c.repl, got, c.want)
		}
		if got := string(expandT(nil, name, compileTmpl(c.repl), loc[:], n)); got != c.want {
			t.Errorf("expandT(%q) = %q, want %q", c.repl, got, c.want)
		}
	}
}

func parse(t testing.TB, line string) metric.Metric {
	var m metric.Metric
	if err := graphite.Parse([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func str(s string) *string { return &s }

func TestChainSemantics(t *testing.T) {
	specs := []Spec{
		{Rewrite: `^old\.(.*)$`, Into: str(`new.\1`)},
		{Match: Exprs{`^new\.`, `\.x$`}, SendTo: []string{"a"}}, // two routes: a metric matching both goes twice
		{Match: Exprs{`^v\.`}, Validate: `^[0-9]+ `, SendTo: []string{"b"}, Stop: true},
		{Match: Exprs{`^bh\.`}, SendTo: []string{Blackhole}},
		{Match: Exprs{`^g\.`}, Validate: `^1 `}, // a bare validate: stops (drops) on failure only
		{Match: Exprs{`^g\.`}, SendTo: []string{"b"}},
	}
	ch, err := Compile(specs, func(id string) bool { return id == "a" || id == "b" })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		line    string
		sends   []string
		dropped string
	}{
		{"old.x 1 1", []string{"a new.x", "a new.x"}, ""},
		{"new.y 1 1", []string{"a new.y"}, ""},
		{"v.ok 12 1", []string{"b v.ok"}, ""},
		{"v.bad -1 1", nil, "validate"}, // stop: the chain ends there
		{"bh.x 1 1", []string{"a bh.x"}, ""},
		{"bh.y 1 1", nil, "blackhole"},
		{"g.a 1 1", []string{"b g.a"}, ""},
		{"g.a 2 1", nil, "validate"},
		{"other 1 1", nil, "unmatched"},
	} {
		tr := ch.Explain(parse(t, c.line))
		var got []string
		for _, s := range tr.Sends {
			got = append(got, s.Output+" "+s.Name)
		}
		if !slices.Equal(got, c.sends) || tr.Dropped != c.dropped {
			t.Errorf("%q: sends %q dropped %q, want %q %q\n%s", c.line, got, tr.Dropped, c.sends, c.dropped, tr)
		}
	}
	// Route: the same through the batch path, with the counters.
	b := metric.Batch{parse(t, "old.x 1 1"), parse(t, "v.bad -1 1"), parse(t, "bh.y 1 1"), parse(t, "other 1 1"), parse(t, "g.a 1 1")}
	subs := ch.Route(b)
	if len(subs) != 2 || len(subs[0]) != 2 || len(subs[1]) != 1 {
		t.Fatalf("subs %v", subs)
	}
	if got := string(subs[0][0].Line()); got != "new.x 1 1" {
		t.Errorf("renamed line %q", got)
	}
	if ch.Unmatched.Load() != 1 || ch.Blackholed.Load() != 1 || ch.Invalid.Load() != 1 {
		t.Errorf("unmatched %d blackholed %d invalid %d", ch.Unmatched.Load(), ch.Blackholed.Load(), ch.Invalid.Load())
	}
	if got := ch.Matched[1].Load(); got != 2 {
		t.Errorf("rule 2 matched %d times, want 2 (two expressions)", got)
	}
	// b itself is untouched
	if string(b[0].Line()) != "old.x 1 1" {
		t.Errorf("input batch changed: %q", b[0].Line())
	}
}

func TestRouteSharesUnchangedBatch(t *testing.T) {
	ch, err := Compile([]Spec{{Match: Exprs{"*"}, SendTo: []string{"a"}, Stop: true}}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	b := metric.Batch{parse(t, "a 1 1"), parse(t, "b 1 1")}
	subs := ch.Route(b)
	if len(subs) != 1 || &subs[0][0] != &b[0] || len(subs[0]) != 2 {
		t.Fatalf("want b itself as the only sub-batch, got %v", subs)
	}
}

func TestCompileErrors(t *testing.T) {
	specs := []Spec{
		{Match: Exprs{`(`}, SendTo: []string{"a"}},
		{Match: Exprs{`a`}, SendTo: []string{"nope"}},
		{Match: Exprs{`a`}},
		{Rewrite: `a`},
		{Match: Exprs{`a`}, Rewrite: `b`, Into: str("c")},
		{Match: Exprs{`a`}, SendTo: []string{Blackhole, "a"}},
		{Match: Exprs{`a`}, Validate: `x`, Else: "shout", SendTo: []string{"a"}},
		{ID: "x", Match: Exprs{`a`}, SendTo: []string{"a"}},
		{ID: "x", Match: Exprs{`a`}, SendTo: []string{"a"}},
		{},
	}
	_, err := Compile(specs, func(id string) bool { return id == "a" })
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"rule 1:", `missing closing )`, `rule 2: send_to: no output with id "nope"`,
		"rule 3: match needs send_to", "rule 4: rewrite needs into", "rule 5: has both match and rewrite",
		`rule 6: send_to: "blackhole" discards`, `rule 7: else = "shout"`, `rule "x": id "x" is also rule 8's`, "rule 10: needs match or rewrite"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestUnreachable(t *testing.T) {
	ch, err := Compile([]Spec{
		{Match: Exprs{"a"}, SendTo: []string{"a"}},
		{Match: Exprs{"*"}, SendTo: []string{"a"}, Stop: true},
		{Match: Exprs{"b", "c"}, SendTo: []string{"a"}},
	}, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	w := ch.Unreachable()
	if len(w) != 1 || !strings.Contains(w[0], "rule 3 can never fire: rule 2 stops every metric") {
		t.Errorf("warnings %q", w)
	}
}
