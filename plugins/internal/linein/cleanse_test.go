package linein

import (
	"slices"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
)

// TestFramerCleanse: with a CleanseFunc, lines end at '\r' too, empty ones
// are no lines, each is cleansed in place before it is parsed, and a line
// the cleansing drops is counted (as too long when its error says so) and
// reported with the bytes the cleansing returned; whatever the reads.
func TestFramerCleanse(t *testing.T) {
	in := []byte("a..b 1 2\r\nx 1 2\ry  3 4\r\r\n" +
		"nospace\n" + // cleanse: no blank
		"toolong.name 1 2\n" + // cleanse: name over 5 bytes
		"a 1\n" + // cleansed, then refused by the parser
		" . \n" + // nothing left
		"\r\n\n" +
		"last 5 6") // without '\n' at the end
	want := []string{"a.b 1 2", "x 1 2", "y 3 4", "last 5 6"}
	c := graphite.NewCleanser(graphite.DefaultAllowedChars, 0, 5)
	for _, step := range []int{1, 3, 64, 1 << 16} {
		cs, pe, tl, _ := counters()
		var errs []string
		f := NewFramer(graphite.Parse, 1024, cs, func(line []byte, err error) {
			errs = append(errs, string(line)+": "+err.Error())
		})
		f.SetCleanse(c.Cleanse)
		if got := feed(f, slices.Clone(in), step, true); !slices.Equal(got, want) {
			t.Fatalf("step %d: got %q, want %q", step, got, want)
		}
		if pe.Load() != 3 || tl.Load() != 1 {
			t.Fatalf("step %d: %d parse errors, %d too long; want 3 and 1", step, pe.Load(), tl.Load())
		}
		wantErrs := []string{
			"nospace: " + graphite.ErrNoSeparator.Error(),
			"toolong.name 1 2: " + graphite.ErrNameTooLong.Error(),
			"a 1: " + graphite.ErrFields.Error(),
			": " + graphite.ErrCleansedEmpty.Error(),
		}
		if !slices.Equal(errs, wantErrs) {
			t.Fatalf("step %d: errors %q, want %q", step, errs, wantErrs)
		}
	}
}
