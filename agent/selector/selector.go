// Package selector decides whether a metric passes an instance's namepass and
// namedrop lists, with the matching rules of Telegraf's metric selectors:
//
//   - A list holds glob patterns (github.com/gobwas/glob syntax: `*`, `**`,
//     `?`, `[a-c]`, `[!a-c]`, `{a,b}`, `\` escapes) or plain names.
//   - A list is matched by exact string comparison, with no glob syntax at
//     all, unless one of its patterns contains `*`, `?` or `[`, or it has
//     separators. So `namepass = ["{cpu,mem}"]` passes only the name
//     "{cpu,mem}", while `namepass = ["{cpu,mem}", "disk*"]` passes "cpu".
//   - Separators (`namepass_separator`, `namedrop_separator`; none by default)
//     are characters that `*` and `?` do not cross; `**` crosses them.
//   - An empty list is not configured. A name passes when namepass is not
//     configured or one of its patterns matches, and namedrop is not
//     configured or none of its patterns matches: a name in both lists is
//     dropped.
//
// The glob engine is gobwas/glob v1, where Telegraf has v0.2.3. They agree on
// well-formed patterns, except where v0.2.3 is wrong (`?` matching the empty
// name, some alternatives holding wildcards, non-ASCII text) or backtracks for
// seconds. A malformed pattern that v0.2.3 half-accepts, such as an unclosed
// `{` or a trailing `\`, is a compile error here.
//
// Matching a glob still backtracks: wildcards next to each other (`*?*?`)
// with separators make its time grow polynomially with the name's length.
//
// A Selector is immutable once compiled and safe for concurrent use. Pass
// allocates nothing.
package selector

import (
	"fmt"
	"strings"

	"github.com/gobwas/glob"
	"github.com/gobwas/glob/syntax"

	"github.com/metricsrouter/router/plugins/metric"
)

// Selector holds the compiled namepass and namedrop lists of one instance.
// The nil *Selector passes every name.
type Selector struct {
	pass list
	drop list
}

// list is one compiled namepass or namedrop list. A pattern that has no glob
// syntax at all matches only itself, in glob mode too, so it goes in exact;
// the others go in globs.
type list struct {
	on    bool // the list has at least one pattern
	exact map[string]struct{}
	globs []*glob.Pattern
}

// Compile compiles the namepass and namedrop lists, both with the same
// separators. It returns nil (match everything) when both lists are empty.
// An error names the list and the pattern that does not compile.
func Compile(namepass, namedrop []string, separators string) (*Selector, error) {
	return CompileEach(namepass, separators, namedrop, separators)
}

// CompileEach is Compile with a separator set per list, as Telegraf's
// namepass_separator and namedrop_separator keys give them.
func CompileEach(namepass []string, passSeparators string, namedrop []string, dropSeparators string) (*Selector, error) {
	if len(namepass) == 0 && len(namedrop) == 0 {
		return nil, nil
	}
	s := &Selector{}
	var err error
	// namedrop first, as Telegraf does, so that both report the same error.
	if s.drop, err = compileList("namedrop", namedrop, dropSeparators); err != nil {
		return nil, err
	}
	if s.pass, err = compileList("namepass", namepass, passSeparators); err != nil {
		return nil, err
	}
	return s, nil
}

func compileList(key string, patterns []string, separators string) (list, error) {
	var l list
	if len(patterns) == 0 {
		return l, nil
	}
	l.on = true
	globbing := separators != ""
	for _, p := range patterns {
		globbing = globbing || strings.ContainsAny(p, "*?[")
	}
	seps := []rune(separators)
	for _, p := range patterns {
		if globbing {
			g, err := glob.Compile(p, seps...)
			if err != nil {
				return list{}, fmt.Errorf("%s pattern %q: %w", key, p, err)
			}
			if hasSyntax(p) {
				l.globs = append(l.globs, g)
				continue
			}
		}
		if l.exact == nil {
			l.exact = make(map[string]struct{}, len(patterns))
		}
		l.exact[p] = struct{}{}
	}
	return l, nil
}

// hasSyntax reports whether p has a byte that the glob syntax gives a meaning.
func hasSyntax(p string) bool {
	for i := 0; i < len(p); i++ {
		if syntax.IsSpecial(p[i]) {
			return true
		}
	}
	return false
}

func (l *list) match(name []byte) bool {
	if _, ok := l.exact[string(name)]; ok {
		return true
	}
	if len(l.globs) == 0 {
		return false
	}
	s := metric.UnsafeString(name)
	for _, g := range l.globs {
		if g.Match(s) {
			return true
		}
	}
	return false
}

// Pass reports whether a metric named name passes the lists. name is only
// read, and only during the call.
func (s *Selector) Pass(name []byte) bool {
	if s == nil {
		return true
	}
	if s.pass.on && !s.pass.match(name) {
		return false
	}
	return !s.drop.on || !s.drop.match(name)
}

// Empty reports whether s passes every name without looking at it: it is nil
// or has no pattern in either list.
func (s *Selector) Empty() bool {
	return s == nil || (!s.pass.on && !s.drop.on)
}
