package selector

import (
	"bytes"
	"strings"
	"testing"
)

// splitList turns one fuzz string into a pattern list: one pattern a line,
// and no list at all for the empty string.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// tooWild reports whether a pattern of the list has more than six wildcards.
func tooWild(list string) bool {
	for _, p := range strings.Split(list, "\n") {
		if strings.Count(p, "*")+strings.Count(p, "?") > 6 {
			return true
		}
	}
	return false
}

// FuzzSelector: Compile and Pass never panic, Pass leaves the name as it was,
// and both agree with the model of Telegraf's rules.
//
// Inputs are kept small: the glob engine backtracks, so a pattern such as
// "*?*?*?*?" with a separator takes time polynomial in the name's length,
// with a degree that grows with its wildcards, and the fuzzer would report
// that as a hang rather than find wrong answers.
func FuzzSelector(f *testing.F) {
	for _, c := range semanticsCases {
		names := append(append([]string{}, c.passes...), c.drops...)
		names = append(names, "")
		f.Add(strings.Join(c.pass, "\n"), strings.Join(c.drop, "\n"), c.separators, c.separators, []byte(names[0]))
	}
	for _, c := range engineCases {
		f.Add(c.pattern, "", c.separators, "", []byte(c.name))
	}
	for _, c := range engineErrors {
		f.Add(c.pattern+"\n*", c.pattern, c.separators, "", []byte(c.name))
	}
	f.Add(strings.Join(globs10, "\n"), "cpu\nmem", ".", ",", name60("web-01.app", "errors"))
	f.Fuzz(func(t *testing.T, pass, drop, passSeps, dropSeps string, name []byte) {
		if len(name) > 64 || tooWild(pass) || tooWild(drop) {
			return
		}
		orig := bytes.Clone(name)
		diff, s, err := checkAgainstModel(splitList(pass), passSeps, splitList(drop), dropSeps, []string{string(name)})
		if diff != "" {
			t.Fatalf("namepass %q (separators %q), namedrop %q (separators %q): %s", pass, passSeps, drop, dropSeps, diff)
		}
		if err != nil {
			return
		}
		s.Pass(name)
		if !bytes.Equal(name, orig) {
			t.Fatalf("Pass changed the name from %q to %q", orig, name)
		}
	})
}
