package statsdagg

import (
	"math"
	"math/big"
	"strconv"
)

// jsNumber returns the text JavaScript's Number#toString gives f: the
// shortest digits that round-trip, plain notation for decimal exponents from
// -7 to 20, exponent notation ("1e-7", "1.5e+21") outside, "NaN",
// "Infinity", "-Infinity", and "0" for negative zero.
func jsNumber(f float64) string {
	return string(appendJSNumber(nil, f))
}

// appendJSNumber appends jsNumber(f) to dst.
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case f != f:
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	case f == 0:
		return append(dst, '0')
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	// 'e' with precision -1: the shortest digits, as d.ddde±XX.
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	var digits [24]byte
	k := 0
	i := 0
	for ; e[i] != 'e'; i++ {
		if e[i] != '.' {
			digits[k] = e[i]
			k++
		}
	}
	exp, _ := strconv.Atoi(string(e[i+1:]))
	n := exp + 1 // position of the decimal point, as in ECMA-262 Number::toString
	ds := digits[:k]
	switch {
	case k <= n && n <= 21:
		dst = append(dst, ds...)
		for j := 0; j < n-k; j++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, ds[:n]...)
		dst = append(dst, '.')
		dst = append(dst, ds[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for j := 0; j < -n; j++ {
			dst = append(dst, '0')
		}
		dst = append(dst, ds...)
	default:
		dst = append(dst, ds[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, ds[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// isJSSpace reports whether r is JavaScript white space or a line terminator
// (what String#trim removes, what Number() ignores around a number and what
// the regular expression \s matches).
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// jsTrim removes JavaScript white space at both ends of s, as String#trim.
func jsTrim(s string) string {
	for len(s) > 0 {
		r, size := decodeRune(s)
		if !isJSSpace(r) {
			break
		}
		s = s[size:]
	}
	for len(s) > 0 {
		r, size := decodeLastRune(s)
		if !isJSSpace(r) {
			break
		}
		s = s[:len(s)-size]
	}
	return s
}

// jsToNumber converts s as JavaScript's Number(s) does (the
// StringNumericLiteral grammar: surrounding white space, an empty string is 0,
// optional sign, decimal with optional fraction and exponent, "Infinity",
// unsigned 0x/0o/0b integers). ok is false where JavaScript gives NaN.
func jsToNumber(s string) (f float64, ok bool) {
	if len(s) > 0 && (s[0] > ' ' && s[0] < 0x80) && (s[len(s)-1] > ' ' && s[len(s)-1] < 0x80) {
		// Fast path: no white space to trim.
	} else {
		s = jsTrim(s)
	}
	if s == "" {
		return 0, true
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			for i := 2; i < len(s); i++ {
				if digitVal(s[i]) >= base {
					return 0, false
				}
			}
			if len(s) <= 15 {
				u, err := strconv.ParseUint(s[2:], base, 64)
				if err == nil && u < 1<<53 {
					return float64(u), true
				}
			}
			var z big.Int
			z.SetString(s[2:], base)
			f, _ := new(big.Float).SetInt(&z).Float64()
			return f, true
		}
	}
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	if body == "Infinity" {
		if s[0] == '-' {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	}
	// StrUnsignedDecimalLiteral: digits [. digits] [e sign digits], or . digits [...]
	i, intDigits, fracDigits := 0, 0, 0
	for i < len(body) && body[i] >= '0' && body[i] <= '9' {
		i++
		intDigits++
	}
	if i < len(body) && body[i] == '.' {
		i++
		for i < len(body) && body[i] >= '0' && body[i] <= '9' {
			i++
			fracDigits++
		}
	}
	if intDigits+fracDigits == 0 {
		return 0, false
	}
	if i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		i++
		if i < len(body) && (body[i] == '+' || body[i] == '-') {
			i++
		}
		expDigits := 0
		for i < len(body) && body[i] >= '0' && body[i] <= '9' {
			i++
			expDigits++
		}
		if expDigits == 0 {
			return 0, false
		}
	}
	if i != len(body) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Out of range: ParseFloat returns ±Inf or ±0 as JavaScript does.
		if ne, isNum := err.(*strconv.NumError); !isNum || ne.Err != strconv.ErrRange {
			return 0, false
		}
	}
	return f, true
}

func digitVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// jsRound is Math.round: halves round towards +Infinity.
func jsRound(x float64) float64 {
	if x != x || math.IsInf(x, 0) {
		return x
	}
	f := math.Floor(x)
	if x-f >= 0.5 {
		return f + 1
	}
	return f
}
