package graphite_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// cleanseCases: what carbon-c-relay 3.7.3 makes of each line (checked
// against the real relay by the inputs.graphite differential test, whose
// corpus holds these lines).
var cleanseCases = []struct {
	name, in, want string
	err            error // nil: kept as want
}{
	{"plain", "a.b.c 1 2", "a.b.c 1 2", nil},
	{"double dots", "a..b...c 1 2", "a.b.c 1 2", nil},
	{"leading separators", " \t..a.b 1 2", "a.b 1 2", nil},
	{"trailing dot of the name", "a.b. 1 2", "a.b 1 2", nil},
	{"dots before the blank", "a.b.. 1 2", "a.b 1 2", nil},
	{"tabs and runs of blanks", "a.b\t\t1  \t 2", "a.b 1 2", nil},
	{"trailing blanks kept once", "a.b 1 2  \t", "a.b 1 2 ", nil},
	{"dots in the value", "a 1..5 2", "a 1.5 2", nil},
	{"dot after the name end", "a .1 2", "a 1 2", nil},
	{"irregular bytes", "a/b*c(d) 1 2", "a_b_c_d_ 1 2", nil},
	{"allowed by default", "a-b_c:d#e 1 2", "a-b_c:d#e 1 2", nil},
	{"utf-8 is two bytes", "caf\xc3\xa9 1 2", "caf__ 1 2", nil},
	{"nul in the name", "a\x00b 1 2", "a_b 1 2", nil},
	{"nul in the value", "a 1\x002 3", "a 1_2 3", nil},
	{"value bytes kept", "a x/y*z 2", "a x/y*z 2", nil},
	{"tags kept", "a.b;k=v/w;x=y 1 2", "a.b;k=v/w;x=y 1 2", nil},
	{"double dots in tags", "a;k=v..w 1 2", "a;k=v.w 1 2", nil},
	{"dot after ';'", "a;.k=v 1 2", "a;k=v 1 2", nil},
	{"blank after ';'", "a; 1 2", "a;1 2", nil},
	{"dot before ';' kept", "a.;k=v 1 2", "a.;k=v 1 2", nil},
	{"';' in the value", "a 1;.2 3", "a 1;2 3", nil},
	{"tags without value", "a;b", "a;b", nil},
	{"leading ';'", ";k=v 1 2", ";k=v 1 2", nil},
	{"two fields", "a.b 1", "a.b 1", nil},
	{"name and blank", "a.b ", "a.b ", nil},
	{"four fields", "a 1 2 3", "a 1 2 3", nil},
	{"no blank", "a.b.c", "a.b.c", graphite.ErrNoSeparator},
	{"only separators", " \t. .", "", graphite.ErrCleansedEmpty},
	{"empty", "", "", graphite.ErrCleansedEmpty},
}

func TestCleanse(t *testing.T) {
	c := graphite.NewCleanser(graphite.DefaultAllowedChars, 0, 0)
	for _, tc := range cleanseCases {
		t.Run(tc.name, func(t *testing.T) {
			line := []byte(tc.in)
			got, err := c.Cleanse(line)
			if string(got) != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("Cleanse(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
			if len(got) > 0 && &got[0] != &line[0] {
				t.Fatal("the cleansed line is not in place")
			}
		})
	}
}

// TestCleanseOptions: allowed characters (';' among them turns tags off)
// and the two length limits, at their edges.
func TestCleanseOptions(t *testing.T) {
	for _, tc := range []struct {
		name              string
		allowed           string
		maxInput, maxName int
		in, want          string
		err               error
	}{
		{"no allowed chars", "", 0, 0, "a-b_c 1 2", "a_b_c 1 2", nil},
		{"allowed extra", "/*", 0, 0, "a/b*c-d 1 2", "a/b*c_d 1 2", nil},
		{"allowed utf-8 bytes", "\xc3\xa9", 0, 0, "caf\xc3\xa9 1 2", "caf\xc3\xa9 1 2", nil},
		{"nul never allowed", "\x00", 0, 0, "a\x00 1 2", "a_ 1 2", nil},
		{"';' allowed: no tags", ";=", 0, 0, "a;k=v 1 2", "a;k=v 1 2", nil},
		{"';' allowed: dots in the name rule", ";", 0, 0, "a;.b 1 2", "a;.b 1 2", nil},
		{"';' allowed: no blank", ";", 0, 0, "a;b", "a;b", graphite.ErrNoSeparator},
		{"tags: '=' kept after ';'", "", 0, 0, "a;k=v 1 2", "a;k=v 1 2", nil},
		// max input: the cleansed line plus '\n', counted as carbon-c-relay does
		{"input at the limit", "", 10, 0, "a.b 1 234", "a.b 1 234", nil},
		{"input over the limit", "", 10, 0, "a.b 1 2345", "a.b 1 2345", graphite.ErrInputTooLong},
		{"input limit after cleansing", "", 10, 0, "a..b  1   234", "a.b 1 234", nil},
		// max name: up to the blank, or to the ';' of the tags
		{"name at the limit", "", 0, 3, "abc 1 2", "abc 1 2", nil},
		{"name over the limit", "", 0, 3, "abcd 1 2", "abcd 1 2", graphite.ErrNameTooLong},
		{"name limit without tags", "", 0, 3, "abc;k=v 1 2", "abc;k=v 1 2", nil},
		{"name limit after cleansing", "", 0, 3, "a..b. 1 2", "a.b 1 2", nil},
		{"';' in the value moves the name end", "", 0, 3, "a 1;2 3", "a 1;2 3", nil},
		{"';' in the value, over", "", 0, 2, "a 1;2 3", "a 1;2 3", graphite.ErrNameTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := graphite.NewCleanser(tc.allowed, tc.maxInput, tc.maxName)
			got, err := c.Cleanse([]byte(tc.in))
			if string(got) != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("Cleanse(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

// TestCleanseErrorsSayTooLong: the length errors, and only they, report
// TooLong (inputs count them as lines too long).
func TestCleanseErrorsSayTooLong(t *testing.T) {
	for _, tc := range []struct {
		err  error
		long bool
	}{
		{graphite.ErrCleansedEmpty, false},
		{graphite.ErrNoSeparator, false},
		{graphite.ErrInputTooLong, true},
		{graphite.ErrNameTooLong, true},
	} {
		tl, ok := tc.err.(interface{ TooLong() bool })
		if !ok || tl.TooLong() != tc.long {
			t.Errorf("%v: TooLong = %v, want %v", tc.err, ok && tl.TooLong(), tc.long)
		}
	}
}

// reference is carbon-c-relay's cleansing as its dispatcher writes it: from
// the input into a separate buffer, by index. Cleanse works in place; the
// fuzz test checks the two agree.
func reference(in []byte, allowed string, maxInput, maxName int) ([]byte, bool) {
	tags := !strings.Contains(allowed, ";")
	out := make([]byte, 0, len(in))
	fs := -1
	isAllowed := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte(allowed, b) >= 0
	}
	for _, b := range in {
		switch {
		case b == ' ' || b == '\t' || b == '.':
			if len(out) == 0 {
				continue
			}
			if b == '\t' {
				b = ' '
			}
			if b == ' ' && fs < 0 {
				if out[len(out)-1] == '.' {
					out = out[:len(out)-1]
				}
				fs = len(out)
				out = append(out, ' ')
			} else if out[len(out)-1] != b && len(out)-1 != fs {
				out = append(out, b)
			}
		case tags && b == ';':
			tags = false
			fs = len(out)
			out = append(out, b)
		case b != 0 && (fs >= 0 || isAllowed(b)):
			out = append(out, b)
		default:
			out = append(out, '_')
		}
	}
	if maxInput <= 0 {
		maxInput = graphite.DefaultMaxInputLength
	}
	if maxName <= 0 {
		maxName = maxInput
	}
	ok := len(out) > 0 && fs >= 0 && len(out) <= maxInput-1 && fs <= maxName
	return out, ok
}

// FuzzCleanse: Cleanse never panics, agrees with the reference, never
// lengthens a line, and is idempotent (a cleansed line cleanses to itself,
// and is dropped again if it was), for the default options and for ';'
// allowed (no tags) with short limits.
func FuzzCleanse(f *testing.F) {
	for _, tc := range cleanseCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte("a.b;k=v..w 1..5 2\t"))
	f.Add([]byte(";;.;  ;. 1"))
	opts := []struct {
		allowed           string
		maxInput, maxName int
	}{
		{graphite.DefaultAllowedChars, 0, 0},
		{";/é", 24, 8},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// the caller splits lines at '\r' and '\n'
		in = bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, in)
		for _, o := range opts {
			c := graphite.NewCleanser(o.allowed, o.maxInput, o.maxName)
			wantOut, wantOK := reference(in, o.allowed, o.maxInput, o.maxName)
			line := bytes.Clone(in)
			out, err := c.Cleanse(line)
			if !bytes.Equal(out, wantOut) || (err == nil) != wantOK {
				t.Fatalf("%+v: Cleanse(%q) = %q, %v; reference %q, kept %v", o, in, out, err, wantOut, wantOK)
			}
			if len(out) > len(in) {
				t.Fatalf("Cleanse(%q) = %q: longer", in, out)
			}
			again, err2 := c.Cleanse(bytes.Clone(out))
			if !bytes.Equal(again, out) || err2 != err {
				t.Fatalf("%+v: Cleanse(%q) = %q, %v; again: %q, %v", o, in, out, err, again, err2)
			}
		}
	})
}

// BenchmarkCleanse cleanses and parses a line, as inputs.graphite does with
// cleanse = true; the line is restored each time (a copy the size of the
// line, not an allocation).
func BenchmarkCleanse(b *testing.B) {
	c := graphite.NewCleanser(graphite.DefaultAllowedChars, 0, 0)
	for _, bl := range []struct{ name, line string }{
		{"clean", "bench.metric.path.12345 12.5 1700000000"},
		{"tagged", "bench.metric.path.12345;dc=eu-west;host=web-12 12.5 1700000000"},
		{"dirty", " bench..metric/path.12345.\t12.5   1700000000"},
	} {
		b.Run(bl.name, func(b *testing.B) {
			src := []byte(bl.line)
			line := make([]byte, len(src))
			var m metric.Metric
			b.SetBytes(int64(len(src) + 1))
			b.ReportAllocs()
			for b.Loop() {
				copy(line, src)
				out, err := c.Cleanse(line)
				if err != nil {
					b.Fatal(err)
				}
				if err := graphite.Parse(out, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
