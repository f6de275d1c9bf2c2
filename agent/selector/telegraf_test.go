package selector

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/glob"
)

// telegrafModel is Telegraf's namepass/namedrop decision, written from a
// reading of influxdata/telegraf (snapshot b272631):
//
//   - filter/filter.go, Compile: an empty list is no filter; a list is
//     matched as plain names unless separators are given or one of its
//     patterns contains '*', '?' or '['; otherwise every pattern goes through
//     glob.Compile with the separators, and the first error is returned.
//   - filter/implementations.go: a list matches when any member matches.
//   - models/filter.go, Compile and shouldNamePass: namedrop and namepass each
//     take their own separators (namedrop_separator, namepass_separator,
//     empty by default); a name passes when the namepass filter (if any)
//     matches it and the namedrop filter (if any) does not.
//
// It is deliberately naive (a linear scan, one glob per pattern, no fast
// paths) so that it states the rules, not the implementation under test. It
// uses the same glob engine as the package: Telegraf's own engine, gobwas/glob
// v0.2.3, answers differently in the cases listed in engineCases.
type telegrafModel struct {
	pass, drop *modelList
}

type modelList struct {
	globbed bool
	names   []string
	globs   []*glob.Pattern
}

func newModelList(patterns []string, separators string) (*modelList, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	m := &modelList{globbed: len([]rune(separators)) > 0}
	for _, p := range patterns {
		if strings.Contains(p, "*") || strings.Contains(p, "?") || strings.Contains(p, "[") {
			m.globbed = true
		}
	}
	if !m.globbed {
		m.names = patterns
		return m, nil
	}
	for _, p := range patterns {
		g, err := glob.Compile(p, []rune(separators)...)
		if err != nil {
			return nil, err
		}
		m.globs = append(m.globs, g)
	}
	return m, nil
}

func (m *modelList) matches(name string) bool {
	for _, n := range m.names {
		if n == name {
			return true
		}
	}
	for _, g := range m.globs {
		if g.Match(name) {
			return true
		}
	}
	return false
}

func newTelegrafModel(pass []string, passSeps string, drop []string, dropSeps string) (*telegrafModel, error) {
	// models/filter.go compiles namedrop before namepass.
	d, err := newModelList(drop, dropSeps)
	if err != nil {
		return nil, err
	}
	p, err := newModelList(pass, passSeps)
	if err != nil {
		return nil, err
	}
	return &telegrafModel{pass: p, drop: d}, nil
}

func (t *telegrafModel) passes(name string) bool {
	if t.pass != nil && !t.pass.matches(name) {
		return false
	}
	if t.drop != nil && t.drop.matches(name) {
		return false
	}
	return true
}

// checkAgainstModel compiles both and compares the outcome for every name. It
// returns a description of the first difference, or "", and the Selector.
func checkAgainstModel(pass []string, passSeps string, drop []string, dropSeps string, names []string) (string, *Selector, error) {
	s, err := CompileEach(pass, passSeps, drop, dropSeps)
	m, merr := newTelegrafModel(pass, passSeps, drop, dropSeps)
	if (err != nil) != (merr != nil) {
		return fmt.Sprintf("compile error %v, telegraf %v", err, merr), s, err
	}
	if err != nil {
		return "", s, err
	}
	if (len(pass) == 0 && len(drop) == 0) != (s == nil) {
		return fmt.Sprintf("Compile gave %v for %d namepass and %d namedrop patterns", s, len(pass), len(drop)), s, err
	}
	for _, n := range names {
		if got, want := s.Pass([]byte(n)), m.passes(n); got != want {
			return fmt.Sprintf("name %q: Pass %v, telegraf %v", n, got, want), s, err
		}
	}
	return "", s, err
}

// TestDifferentialTelegraf compares the Selector with the model on generated
// lists, separators and names built from glob syntax, plain names and the
// characters that separators use.
func TestDifferentialTelegraf(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2))
	nameParts := []string{"a", "b", "c", ".", ",", "-", "ж", "]", "}", "*", "cpu", "a.b"}
	patternParts := append(append([]string{}, nameParts...),
		"*", "*", "**", "?", "[a-c]", "[!a]", "{a,b}", "{a,*.b}", "{,a}", `\*`, `\.`, // well formed
		"[", "{", `\`, "[]") // malformed in glob mode, plain text otherwise
	separators := []string{"", ".", ".,", "b", "ж"}

	randString := func(parts []string, max int) string {
		var sb strings.Builder
		for n := rng.IntN(max + 1); n > 0; n-- {
			sb.WriteString(parts[rng.IntN(len(parts))])
		}
		return sb.String()
	}
	randList := func() []string {
		var l []string
		for n := rng.IntN(4); n > 0; n-- {
			if rng.IntN(3) == 0 {
				l = append(l, randString(nameParts, 4)) // a plain name
			} else {
				l = append(l, randString(patternParts, 4))
			}
		}
		return l
	}

	var compileErrs, plainLists, globLists, mixedLists, passed, dropped int
	names := make([]string, 24)
	for range 20000 {
		pass, drop := randList(), randList()
		passSeps := separators[rng.IntN(len(separators))]
		dropSeps := separators[rng.IntN(len(separators))]
		if rng.IntN(2) == 0 {
			dropSeps = passSeps
		}
		all := append(append([]string{}, pass...), drop...)
		for i := range names {
			if i < 6 && len(all) > 0 {
				// Names taken from the lists themselves reach the exact paths.
				names[i] = all[rng.IntN(len(all))]
				continue
			}
			names[i] = randString(nameParts, 6)
		}
		diff, s, err := checkAgainstModel(pass, passSeps, drop, dropSeps, names)
		if diff != "" {
			t.Fatalf("namepass %q (separators %q), namedrop %q (separators %q): %s", pass, passSeps, drop, dropSeps, diff)
		}
		if err != nil {
			compileErrs++
			continue
		}
		if s == nil {
			continue
		}
		for _, l := range []list{s.pass, s.drop} {
			switch {
			case !l.on:
			case len(l.globs) == 0:
				plainLists++
			case len(l.exact) > 0:
				mixedLists++
			default:
				globLists++
			}
		}
		for _, n := range names {
			if s.Pass([]byte(n)) {
				passed++
			} else {
				dropped++
			}
		}
	}
	// The generator must reach every branch, or the comparison proves little.
	t.Logf("compile errors %d, plain lists %d, glob lists %d, mixed lists %d, passed %d, dropped %d",
		compileErrs, plainLists, globLists, mixedLists, passed, dropped)
	for what, n := range map[string]int{"compile errors": compileErrs, "plain lists": plainLists,
		"glob lists": globLists, "mixed lists": mixedLists, "passed names": passed, "dropped names": dropped} {
		if n < 500 {
			t.Errorf("only %d %s in the generated cases", n, what)
		}
	}
}

// engineCases are the patterns on which Telegraf's glob engine, gobwas/glob
// v0.2.3, is wrong or crashes, while v1.1.0, which this package uses, agrees
// with the glob syntax and with an equivalent regular expression. The package
// answers want; telegraf is what v0.2.3 answers for the pattern alone with
// those separators.
var engineCases = []struct {
	pattern, separators, name string
	want                      bool
	telegraf                  string
}{
	{"?", "", "", false, "true"},
	{"[!a]", ".", "", false, "true"},
	{"a**a", ".", "a", false, "true"},
	{"{a,*b}??", ".", "bbcd", true, "false"},
	{"{a,*b}{ab,c}", "", "bbab", true, "false"},
	{"?ж", "", "aж", true, "false"},
	{"ж{a,b}", ".", "жa", true, "false"},
	{"*ж?", "", "aжb", true, "false"},
}

// engineErrors are malformed patterns that v0.2.3 compiles in glob mode,
// after which Match answers telegraf ("panic" when it panics); the package
// rejects them. Beside "*" they are in glob mode; alone they would be plain
// names.
var engineErrors = []struct {
	pattern, separators, name, telegraf string
}{
	{"{a", "", "a", "true"},
	{"x{", "", "x", "panic"},
	{"a{{", ".", "a", "panic"},
	{`?{\`, "", "b", "panic"},
	{`a\`, "", "a", "true"},
}

func TestEngineDifferences(t *testing.T) {
	for _, c := range engineCases {
		t.Run(c.pattern+"/"+c.name, func(t *testing.T) {
			s, err := Compile([]string{c.pattern}, nil, c.separators)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Pass([]byte(c.name)); got != c.want {
				t.Errorf("Pass(%q) = %v, want %v (Telegraf %s)", c.name, got, c.want, c.telegraf)
			}
		})
	}
	for _, c := range engineErrors {
		t.Run(c.pattern, func(t *testing.T) {
			s, err := Compile([]string{c.pattern, "*"}, nil, c.separators)
			if err == nil || s != nil {
				t.Fatalf("Compile(%q) = %v, %v; want an error (Telegraf passes %q: %s)", c.pattern, s, err, c.name, c.telegraf)
			}
			if want := fmt.Sprintf("namepass pattern %q: glob: syntax error at ", c.pattern); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start with %q", err, want)
			}
		})
	}
}
