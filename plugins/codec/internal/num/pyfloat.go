package num

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/metric"
)

// PyFloat parses the UTF-8 text b as Python 3's float(str) does: carbon's
// line receiver reads both the value and the timestamp of a Graphite line
// with float() (carbon/protocols.py, MetricLineReceiver.lineReceived:
// "datapoint = (float(timestamp), float(value))"). ok is false where
// float() raises ValueError, and where b is not UTF-8 (carbon's
// line.decode('utf-8') raises first).
//
// The grammar, after CPython 3.11's PyFloat_FromString
// (_PyUnicode_TransformDecimalAndSpaceToASCII,
// _Py_string_to_number_with_underscores, float_from_string_inner) and
// _PyOS_ascii_strtod (_Py_dg_strtod, _Py_parse_inf_or_nan):
//
//   - a non-ASCII character is read as ' ' if it is Unicode whitespace
//     (PySpace), as its digit if it is a decimal digit (category Nd, as
//     Python 3.11's Unicode 14.0 has them: "١٢٣" is 123), and refused
//     otherwise; NUL is refused;
//   - '_' only between two digits (Unicode ones included), then dropped;
//   - leading and trailing " \t\n\v\f\r" are ignored (not \x1c..\x1f);
//   - then an optional sign and "inf", "infinity" or "nan" in any case
//     ("-nan" too), or a decimal: digits with at most one '.', at least
//     one digit, then an optional (e|E)[+-]digits. No hexadecimal
//     ("0x1p3"), no "nan(...)".
//
// The value is the correctly rounded float64, as float()'s and strconv's
// are; out of range it is ±Inf (overflow: float("1e400") is inf) or ±0,
// as float() makes it. A NaN has Python's bits (0x7ff8000000000000, with
// the sign bit for "-nan"). testdata/carbon-float/table.tsv, made by
// Debian's python3, decides: TestPyFloatTable checks every row of it.
//
// PyFloat does not allocate, bad tokens included, except for a number out
// of range (strconv's range error) and a valid number of more than 64
// bytes that holds a Unicode digit or a '_' (its ASCII copy).
func PyFloat(b []byte) (f float64, ok bool) {
	if f, ok := parseDecimal(b); ok {
		return f, true
	}
	if len(b) == 0 || !pyStart.Has(b[0]) {
		return 0, false // "twelve", "user42": refused at the first byte
	}
	if PlainDecimal(b) {
		// the grammar above without whitespace, '_' or Unicode: strconv's
		// reading, which is correctly rounded too
		f, _ = strconv.ParseFloat(metric.UnsafeString(b), 64)
		return f, true
	}
	return pyFloatText(b)
}

// pyStart is the bytes a token float() reads may start with: whitespace, a
// sign, a digit, '.', the first letter of "inf" and "nan", and any byte
// above 0x7f (which may start a Unicode digit or whitespace).
var pyStart = ByteSet{
	1<<'\t' | 1<<'\n' | 1<<'\v' | 1<<'\f' | 1<<'\r' | 1<<' ' | 1<<'+' | 1<<'-' | 1<<'.' | (1<<10-1)<<'0',
	1<<('I'-64) | 1<<('N'-64) | 1<<('i'-64) | 1<<('n'-64),
	^uint64(0),
	^uint64(0),
}

// Python's NaNs (_Py_dg_stdnan): float("nan") and float("-nan").
const (
	pyNaN    = 0x7ff8000000000000
	pyNegNaN = 0xfff8000000000000
)

// pyFloatText is PyFloat for every token but a plain ASCII decimal.
func pyFloatText(b []byte) (float64, bool) {
	t := pyText{b: b}
	c, ok := t.next()
	for ok && isPySpaceASCII(c) {
		c, ok = t.next()
	}
	if !ok || c == 0 {
		return 0, false
	}
	start := t.at
	neg := false
	if c == '+' || c == '-' {
		neg = c == '-'
		if c, ok = t.next(); !ok {
			return 0, false
		}
	}
	var special uint64 // the bits of ±Inf or NaN; 0 for a decimal
	if lc := c | 0x20; lc == 'i' || lc == 'n' {
		// a word: collect its letters, lower-cased
		var w [len("infinity")]byte
		n := 0
		for ok && ('a' <= c|0x20 && c|0x20 <= 'z') {
			if n == len(w) {
				return 0, false
			}
			w[n] = c | 0x20
			n++
			c, ok = t.next()
		}
		switch string(w[:n]) {
		case "inf", "infinity":
			special = math.Float64bits(math.Inf(1))
			if neg {
				special = math.Float64bits(math.Inf(-1))
			}
		case "nan":
			special = pyNaN
			if neg {
				special = pyNegNaN
			}
		default:
			return 0, false
		}
	} else {
		digits := 0
		for ok && isDigit(c) {
			digits++
			c, ok = t.next()
		}
		if ok && c == '.' {
			for c, ok = t.next(); ok && isDigit(c); c, ok = t.next() {
				digits++
			}
		}
		if digits == 0 {
			return 0, false
		}
		if ok && (c == 'e' || c == 'E') {
			if c, ok = t.next(); ok && (c == '+' || c == '-') {
				c, ok = t.next()
			}
			if !ok || !isDigit(c) {
				return 0, false
			}
			for ok && isDigit(c) {
				c, ok = t.next()
			}
		}
	}
	end := t.at
	// only trailing whitespace may follow
	for ok && c != 0 {
		if !isPySpaceASCII(c) {
			return 0, false
		}
		c, ok = t.next()
	}
	if !ok {
		return 0, false
	}
	if special != 0 {
		return math.Float64frombits(special), true
	}
	body := b[start:end]
	for _, x := range body {
		if x >= utf8.RuneSelf || x == '_' {
			return parseMapped(body), true
		}
	}
	f, _ := strconv.ParseFloat(metric.UnsafeString(body), 64)
	return f, true
}

// parseMapped parses a decimal that pyFloatText found valid and that holds
// Unicode digits or '_': its ASCII copy, without the '_', goes to strconv.
// Its own function, so that only this rare case has the buffer.
func parseMapped(body []byte) float64 {
	var buf [64]byte
	dst := buf[:0]
	if len(body) > len(buf) {
		dst = make([]byte, 0, len(body))
	}
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if c != '_' {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(body[i:])
		dst = append(dst, '0'+byte(PyDigit(r)))
		i += n
	}
	f, _ := strconv.ParseFloat(metric.UnsafeString(dst), 64)
	return f
}

// pyText reads a token character by character as float() sees it: each
// character as its ASCII stand-in (a Unicode digit as '0'..'9', Unicode
// whitespace as ' '), the '_' between two digits dropped.
type pyText struct {
	b    []byte
	i    int  // the next byte of b
	at   int  // where the character next returned starts in b
	prev byte // the character before it, a '_' included
}

// next returns the next character, or 0 at the end of the token; ok is
// false at a character float() refuses whatever follows: NUL, a byte that
// is not UTF-8, another non-ASCII character that is neither a digit nor
// whitespace, or a misplaced '_'.
func (t *pyText) next() (c byte, ok bool) {
	for {
		t.at = t.i
		if t.i == len(t.b) {
			return 0, t.prev != '_'
		}
		c = t.b[t.i]
		n := 1
		if c >= utf8.RuneSelf {
			var r rune
			r, n = utf8.DecodeRune(t.b[t.i:])
			switch {
			case r == utf8.RuneError && n == 1:
				return 0, false
			case PySpace(r):
				c = ' '
			default:
				d := PyDigit(r)
				if d < 0 {
					return 0, false
				}
				c = '0' + byte(d)
			}
		} else if c == 0 {
			return 0, false
		}
		t.i += n
		if c == '_' {
			// only after a digit, and (below) before one
			if !isDigit(t.prev) {
				return 0, false
			}
			t.prev = c
			continue
		}
		if t.prev == '_' && !isDigit(c) {
			return 0, false
		}
		t.prev = c
		return c, true
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isPySpaceASCII reports the ASCII whitespace float() strips (Py_ISSPACE).
func isPySpaceASCII(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

// PySpace reports the characters above U+007F that Python counts as
// whitespace (str.isspace, Py_UNICODE_ISSPACE): str.split splits on them
// and float() reads them as ' '.
func PySpace(r rune) bool {
	switch {
	case r == 0x85, r == 0xa0, r == 0x1680, r >= 0x2000 && r <= 0x200a,
		r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// PyDigit returns the value of r if it is a decimal digit above U+007F as
// Python 3.11 has them (unicodedata.decimal, Unicode 14.0), else -1.
func PyDigit(r rune) int {
	// the last zero at or below r
	lo, hi := 0, len(pyZeros)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rune(pyZeros[m]) <= r {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || r-rune(pyZeros[lo-1]) > 9 {
		return -1
	}
	return int(r - rune(pyZeros[lo-1]))
}

// pyZeros is the digit zero of each run of ten decimal digits (category
// Nd) above U+007F in Unicode 14.0, which Python 3.11 (Debian 12's
// python3) uses: every such digit is one of these plus 0..9. Unicode 15's
// new digits (Kawi U+11F50, Nag Mundari U+1E4F0), which Go's unicode.Nd
// has, are not digits to this float(). testdata/carbon-float/unicode.tsv,
// generated, lists them all; TestPyFloatUnicode checks every code point.
var pyZeros = [...]uint32{
	0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66,
	0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810,
	0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0,
	0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0,
	0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950,
	0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
	0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
}
