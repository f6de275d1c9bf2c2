package jsonmetric

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// Reasons Parse gives for an object it cannot read (constant values, so a
// refusal does not allocate).
var (
	errSyntax    = fmt.Errorf("%w: invalid JSON", ErrObject)
	errDepth     = fmt.Errorf("%w: nested deeper than %d", ErrObject, maxDepth)
	errNotObject = fmt.Errorf("%w: not an object", ErrObject)
	errKeyType   = fmt.Errorf("%w: a key holds a value of the wrong type", ErrObject)
	errWant      = fmt.Errorf("%w: want name and value", ErrObject)
	errNoType    = fmt.Errorf("%w: rate, delta or key_tags without type", ErrObject)
)

// maxDepth is how deep encoding/json lets arrays and objects nest (the
// metric object counts as 1).
const maxDepth = 10000

// span is the raw JSON value obj[lo:hi] of a key; hi == 0 when the key is
// absent (an object cannot end a value at offset 0).
type span struct{ lo, hi int }

func (s span) set() bool { return s.hi > 0 }

// null reports whether the value is the literal null.
func (s span) null(obj []byte) bool { return s.hi > 0 && obj[s.lo] == 'n' }

// fields holds where each known key's value is; a repeated key's last
// value wins, as in encoding/json.
type fields struct {
	name, value, typ, rate, ts, tags, keyTags span
	delta                                     bool
}

// The known keys, upper-cased.
const (
	kName = iota
	kValue
	kTimestamp
	kType
	kRate
	kDelta
	kTags
	kKeyTags
	kUnknown
)

var keyNames = [...]string{"NAME", "VALUE", "TIMESTAMP", "TYPE", "RATE", "DELTA", "TAGS", "KEY_TAGS"}

// Parse reads one JSON object (surrounding whitespace allowed) into m. The
// equivalent line is written into arena's spare capacity when it fits, else
// into a new slice of at least 64 KiB; m keeps slices of it. Parse returns
// the arena to pass to the next Parse (bytes before its length belong to
// metrics already parsed and are never written again), and arena unchanged
// with an error when it refuses the object.
//
// The object is read as encoding/json.Unmarshal would read it into a struct
// of the keys: any valid JSON is taken (unknown keys skipped whatever their
// value, nesting up to 10000 levels), keys match case-insensitively (with
// Unicode simple folding: "NAME", "Name" and "\u006eame" are "name"), a
// repeated key's last value wins ("delta":null keeps the value before it),
// invalid UTF-8 and lone surrogates in strings become U+FFFD, and a value of
// the wrong type for its key refuses the object.
func Parse(obj []byte, m *metric.Metric, arena []byte) ([]byte, error) {
	return parse(obj, m, arena, time.Now)
}

func parse(obj []byte, m *metric.Metric, arena []byte, now func() time.Time) ([]byte, error) {
	var f fields
	if err := scan(obj, &f); err != nil {
		return arena, err
	}
	if !f.name.set() || f.name.null(obj) || !f.value.set() {
		return arena, errWant
	}
	// The line is shorter than the object, but for a timestamp Parse adds
	// and strings that decode longer.
	need := len(obj) + 32
	if cap(arena)-len(arena) < need {
		arena = make([]byte, 0, max(minArena, need))
	}
	start := len(arena)
	line := arena[start:start]
	isGraphite := !f.typ.set() || f.typ.null(obj)
	var err error
	if isGraphite {
		line, err = graphiteLine(line, obj, &f, now)
	} else {
		line, err = statsdLine(line, obj, &f)
	}
	if err != nil {
		return arena[:start], err
	}
	// A line longer than expected (invalid UTF-8 in the object decodes to
	// U+FFFD, 3 bytes for 1) was moved by append into memory of its own:
	// the arena then stays as it was.
	inArena := cap(line) == cap(arena)-start
	line = line[:len(line):len(line)]
	if isGraphite {
		err = graphite.Parse(line, m)
	} else {
		err = statsd.Parse(line, m)
		if err == nil && len(m.Ext()) > 0 {
			err = ErrExt
		}
	}
	if err != nil || !inArena {
		return arena[:start], err
	}
	return arena[:start+len(line)], nil
}

// inner returns the inside of the JSON string at s.
func (s span) inner(obj []byte) []byte { return obj[s.lo+1 : s.hi-1] }

func graphiteLine(line, obj []byte, f *fields, now func() time.Time) ([]byte, error) {
	line = appendUnquoted(line, f.name.inner(obj))
	if len(line) == 0 || !clean(line, gName) {
		return line, ErrName
	}
	if f.rate.set() || f.delta || (f.keyTags.set() && !f.keyTags.null(obj)) {
		return line, errNoType
	}
	val, _, err := number(obj[f.value.lo:f.value.hi])
	if err != nil {
		return line, err
	}
	if f.tags.set() && !f.tags.null(obj) {
		if line, err = appendTagList(line, obj, f.tags.lo, ';', '=', true, gTagKey, gTagVal); err != nil {
			return line, err
		}
	}
	line = append(line, ' ')
	line = append(line, val...)
	line = append(line, ' ')
	if f.ts.set() {
		ts, _, err := number(obj[f.ts.lo:f.ts.hi])
		if err != nil {
			return line, ErrTime
		}
		line = append(line, ts...)
	} else {
		line = strconv.AppendInt(line, now().Unix(), 10)
	}
	return line, nil
}

func statsdLine(line, obj []byte, f *fields) ([]byte, error) {
	// A type is at most 2 characters, at most 6 bytes each as escapes.
	raw := f.typ.inner(obj)
	if len(raw) > 12 {
		return line, ErrType
	}
	var buf [40]byte
	typ, ok := metric.ParseType(appendUnquoted(buf[:0], raw))
	if !ok {
		return line, ErrType
	}
	line = appendUnquoted(line, f.name.inner(obj))
	if len(line) == 0 || !clean(line, sName) {
		return line, ErrName
	}
	var err error
	if f.keyTags.set() && !f.keyTags.null(obj) {
		if line, err = appendTagList(line, obj, f.keyTags.lo, ',', '=', true, sKeyKey, sKeyVal); err != nil {
			return line, err
		}
	}
	line = append(line, ':')
	if f.delta && typ != metric.Gauge {
		return line, ErrDelta
	}
	value := obj[f.value.lo:f.value.hi]
	if typ == metric.Set {
		n := len(line)
		if value[0] == '"' {
			line = appendUnquoted(line, value[1:len(value)-1])
		} else if _, _, err := number(value); err == nil {
			line = append(line, value...)
		} else {
			return line, ErrValue
		}
		if len(line) == n || !clean(line[n:], sMember) {
			return line, ErrValue
		}
	} else {
		val, v, err := number(value)
		if err != nil {
			return line, err
		}
		if typ == metric.Gauge {
			if f.delta && val[0] != '-' {
				line = append(line, '+')
			} else if !f.delta && (v < 0 || val[0] == '-') {
				return line, ErrDelta
			}
		}
		line = append(line, val...)
	}
	line = append(line, '|')
	line = append(line, typ.String()...)
	if f.rate.set() {
		r, v, err := number(obj[f.rate.lo:f.rate.hi])
		if err != nil || !(v > 0) {
			return line, ErrRate
		}
		line = append(line, '|', '@')
		line = append(line, r...)
	}
	if f.tags.set() && !f.tags.null(obj) {
		line = append(line, '|', '#')
		if line, err = appendTagList(line, obj, f.tags.lo, ',', ':', false, sDogKey, sDogVal); err != nil {
			return line, err
		}
	}
	if f.ts.set() {
		ts := obj[f.ts.lo:f.ts.hi]
		if !allDigits(ts) {
			return line, ErrTime
		}
		line = append(line, '|', 'T')
		line = append(line, ts...)
	}
	return line, nil
}

// appendTagList appends the members of the tags object at obj[i] (checked
// by scan: string or null values) as tags separated by sep, key and value
// joined by kv, sep also before the first when lead. A null member with an
// empty key is left out.
func appendTagList(line, obj []byte, i int, sep, kv byte, lead bool, badKey, badVal string) ([]byte, error) {
	first := true
	i = skipSpace(obj, i+1)
	for obj[i] != '}' {
		k := i
		i = endString(obj, i)
		key := obj[k+1 : i-1]
		i = skipSpace(obj, skipSpace(obj, i)+1) // ':'
		isNull := obj[i] == 'n'
		v := i
		if isNull {
			i += 4
		} else {
			i = endString(obj, i)
		}
		if !isNull || len(key) > 0 {
			if !first || lead {
				line = append(line, sep)
			}
			first = false
			n := len(line)
			line = appendUnquoted(line, key)
			if !clean(line[n:], badKey) {
				return line, ErrTag
			}
			if !isNull {
				line = append(line, kv)
				n = len(line)
				line = appendUnquoted(line, obj[v+1:i-1])
				if !clean(line[n:], badVal) {
					return line, ErrTag
				}
			}
		}
		i = skipSpace(obj, i)
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return line, nil
}

// scan checks that obj is one JSON object (whitespace around it allowed)
// and notes in f where the known keys' values are.
func scan(obj []byte, f *fields) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) {
		return errSyntax
	}
	if obj[i] != '{' {
		// encoding/json refuses anything else but null, which leaves
		// the struct empty: refused for want of name and value.
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		i++
	} else {
		for {
			if i >= len(obj) || obj[i] != '"' {
				return errSyntax
			}
			k := i
			var err error
			if i, err = skipString(obj, i); err != nil {
				return err
			}
			key := obj[k+1 : i-1]
			i = skipSpace(obj, i)
			if i >= len(obj) || obj[i] != ':' {
				return errSyntax
			}
			i = skipSpace(obj, i+1)
			v := i
			if i, err = skipValue(obj, i, 1); err != nil {
				return err
			}
			if err := f.note(obj, matchKey(key), span{v, i}); err != nil {
				return err
			}
			i = skipSpace(obj, i)
			if i >= len(obj) {
				return errSyntax
			}
			if obj[i] == ',' {
				i = skipSpace(obj, i+1)
				continue
			}
			if obj[i] != '}' {
				return errSyntax
			}
			i++
			break
		}
	}
	if skipSpace(obj, i) != len(obj) {
		return errSyntax
	}
	return nil
}

// note records the value s of the key k, refusing a value of a type
// encoding/json would not store in the key's field.
func (f *fields) note(obj []byte, k int, s span) error {
	c := obj[s.lo]
	switch k {
	case kName, kType:
		if c != '"' && c != 'n' {
			return errKeyType
		}
		if k == kName {
			f.name = s
		} else {
			f.typ = s
		}
	case kValue:
		f.value = s
	case kRate:
		f.rate = s
	case kTimestamp:
		f.ts = s
	case kDelta:
		switch c {
		case 't':
			f.delta = true
		case 'f':
			f.delta = false
		case 'n':
		default:
			return errKeyType
		}
	case kTags, kKeyTags:
		if c != 'n' && !tagObject(obj, s.lo) {
			return ErrTag
		}
		if k == kTags {
			f.tags = s
		} else {
			f.keyTags = s
		}
	}
	return nil
}

// tagObject reports whether the valid JSON value at obj[i] is an object of
// string or null members.
func tagObject(obj []byte, i int) bool {
	if obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	for obj[i] != '}' {
		i = endString(obj, i)
		i = skipSpace(obj, skipSpace(obj, i)+1)
		switch obj[i] {
		case 'n':
			i += 4
		case '"':
			i = endString(obj, i)
		default:
			return false
		}
		i = skipSpace(obj, i)
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return true
}

// matchKey returns which known key the raw key (inside its quotes) is,
// comparing as encoding/json does: decoded, then folded (ASCII upper case,
// other runes to the least of their Unicode simple folding orbit).
func matchKey(raw []byte) int {
	// A known key has at most 8 characters, at most 6 bytes each raw.
	if len(raw) > 48 || len(raw) == 0 {
		return kUnknown
	}
	for k, want := range keyNames {
		if foldEqual(raw, want) {
			return k
		}
	}
	return kUnknown
}

// foldEqual reports whether the raw JSON string folds to want (upper-case
// ASCII).
func foldEqual(raw []byte, want string) bool {
	j := 0
	for r := 0; r < len(raw); {
		var c rune
		if b := raw[r]; b != '\\' && b < utf8.RuneSelf {
			c = rune(b)
			r++
		} else {
			c, r = nextRune(raw, r)
		}
		if c >= utf8.RuneSelf {
			c = foldRune(c)
		} else if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if j >= len(want) || c != rune(want[j]) {
			return false
		}
		j++
	}
	return j == len(want)
}

// foldRune returns the least rune of r's simple folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// appendUnquoted appends the decoded inside of a valid JSON string.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		if c := s[r]; c != '\\' && c < utf8.RuneSelf {
			dst = append(dst, c)
			r++
			continue
		}
		var c rune
		c, r = nextRune(s, r)
		dst = utf8.AppendRune(dst, c)
	}
	return dst
}

// nextRune decodes the rune at s[r] inside a valid JSON string, as
// encoding/json does: an escape, a surrogate pair, or U+FFFD for a lone
// surrogate and for each byte of invalid UTF-8.
func nextRune(s []byte, r int) (rune, int) {
	if s[r] != '\\' {
		c, n := utf8.DecodeRune(s[r:])
		return c, r + n
	}
	switch c := s[r+1]; c {
	case 'b':
		return '\b', r + 2
	case 'f':
		return '\f', r + 2
	case 'n':
		return '\n', r + 2
	case 'r':
		return '\r', r + 2
	case 't':
		return '\t', r + 2
	case 'u':
	default: // " \ /
		return rune(c), r + 2
	}
	rr := hex4(s[r+2:])
	r += 6
	if !utf16.IsSurrogate(rr) {
		return rr, r
	}
	if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
		if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
			return dec, r + 6
		}
	}
	return unicode.ReplacementChar, r
}

// hex4 decodes 4 hex digits (checked by skipString).
func hex4(s []byte) rune {
	var v rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		v = v<<4 | rune(c)
	}
	return v
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endString returns the end of the valid JSON string at b[i].
func endString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipString checks the JSON string at b[i] ('"') and returns its end.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c < 0x20:
			return 0, errSyntax
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, errSyntax
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, errSyntax
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, errSyntax
					}
				}
				i += 4
			default:
				return 0, errSyntax
			}
		}
	}
	return 0, errSyntax
}

// skipNumber checks the JSON number at b[i] and returns its end.
func skipNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return 0, errSyntax
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, errSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return 0, errSyntax
		}
	}
	return i, nil
}

// skipValue checks the JSON value at b[i], inside depth open arrays and
// objects, and returns its end.
func skipValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '{' || c == '[':
		return skipNested(b, i, depth)
	}
	return 0, errSyntax
}

// skipNested is skipValue for an array or object.
func skipNested(b []byte, i, depth int) (int, error) {
	// open[d] bit: the container open at level d is an object.
	var open [maxDepth/64 + 1]uint64
	n := 0 // containers opened here
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return 0, errSyntax
		}
		var err error
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth+n+1 > maxDepth {
				return 0, errDepth
			}
			if c == '{' {
				open[n/64] |= 1 << (n % 64)
			} else {
				open[n/64] &^= 1 << (n % 64)
			}
			n++
			i = skipSpace(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				n--
				i++
				break
			}
			if c == '[' {
				continue
			}
			if i, err = skipKey(b, i); err != nil {
				return 0, err
			}
			continue
		case c == '"':
			i, err = skipString(b, i)
		case c == '-' || c >= '0' && c <= '9':
			i, err = skipNumber(b, i)
		case c == 't':
			i, err = literal(b, i, "true")
		case c == 'f':
			i, err = literal(b, i, "false")
		case c == 'n':
			i, err = literal(b, i, "null")
		default:
			err = errSyntax
		}
		if err != nil {
			return 0, err
		}
		// A value ended at b[i]: close what it ends.
		for {
			if n == 0 {
				return i, nil
			}
			isObj := open[(n-1)/64]&(1<<((n-1)%64)) != 0
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if isObj {
					if i, err = skipKey(b, i); err != nil {
						return 0, err
					}
				}
				break
			}
			if isObj && b[i] == '}' || !isObj && b[i] == ']' {
				n--
				i++
				continue
			}
			return 0, errSyntax
		}
	}
}

// skipKey checks `"key":` at b[i] and returns where its value starts.
func skipKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errSyntax
	}
	i, err := skipString(b, i)
	if err != nil {
		return 0, err
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, errSyntax
	}
	return skipSpace(b, i+1), nil
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}
