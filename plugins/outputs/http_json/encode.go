package http_json

import (
	"errors"
	"math"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/metric"
)

// Why a metric is refused: what inputs.http_json's /batch cannot carry, or
// would refuse (one bad entry fails the whole request there, so nothing it
// would refuse is sent).
var (
	errType      = errors.New("type that /batch cannot carry (histogram, distribution, or a line the router passed on unparsed)")
	errKey       = errors.New("name /batch refuses (empty, not UTF-8, or with a space, control character, ':', '|', ',' or '/')")
	errValue     = errors.New("value /batch refuses (not a finite decimal, or a negative timing)")
	errNegative  = errors.New("negative Graphite value (a StatsD gauge would read it as a decrement)")
	errRate      = errors.New("sample rate /batch cannot carry (outside (0, 1], or on a gauge or set)")
	errTags      = errors.New("tags /batch cannot carry (a tag without value, or ':', '|', '#', '@', ',', '=' or spaces in a key or value)")
	errTwoTags   = errors.New("tags in the name and DogStatsD tags together")
	errTimestamp = errors.New("StatsD timestamp (|T) that /batch cannot carry")
	errExt       = errors.New("unknown StatsD section that /batch cannot carry")
	errMember    = errors.New("set member /batch refuses (empty, not UTF-8, or with a space, control character, ':' or '|')")
)

// appendMetric appends m as one /batch object (with a leading ',' unless
// first) to dst. On a refusal it returns dst unchanged and the reason.
func appendMetric(dst []byte, m *metric.Metric, first bool) ([]byte, error) {
	mark := len(dst)
	out, err := appendObject(dst, m, first)
	if err != nil {
		return dst[:mark], err
	}
	return out, nil
}

func appendObject(dst []byte, m *metric.Metric, first bool) ([]byte, error) {
	if m.Opaque() {
		return dst, errType
	}
	var typ string
	graphite := false
	switch m.Format() {
	case metric.Graphite:
		typ, graphite = "gauge", true
	case metric.StatsD:
		switch m.Type() {
		case metric.Counter:
			typ = "count"
		case metric.Gauge:
			typ = "gauge"
		case metric.Timer:
			typ = "timing"
		case metric.Set:
			typ = "set"
		default:
			return dst, errType
		}
	default:
		return dst, errType
	}
	if !graphite {
		if len(m.TimeToken()) > 0 {
			return dst, errTimestamp
		}
		if len(m.Ext()) > 0 {
			return dst, errExt
		}
	}
	name := m.Name()
	if !validKey(name) {
		return dst, errKey
	}
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","key":`...)
	dst = appendString(dst, name)

	tok := m.ValueToken()
	v := m.Value()
	switch {
	case typ == "set":
		if !validMember(tok) {
			return dst, errMember
		}
		dst = append(dst, `,"value":`...)
		dst = appendString(dst, tok)
	case graphite:
		if !number(tok, v) {
			return dst, errValue
		}
		if v < 0 && !allZero(tok[1:]) {
			return dst, errNegative
		}
		dst = append(dst, `,"value":`...)
		dst = appendNumber(dst, tok)
	case typ == "gauge" && len(tok) > 0 && (tok[0] == '+' || tok[0] == '-'):
		// a delta: "shift", whose sign the input writes back ('+' if none)
		if tok[0] == '+' {
			tok = tok[1:]
		}
		digits := tok
		if len(digits) > 0 && digits[0] == '-' {
			digits = digits[1:]
		}
		if len(digits) == 0 || digits[0] == '+' || digits[0] == '-' || !number(tok, v) {
			return dst, errValue
		}
		dst = append(dst, `,"shift":`...)
		dst = appendNumber(dst, tok)
	case typ == "timing":
		if !number(tok, v) || (v < 0 && !allZero(tok[1:])) {
			return dst, errValue
		}
		dst = append(dst, `,"time":`...)
		dst = appendNumber(dst, tok)
	default:
		if !number(tok, v) {
			return dst, errValue
		}
		dst = append(dst, `,"value":`...)
		dst = appendNumber(dst, tok)
	}

	if rate := m.RateToken(); len(rate) > 0 {
		r := m.Rate()
		if (typ != "count" && typ != "timing") || !number(rate, r) || !(r > 0 && r <= 1) {
			return dst, errRate
		}
		dst = append(dst, `,"sampleRate":`...)
		dst = appendNumber(dst, rate)
	}

	var err error
	if dst, err = appendTags(dst, m); err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

// appendTags writes the "tags" field ("k=v,k2=v2") from the name's tags
// (Graphite ";k=v", Influx ",k=v") or the DogStatsD tags ("k:v"), if any.
func appendTags(dst []byte, m *metric.Metric) ([]byte, error) {
	pathTags, dog := m.PathTags(), m.Tags()
	if len(pathTags) > 0 && len(dog) > 0 {
		return dst, errTwoTags
	}
	var sep, kv byte
	tags := dog
	switch {
	case len(pathTags) > 0:
		sep, kv, tags = pathTags[0], '=', pathTags[1:]
	case len(dog) > 0:
		sep, kv = ',', ':'
	default:
		return dst, nil
	}
	dst = append(dst, `,"tags":"`...)
	for len(tags) > 0 {
		var tag []byte
		more := false
		if i := indexByte(tags, sep); i >= 0 {
			tag, tags, more = tags[:i], tags[i+1:], true
		} else {
			tag, tags = tags, nil
		}
		i := indexByte(tag, kv)
		if i < 0 || !validTagPart(tag[:i]) || !validTagPart(tag[i+1:]) || (more && len(tags) == 0) {
			return dst, errTags
		}
		dst = appendEscaped(dst, tag[:i])
		dst = append(dst, '=')
		dst = appendEscaped(dst, tag[i+1:])
		if more {
			dst = append(dst, ',')
		}
	}
	return append(dst, '"'), nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// number reports whether tok is a number the input takes: at most 64 bytes
// of [0-9+-.eE] whose value v is finite.
func number(tok []byte, v float64) bool {
	if len(tok) == 0 || len(tok) > 64 || math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	for _, c := range tok {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

// appendNumber writes tok (checked by number) as a JSON number when it is
// one, else as a JSON string (the input takes both).
func appendNumber(dst, tok []byte) []byte {
	if jsonNumber(tok) {
		return append(dst, tok...)
	}
	dst = append(dst, '"')
	dst = append(dst, tok...)
	return append(dst, '"')
}

// jsonNumber matches RFC 8259's number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped writes s (valid UTF-8) escaped for a JSON string, without
// the quotes.
func appendEscaped(dst, s []byte) []byte {
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// validKey is the input's check of a key: non-empty UTF-8 without spaces,
// control characters, ':', '|', ',' or '/'.
func validKey(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == ':' || c == '|' || c == ',' || c == '/' {
			return false
		}
	}
	return utf8.Valid(s)
}

// validMember is the input's check of a set member.
func validMember(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == ':' || c == '|' {
			return false
		}
	}
	return utf8.Valid(s)
}

// validTagPart is the input's check of a tag key or value.
func validTagPart(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || c == ':' || c == '|' || c == '#' || c == '@' || c == ',' || c == '=' {
			return false
		}
	}
	return utf8.Valid(s)
}
