package num

import (
	"strconv"

	"github.com/metricsrouter/router/plugins/metric"
)

// ParseFloat parses b as strconv.ParseFloat(b, 64) does, without allocating
// for a bad token: strconv builds an error (two allocations) for every token
// it rejects, which a flood of bad lines or string set members would pay per
// line. ok is false exactly when strconv reports a syntax error. A value out
// of range is accepted as ±Inf (overflow) or 0 (underflow); only that rare
// case still allocates, inside strconv.
func ParseFloat(b []byte) (f float64, ok bool) {
	if f, ok := parseDecimal(b); ok {
		return f, true
	}
	if !floatSyntax(b) {
		return 0, false
	}
	f, _ = strconv.ParseFloat(metric.UnsafeString(b), 64)
	return f, true
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// parseDecimal is the fast path for the common "[+-]digits[.digits]" token
// of at most 15 digits. The mantissa (below 2^53) and the power of ten are
// then exact, so one IEEE division gives the correctly rounded result, the
// same as strconv's. ok is false for anything else, which then takes the
// slow path.
func parseDecimal(b []byte) (float64, bool) {
	f, n, ok := DecimalUntil(b, 0)
	return f, ok && n == len(b)
}

// DecimalUntil parses the "[+-]digits[.digits]" token (at most 15 digits)
// that starts b and ends at the first stop byte or at the end of b. It
// returns the value, the token's length and true; false if the token is
// anything else (then ParseFloat decides). The value is the one
// strconv.ParseFloat gives the token. A stop of 0 means: the token is all of
// b (NUL is then not a delimiter but an error like any other byte).
func DecimalUntil(b []byte, stop byte) (f float64, n int, ok bool) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i = 1
	}
	var mant uint64
	nd, frac := 0, -1 // digits; digits after the '.', -1 before it
loop:
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case '0' <= c && c <= '9':
			mant = mant*10 + uint64(c-'0')
			nd++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		case c == stop && stop != 0:
			break loop
		default:
			return 0, 0, false
		}
		if nd > 15 {
			return 0, 0, false
		}
	}
	if nd == 0 {
		return 0, 0, false
	}
	f = float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, i, true
}

// floatSyntax reports whether strconv.ParseFloat accepts s (possibly with a
// range error). It follows strconv's special and readFloat: decimal and
// hexadecimal literals with '_' separators as in Go source, "inf",
// "infinity" (signed or not) and "nan" (unsigned), in any case.
func floatSyntax(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	i := 0
	switch s[0] {
	case '+', '-':
		i = 1
		fallthrough
	case 'i', 'I':
		n := prefixFold(s[i:], "infinity")
		if 3 < n && n < 8 {
			n = 3
		}
		if n == 3 || n == 8 {
			return i+n == len(s)
		}
	case 'n', 'N':
		if prefixFold(s, "nan") == 3 {
			return len(s) == 3
		}
	}
	i = 0
	if s[0] == '+' || s[0] == '-' {
		i = 1
	}
	hex := false
	if i+2 < len(s) && s[i] == '0' && lower(s[i+1]) == 'x' {
		hex = true
		i += 2
	}
	underscores, sawdot, sawdigits := false, false, false
loop:
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '_':
			underscores = true
		case c == '.':
			if sawdot {
				break loop
			}
			sawdot = true
		case '0' <= c && c <= '9', hex && 'a' <= lower(c) && lower(c) <= 'f':
			sawdigits = true
		default:
			break loop
		}
	}
	if !sawdigits {
		return false
	}
	expChar := byte('e')
	if hex {
		expChar = 'p'
	}
	if i < len(s) && lower(s[i]) == expChar {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for ; i < len(s) && ('0' <= s[i] && s[i] <= '9' || s[i] == '_'); i++ {
			if s[i] == '_' {
				underscores = true
			}
		}
	} else if hex {
		return false // a hexadecimal mantissa needs a 'p' exponent
	}
	return i == len(s) && (!underscores || underscoreOK(s))
}

func lower(c byte) byte { return c | ('x' - 'X') }

// prefixFold returns the length of the common prefix of s and the lower-case
// word, ignoring the case of s.
func prefixFold(s []byte, word string) int {
	n := min(len(word), len(s))
	for i := range n {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return i
		}
	}
	return n
}

// underscoreOK reports whether the '_' in s only separate digits (or follow
// a base prefix), as strconv requires.
func underscoreOK(s []byte) bool {
	saw := byte('^') // ^ start, 0 digit or base prefix, _ underscore, ! other
	if len(s) >= 1 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	i := 0
	hex := false
	if len(s) >= 2 && s[0] == '0' && (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x') {
		i = 2
		saw = '0'
		hex = lower(s[1]) == 'x'
	}
	for ; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' || hex && 'a' <= lower(c) && lower(c) <= 'f' {
			saw = '0'
			continue
		}
		if c == '_' {
			if saw != '0' {
				return false
			}
			saw = '_'
			continue
		}
		if saw == '_' {
			return false
		}
		saw = '!'
	}
	return saw != '_'
}
