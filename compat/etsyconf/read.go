package etsyconf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A configuration value is what JSON.stringify keeps of the evaluated
// object: nil (null), bool, float64, string, []any or *Object.

// Object is a JavaScript object's own properties in their enumeration
// order: integer-like keys ascending first, then the others in the order
// they were first defined (a repeated key keeps its place and takes the
// last value).
type Object struct {
	Keys []string
	Vals map[string]any
}

// Get returns the property key and whether it is defined.
func (o *Object) Get(key string) (any, bool) {
	v, ok := o.Vals[key]
	return v, ok
}

func (o *Object) set(key string, v any) {
	if o.Vals == nil {
		o.Vals = map[string]any{}
	}
	if _, dup := o.Vals[key]; !dup {
		o.Keys = append(o.Keys, key)
	}
	o.Vals[key] = v
}

// order puts the integer-like keys first, ascending, as JavaScript
// enumerates them.
func (o *Object) order() {
	var ints, rest []string
	for _, k := range o.Keys {
		if arrayIndex(k) {
			ints = append(ints, k)
		} else {
			rest = append(rest, k)
		}
	}
	for i := 1; i < len(ints); i++ { // few keys: insertion sort
		for j := i; j > 0 && indexLess(ints[j], ints[j-1]); j-- {
			ints[j], ints[j-1] = ints[j-1], ints[j]
		}
	}
	o.Keys = append(ints, rest...)
}

// arrayIndex: k is the canonical form of an integer below 2^32-1.
func arrayIndex(k string) bool {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return false
	}
	n, err := strconv.ParseUint(k, 10, 64)
	return err == nil && n < math.MaxUint32
}

func indexLess(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x < y
}

// nodeScript evaluates the file as Etsy statsd's lib/config.js does
// (eval('config = ' + data)) and prints JSON.stringify of the result.
const nodeScript = `const data = require('fs').readFileSync(process.argv[1], 'utf8');
let config;
config = eval('config = ' + data);
process.stdout.write(JSON.stringify(config === undefined ? null : config));
`

// EvalNode evaluates file with node (as Etsy statsd 0.9.0's lib/config.js
// does) and returns the configuration object.
func EvalNode(ctx context.Context, node, file string) (*Object, error) {
	cmd := exec.CommandContext(ctx, node, "-e", nodeScript, file)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		// node prints the source line and a caret before the error
		for _, l := range strings.Split(msg, "\n") {
			if strings.Contains(l, "Error") {
				msg = strings.TrimSpace(l)
				break
			}
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("node cannot evaluate it: %s", msg)
	}
	v, err := decodeJSON(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("node's JSON: %w", err)
	}
	o, ok := v.(*Object)
	if !ok {
		return nil, fmt.Errorf("it evaluates to %s, not an object", describe(v))
	}
	return o, nil
}

// decodeJSON reads JSON into the value model, keeping the order of keys.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := jsonValue(dec)
	if err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

func jsonValue(dec *json.Decoder) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		if t == '[' {
			a := []any{}
			for dec.More() {
				v, err := jsonValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			_, err := dec.Token()
			return a, err
		}
		o := &Object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := jsonValue(dec)
			if err != nil {
				return nil, err
			}
			o.set(k.(string), v)
		}
		_, err := dec.Token()
		o.order()
		return o, err
	case json.Number:
		return strconv.ParseFloat(t.String(), 64)
	default: // nil, bool, string
		return t, nil
	}
}

// SyntaxError is where the object literal parser stops.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// ParseLiteral reads an Etsy statsd configuration that is a plain object
// literal: optional comments, the object, optionally in parentheses, and an
// optional ';'. Inside it: // and /* */ comments, keys bare, quoted or
// numeric, '...' and "..." strings with JavaScript's escapes, numbers
// (decimal, 0x, 0o, 0b, signed), true, false, null, arrays, objects and
// trailing commas. Anything else (a call, a variable, an operator) is a
// SyntaxError: node evaluates such files.
func ParseLiteral(src string) (*Object, error) {
	p := &parser{src: src}
	p.space()
	parens := 0
	for p.peek() == '(' {
		p.pos++
		parens++
		p.space()
	}
	if p.peek() != '{' {
		return nil, p.errorf("want an object literal ({ ... })")
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	for ; parens > 0; parens-- {
		p.space()
		if p.peek() != ')' {
			return nil, p.errorf("want ')'")
		}
		p.pos++
	}
	p.space()
	if p.peek() == ';' {
		p.pos++
		p.space()
	}
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %q after the object", p.rest())
	}
	return v.(*Object), nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *parser) rest() string {
	r := p.src[p.pos:]
	if i := strings.IndexAny(r, "\r\n"); i >= 0 {
		r = r[:i]
	}
	if len(r) > 20 {
		r = r[:20]
	}
	return r
}

func (p *parser) errorf(format string, a ...any) error {
	line := 1 + strings.Count(p.src[:p.pos], "\n")
	col := 1 + utf8.RuneCountInString(p.src[strings.LastIndexByte(p.src[:p.pos], '\n')+1:p.pos])
	return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, a...)}
}

// space skips white space, line terminators and comments.
func (p *parser) space() {
	for p.pos < len(p.src) {
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' ||
			r == 0xa0 || r == 0xfeff || r == 0x2028 || r == 0x2029 || r == 0x1680 ||
			r >= 0x2000 && r <= 0x200a || r == 0x202f || r == 0x205f || r == 0x3000:
			p.pos += n
		case strings.HasPrefix(p.src[p.pos:], "//"):
			i := strings.IndexAny(p.src[p.pos:], "\n\r\u2028\u2029")
			if i < 0 {
				p.pos = len(p.src)
			} else {
				p.pos += i
			}
		case strings.HasPrefix(p.src[p.pos:], "/*"):
			i := strings.Index(p.src[p.pos+2:], "*/")
			if i < 0 {
				p.pos = len(p.src)
				return
			}
			p.pos += i + 4
		default:
			return
		}
	}
}

func (p *parser) value() (any, error) {
	p.space()
	switch c := p.peek(); {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"' || c == '\'':
		return p.str()
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		f, err := p.number()
		if err != nil || math.IsInf(f, 0) {
			return nil, err // JSON.stringify writes Infinity as null
		}
		return f, nil
	case c == 0:
		return nil, p.errorf("unexpected end of file")
	}
	id := p.ident()
	switch id {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	case "":
		return nil, p.errorf("unexpected %q", p.rest())
	}
	p.pos -= len(id)
	return nil, p.errorf("%s is not a literal (an expression needs node to evaluate it)", id)
}

func identStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (p *parser) ident() string {
	start := p.pos
	if !identStart(p.peek()) {
		return ""
	}
	for p.pos < len(p.src) && (identStart(p.src[p.pos]) || p.src[p.pos] >= '0' && p.src[p.pos] <= '9') {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) object() (any, error) {
	p.pos++ // {
	o := &Object{}
	for {
		p.space()
		if p.peek() == '}' {
			p.pos++
			o.order()
			return o, nil
		}
		var key string
		switch c := p.peek(); {
		case c == '"' || c == '\'':
			s, err := p.str()
			if err != nil {
				return nil, err
			}
			key = s
		case c >= '0' && c <= '9' || c == '.':
			n, err := p.number()
			if err != nil {
				return nil, err
			}
			key = jsNumber(n)
		default:
			key = p.ident()
			if key == "" {
				return nil, p.errorf("want a key, found %q", p.rest())
			}
		}
		p.space()
		if p.peek() != ':' {
			return nil, p.errorf("want ':' after key %q (shorthand, methods and computed keys need node)", key)
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		o.set(key, v)
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
		case '}':
		default:
			return nil, p.errorf("want ',' or '}', found %q", p.rest())
		}
	}
}

func (p *parser) array() (any, error) {
	p.pos++ // [
	a := []any{}
	for {
		p.space()
		switch p.peek() {
		case ']':
			p.pos++
			return a, nil
		case ',':
			return nil, p.errorf("array holes need node")
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.space()
		switch p.peek() {
		case ',':
			p.pos++
		case ']':
		default:
			return nil, p.errorf("want ',' or ']', found %q", p.rest())
		}
	}
}

// number reads a numeric literal with an optional sign (JavaScript's unary
// + and -, which may be repeated and separated by space).
func (p *parser) number() (float64, error) {
	sign := 1.0
	for c := p.peek(); c == '-' || c == '+'; c = p.peek() {
		if c == '-' {
			sign = -sign
		}
		p.pos++
		p.space()
	}
	start := p.pos
	s := p.src[p.pos:]
	if len(s) > 1 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[s[1]|0x20]
		i := 2
		for i < len(s) && (isDigit(s[i], base) || s[i] == '_') {
			i++
		}
		p.pos += i
		if i == 2 || p.identAfter() {
			return 0, p.errorf("bad number %q", p.src[start:p.pos])
		}
		n, err := strconv.ParseUint(strings.ReplaceAll(s[2:i], "_", ""), base, 64)
		if err != nil {
			// beyond 2^64: go through big floats digit by digit
			f := 0.0
			for _, d := range strings.ReplaceAll(s[2:i], "_", "") {
				v, _ := strconv.ParseUint(string(d), base, 8)
				f = f*float64(base) + float64(v)
			}
			return sign * f, nil
		}
		return sign * float64(n), nil
	}
	i := 0
	digits := func() {
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
			i++
		}
	}
	digits()
	intEnd := i
	if i < len(s) && s[i] == '.' {
		i++
		digits()
	}
	if i == 0 || s[:i] == "." {
		return 0, p.errorf("bad number %q", p.rest())
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			i = j
			digits()
		}
	}
	p.pos += i
	text := strings.ReplaceAll(s[:i], "_", "")
	if intEnd > 1 && s[0] == '0' && !strings.ContainsAny(s[:i], ".eE") {
		// a legacy octal (or a decimal with a leading zero)
		return 0, p.errorf("number %q with a leading zero needs node", s[:i])
	}
	if p.identAfter() {
		return 0, p.errorf("bad number %q", p.rest())
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, p.errorf("bad number %q", s[:i])
	}
	return sign * f, nil
}

func (p *parser) identAfter() bool {
	c := p.peek()
	return identStart(c) || c >= '0' && c <= '9'
}

func isDigit(c byte, base int) bool {
	var v int
	switch {
	case c >= '0' && c <= '9':
		v = int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		v = int(c|0x20-'a') + 10
	default:
		return false
	}
	return v < base
}

// str reads a '...' or "..." string literal.
func (p *parser) str() (string, error) {
	q := p.src[p.pos]
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", p.errorf("unterminated string")
		}
		c := p.src[p.pos]
		switch {
		case c == q:
			p.pos++
			return b.String(), nil
		case c == '\n' || c == '\r':
			return "", p.errorf("line break in a string")
		case c != '\\':
			b.WriteByte(c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(p.src) {
			return "", p.errorf("unterminated string")
		}
		r, n := utf8.DecodeRuneInString(p.src[p.pos:])
		p.pos += n
		switch r {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case '0':
			if c := p.peek(); c >= '0' && c <= '9' {
				return "", p.errorf("octal escape needs node")
			}
			b.WriteByte(0)
		case '\r':
			if p.peek() == '\n' {
				p.pos++
			}
		case '\n', 0x2028, 0x2029: // line continuation
		case 'x':
			if p.pos+2 > len(p.src) {
				return "", p.errorf("bad \\x escape")
			}
			v, err := strconv.ParseUint(p.src[p.pos:p.pos+2], 16, 8)
			if err != nil {
				return "", p.errorf("bad \\x escape")
			}
			p.pos += 2
			b.WriteRune(rune(v))
		case 'u':
			v, err := p.unicodeEscape()
			if err != nil {
				return "", err
			}
			// a surrogate pair is two escapes
			if v >= 0xd800 && v < 0xdc00 && strings.HasPrefix(p.src[p.pos:], `\u`) {
				save := p.pos
				p.pos += 2
				if lo, err := p.unicodeEscape(); err == nil && lo >= 0xdc00 && lo < 0xe000 {
					v = 0x10000 + (v-0xd800)<<10 + (lo - 0xdc00)
				} else {
					p.pos = save
				}
			}
			b.WriteRune(rune(v)) // a lone surrogate becomes U+FFFD, as in JSON.stringify's UTF-8
		default:
			if r >= '1' && r <= '9' {
				return "", p.errorf("octal escape needs node")
			}
			b.WriteRune(r)
		}
	}
}

func (p *parser) unicodeEscape() (uint64, error) {
	if p.peek() == '{' {
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return 0, p.errorf("bad \\u{} escape")
		}
		v, err := strconv.ParseUint(p.src[p.pos+1:p.pos+end], 16, 32)
		if err != nil || v > 0x10ffff {
			return 0, p.errorf("bad \\u{} escape")
		}
		p.pos += end + 1
		return v, nil
	}
	if p.pos+4 > len(p.src) {
		return 0, p.errorf("bad \\u escape")
	}
	v, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 16)
	if err != nil {
		return 0, p.errorf("bad \\u escape")
	}
	p.pos += 4
	return v, nil
}

// jsNumber formats f as JavaScript's Number.prototype.toString does for
// the values a configuration holds (the form of a numeric key).
func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	abs := math.Abs(f)
	if abs >= 1e21 || abs < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e+21 / e-07, JavaScript e+21 / e-7
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[0]
		exp = strings.TrimLeft(exp[1:], "0")
		return mant + "e" + string(sign) + exp
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// describe names a value's JavaScript type for messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return "the number " + jsNumber(v)
	case string:
		return "the string " + strconv.Quote(v)
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
