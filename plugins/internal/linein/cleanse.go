package linein

import (
	"bytes"

	"github.com/metricsrouter/router/plugins/metric"
)

// CleanseFunc rewrites a line in place before it is parsed (carbon-c-relay's
// input cleansing: graphite.Cleanser) and returns what to parse, a prefix of
// line. An error drops the line: it is counted as too long if the error has
// a TooLong() bool method reporting true, else as a parse error, and logged
// (sampled) with the bytes returned.
type CleanseFunc func(line []byte) ([]byte, error)

// SetCleanse makes the framer cleanse each line with fn before parsing it
// (nil: no cleansing). Lines then end at '\r' as well as at '\n', as
// carbon-c-relay reads them; an empty line is no line (not counted).
func (f *Framer) SetCleanse(fn CleanseFunc) { f.cleanse = fn }

// cleanseLine cleanses and parses into s the lines of line (a line up to
// '\n', cut at each '\r').
func (f *Framer) cleanseLine(s metric.Batch, line []byte, lines int) metric.Batch {
	for len(line) > 0 {
		part := line
		line = nil
		if i := bytes.IndexByte(part, '\r'); i >= 0 {
			part, line = part[:i:i], part[i+1:]
		}
		if len(part) == 0 {
			continue
		}
		out, err := f.cleanse(part)
		if err != nil {
			if tl, ok := err.(interface{ TooLong() bool }); ok && tl.TooLong() {
				f.count(f.c.TooLong)
			} else {
				f.count(f.c.ParseErrors)
			}
			if f.onError != nil {
				f.onError(out, err)
			}
			continue
		}
		s = addSlot(s, lines) // parse sets every field of a metric it accepts
		if err := f.parse(out, &s[len(s)-1]); err != nil {
			s = s[:len(s)-1]
			f.count(f.c.ParseErrors)
			if f.onError != nil {
				f.onError(out, err)
			}
		}
	}
	return s
}
