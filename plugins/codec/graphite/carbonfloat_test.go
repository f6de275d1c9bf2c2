package graphite

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
)

// carbonRow is one row of testdata/carbon-float/table.tsv (made by
// gen.py there with Debian's python3 and carbon 1.1.7's own receiver).
type carbonRow struct {
	in                  []byte
	accepted            bool   // float() reads it
	bits                uint64 // what float() returned
	keep                string // carbon stores "a.b <in> 1700000000": "1", "0", "-"
	valueLine, timeLine string // carbon's reading of "a.b <in> 1700000000" and "a.b 1 <in>"
	ws                  bool   // in holds whitespace carbon's split() splits on
}

func carbonTable(tb testing.TB) []carbonRow {
	tb.Helper()
	f, err := os.Open(filepath.Join("..", "..", "..", "testdata", "carbon-float", "table.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var rows []carbonRow
	header := false
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		if !header {
			if l != "input\taccepted\tbits\trepr\tkeep\tvalue_line\ttime_line\tws\ttext" {
				tb.Fatalf("table.tsv columns: %q", l)
			}
			header = true
			continue
		}
		c := strings.Split(l, "\t")
		if len(c) != 9 {
			tb.Fatalf("table.tsv: %q", l)
		}
		r := carbonRow{in: unescapeTSV(tb, c[0]), accepted: c[1] == "1", keep: c[4], valueLine: c[5], timeLine: c[6], ws: c[7] == "1"}
		if r.accepted {
			if r.bits, err = strconv.ParseUint(c[2], 16, 64); err != nil {
				tb.Fatal(err)
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(rows) < 150 {
		tb.Fatalf("table.tsv: %d rows", len(rows))
	}
	return rows
}

// unescapeTSV reverses gen.py's escape: "\\" is '\', "\xHH" a byte.
func unescapeTSV(tb testing.TB, s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '\\':
			b = append(b, s[i])
		case strings.HasPrefix(s[i:], `\\`):
			b = append(b, '\\')
			i++
		case strings.HasPrefix(s[i:], `\x`) && i+4 <= len(s):
			x, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				tb.Fatal(err)
			}
			b = append(b, byte(x))
			i += 3
		default:
			tb.Fatalf("bad escape in %q", s)
		}
	}
	return b
}

// carbonLines are the two lines a row's token is tried in: as the value
// and as the timestamp.
func carbonLines(in []byte) (value, ts []byte) {
	value = append(append([]byte("a.b "), in...), " 1700000000"...)
	ts = append([]byte("a.b 1 "), in...)
	return value, ts
}

// TestCarbonFloatTable: for each token of the table, Parse keeps the line
// exactly when carbon stores its datapoint, with float()'s value to the bit;
// a NaN value is ErrNaN (carbon filters it), any other value float()
// refuses is ErrValue, a timestamp carbon does not store (refused, or ±Inf
// and NaN, on which its int() raises) is ErrTimestamp.
//
// A token with whitespace other than ' ' and '\t' ("1\r", "1\u00a0") is one
// field to Parse and read whole as float() reads it (it strips
// " \t\n\v\f\r" and Unicode whitespace around a number), where carbon's
// split() cuts it first: there Parse follows the accepted column, not
// carbon's line (which differs for \x1c..\x1f, whitespace to split() but
// not to float()).
func TestCarbonFloatTable(t *testing.T) {
	for _, r := range carbonTable(t) {
		if bytes.ContainsAny(r.in, " \t\n") {
			continue // more fields for Parse too
		}
		vline, tline := carbonLines(r.in)
		var m metric.Metric
		err := Parse(vline, &m)
		wantValue := r.valueLine
		if r.ws {
			// the token whole, through float() and the NaN filter
			switch {
			case !r.accepted:
				wantValue = "invalid"
			case math.IsNaN(math.Float64frombits(r.bits)):
				wantValue = "nan-dropped"
			default:
				wantValue = "stored"
			}
		} else if (err == nil) != (r.keep == "1") {
			t.Errorf("Parse(%q) = %v; carbon keeps the datapoint: %s", vline, err, r.keep)
		}
		switch wantValue {
		case "stored":
			if err != nil {
				t.Errorf("Parse(%q) = %v; carbon stores it", vline, err)
			} else if got := math.Float64bits(m.Value()); got != r.bits || !bytes.Equal(m.ValueToken(), r.in) {
				t.Errorf("Parse(%q): value %v (%016x) token %q; float() says %v (%016x)", vline, m.Value(), got, m.ValueToken(), math.Float64frombits(r.bits), r.bits)
			}
		case "nan-dropped":
			if !errors.Is(err, ErrNaN) {
				t.Errorf("Parse(%q) = %v, want ErrNaN: carbon drops a NaN", vline, err)
			}
		case "invalid", "connection-dropped":
			want := ErrValue
			if len(r.in) == 0 {
				want = ErrFields
			}
			if !errors.Is(err, want) {
				t.Errorf("Parse(%q) = %v, want %v: carbon %s", vline, err, want, r.valueLine)
			}
		default:
			t.Fatalf("table.tsv: value_line %q", r.valueLine)
		}

		err = Parse(tline, &m)
		stored := r.timeLine == "stored"
		if r.ws {
			f := math.Float64frombits(r.bits)
			stored = r.accepted && !math.IsNaN(f) && !math.IsInf(f, 0)
		}
		switch {
		case stored && err != nil:
			t.Errorf("Parse(%q) = %v; carbon stores it", tline, err)
		case !stored && !errors.Is(err, ErrTimestamp) && !errors.Is(err, ErrFields):
			// ErrFields: no token left once the line's end is trimmed ("", "\r")
			t.Errorf("Parse(%q) = %v, want ErrTimestamp: carbon %s", tline, err, r.timeLine)
		}
	}
}

// CarbonSeeds are the table's tokens as values and as timestamps, for the
// fuzzers (exported for the package's external tests).
func CarbonSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, r := range carbonTable(tb) {
		v, ts := carbonLines(r.in)
		seeds = append(seeds, v, ts)
	}
	return seeds
}
