// Package codectest holds what the tests of the line codecs (graphite and
// statsd) share: a comparable view of a parsed metric, the seed files under
// testdata/, and the checks and benchmarks every codec goes through, each
// codec's test calling them with its own cases.
package codectest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
)

// Codec is a line codec under test.
type Codec struct {
	Parse func(line []byte, m *metric.Metric) error
	// Append writes m as a line of the codec (with its '\n').
	Append func(dst []byte, m *metric.Metric) []byte
	// Convert writes m as a line of the other codec: it must neither panic
	// nor race, whatever Parse kept.
	Convert func(dst []byte, m *metric.Metric) []byte
}

// Fields is everything a getter shows, in comparable form (numbers as
// strconv 'g' text, so NaN equals NaN).
type Fields struct {
	Name, Path, PathTags string
	Value, Num           string
	Type                 metric.Type
	RateToken, Rate      string
	Tags                 string
	HasTags              bool
	Ext                  string
	TimeToken            string
	Time                 int64
	Format               metric.Format
}

// Num is f as Fields shows numbers.
func Num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// FieldsOf returns what the getters of m show.
func FieldsOf(m *metric.Metric) Fields {
	return Fields{
		Name: string(m.Name()), Path: string(m.Path()), PathTags: string(m.PathTags()),
		Value: string(m.ValueToken()), Num: Num(m.Value()),
		Type:      m.Type(),
		RateToken: string(m.RateToken()), Rate: Num(m.Rate()),
		Tags: string(m.Tags()), HasTags: m.Tags() != nil,
		Ext:       string(m.Ext()),
		TimeToken: string(m.TimeToken()), Time: m.Time(),
		Format: m.Format(),
	}
}

// MustParse parses line or fails the test.
func MustParse(tb testing.TB, parse func([]byte, *metric.Metric) error, line string) metric.Metric {
	tb.Helper()
	var m metric.Metric
	if err := parse([]byte(line), &m); err != nil {
		tb.Fatalf("Parse(%q): %v", line, err)
	}
	return m
}

// ParseValid checks a line Parse takes: Parse shows the fields want, keeps
// the line as the raw form, and the metric appends to exactly the line, which
// parses back to the same fields. check, if not nil, checks more of the
// metric.
func ParseValid(t *testing.T, c Codec, line string, want Fields, check func(t *testing.T, m *metric.Metric)) {
	t.Helper()
	var m metric.Metric
	if err := c.Parse([]byte(line), &m); err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	if got := FieldsOf(&m); got != want {
		t.Errorf("Parse(%q)\n got %+v\nwant %+v", line, got, want)
	}
	if string(m.Raw()) != line || m.Modified() {
		t.Errorf("Raw = %q, Modified = %v; want the input, false", m.Raw(), m.Modified())
	}
	if check != nil {
		check(t, &m)
	}
	out := c.Append([]byte("prev\n"), &m)
	if w := "prev\n" + line + "\n"; string(out) != w {
		t.Errorf("Append = %q, want %q", out, w)
	}
	var again metric.Metric
	if err := c.Parse(out[5:len(out)-1], &again); err != nil {
		t.Fatalf("reparse %q: %v", out, err)
	}
	if got := FieldsOf(&again); got != want {
		t.Errorf("reparse fields\n got %+v\nwant %+v", got, want)
	}
}

// ParseInvalid checks that Parse refuses line with want.
func ParseInvalid(t *testing.T, c Codec, line string, want error) {
	t.Helper()
	var m metric.Metric
	if err := c.Parse([]byte(line), &m); !errors.Is(err, want) {
		t.Errorf("Parse(%q) = %v, want %v", line, err, want)
	}
}

// AppendModified checks that modify marks the metric parsed from line
// modified, that Append then renders want, and that this line parses again
// (an error tolerate accepts excepted).
func AppendModified(t *testing.T, c Codec, line string, modify func(m *metric.Metric), want string, tolerate func(err error, m *metric.Metric) bool) {
	t.Helper()
	m := MustParse(t, c.Parse, line)
	modify(&m)
	if !m.Modified() || m.Raw() != nil {
		t.Fatalf("metric not marked modified")
	}
	got := string(c.Append(nil, &m))
	if got != want {
		t.Errorf("Append = %q, want %q", got, want)
	}
	var again metric.Metric
	if err := c.Parse([]byte(got[:len(got)-1]), &again); err != nil && (tolerate == nil || !tolerate(err, &m)) {
		t.Errorf("rendered line %q does not parse: %v", got, err)
	}
}

// ConcurrentAppend: after the last processor, metrics are shared read-only
// by all outputs; appending them concurrently (in both formats) and reading
// their getters must be race-free. It parses lines, changes the path of the
// second to path, and wants Append to render want each time.
func ConcurrentAppend(t *testing.T, c Codec, lines []string, path, want string) {
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if err := c.Parse([]byte(l), &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	b[1].SetPath([]byte(path))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				var buf []byte
				for i := range b {
					buf = c.Append(buf, &b[i])
					_ = c.Convert(nil, &b[i])
					_, _, _ = b[i].Rate(), b[i].Time(), b[i].Name()
				}
				if string(buf) != want {
					t.Errorf("Append = %q, want %q", buf, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzRoundTrip adds the lines of testdata/ to the seeds, then checks that Parse never panics nor changes its input, that an unmodified
// metric appends to exactly its input, that the output parses to the same
// fields, that a rendered (modified) metric parses back to them too, and
// that converting it does not panic. check, if not nil, checks more of each
// metric Parse keeps.
func FuzzRoundTrip(f *testing.F, c Codec, check func(t *testing.T, orig []byte, m *metric.Metric)) {
	for _, l := range TestdataLines(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		var m metric.Metric
		err := c.Parse(line, &m)
		if !bytes.Equal(line, orig) {
			t.Fatalf("Parse changed its input")
		}
		if err != nil {
			return
		}
		if check != nil {
			check(t, orig, &m)
		}
		want := FieldsOf(&m)
		out := c.Append(nil, &m)
		if !bytes.Equal(out, append(orig, '\n')) {
			t.Fatalf("Append(Parse(%q)) = %q", orig, out)
		}
		var again metric.Metric
		if err := c.Parse(out[:len(out)-1], &again); err != nil {
			t.Fatalf("reparse %q: %v", out, err)
		}
		if got := FieldsOf(&again); got != want {
			t.Fatalf("reparse %q\n got %+v\nwant %+v", out, got, want)
		}
		r := m
		r.SetPath(m.Path())
		rendered := c.Append(nil, &r)
		var rm metric.Metric
		if err := c.Parse(rendered[:len(rendered)-1], &rm); err != nil {
			t.Fatalf("rendered %q (from %q) does not parse: %v", rendered, orig, err)
		}
		if got := FieldsOf(&rm); got != want {
			t.Fatalf("rendered %q (from %q)\n got %+v\nwant %+v", rendered, orig, got, want)
		}
		_ = c.Convert(nil, &m)
	})
}

// TestdataLines returns every line of the files directly under testdata/.
func TestdataLines(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatal("no testdata/*.txt seed files")
	}
	var lines [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		for l := range bytes.SplitSeq(data, []byte("\n")) {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestdataRoundTrip checks that every line of testdata/ that parses appends
// to exactly itself.
func TestdataRoundTrip(t *testing.T, c Codec) {
	for _, l := range TestdataLines(t) {
		var m metric.Metric
		if err := c.Parse(l, &m); err != nil {
			continue // bad lines are seeds too
		}
		if out := c.Append(nil, &m); !bytes.Equal(out, append(bytes.Clone(l), '\n')) {
			t.Errorf("Append(Parse(%q)) = %q", l, out)
		}
	}
}
