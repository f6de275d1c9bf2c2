// Package graphite parses and appends Graphite plaintext lines
// ("path value timestamp"), losslessly.
//
// Parse keeps the exact input bytes in the metric; Append writes them back
// unchanged when the metric was not modified, and renders it otherwise. Parse
// and Append do not allocate.
package graphite

import (
	"errors"
	"math"
	"strconv"

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
// leading/trailing blanks and a trailing '\r' (all kept in Raw). The value must
// parse as a float (NaN and Inf included, as carbon's float()), the timestamp
// as an integer or a float. Graphite tags (";k=v") stay part of the path.
func Parse(line []byte, m *metric.Metric) error {
	end := len(line)
	if end > 0 && line[end-1] == '\r' {
		end--
	}
	i := 0
	for i < end && isBlank(line[i]) {
		i++
	}
	for end > i && isBlank(line[end-1]) {
		end--
	}
	if i == end {
		return ErrEmpty
	}
	// field 1: path
	ps := i
	for i < end && !isBlank(line[i]) {
		i++
	}
	pe := i
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
	num, err := strconv.ParseFloat(metric.UnsafeString(line[vs:ve]), 64)
	if err != nil {
		// ParseFloat reports out-of-range values with err set and ±Inf: carbon accepts them.
		if !isRangeErr(err) {
			return ErrValue
		}
	}
	if !validTimestamp(line[ts:te]) {
		return ErrTimestamp
	}
	path := line[ps:pe:pe]
	nl := len(path)
	for j, c := range path {
		if c == ';' {
			nl = j
			break
		}
	}
	*m = metric.Assemble(&metric.Parts{
		Raw:     line,
		Path:    path,
		NameLen: nl,
		Value:   line[vs:ve:ve],
		Num:     num,
		Time:    line[ts:te:te],
		Format:  metric.Graphite,
	})
	return nil
}

func isRangeErr(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && ne.Err == strconv.ErrRange
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
	f, err := strconv.ParseFloat(metric.UnsafeString(b), 64)
	return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// Append appends m as one Graphite line, terminated by '\n', to dst.
//
// An unmodified Graphite metric is written as its original bytes. Anything
// else is rendered as "path value timestamp": a metric without a timestamp
// (e.g. one that came in as StatsD) gets now (Unix seconds). A StatsD metric
// keeps its name and value; Influx-style ",k=v" and DogStatsD "k:v" tags
// become Graphite ";k=v" tags (bare DogStatsD tags are dropped); type, rate
// and unknown sections are dropped.
func Append(dst []byte, m *metric.Metric, now int64) []byte {
	if raw := m.Raw(); raw != nil && m.Format() == metric.Graphite {
		dst = append(dst, raw...)
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
		dst = appendDogTags(dst, m.Tags())
	} else {
		dst = append(dst, m.Path()...)
	}
	dst = append(dst, ' ')
	if v := m.ValueToken(); len(v) > 0 {
		dst = append(dst, v...)
	} else {
		dst = strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
	}
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

// appendDogTags turns DogStatsD "k:v,k2:v2,bare" into ";k=v;k2=v2".
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
		if k <= 0 {
			continue // bare tag: Graphite tags need a value
		}
		dst = append(dst, ';')
		dst = append(dst, tag[:k]...)
		dst = append(dst, '=')
		dst = append(dst, tag[k+1:]...)
	}
	return dst
}
