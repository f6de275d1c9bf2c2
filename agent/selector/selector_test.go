package selector

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// semanticsCases state Telegraf's namepass/namedrop rules. The cases marked
// with a Telegraf test come from influxdata/telegraf filter/filter_test.go and
// models/filter_test.go, the rules from filter/filter.go and models/filter.go.
var semanticsCases = []struct {
	name       string
	pass, drop []string
	separators string
	passes     []string
	drops      []string
}{
	{name: "exact name", pass: []string{"cpu"},
		passes: []string{"cpu"}, drops: []string{"cpu0", "mem", "", "CPU", "cp"}},
	{name: "prefix glob", pass: []string{"cpu*"},
		passes: []string{"cpu", "cpu0", "cpu.load.1"}, drops: []string{"mem", "acpu", ""}},
	{name: "exact names", pass: []string{"cpu", "mem"},
		passes: []string{"cpu", "mem"}, drops: []string{"cpu0", "disk"}},
	{name: "names and a glob", pass: []string{"cpu", "mem", "net*"},
		passes: []string{"cpu", "mem", "net", "network"}, drops: []string{"cpu0", "memory"}},
	{name: "star matches all", pass: []string{"*"},
		passes: []string{"", "cpu", "a.b.c"}},
	{name: "question mark is one character", pass: []string{"?pu"},
		passes: []string{"cpu", "gpu", "жpu"}, drops: []string{"pu", "ccpu", ""}},
	{name: "range", pass: []string{"[a-c]pu"},
		passes: []string{"apu", "bpu", "cpu"}, drops: []string{"dpu", "pu", "Apu"}},
	{name: "negated range", pass: []string{"[!a-c]pu"},
		passes: []string{"dpu", "gpu"}, drops: []string{"apu", "cpu", "pu"}},
	{name: "character list", pass: []string{"[cm]*"},
		passes: []string{"cpu", "mem"}, drops: []string{"disk"}},
	{name: "alternatives with a star", pass: []string{"{cpu,mem}*"},
		passes: []string{"cpu", "cpu.load", "mem", "memory"}, drops: []string{"disk", "xcpu"}},
	{name: "alternatives holding globs", pass: []string{"{cpu.*,*.idle}"},
		passes: []string{"cpu.x", "mem.idle"}, drops: []string{"mem.busy"}},
	// filter/filter.go looks only for '*', '?' and '[' to choose globbing, so
	// braces alone are a plain name.
	{name: "braces alone are a plain name", pass: []string{"{cpu,mem}"},
		passes: []string{"{cpu,mem}"}, drops: []string{"cpu", "mem"}},
	{name: "braces beside a glob are alternatives", pass: []string{"{cpu,mem}", "disk*"},
		passes: []string{"cpu", "mem", "disk0"}, drops: []string{"{cpu,mem}"}},
	{name: "separators turn on globbing", pass: []string{"{cpu,mem}"}, separators: ".",
		passes: []string{"cpu", "mem"}, drops: []string{"{cpu,mem}"}},
	{name: "backslash alone is a plain character", pass: []string{`a\b`},
		passes: []string{`a\b`}, drops: []string{"ab"}},
	{name: "backslash beside a glob escapes", pass: []string{`a\*`},
		passes: []string{"a*"}, drops: []string{"ab", `a\b`}},
	{name: "escaped brace", pass: []string{`\{a\}*`},
		passes: []string{"{a}", "{a}b"}, drops: []string{"a"}},
	{name: "empty pattern is the empty name", pass: []string{""},
		passes: []string{""}, drops: []string{"a"}},
	{name: "empty pattern in glob mode", pass: []string{"", "x*"},
		passes: []string{"", "x1"}, drops: []string{"a"}},
	// Telegraf TestCompile, with separators.
	{name: "star stops at separator", pass: []string{"cpu.*.count"}, separators: ".",
		passes: []string{"cpu.measurement.count", "cpu..count"},
		drops:  []string{"cpu.count", "cpu.field.measurement.count"}},
	{name: "star stops at every separator", pass: []string{"cpu.*.count"}, separators: ".,",
		passes: []string{"cpu.measurement.count"}, drops: []string{"cpu.,.count", "cpu.field,measurement.count"}},
	{name: "star crosses dots without separators", pass: []string{"cpu.*.count"},
		passes: []string{"cpu.field.measurement.count", "cpu.,.count"}, drops: []string{"cpu.count"}},
	{name: "double star crosses separators", pass: []string{"cpu.**.count"}, separators: ".",
		passes: []string{"cpu.a.b.count", "cpu.a.count"}, drops: []string{"cpu.count", "mem.a.count"}},
	{name: "question mark stops at separator", pass: []string{"a?c"}, separators: ".",
		passes: []string{"abc"}, drops: []string{"a.c"}},
	{name: "plain name with separators", pass: []string{"cpu.load"}, separators: ".",
		passes: []string{"cpu.load"}, drops: []string{"cpu.loadx", "cpu"}},
	{name: "multibyte separator", pass: []string{"a*b"}, separators: "ж",
		passes: []string{"axb", "a.b"}, drops: []string{"aжb"}},
	// Telegraf TestMultiple (issue 9265).
	{name: "telegraf issue 9265", pass: []string{"*process32:*.exe:*.*", "otherWantedMetric*"},
		passes: []string{"cpu.process32:testcase.exe:caserunner.2222", "process32:testcase.exe:caserunner.2222",
			"otherWantedMetric", "otherWantedMetric.ABC"},
		drops: []string{"unwantedMetric"}},
	// Telegraf TestFilterNamePass and TestFilterNameDrop.
	{name: "telegraf namepass", pass: []string{"foo*", "cpu_usage_idle"},
		passes: []string{"foo", "foo_bar", "foo.bar", "foo-bar", "cpu_usage_idle"},
		drops:  []string{"bar", "barfoo", "bar_foo", "cpu_usage_busy"}},
	{name: "telegraf namedrop", drop: []string{"foo*", "cpu_usage_idle"},
		passes: []string{"bar", "barfoo", "bar_foo", "cpu_usage_busy"},
		drops:  []string{"foo", "foo_bar", "foo.bar", "foo-bar", "cpu_usage_idle"}},
	// Telegraf TestFilterNamePass_WithSeparator and TestFilterNameDrop_WithSeparator.
	{name: "telegraf namepass with separators", pass: []string{"foo.*.bar", "foo.*.abc.*.bar"}, separators: ".,",
		passes: []string{"foo..bar", "foo.abc.bar", "foo..abc..bar", "foo.xyz.abc.xyz-xyz.bar"},
		drops: []string{"foo.bar", "foo.abc,.bar", "foo..abc.bar", "foo.abc.abc.bar", "foo.xyz.abc.xyz.xyz.bar",
			"foo.xyz.abc.xyz,xyz.bar"}},
	{name: "telegraf namedrop with separators", drop: []string{"foo.*.bar", "foo.*.abc.*.bar"}, separators: ".,",
		passes: []string{"foo.bar", "foo.abc,.bar", "foo..abc.bar", "foo.abc.abc.bar", "foo.xyz.abc.xyz.xyz.bar",
			"foo.xyz.abc.xyz,xyz.bar"},
		drops: []string{"foo..bar", "foo.abc.bar", "foo..abc..bar", "foo.xyz.abc.xyz-xyz.bar"}},
	// Telegraf TestFilterNamePassAndDrop (issue 2860): a name in both lists is dropped.
	{name: "telegraf both lists", pass: []string{"name1", "name2"}, drop: []string{"name1", "name3"},
		passes: []string{"name2"}, drops: []string{"name1", "name3", "name4"}},
	{name: "both lists with globs", pass: []string{"cpu.*"}, drop: []string{"cpu.idle*"}, separators: ".",
		passes: []string{"cpu.busy", "cpu."}, drops: []string{"cpu.idle", "cpu.idle_x", "cpu.busy.x", "cpu", "mem"}},
	{name: "drop wins over pass", pass: []string{"*"}, drop: []string{"*"},
		drops: []string{"", "cpu"}},
	{name: "only namedrop, plain", drop: []string{"cpu"},
		passes: []string{"mem", "", "cpu0"}, drops: []string{"cpu"}},
	{name: "empty namepass with namedrop", pass: []string{}, drop: []string{"m*"},
		passes: []string{"cpu"}, drops: []string{"mem"}},
	{name: "invalid UTF-8 names", pass: []string{"a?c", "b*"},
		passes: []string{"abc", "a\xffc", "b\xff"}, drops: []string{"a\xfe\xffc", "\xff"}},
	{name: "duplicate patterns", pass: []string{"cpu", "cpu", "m*", "m*"},
		passes: []string{"cpu", "mem"}, drops: []string{"disk"}},
}

func TestSemantics(t *testing.T) {
	for _, c := range semanticsCases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile(c.pass, c.drop, c.separators)
			if err != nil {
				t.Fatal(err)
			}
			if s == nil || s.Empty() {
				t.Fatalf("Compile gave an empty selector %v", s)
			}
			for _, n := range c.passes {
				if !s.Pass([]byte(n)) {
					t.Errorf("%q is dropped, want it passed", n)
				}
			}
			for _, n := range c.drops {
				if s.Pass([]byte(n)) {
					t.Errorf("%q passes, want it dropped", n)
				}
			}
			// The model must agree, or the case misreads Telegraf.
			if diff, _, _ := checkAgainstModel(c.pass, c.separators, c.drop, c.separators,
				append(append([]string{}, c.passes...), c.drops...)); diff != "" {
				t.Errorf("model: %s", diff)
			}
		})
	}
}

func TestSeparatorsPerList(t *testing.T) {
	// namepass_separator applies to namepass only, and namedrop_separator to
	// namedrop only.
	s, err := CompileEach([]string{"a.*"}, ".", []string{"a.*.c"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a.b": true, "a.b.d": false, "a.b.c": false, "a.c": true} {
		if got := s.Pass([]byte(name)); got != want {
			t.Errorf("Pass(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestEmptyLists(t *testing.T) {
	for _, c := range []struct {
		name       string
		pass, drop []string
	}{{"nil", nil, nil}, {"empty", []string{}, []string{}}, {"mixed", nil, []string{}}} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile(c.pass, c.drop, ".")
			if err != nil || s != nil {
				t.Fatalf("Compile = %v, %v; want nil, nil", s, err)
			}
			if !s.Empty() {
				t.Error("nil selector is not Empty")
			}
			for _, n := range []string{"", "cpu", "\xff"} {
				if !s.Pass([]byte(n)) {
					t.Errorf("nil selector drops %q", n)
				}
			}
			if !s.Pass(nil) {
				t.Error("nil selector drops a nil name")
			}
		})
	}
	var zero Selector
	if !zero.Empty() || !zero.Pass([]byte("cpu")) {
		t.Error("zero Selector is not empty")
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name       string
		pass, drop []string
		separators string
		want       string
	}{
		{"unclosed range", []string{"cpu", "cpu["}, nil, "",
			`namepass pattern "cpu[": glob: syntax error at 4: `},
		{"unclosed brace beside a glob", nil, []string{"*", "{a,b"}, "",
			`namedrop pattern "{a,b": glob: syntax error at 4: unclosed ` + "`{`"},
		{"unclosed brace with separators", []string{"{a,b"}, nil, ".",
			`namepass pattern "{a,b": glob: syntax error at 4: unclosed ` + "`{`"},
		{"empty class", []string{"a[]"}, nil, "",
			`namepass pattern "a[]": glob: syntax error at `},
		{"invalid UTF-8 in a glob list", []string{"a*", "\xff"}, nil, "",
			`namepass pattern "\xff": glob: syntax error at 0: `},
		{"second list", []string{"ok*"}, []string{"bad["}, "",
			`namedrop pattern "bad[": glob: syntax error at `},
		{"both lists, namedrop first", []string{"a["}, []string{"b{*"}, "",
			`namedrop pattern "b{*": glob: syntax error at 3: unclosed ` + "`{`"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile(c.pass, c.drop, c.separators)
			if err == nil {
				t.Fatalf("Compile = %v, nil; want an error", s)
			}
			if s != nil {
				t.Errorf("Compile returned a selector with the error %v", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want it to start with %q", err, c.want)
			}
		})
	}
	// Without '*', '?', '[' or separators nothing is parsed, so nothing fails.
	for _, p := range []string{"{a,b", `a\`, "\xff", "]", "}"} {
		s, err := Compile([]string{p}, []string{p}, "")
		if err != nil {
			t.Errorf("plain name %q: %v", p, err)
			continue
		}
		if s.Pass([]byte(p)) {
			t.Errorf("plain name %q in both lists passes", p)
		}
	}
}

// TestFastPaths checks which patterns take the exact-name path: plain lists,
// and plain patterns of a glob list.
func TestFastPaths(t *testing.T) {
	for _, c := range []struct {
		name         string
		pass         []string
		separators   string
		exact, globs int
	}{
		{"one name", []string{"cpu"}, "", 1, 0},
		{"names", []string{"cpu", "mem", "{a,b}", `a\b`}, "", 4, 0},
		{"names with separators", []string{"cpu.load", "mem"}, ".", 2, 0},
		{"names beside a glob", []string{"cpu", "mem", "net*", "{a,b}", `a\b`, "x]"}, "", 2, 4},
		{"globs", []string{"a*", "?b"}, "", 0, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Compile(c.pass, nil, c.separators)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.pass.exact) != c.exact || len(s.pass.globs) != c.globs {
				t.Errorf("exact %d, globs %d; want %d, %d", len(s.pass.exact), len(s.pass.globs), c.exact, c.globs)
			}
		})
	}
}

func TestPassDoesNotKeepName(t *testing.T) {
	s, err := Compile([]string{"cpu*", "mem"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	buf := []byte("cpu0")
	if !s.Pass(buf) {
		t.Fatal("cpu0 dropped")
	}
	copy(buf, "disk")
	if s.Pass(buf) {
		t.Fatal("disk passes after reusing the buffer")
	}
	copy(buf, "mem")
	if !s.Pass(buf[:3]) {
		t.Fatal("mem dropped")
	}
}

func TestConcurrentPass(t *testing.T) {
	s, err := Compile([]string{"cpu.*", "mem", "{a,b}.*.x"}, []string{"cpu.idle"}, ".")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{"cpu.busy": true, "cpu.idle": false, "mem": true, "a.y.x": true, "a.y.z.x": false}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				for n, want := range cases {
					if s.Pass([]byte(n)) != want {
						errs <- n
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for n := range errs {
		t.Errorf("wrong answer for %q under concurrency", n)
	}
}

func TestPassAllocatesNothing(t *testing.T) {
	if raceEnabled {
		// The race detector makes sync.Pool drop what is put back, and the
		// glob engine pools its backtracking state, so count in a build
		// without it.
		out, err := exec.Command("go", "test", "-count=1", "-run", "^TestPassAllocatesNothing$", "-v", ".").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPassAllocatesNothing") {
			t.Fatalf("go test without -race: %v\n%s", err, out)
		}
		return
	}
	for _, b := range benchCases() {
		t.Run(b.label, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() { b.sel.Pass(b.name60) }); n != 0 {
				t.Errorf("Pass allocates %v times", n)
			}
		})
	}
}
