package num

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The tables testdata/carbon-float/gen.py made with Debian's python3 (see
// the README there).
var carbonFloatDir = filepath.Join("..", "..", "..", "..", "testdata", "carbon-float")

// FloatRow is one row of table.tsv.
type floatRow struct {
	in        []byte
	accepted  bool
	bits      uint64 // of float()'s result, when accepted
	keep      string // "1", "0", "-"
	valueLine string // carbon's reading of "a.b <in> 1700000000"
	timeLine  string // and of "a.b 1 <in>"
	ws        bool   // in holds a character str.split() splits on
	text      string
}

// unescape reverses gen.py's escape: "\\" is '\', "\xHH" a byte.
func unescape(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b = append(b, '\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			x, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return nil, err
			}
			b = append(b, byte(x))
			i += 3
		default:
			return nil, fmt.Errorf("bad escape at %d in %q", i, s)
		}
	}
	return b, nil
}

// dataLines returns the lines of a generated .tsv after its comments and
// its column header, which must be header.
func dataLines(tb testing.TB, name, header string) [][]string {
	tb.Helper()
	f, err := os.Open(filepath.Join(carbonFloatDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var rows [][]string
	sawHeader := false
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
		case !sawHeader:
			if l != header {
				tb.Fatalf("%s: columns %q, want %q", name, l, header)
			}
			sawHeader = true
		default:
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return rows
}

// FloatTable reads table.tsv.
func floatTable(tb testing.TB) []floatRow {
	tb.Helper()
	var rows []floatRow
	for _, c := range dataLines(tb, "table.tsv", "input\taccepted\tbits\trepr\tkeep\tvalue_line\ttime_line\tws\ttext") {
		if len(c) != 9 {
			tb.Fatalf("table.tsv: %d columns in %q", len(c), c)
		}
		in, err := unescape(c[0])
		if err != nil {
			tb.Fatal(err)
		}
		r := floatRow{in: in, accepted: c[1] == "1", keep: c[4], valueLine: c[5], timeLine: c[6], ws: c[7] == "1", text: c[8]}
		if r.accepted {
			if r.bits, err = strconv.ParseUint(c[2], 16, 64); err != nil {
				tb.Fatal(err)
			}
		}
		rows = append(rows, r)
	}
	if len(rows) < 150 {
		tb.Fatalf("table.tsv: %d rows, want at least 150", len(rows))
	}
	return rows
}

// TestPyFloatTable: PyFloat accepts exactly what Debian's python3 float()
// accepts, with the same float64 bits (NaN's included).
func TestPyFloatTable(t *testing.T) {
	for _, r := range floatTable(t) {
		f, ok := PyFloat(r.in)
		if ok != r.accepted {
			t.Errorf("PyFloat(%q) [%s] ok = %v, float() says %v", r.in, r.text, ok, r.accepted)
			continue
		}
		if ok && math.Float64bits(f) != r.bits {
			t.Errorf("PyFloat(%q) [%s] = %v (%016x), float() says %v (%016x)", r.in, r.text, f, math.Float64bits(f), math.Float64frombits(r.bits), r.bits)
		}
	}
}

// unicodeClasses reads unicode.tsv: the digit value of each non-ASCII
// decimal digit, and the set of non-ASCII whitespace.
func unicodeClasses(tb testing.TB) (digits map[rune]int, spaces map[rune]bool) {
	tb.Helper()
	digits, spaces = map[rune]int{}, map[rune]bool{}
	for _, c := range dataLines(tb, "unicode.tsv", "codepoint\tclass\tdigit") {
		cp, err := strconv.ParseUint(c[0], 16, 32)
		if err != nil || len(c) != 3 {
			tb.Fatalf("unicode.tsv: %q", c)
		}
		switch c[1] {
		case "digit":
			d, err := strconv.Atoi(c[2])
			if err != nil {
				tb.Fatal(err)
			}
			digits[rune(cp)] = d
		case "space":
			spaces[rune(cp)] = true
		default:
			tb.Fatalf("unicode.tsv: %q", c)
		}
	}
	if len(digits) < 600 || len(spaces) < 10 {
		tb.Fatalf("unicode.tsv: %d digits, %d spaces", len(digits), len(spaces))
	}
	return digits, spaces
}

// TestPyFloatUnicode checks every code point above U+007F, alone and
// after "1", against what float() did with it (unicode.tsv).
func TestPyFloatUnicode(t *testing.T) {
	digits, spaces := unicodeClasses(t)
	var b []byte
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if 0xd800 <= r && r <= 0xdfff {
			continue
		}
		d, isDigit := digits[r]
		if !isDigit {
			d = -1
		}
		if got := PyDigit(r); got != d {
			t.Fatalf("PyDigit(%U) = %d, want %d", r, got, d)
		}
		if got := PySpace(r); got != spaces[r] {
			t.Fatalf("PySpace(%U) = %v, want %v", r, got, spaces[r])
		}
		b = utf8.AppendRune(b[:0], r)
		f, ok := PyFloat(b)
		if ok != isDigit || ok && f != float64(d) {
			t.Fatalf("PyFloat(%U) = %v, %v; want digit %d", r, f, ok, d)
		}
		b = utf8.AppendRune(append(b[:0], '1'), r)
		f, ok = PyFloat(b)
		want := 1.0
		if isDigit {
			want = float64(10 + d)
		}
		if ok != (isDigit || spaces[r]) || ok && f != want {
			t.Fatalf("PyFloat(1%U) = %v, %v", r, f, ok)
		}
	}
}

// TestPyStart: float() refuses every token that starts with a byte outside
// pyStart, whatever follows.
func TestPyStart(t *testing.T) {
	loadRef(t)
	rows := floatTable(t)
	for c := range 256 {
		if pyStart.Has(byte(c)) {
			continue
		}
		for _, r := range rows {
			for _, b := range [][]byte{append([]byte{byte(c)}, r.in...), {byte(c)}} {
				if _, err := refPyFloat(b); err == nil {
					t.Fatalf("float() reads %q, which starts outside pyStart", b)
				}
				if _, ok := PyFloat(b); ok {
					t.Fatalf("PyFloat(%q) ok", b)
				}
			}
		}
	}
}

// TestPyFloatNoAlloc: no allocation for a refused token, however long, nor
// for an accepted one in range, but one of more than 64 bytes with Unicode
// digits or '_' (its ASCII copy).
func TestPyFloatNoAlloc(t *testing.T) {
	tokens := []string{
		"abc", "twelve", "1.2.3", "", "0x1p3", "infx", "12.5", "-1.25e3", "1_000", "nan", "-Infinity",
		"\u0661\u0662\u0663.\u0664", "1_000.000_1e1_0", "\u00a0-1.5e3\u00a0", "1\xff",
		"\u0661_" + strings.Repeat("\u0661", 30), strings.Repeat("1_", 31) + "1", strings.Repeat("9", 300),
		strings.Repeat("1_", 40) + "_", strings.Repeat("\u0661", 60) + "x", strings.Repeat("\u0661", 60) + "_",
	}
	for _, r := range floatTable(t) {
		if !r.accepted {
			tokens = append(tokens, string(r.in))
		}
	}
	for _, s := range tokens {
		b := []byte(s)
		if n := testing.AllocsPerRun(100, func() { PyFloat(b) }); n != 0 {
			t.Errorf("PyFloat(%q): %v allocs, want 0", s, n)
		}
	}
	long := []byte(strings.Repeat("1_", 32) + "1")
	if f, ok := PyFloat(long); !ok || f != 111111111111111111111111111111111 {
		t.Errorf("PyFloat(%q) = %v, %v", long, f, ok)
	}
}

// The reference: CPython 3.11's float(str), step by step, on the tables.
var (
	refOnce    sync.Once
	refDigits  map[rune]int
	refSpaces  map[rune]bool
	refWord    = regexp.MustCompile(`^[+-]?(?i:inf|infinity|nan)$`)
	refDecimal = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
	errRefused = errors.New("float() refuses it")
)

// refPyFloat is float(b.decode('utf-8')) written after CPython's code, in
// the slowest, plainest way: _PyUnicode_TransformDecimalAndSpaceToASCII,
// _Py_string_to_number_with_underscores, float_from_string_inner's strip,
// then _Py_parse_inf_or_nan or _Py_dg_strtod (whose value strconv, also
// correctly rounded, gives).
func refPyFloat(b []byte) (float64, error) {
	if !utf8.Valid(b) {
		return 0, errRefused
	}
	var t []byte
	for _, r := range string(b) {
		switch d, isDigit := refDigits[r]; {
		case r < 0x7f:
			t = append(t, byte(r))
		case refSpaces[r]:
			t = append(t, ' ')
		case isDigit:
			t = append(t, byte('0'+d))
		default:
			return 0, errRefused
		}
	}
	if bytes.IndexByte(t, 0) >= 0 || bytes.IndexByte(t, 0x7f) >= 0 {
		return 0, errRefused
	}
	var u []byte
	for i, c := range t {
		if c != '_' {
			u = append(u, c)
			continue
		}
		if i == 0 || !isDigit(t[i-1]) || i+1 == len(t) || !isDigit(t[i+1]) {
			return 0, errRefused
		}
	}
	s := strings.Trim(string(u), " \t\n\v\f\r")
	switch {
	case refWord.MatchString(s):
		neg := s[0] == '-'
		switch strings.ToLower(strings.TrimLeft(s, "+-")) {
		case "nan":
			if neg {
				return math.Float64frombits(pyNegNaN), nil
			}
			return math.Float64frombits(pyNaN), nil
		default:
			if neg {
				return math.Inf(-1), nil
			}
			return math.Inf(1), nil
		}
	case refDecimal.MatchString(s):
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errorsIsRange(err) {
			return 0, err
		}
		return f, nil
	}
	return 0, errRefused
}

func errorsIsRange(err error) bool { return errors.Is(err, strconv.ErrRange) }

// TestRefPyFloatTable: the reference itself agrees with the table, so the
// fuzzer's verdicts are the table's semantics.
func TestRefPyFloatTable(t *testing.T) {
	loadRef(t)
	for _, r := range floatTable(t) {
		f, err := refPyFloat(r.in)
		if (err == nil) != r.accepted || err == nil && math.Float64bits(f) != r.bits {
			t.Errorf("refPyFloat(%q) [%s] = %v, %v; table: %v %016x", r.in, r.text, f, err, r.accepted, r.bits)
		}
	}
}

func loadRef(tb testing.TB) {
	refOnce.Do(func() { refDigits, refSpaces = unicodeClasses(tb) })
	if refDigits == nil {
		tb.Fatal("unicode.tsv did not load")
	}
}

// FuzzPyFloat: PyFloat agrees with the reference (bits included), and
// never accepts what float() never does whatever strconv says: hexadecimal
// ("0x1p3": no 'x' or 'p' in a number float() reads), "nan(...)", NUL,
// bytes that are not UTF-8.
func FuzzPyFloat(f *testing.F) {
	for _, r := range floatTable(f) {
		if len(r.in) <= 64 { // the long ones (TestPyFloatTable has them) make minimizing slow
			f.Add(r.in)
		}
	}
	for _, s := range floatCases {
		f.Add([]byte(s))
	}
	loadRef(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := PyFloat(b)
		want, err := refPyFloat(b)
		if ok != (err == nil) {
			t.Fatalf("PyFloat(%q) ok = %v, the reference says %v", b, ok, err)
		}
		if ok && math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("PyFloat(%q) = %v (%016x), the reference says %v (%016x)", b, got, math.Float64bits(got), want, math.Float64bits(want))
		}
		if !ok {
			return
		}
		if bytes.ContainsAny(b, "xXpP(\x00") || !utf8.Valid(b) {
			t.Fatalf("PyFloat accepted %q, which float() never reads", b)
		}
	})
}
