// Package graphite parses and appends Graphite plaintext lines
// ("path value timestamp"), losslessly.
//
// Parse keeps the exact input bytes in the metric; Append writes them back
// unchanged when the metric was not modified, and renders it otherwise. Parse
// and Append do not allocate (Append only grows dst), bad lines included; the
// one exception is a number out of float64 range, for which strconv
// allocates its range error.
package graphite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"

	"github.com/metricsrouter/router/plugins/codec/internal/num"
	"github.com/metricsrouter/router/plugins/metric"
)

// Parse errors. They are constant values so that counting a bad line costs
// no allocation; callers count them, they are not meant to be wrapped.
var (
	ErrEmpty     = errors.New("graphite: empty line")
	ErrFields    = errors.New("graphite: want 3 fields: path value timestamp")
	ErrValue     = errors.New("graphite: value is not a number")
	ErrTimestamp = errors.New("graphite: timestamp is not a number")
)

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// Parse parses one line (without its '\n') into m. The metric keeps slices
// of line: line must stay unchanged while m is in use.
//
// Accepted: three fields separated by runs of spaces or tabs, optional
// leading blanks, and trailing blanks and '\r's in any mix, as carbon's
// strip() allows (all kept in Raw). The value must parse as a float the way
// strconv.ParseFloat reads it (NaN and Inf included, as carbon's float(); a
// value out of range becomes ±Inf), the timestamp as an integer or a finite
// float. Graphite tags (";k=v") stay part of the path. The path may hold any
// other bytes (NUL, invalid UTF-8): they pass through.
func Parse(line []byte, m *metric.Metric) error {
	if parseCommon(line, m) {
		return nil
	}
	return parseGeneral(line, m)
}

// parseGeneral is Parse for any line.
func parseGeneral(line []byte, m *metric.Metric) error {
	end := len(line)
	for end > 0 && (isBlank(line[end-1]) || line[end-1] == '\r') {
		end--
	}
	i := 0
	for i < end && isBlank(line[i]) {
		i++
	}
	if i == end {
		return ErrEmpty
	}
	// field 1: path, up to the first blank (found with the vectorised
	// IndexByte: paths are the longest field); its name ends at the first ';'
	ps := i
	pe := end
	if k := bytes.IndexByte(line[ps:end], ' '); k >= 0 {
		pe = ps + k
	}
	if k := bytes.IndexByte(line[ps:pe], '\t'); k >= 0 {
		pe = ps + k
	}
	nl := bytes.IndexByte(line[ps:pe], ';')
	if nl < 0 {
		nl = pe - ps
	}
	i = pe
	for i < end && isBlank(line[i]) {
		i++
	}
	// field 2: value
	vs := i
	for i < end && !isBlank(line[i]) {
		i++
	}
	ve := i
	for i < end && isBlank(line[i]) {
		i++
	}
	// field 3: timestamp
	ts := i
	for i < end && !isBlank(line[i]) {
		i++
	}
	te := i
	if vs == ve || ts == te || i != end {
		return ErrFields
	}
	// Out-of-range values become ±Inf, as carbon's float() makes them.
	num, ok := num.ParseFloat(line[vs:ve])
	if !ok {
		return ErrValue
	}
	if !validTimestamp(line[ts:te]) {
		return ErrTimestamp
	}
	metric.SetGraphite(m, line, ps, pe, nl, vs, ve, ts, te, num)
	return nil
}

// parseCommon is Parse for the common line "path value timestamp" with
// single spaces, a decimal value and an integer timestamp, in one pass. It
// returns false, having done nothing, for every other line, which Parse then
// reads the general way; for the lines it takes, the result is the general
// way's (TestParseCommonAgreesWithGeneral and FuzzParseCommon check that).
//
// The timestamp's digits are checked 8 bytes at a time (SWAR: one 64-bit
// load, a few arithmetic operations).
func parseCommon(line []byte, m *metric.Metric) bool {
	n := len(line)
	if n < 5 || isBlank(line[0]) || line[n-1] < '0' || line[n-1] > '9' {
		return false
	}
	// path: up to the first ' ', without '\t'; its name ends at the first
	// ';'. (An 8-byte scan for the three was 25 % slower than IndexByte's
	// vector loop on the 46-byte tagged path of BenchmarkParse.)
	pe := bytes.IndexByte(line, ' ')
	if pe <= 0 || bytes.IndexByte(line[:pe], '\t') >= 0 {
		return false
	}
	nl := bytes.IndexByte(line[:pe], ';')
	if nl < 0 {
		nl = pe
	}
	vs := pe + 1
	f, k, ok := num.DecimalUntil(line[vs:], ' ')
	ve := vs + k
	if !ok || ve+1 >= n {
		return false
	}
	ts := ve + 1
	j := ts
	if line[j] == '-' || line[j] == '+' {
		j++
	}
	if j == n {
		return false
	}
	for ; j+8 <= n; j += 8 {
		if !eightDigits(binary.LittleEndian.Uint64(line[j:])) {
			return false
		}
	}
	for ; j < n; j++ {
		if line[j] < '0' || line[j] > '9' {
			return false
		}
	}
	metric.SetGraphite(m, line, 0, pe, nl, vs, ve, ts, n, f)
	return true
}

// lo has 0x01 in every byte: lo * c repeats byte c eight times.
const lo = 0x0101010101010101

// eightDigits reports whether all 8 bytes of w are '0'..'9': each byte's
// high nibble is 3, and still 3 after adding 6 (a byte above '9' carries
// into 4; one of 0xfa..0xff, whose carry could reach the next byte, already
// fails the first test).
func eightDigits(w uint64) bool {
	return w&(lo*0xf0)|(w+lo*0x06)&(lo*0xf0)>>4 == lo*0x33
}

func validTimestamp(b []byte) bool {
	// fast path: digits only, optional sign
	j := 0
	if b[0] == '-' || b[0] == '+' {
		j = 1
	}
	if j < len(b) {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == len(b) {
			return true
		}
	}
	f, ok := num.ParseFloat(b)
	return ok && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// Append appends m as one Graphite line, terminated by '\n', to dst.
//
// An unmodified Graphite metric is written as its original bytes. Anything
// else is rendered as "path value timestamp": a metric without a timestamp
// (e.g. one that came in as StatsD) gets now (Unix seconds).
//
// A StatsD metric keeps its name and value; Influx-style ",k=v" and DogStatsD
// "k:v" tags become Graphite ";k=v" tags (bare DogStatsD tags and tags with
// an empty key or value are dropped: Graphite needs both), as do DogStatsD
// tags set on a Graphite metric with SetTags. Type, rate and unknown sections
// (including the rest of an Etsy multi-metric line) are dropped. Of a
// DogStatsD multi-value "1:2:3" only the first value is kept, and a set
// member that is not a number is written as NaN, which carbon discards: a
// Graphite line carries one number.
func Append(dst []byte, m *metric.Metric, now int64) []byte {
	if m.Format() == metric.Graphite && m.Tags() == nil && len(m.TimeToken()) > 0 {
		// the input bytes, or the metric's own rendering after a change
		dst = append(dst, m.Line()...)
		return append(dst, '\n')
	}
	if m.Format() == metric.StatsD {
		dst = append(dst, m.Name()...)
		for _, c := range m.PathTags() {
			if c == ',' {
				c = ';'
			}
			dst = append(dst, c)
		}
	} else {
		dst = append(dst, m.Path()...)
	}
	dst = appendDogTags(dst, m.Tags())
	dst = append(dst, ' ')
	dst = appendValue(dst, m)
	dst = append(dst, ' ')
	if m.Format() == metric.Graphite && len(m.TimeToken()) > 0 {
		dst = append(dst, m.TimeToken()...)
	} else if t := m.Time(); t != 0 {
		dst = strconv.AppendInt(dst, t, 10)
	} else {
		dst = strconv.AppendInt(dst, now, 10)
	}
	return append(dst, '\n')
}

// appendValue writes the value token, or the number when there is no token
// that Graphite can read (see Append).
func appendValue(dst []byte, m *metric.Metric) []byte {
	v := m.ValueToken()
	if m.Format() == metric.StatsD {
		if k := bytes.IndexByte(v, ':'); k >= 0 {
			v = v[:k] // DogStatsD multi-value: the first one
		}
		if _, ok := num.ParseFloat(v); !ok {
			v = nil // a set member such as "user42"
		}
	}
	if len(v) > 0 {
		return append(dst, v...)
	}
	return strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
}

// appendDogTags turns DogStatsD "k:v,k2:v2,bare,k3:" into ";k=v;k2=v2".
func appendDogTags(dst, tags []byte) []byte {
	for len(tags) > 0 {
		j := 0
		for j < len(tags) && tags[j] != ',' {
			j++
		}
		tag := tags[:j]
		if j < len(tags) {
			tags = tags[j+1:]
		} else {
			tags = nil
		}
		k := -1
		for x, c := range tag {
			if c == ':' {
				k = x
				break
			}
		}
		if k <= 0 || k == len(tag)-1 {
			continue // bare tag, or empty key or value: Graphite needs both
		}
		dst = append(dst, ';')
		dst = append(dst, tag[:k]...)
		dst = append(dst, '=')
		dst = append(dst, tag[k+1:]...)
	}
	return dst
}
