// Package rules is the routing rule chain: carbon-c-relay's match, rewrite
// and validate statements, in file order, evaluated per metric with
// carbon-c-relay's semantics (router.c in carbon-c-relay 3.7).
//
// A chain is compiled once per configuration and shared by every input
// goroutine; evaluation state lives in a per-call State from a pool.
package rules

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// How an expression is tested, as carbon-c-relay classifies it: an
// expression that needs no regular expression is a plain string test.
type matchKind uint8

const (
	kindAll      matchKind = iota // "*"
	kindContains                  // strstr: "foo", "foo\.bar"
	kindPrefix                    // strncmp: "^foo\."
	kindSuffix                    // tail compare: "\.count$"
	kindExact                     // strcmp: "^foo\.bar$"
	kindRegex                     // POSIX extended regular expression
)

var kindNames = [...]string{"*", "strstr", "strncmp", "tailcmp", "strcmp", "regex"}

func (k matchKind) String() string { return kindNames[k] }

// pattern is one compiled expression.
type pattern struct {
	src  string
	kind matchKind
	lit  []byte         // the literal of a string test
	re   *regexp.Regexp // kindRegex, POSIX leftmost-longest: match positions
	fast *regexp.Regexp // the same expression, leftmost-first: whether it matches
	nsub int            // capture groups of a regex
	// gate is what the candidate index files the expression under: a
	// literal every matching name starts (gatePrefix) or ends (gateSuffix)
	// with. A regex anchored on a literal gets one too.
	gate    gateKind
	gateLit []byte
	// need, when set, is a literal the name must end (needSuffix) or
	// start with, tested before the regex: the other end's literal of an
	// expression anchored at both ends.
	need       []byte
	needSuffix bool
}

type gateKind uint8

const (
	gateNone gateKind = iota
	gatePrefix
	gateSuffix
)

// classify decides, as carbon-c-relay does, whether an expression is a plain
// string test: a leading '^', then only letters, digits, '_', '-' and
// backslash-escaped characters, then an optional final '$'. Anything else
// ('.', '*', '[', '(', '|', '?', '{', an escaped letter, ...) makes it a
// regular expression. lit is the string with the escapes removed.
func classify(expr string) (kind matchKind, lit []byte) {
	kind = kindContains
	e := expr
	if strings.HasPrefix(e, "^") {
		e = e[1:]
		kind = kindPrefix
	}
	escape := false
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case c == '\\':
			if escape {
				lit = append(lit, c)
			}
			escape = !escape
			continue
		case c == '.' || c == '^' || c == '*' || c == '+':
			if !escape {
				return kindRegex, nil
			}
			lit = append(lit, c)
		case c == '$':
			if escape || i != len(e)-1 {
				return kindRegex, nil
			}
			if kind == kindPrefix {
				kind = kindExact
			} else {
				kind = kindSuffix
			}
		case !escape && (c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'):
			lit = append(lit, c)
		default:
			return kindRegex, nil
		}
		escape = false
	}
	if len(lit) >= 8192 { // c-relay's pattern buffer
		return kindRegex, nil
	}
	return kind, lit
}

// compilePattern compiles one expression of a match, rewrite or validate.
func compilePattern(expr string) (*pattern, error) {
	if expr == "" {
		return nil, fmt.Errorf("empty expression")
	}
	p := &pattern{src: expr}
	if expr == "*" {
		p.kind = kindAll
		return p, nil
	}
	p.kind, p.lit = classify(expr)
	switch p.kind {
	case kindPrefix, kindExact:
		p.gate, p.gateLit = gatePrefix, p.lit
		return p, nil
	case kindSuffix:
		p.gate, p.gateLit = gateSuffix, p.lit
		return p, nil
	case kindContains:
		return p, nil
	}
	src, err := translateGNU(expr)
	if err != nil {
		return nil, err
	}
	re, err := regexp.CompilePOSIX(src)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", expr, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	// Whether an expression matches does not depend on leftmost-longest
	// versus leftmost-first, and Go's leftmost-first matchers (one-pass,
	// backtracking) are much faster. Every POSIX expression means the same
	// in Go's default syntax but for ^ and $ at newlines, which names do not
	// contain.
	fast, err := regexp.Compile(src)
	if err != nil {
		fast = re
	}
	p.re, p.fast, p.nsub = re, fast, re.NumSubexp()
	if p.nsub > 9 {
		// c-relay keeps 10 match positions (the whole match and \1..\9).
		return nil, fmt.Errorf("%q: %d capture groups, at most 9", expr, p.nsub)
	}
	pre, suf := regexLiterals(src)
	switch {
	case len(pre) > 0:
		p.gate, p.gateLit = gatePrefix, pre
		p.need, p.needSuffix = suf, true
	case len(suf) > 0:
		p.gate, p.gateLit = gateSuffix, suf
	}
	return p, nil
}

// translateGNU rewrites the GNU extensions glibc's regcomp accepts in an
// extended expression and Go's POSIX syntax does not: \w \W \s \S outside
// bracket expressions. Word boundaries (\b \B \< \>) and back references in
// the expression have no equivalent and are refused.
func translateGNU(expr string) (string, error) {
	if !strings.Contains(expr, `\`) {
		return expr, nil
	}
	var b strings.Builder
	inBracket := false
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if inBracket {
			b.WriteByte(c)
			if c == ']' {
				inBracket = false
			} else if c == '[' && i+1 < len(expr) && (expr[i+1] == ':' || expr[i+1] == '.' || expr[i+1] == '=') {
				// [:class:] inside a bracket expression
				end := strings.Index(expr[i+2:], string(expr[i+1])+"]")
				if end >= 0 {
					b.WriteString(expr[i+1 : i+2+end+2])
					i += 1 + end + 2
				}
			}
			continue
		}
		switch c {
		case '[':
			inBracket = true
			b.WriteByte(c)
			// a ']' (after an optional '^') right after '[' is a member
			if i+1 < len(expr) && expr[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(expr) && expr[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case '\\':
			if i+1 >= len(expr) {
				return "", fmt.Errorf("%q: trailing backslash", expr)
			}
			i++
			switch d := expr[i]; d {
			case 'w':
				b.WriteString(`[[:alnum:]_]`)
			case 'W':
				b.WriteString(`[^[:alnum:]_]`)
			case 's':
				b.WriteString(`[[:space:]]`)
			case 'S':
				b.WriteString(`[^[:space:]]`)
			case 'b', 'B', '<', '>', '`', '\'':
				return "", fmt.Errorf("%q: \\%c (a GNU word or buffer anchor) is not supported", expr, d)
			default:
				if d >= '1' && d <= '9' {
					return "", fmt.Errorf("%q: back references in an expression are not supported", expr)
				}
				if strings.IndexByte(goPunct, d) >= 0 {
					b.WriteByte('\\')
				}
				// glibc reads an escaped ordinary character as itself
				b.WriteByte(d)
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// goPunct are the characters Go's syntax accepts after a backslash.
const goPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// regexLiterals finds the literal every name a regex matches starts with
// ("^abc\.(x|y)" starts with "abc.", "^a(bc|bd)" with "ab") and the one it
// ends with ("(x|y)\.count$" ends with ".count"); either may be empty.
func regexLiterals(src string) (prefix, suffix []byte) {
	re, err := syntax.Parse(src, syntax.POSIX)
	if err != nil {
		return nil, nil
	}
	re = re.Simplify()
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	n := len(subs)
	if n > 1 && (subs[0].Op == syntax.OpBeginLine || subs[0].Op == syntax.OpBeginText) {
		prefix, _ = literalEdge(&syntax.Regexp{Op: syntax.OpConcat, Sub: subs[1:]}, false)
	}
	if n > 1 && (subs[n-1].Op == syntax.OpEndLine || subs[n-1].Op == syntax.OpEndText) {
		suffix, _ = literalEdge(&syntax.Regexp{Op: syntax.OpConcat, Sub: subs[:n-1]}, true)
	}
	return prefix, suffix
}

// literalEdge returns the literal every match of r starts (fromEnd: ends)
// with, and whether r matches exactly that literal and nothing else.
func literalEdge(r *syntax.Regexp, fromEnd bool) ([]byte, bool) {
	switch r.Op {
	case syntax.OpLiteral:
		if r.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		var b []byte
		for _, c := range r.Rune {
			b = utf8.AppendRune(b, c)
		}
		return b, true
	case syntax.OpCapture:
		return literalEdge(r.Sub[0], fromEnd)
	case syntax.OpConcat:
		var out []byte
		for i := range r.Sub {
			sub := r.Sub[i]
			if fromEnd {
				sub = r.Sub[len(r.Sub)-1-i]
			}
			l, whole := literalEdge(sub, fromEnd)
			if fromEnd {
				out = append(l, out...)
			} else {
				out = append(out, l...)
			}
			if !whole {
				return out, false
			}
		}
		return out, true
	}
	return nil, false
}

// match tests name. When it matches and loc is not nil, loc receives the
// match positions as carbon-c-relay's regmatch_t array: loc[0:2] the whole
// match, loc[2k:2k+2] group k (-1 when it did not take part). It returns the
// number of positions filled (2 for string tests: c-relay has no groups
// there), or 0 when name does not match.
//
// A regex with groups allocates its positions (Go's regexp has no way to
// reuse them); only rewrites ask for them.
func (p *pattern) match(name []byte, loc []int) int {
	switch p.kind {
	case kindAll:
		if loc != nil {
			loc[0], loc[1] = 0, len(name)
		}
		return 2
	case kindContains:
		i := bytes.Index(name, p.lit)
		if i < 0 {
			return 0
		}
		if loc != nil {
			loc[0], loc[1] = i, i+len(p.lit)
		}
		return 2
	case kindPrefix:
		if !bytes.HasPrefix(name, p.lit) {
			return 0
		}
		if loc != nil {
			loc[0], loc[1] = 0, len(p.lit)
		}
		return 2
	case kindSuffix:
		if !bytes.HasSuffix(name, p.lit) {
			return 0
		}
		if loc != nil {
			loc[0], loc[1] = len(name)-len(p.lit), len(name)
		}
		return 2
	case kindExact:
		if !bytes.Equal(name, p.lit) {
			return 0
		}
		if loc != nil {
			loc[0], loc[1] = 0, len(name)
		}
		return 2
	}
	if p.need != nil {
		if p.needSuffix && !bytes.HasSuffix(name, p.need) || !p.needSuffix && !bytes.HasPrefix(name, p.need) {
			return 0
		}
	}
	if !p.fast.Match(name) {
		return 0
	}
	if loc == nil {
		return 2
	}
	m := p.re.FindSubmatchIndex(name)
	if m == nil {
		return 0
	}
	return copy(loc, m)
}
