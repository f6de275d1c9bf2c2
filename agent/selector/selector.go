// Package selector decides whether a metric passes an instance's namepass and
// namedrop lists and its tagpass and tagdrop tables, with the matching rules
// of Telegraf's metric selectors:
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
//   - tagpass and tagdrop are tables of tag -> list of patterns, each list
//     compiled as a namepass list without separators (Telegraf's
//     models/filter.go and config.go getFieldTagFilter). A metric passes
//     tagpass when one of its tags has a key of the table and a value one
//     of that key's patterns matches (the keys are ORed); it is dropped by
//     tagdrop when one matches in the same way; tagdrop is tested after
//     tagpass and both after the name lists. A table without keys is not
//     configured; a key with an empty list matches nothing (so such a
//     tagpass drops every metric, as Telegraf's does).
//   - A metric's tags are those of its format: Graphite ";k=v" tags of the
//     path, StatsD Influx-style ",k=v" tags of the path and DogStatsD
//     "|#k:v" tags (also those set on a Graphite metric), each split at its
//     first '=' (path) or ':' (DogStatsD). A bare DogStatsD tag "k" (or
//     "k:") has the empty value, which "*" and "" match. A key written
//     twice is matched on each of its values. The name is not a tag (a
//     Graphite "name=" tag is read as written).
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
// and PassMetric allocate nothing.
package selector

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/gobwas/glob"
	"github.com/gobwas/glob/syntax"

	"github.com/metricsrouter/router/plugins/metric"
)

// Selector holds the compiled namepass and namedrop lists and tagpass and
// tagdrop tables of one instance. The nil *Selector passes every metric.
type Selector struct {
	pass    list
	drop    list
	tagPass Tags
	tagDrop Tags
}

// Spec is an instance's selector keys, as written.
type Spec struct {
	NamePass, NameDrop                   []string
	NamePassSeparator, NameDropSeparator string
	TagPass, TagDrop                     map[string][]string
}

// New compiles spec. It returns nil (match everything) when spec has no
// pattern and no tag table. An error names the key and the pattern that
// does not compile.
func New(spec Spec) (*Selector, error) {
	s, err := CompileEach(spec.NamePass, spec.NamePassSeparator, spec.NameDrop, spec.NameDropSeparator)
	if err != nil || len(spec.TagPass) == 0 && len(spec.TagDrop) == 0 {
		return s, err
	}
	if s == nil {
		s = &Selector{}
	}
	// tagdrop first, as Telegraf compiles them
	if s.tagDrop, err = CompileTags("tagdrop", spec.TagDrop); err != nil {
		return nil, err
	}
	if s.tagPass, err = CompileTags("tagpass", spec.TagPass); err != nil {
		return nil, err
	}
	return s, nil
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

// Pass reports whether a metric named name passes the name lists (the tag
// tables are not looked at: PassMetric does). name is only read, and only
// during the call.
func (s *Selector) Pass(name []byte) bool {
	if s == nil {
		return true
	}
	if s.pass.on && !s.pass.match(name) {
		return false
	}
	return !s.drop.on || !s.drop.match(name)
}

// PassMetric reports whether m passes the name lists (on its name, tags
// excluded) and the tag tables. m is only read.
func (s *Selector) PassMetric(m *metric.Metric) bool {
	if s == nil {
		return true
	}
	if (s.pass.on || s.drop.on) && !s.Pass(m.Name()) {
		return false
	}
	if s.tagPass.on && !s.tagPass.Any(m) {
		return false
	}
	return !s.tagDrop.on || !s.tagDrop.Any(m)
}

// Empty reports whether s passes every metric without looking at it: it is
// nil or has no pattern in either list and no tag table.
func (s *Selector) Empty() bool {
	return s == nil || (!s.pass.on && !s.drop.on && !s.tagPass.on && !s.tagDrop.on)
}

// Tags is a compiled table of tag -> patterns (a tagpass, a tagdrop, a
// rule's match_tag). The zero Tags is not configured.
type Tags struct {
	on   bool
	keys []tagList // sorted by key
}

type tagList struct {
	key []byte
	l   list
}

// CompileTags compiles table, a tag -> patterns table; what names the key
// in errors ("tagpass"). Each list is compiled as a namepass list without
// separators.
func CompileTags(what string, table map[string][]string) (Tags, error) {
	var t Tags
	if len(table) == 0 {
		return t, nil
	}
	t.on = true
	for k, patterns := range table {
		l, err := compileList(what+"."+k, patterns, "")
		if err != nil {
			return Tags{}, err
		}
		t.keys = append(t.keys, tagList{key: []byte(k), l: l})
	}
	slices.SortFunc(t.keys, func(a, b tagList) int { return bytes.Compare(a.key, b.key) })
	return t, nil
}

// On reports whether the table has keys.
func (t *Tags) On() bool { return t.on }

// Any reports whether some tag of m has a key of the table and a value one
// of the key's patterns matches.
func (t *Tags) Any(m *metric.Metric) bool {
	it := newTagIter(m)
	for {
		k, v, ok := it.next()
		if !ok {
			return false
		}
		for i := range t.keys {
			if tl := &t.keys[i]; bytes.Equal(tl.key, k) && tl.l.on && tl.l.match(v) {
				return true
			}
		}
	}
}

// All reports whether every key of the table has a tag on m whose value one
// of the key's patterns matches (true for a table without keys).
func (t *Tags) All(m *metric.Metric) bool {
	for i := range t.keys {
		tl := &t.keys[i]
		it := newTagIter(m)
		found := false
		for !found {
			k, v, ok := it.next()
			if !ok {
				break
			}
			found = bytes.Equal(tl.key, k) && tl.l.on && tl.l.match(v)
		}
		if !found {
			return false
		}
	}
	return true
}

// tagIter walks a metric's tags: those of its path (Graphite ";k=v",
// StatsD ",k=v"), then its DogStatsD ones ("k:v,bare").
type tagIter struct {
	path   []byte // what is left of the path's tags, from a separator on
	pathSp byte   // the path's tag separator
	dog    []byte // what is left of the DogStatsD tags
}

func newTagIter(m *metric.Metric) tagIter {
	it := tagIter{path: m.PathTags(), dog: m.Tags(), pathSp: ';'}
	if m.Format() != metric.Graphite {
		it.pathSp = ','
	}
	return it
}

// next returns the next tag's key and value (nil for a bare tag), or ok
// false after the last.
func (it *tagIter) next() (k, v []byte, ok bool) {
	for len(it.path) > 0 {
		var seg []byte
		seg, it.path = cutAt(it.path[1:], it.pathSp)
		if len(seg) == 0 {
			continue
		}
		k, v = splitAt(seg, '=')
		return k, v, true
	}
	for len(it.dog) > 0 {
		var seg []byte
		seg, it.dog = cutAt(it.dog, ',')
		if len(it.dog) > 0 {
			it.dog = it.dog[1:]
		}
		if len(seg) == 0 {
			continue
		}
		k, v = splitAt(seg, ':')
		return k, v, true
	}
	return nil, nil, false
}

// cutAt cuts b at its first sep: before it, and from it on (nil without one).
func cutAt(b []byte, sep byte) (before, rest []byte) {
	if i := bytes.IndexByte(b, sep); i >= 0 {
		return b[:i], b[i:]
	}
	return b, nil
}

// splitAt splits a tag at its first sep into key and value (nil without).
func splitAt(seg []byte, sep byte) (k, v []byte) {
	if i := bytes.IndexByte(seg, sep); i >= 0 {
		return seg[:i], seg[i+1:]
	}
	return seg, nil
}
