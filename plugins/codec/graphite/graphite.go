// Package graphite parses and appends Graphite plaintext lines
// ("path value timestamp"), losslessly.
//
// Parse keeps the exact input bytes in the metric; Append writes them back
// unchanged when the metric was not modified, and renders it otherwise. Parse
// and Append do not allocate (Append only grows dst), bad lines included; the
// exceptions are a number out of float64 range, for which strconv allocates
// its range error, and a valid number of more than 64 bytes with Unicode
// digits or '_' (see num.PyFloat).
//
// # From StatsD
//
// Append writes a StatsD metric as one Graphite line that carbon reads as
// exactly that metric, under the mapped name below, or refuses it and writes
// nothing (Refused says why; the output counts it). Carbon's line receiver
// (1.1, Python 3) splits a line on any whitespace, Unicode included, and
// ignores a line that does not have three fields; it decodes each line as
// UTF-8 and drops the whole connection at the first line that is not; it
// reads ";k=v" after the name as tags, refusing an empty key or value, a key
// with one of ";!^=" and a value with ';' or starting with '~'. Etsy statsd,
// converting its own keys for Graphite, turns whitespace into '_';
// carbon-c-relay turns any character it does not allow into '_'. So:
//
//   - Name: each ASCII control byte, space, ';', Unicode whitespace
//     character (U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
//     U+202F, U+205F, U+3000) and byte that is not part of valid UTF-8
//     becomes one '_'; everything else is kept (one for one, so distinct
//     names rarely merge). "my metric:1|c" becomes "my_metric 1 <now>".
//   - Tags: Influx-style ",k=v" tags of the path and DogStatsD "k:v" tags
//     (split at the first ':') become ";k=v", key and value mapped as the
//     name, '!', '^' and '=' in a key and a leading '~' in a value becoming
//     '_' too; the path is then written in carbon's canonical form
//     (AppendCanonical: tags sorted, the last of a key written twice, no
//     "name" tag, no leading '~' in the name), the series carbon stores it
//     under. A bare tag, or one with an empty key or value, is left out:
//     carbon has no place for it. (Etsy statsd, flushing its own
//     aggregates, writes a DogStatsD tag as ";k=v" with its first ':' made
//     '=', its first ';' made '_', and, with its default keyNameSanitize,
//     runs of whitespace made '_', '/' made '-' and every other character
//     outside [A-Za-z0-9_.;=-] deleted; it keeps the tags unsorted and
//     writes a bare tag as ";k", which carbon refuses: the series is then
//     stored under its raw name, out of reach of tag queries.)
//   - Value: the token when it is a plain decimal, which Python's float()
//     reads as strconv does; otherwise the number, formatted by strconv
//     ('f', shortest), so "0x1p3" becomes "8". A gauge delta "+3" or "-2"
//     keeps its token (Graphite has no deltas). Refused: a value that is not
//     a finite number (a set member such as "user42", NaN, Inf), and a line
//     with several values (a DogStatsD multi-value "1:2:3", an Etsy
//     multi-metric "1|c:2|ms"): a Graphite line carries one number, and
//     keeping the first would lose the others unseen. A metric without a
//     name is refused.
//   - Timestamp: the DogStatsD "|T" one, else now. Type, rate and unknown
//     sections are dropped (the agent warns at start-up about this path).
//
// A Graphite metric is never refused, and its path is written as it came:
// a relay passes Graphite through as its sender wrote it.
package graphite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

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
	ErrNaN       = errors.New("graphite: value is NaN (carbon drops it)")
)

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// Parse parses one line (without its '\n') into m. The metric keeps slices
// of line: line must stay unchanged while m is in use.
//
// Accepted: three fields separated by runs of spaces or tabs, optional
// leading blanks, and trailing blanks and '\r's in any mix, as carbon's
// strip() allows (all kept in Raw). The value and the timestamp must be
// numbers as carbon reads them, with Python's float() (num.PyFloat: "1_000",
// "inf", "١٢٣" and "1e400", which is +Inf, are numbers; "0x1p3" is not;
// testdata/carbon-float/table.tsv decides). A NaN value ("nan", "-nan") is
// refused with ErrNaN: carbon drops the datapoint (carbon/protocols.py,
// MetricReceiver.metricReceived, which MetricLineReceiver.lineReceived
// calls: "if datapoint[1] != datapoint[1]:  # filter out NaN values"). The
// timestamp must be finite: carbon's int(timestamp) in metricReceived
// raises on ±Inf and NaN, which drops the connection. The errors come in
// carbon's order: a field float() refuses (ErrValue or ErrTimestamp), then
// a NaN value (ErrNaN), then a timestamp that is not finite
// (ErrTimestamp); the input counts each as a bad line. Graphite tags
// (";k=v") stay part of the path. The path may hold any other bytes (NUL,
// invalid UTF-8): they pass through.
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
	v, ok := num.PyFloat(line[vs:ve])
	if !ok {
		return ErrValue
	}
	finite, ok := timestamp(line[ts:te])
	if !ok {
		return ErrTimestamp
	}
	if v != v {
		return ErrNaN
	}
	if !finite {
		return ErrTimestamp
	}
	metric.SetGraphite(m, line, ps, pe, nl, vs, ve, ts, te, v)
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
	// ';'. (IndexByte's vector loop beats one 8-byte scan for the three:
	// BenchmarkParse/tagged.)
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
	// a timestamp of 1 to maxTimeDigits bytes follows (a longer one may
	// overflow float64: the general way decides), in one comparison: n-ve-2
	// is its length less one, negative (huge as uint) when there is none
	if !ok || uint(n-ve-2) >= maxTimeDigits {
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

// maxTimeDigits is the longest integer timestamp taken without parsing it:
// 308 digits are below 1e308, finite. A longer one is +Inf to float() from
// about 1.8e308 on ("1" and 309 zeros), and carbon's int() raises on it.
const maxTimeDigits = 308

// timestamp reads a timestamp token as carbon does, with float(): ok is
// false where float() refuses it, finite false for ±Inf and NaN.
func timestamp(b []byte) (finite, ok bool) {
	// fast path: digits only, optional sign
	j := 0
	if b[0] == '-' || b[0] == '+' {
		j = 1
	}
	if j < len(b) && len(b)-j <= maxTimeDigits {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == len(b) {
			return true, true
		}
	}
	f, ok := num.PyFloat(b)
	return ok && !math.IsNaN(f) && !math.IsInf(f, 0), ok
}

// Why Append refuses a StatsD metric (see Refused). Constant values, like
// the parse errors.
var (
	ErrNoName     = errors.New("graphite: metric has no name")
	ErrNotNumber  = errors.New("graphite: value is not a finite number (a set member, NaN or Inf)")
	ErrManyValues = errors.New("graphite: line carries several values (DogStatsD multi-value, Etsy multi-metric)")
	ErrOpaque     = errors.New("graphite: a StatsD line passed on unparsed (an event, a service check, an unknown type)")
)

// Append appends m as one Graphite line, terminated by '\n', to dst; or
// nothing, returning dst as it is, when a Graphite line cannot carry m
// (Refused says why): the caller then counts m as refused.
//
// An unmodified Graphite metric is written as its original bytes. A
// modified one is rendered as "path value timestamp" (now, in Unix seconds,
// if it has none), DogStatsD tags set on it with SetTags following its path
// as ";k=v" tags. A StatsD metric is converted as the package doc says.
func Append(dst []byte, m *metric.Metric, now int64) []byte {
	if m.Format() == metric.Graphite && m.Tags() == nil && len(m.TimeToken()) > 0 {
		// the input bytes, or the metric's own rendering after a change
		dst = append(dst, m.Line()...)
		return append(dst, '\n')
	}
	return appendRendered(dst, m, now)
}

// Refused returns why Append writes nothing for m, or nil when it writes a
// line. Only a metric of another format is ever refused.
func Refused(m *metric.Metric) error {
	if m.Format() == metric.Graphite {
		return nil
	}
	if m.Opaque() {
		return ErrOpaque
	}
	if len(m.Name()) == 0 {
		return ErrNoName
	}
	if manyValues(m) {
		return ErrManyValues
	}
	if v := m.Value(); math.IsNaN(v) || math.IsInf(v, 0) {
		return ErrNotNumber
	}
	return nil
}

// manyValues reports a StatsD line with more than one value: a DogStatsD
// multi-value "1:2:3" (or multi-member set "a:b"), or the rest of an Etsy
// multi-metric line, which the StatsD codec keeps in Ext after the type
// (":2|ms") or after a rate ("|@0.1:2|ms").
func manyValues(m *metric.Metric) bool {
	if bytes.IndexByte(m.ValueToken(), ':') >= 0 {
		return true
	}
	ext := m.Ext()
	if len(ext) > 0 && ext[0] == ':' {
		return true
	}
	if len(ext) > 1 && ext[1] == '@' && m.RateToken() == nil {
		sec := ext[1:]
		if k := bytes.IndexByte(sec, '|'); k >= 0 {
			sec = sec[:k]
		}
		return bytes.IndexByte(sec, ':') >= 0
	}
	return false
}

// appendRendered is Append for every metric but an unmodified Graphite one.
func appendRendered(dst []byte, m *metric.Metric, now int64) []byte {
	if m.Format() == metric.Graphite {
		dst = append(dst, m.Path()...)
		dst = appendDogTags(dst, m.Tags())
		dst = append(dst, ' ')
		if v := m.ValueToken(); len(v) > 0 {
			dst = append(dst, v...)
		} else {
			dst = strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
		}
		dst = append(dst, ' ')
		if ts := m.TimeToken(); len(ts) > 0 {
			dst = append(dst, ts...)
		} else {
			dst = strconv.AppendInt(dst, now, 10)
		}
		return append(dst, '\n')
	}
	if Refused(m) != nil {
		return dst
	}
	start := len(dst)
	dst = appendMapped(dst, m.Name(), &nameSet)
	{
		tags := len(dst)
		dst = appendInfluxTags(dst, m.PathTags())
		dst = appendDogTags(dst, m.Tags())
		if len(dst) > tags {
			dst = canonicalIn(dst, start)
		}
	}
	dst = append(dst, ' ')
	if v := m.ValueToken(); num.PlainDecimal(v) {
		dst = append(dst, v...)
	} else {
		dst = strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
	}
	dst = append(dst, ' ')
	if t := m.Time(); t != 0 {
		dst = strconv.AppendInt(dst, t, 10)
	} else {
		dst = strconv.AppendInt(dst, now, 10)
	}
	return append(dst, '\n')
}

// canonicalIn rewrites the tagged path dst[start:] into carbon's canonical
// form (AppendCanonical); it leaves a path carbon would refuse (a name of
// '~'s only) as it is.
func canonicalIn(dst []byte, start int) []byte {
	var scratch [512]byte
	out, err := AppendCanonical(scratch[:0], dst[start:])
	if err != nil {
		return dst
	}
	return append(dst[:start], out...)
}

// The ASCII bytes that become '_' in a name, a tag key and a tag value
// written for carbon: control bytes, space and ';' (which starts the tags)
// everywhere; '!', '^' and '=' in a key too, as carbon's tag parser refuses
// them there.

var (
	nameSet  = num.ByteSet{num.Controls | 1<<' ' | 1<<';', 1 << (0x7f - 64)}
	keySet   = num.ByteSet{num.Controls | 1<<' ' | 1<<';' | 1<<'!' | 1<<'=', 1<<('^'-64) | 1<<(0x7f-64)}
	valueSet = nameSet
)

// appendMapped appends s with each byte of set, each Unicode whitespace
// character (Python's str.split splits on them: U+0085, U+00A0, U+1680,
// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) and each byte
// that is not part of valid UTF-8 (carbon decodes a line strictly and drops
// the connection on an error) written as one '_'.
func appendMapped(dst, s []byte, set *num.ByteSet) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 || num.PySpace(r) {
				dst = append(dst, '_')
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
		case set.Has(c):
			dst = append(dst, '_')
			i++
		default:
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && !set.Has(s[j]) {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
		}
	}
	return dst
}

// appendTag writes ";key=value", mapped for carbon, unless key or value is
// empty: carbon's tag parser refuses those.
func appendTag(dst, key, value []byte) []byte {
	if len(key) == 0 || len(value) == 0 {
		return dst
	}
	dst = append(dst, ';')
	dst = appendMapped(dst, key, &keySet)
	dst = append(dst, '=')
	if value[0] == '~' {
		dst = append(dst, '_') // carbon refuses a value starting with '~'
		value = value[1:]
	}
	return appendMapped(dst, value, &valueSet)
}

// appendInfluxTags turns Influx-style ",k=v,k2=v2" into ";k=v;k2=v2"; a tag
// without '=' is left out.
func appendInfluxTags(dst, tags []byte) []byte {
	return appendSplitTags(dst, tags, '=')
}

// appendDogTags turns DogStatsD "k:v,k2:v2,bare,k3:" into ";k=v;k2=v2": a
// bare tag is left out, as is one with an empty key or value.
func appendDogTags(dst, tags []byte) []byte {
	return appendSplitTags(dst, tags, ':')
}

// appendSplitTags writes the ','-separated tags of list, each split at its
// first sep into key and value, as Graphite tags.
func appendSplitTags(dst, list []byte, sep byte) []byte {
	for i := 0; i < len(list); {
		e, k := i, -1 // the tag is list[i:e], its key list[i:k]
		for ; e < len(list) && list[e] != ','; e++ {
			if k < 0 && list[e] == sep {
				k = e
			}
		}
		if k >= 0 {
			dst = appendTag(dst, list[i:k], list[k+1:e])
		}
		i = e + 1
	}
	return dst
}

// SetRendered makes *m the Graphite metric of line, which this process
// rendered as "path value timestamp" with single spaces: the path ends at
// pathEnd, the value at valueEnd and is num. Nothing is checked (callers
// render what Parse accepts); it costs no parse.
func SetRendered(m *metric.Metric, line []byte, pathEnd, valueEnd int, num float64) {
	nameLen := bytes.IndexByte(line[:pathEnd], ';')
	if nameLen < 0 {
		nameLen = pathEnd
	}
	metric.SetGraphite(m, line, 0, pathEnd, nameLen, pathEnd+1, valueEnd, valueEnd+1, len(line), num)
}
