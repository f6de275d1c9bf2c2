package graphite

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
)

// checkCommon fails if parseCommon takes a line that the general parser
// rejects, or reads it differently; it reports whether parseCommon took it.
func checkCommon(t *testing.T, line []byte) bool {
	t.Helper()
	var fast, slow metric.Metric
	if !parseCommon(line, &fast) {
		return false
	}
	if err := parseGeneral(line, &slow); err != nil {
		t.Fatalf("parseCommon took %q, the general parser says %v", line, err)
	}
	fv, sv := fast.Value(), slow.Value()
	if !reflect.DeepEqual(fast, slow) && !(math.IsNaN(fv) && math.IsNaN(sv)) {
		t.Fatalf("%q: parseCommon %+v, general %+v", line, fast, slow)
	}
	return true
}

var commonSeeds = []string{
	"a.b.c 1 2",
	"bench.metric.path.12345 12.5 1700000000",
	"x;dc=eu;host=a -1.25 -17",
	"x +5. +1",
	"x .5 1",
	"x 1.2.3 4",
	"x 1  4",
	"x\t1 4",
	"x 1\t4",
	" x 1 4",
	"x 1 4\r",
	"x 1 4 ",
	"x 1234567890123456 4",
	"x 123456789012345 4",
	"x - 4",
	"x 1 -",
	"x 1 +",
	"x . 4",
	"x 1 4 5",
	"x  1 4",
	"x 1e3 4",
	"x NaN 4",
	"x 1 1.5",
	"; 1 2",
	"x 1 2;",
}

func TestParseCommonAgreesWithGeneral(t *testing.T) {
	taken := 0
	for _, s := range commonSeeds {
		if checkCommon(t, []byte(s)) {
			taken++
		}
	}
	if taken < 5 {
		t.Fatalf("parseCommon took only %d of the seed lines", taken)
	}
	// random lines over the bytes that matter to the grammar
	const alphabet = "ab.;= \t\r-+0123456789.eEx"
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 0, 40)
	taken = 0
	for range 300000 {
		b = b[:0]
		// mostly well-formed shapes, with random damage
		b = append(b, "p.q"...)
		for range r.IntN(4) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		b = append(b, ' ')
		for range 1 + r.IntN(8) {
			b = append(b, "0123456789.-+e "[r.IntN(15)])
		}
		b = append(b, ' ')
		for range 1 + r.IntN(6) {
			b = append(b, "0123456789-+. \r"[r.IntN(15)])
		}
		if checkCommon(t, b) {
			taken++
		}
	}
	if taken < 1000 {
		t.Fatalf("parseCommon took only %d random lines: the test does not exercise it", taken)
	}
	// long paths and timestamps, so that the 8-byte digit check meets a
	// non-digit at every offset of a word and in the tail
	taken = 0
	for range 300000 {
		b = b[:0]
		for range 1 + r.IntN(40) {
			c := byte('a' + r.IntN(26))
			if r.IntN(12) == 0 {
				c = ";=\t. \r9"[r.IntN(7)]
			}
			b = append(b, c)
		}
		b = append(b, ' ')
		b = append(b, "12.5"[:1+r.IntN(4)]...)
		b = append(b, ' ')
		if r.IntN(4) == 0 {
			b = append(b, "-+"[r.IntN(2)])
		}
		for range 1 + r.IntN(20) {
			c := byte('0' + r.IntN(10))
			if r.IntN(30) == 0 {
				c = "/:. a\xff\x00"[r.IntN(7)]
			}
			b = append(b, c)
		}
		if checkCommon(t, b) {
			taken++
		}
	}
	if taken < 30000 {
		t.Fatalf("parseCommon took only %d long random lines: the test does not exercise it", taken)
	}
}

// TestParseCommonTakes: the fast path takes the common shapes, whatever the
// path's and the timestamp's length (the 8-byte digit check must not send
// them to the general parser), and finds the name's end.
func TestParseCommonTakes(t *testing.T) {
	for pl := 1; pl <= 40; pl++ {
		for tl := 1; tl <= 20; tl++ {
			path := strings.Repeat("p", pl)
			for semi := -1; semi < pl; semi++ {
				p := []byte(path)
				if semi >= 1 {
					p[semi] = ';'
				}
				line := string(p) + " 12.5 " + strings.Repeat("7", tl)
				var m metric.Metric
				if !parseCommon([]byte(line), &m) {
					t.Fatalf("parseCommon did not take %q", line)
				}
				want := pl
				if semi >= 1 {
					want = semi
				}
				if got := len(m.Name()); got != want || string(m.Path()) != string(p) {
					t.Fatalf("%q: name %q path %q", line, m.Name(), m.Path())
				}
			}
		}
	}
}

// FuzzParseCommon: for every line parseCommon takes, the general parser
// gives the same metric.
func FuzzParseCommon(f *testing.F) {
	for _, s := range commonSeeds {
		f.Add([]byte(s))
	}
	for _, l := range CarbonSeeds(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkCommon(t, line) })
}

// TestParseCommonLongTimestamp: parseCommon takes an integer timestamp of
// up to maxTimeDigits bytes, always finite; a longer one goes the general
// way, which refuses it when float() makes it +Inf (carbon's int() raises).
func TestParseCommonLongTimestamp(t *testing.T) {
	var m metric.Metric
	for _, tc := range []struct {
		ts           string
		common, good bool
	}{
		{strings.Repeat("9", maxTimeDigits), true, true},
		{"-" + strings.Repeat("9", maxTimeDigits-1), true, true},
		{"1" + strings.Repeat("0", maxTimeDigits), false, true},    // 1e308
		{"1" + strings.Repeat("0", maxTimeDigits+1), false, false}, // 1e309: +Inf
		{strings.Repeat("0", 500) + "1700000000", false, true},
	} {
		line := []byte("p 1 " + tc.ts)
		if got := checkCommon(t, line); got != tc.common {
			t.Errorf("parseCommon took %.20q…: %v, want %v", line, got, tc.common)
		}
		if err := Parse(line, &m); (err == nil) != tc.good {
			t.Errorf("Parse(%.20q…) = %v", line, err)
		}
	}
}
