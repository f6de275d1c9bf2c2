package num

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// floatCases are tokens on the edges of strconv.ParseFloat's syntax.
var floatCases = []string{
	"0", "1", "-1", "+1", "1.5", ".5", "5.", "-.5", ".", "-", "+", "", " 1", "1 ",
	"1e3", "1E3", "1e+3", "1e-3", "1e", "1e+", "e1", "1.5e1_0", "1e5_",
	"1_000", "_1", "1_", "1__0", "1_.5", "1._5",
	"0x1p3", "0X1P-2", "0x_1p3", "0x1_p1", "0x1", "0x", "0xp1", "0x1.p1", "0x.8p1", "-0x1p1", "0x1.8p1", "0xg", "0b1", "0o7",
	"inf", "Inf", "-Inf", "+inf", "infinity", "INFINITY", "-infinity", "infin", "infx", "in",
	"nan", "NaN", "NAN", "+nan", "-nan", "nanx", "na",
	"-0", "+0", "0.000000000000001", "999999999999999", "9999999999999999", "123456789.012345", "0.1", "-0.3",
	"1e400", "-1e400", "1e-400", "1.2.3", "1,5", "abc", "user42", "42user", "\x00", "1\x00",
}

func TestParseFloat(t *testing.T) {
	for _, s := range floatCases {
		t.Run(strconv.Quote(s), func(t *testing.T) { checkParseFloat(t, []byte(s)) })
	}
}

func TestParseFloatNoAlloc(t *testing.T) {
	for _, s := range []string{"abc", "user42", "1.2.3", "", "0x1", "infx", "12.5"} {
		b := []byte(s)
		if n := testing.AllocsPerRun(100, func() { ParseFloat(b) }); n != 0 {
			t.Errorf("ParseFloat(%q): %v allocs, want 0", s, n)
		}
	}
}

// FuzzParseFloat checks that parseFloat agrees with strconv.ParseFloat.
func FuzzParseFloat(f *testing.F) {
	for _, s := range floatCases {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParseFloat)
}

func checkParseFloat(t *testing.T, b []byte) {
	want, err := strconv.ParseFloat(string(b), 64)
	wantOK := err == nil || errors.Is(err, strconv.ErrRange)
	got, ok := ParseFloat(b)
	if ok != wantOK {
		t.Fatalf("ParseFloat(%q) ok = %v, strconv says %v", b, ok, err)
	}
	if ok && math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
		t.Fatalf("ParseFloat(%q) = %v, want %v", b, got, want)
	}
}

// TestParseDecimalRandom checks the exact fast path against strconv on
// random decimals of up to 17 digits (past the 15-digit limit, so both
// paths run), with a random sign and '.' position.
func TestParseDecimalRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, 32)
	for range 200000 {
		b = appendRandomDecimal(b[:0], r, 17)
		checkParseFloat(t, b)
	}
}

// appendRandomDecimal appends "[+-]digits[.digits]" of 1..maxDigits digits,
// with a random sign and '.' position (possibly first or last, or none).
func appendRandomDecimal(b []byte, r *rand.Rand, maxDigits int) []byte {
	switch r.IntN(3) {
	case 0:
		b = append(b, '-')
	case 1:
		b = append(b, '+')
	}
	nd := 1 + r.IntN(maxDigits)
	dot := r.IntN(nd + 2) // nd+1: no dot
	for i := range nd {
		if i == dot {
			b = append(b, '.')
		}
		b = append(b, byte('0'+r.IntN(10)))
	}
	if dot == nd {
		b = append(b, '.')
	}
	return b
}

// TestDecimalUntil: the fast path takes every "[+-]digits[.digits]" token of
// 1..15 digits, with the value strconv gives it and the token's length when
// a stop byte and more text follow; it refuses 16 digits, a second '.', and
// a stop of 0 anywhere but at the end.
func TestDecimalUntil(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, 0, 40)
	for range 200000 {
		b = appendRandomDecimal(b[:0], r, 15)
		tok := len(b)
		want, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if f, n, ok := DecimalUntil(b, 0); !ok || n != tok || f != want || math.Signbit(f) != math.Signbit(want) {
			t.Fatalf("DecimalUntil(%q, 0) = %v, %d, %v; want %v, %d", b, f, n, ok, want, tok)
		}
		b = append(b, " 17"...)
		if f, n, ok := DecimalUntil(b, ' '); !ok || n != tok || f != want {
			t.Fatalf("DecimalUntil(%q, ' ') = %v, %d, %v; want %v, %d", b, f, n, ok, want, tok)
		}
		if _, _, ok := DecimalUntil(b, 0); ok {
			t.Fatalf("DecimalUntil(%q, 0) took a token followed by more text", b)
		}
	}
	for _, s := range []string{"1234567890123456", "1.2.3", "", "-", ".", "+.", "1e5", "1x"} {
		if _, _, ok := DecimalUntil([]byte(s), ' '); ok {
			t.Errorf("DecimalUntil(%q) took it", s)
		}
	}
}
