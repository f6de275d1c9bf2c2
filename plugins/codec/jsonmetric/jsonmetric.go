// Package jsonmetric writes and reads one metric as one JSON object: the
// "json" record format of the Kafka plugins.
//
// A Graphite metric:
//
//	{"name":"servers.a.cpu","value":0.5,"timestamp":1700000000}
//	{"name":"disk.used","value":3,"timestamp":1700000000,"tags":{"dc":"par","rack":"r1"}}
//
// "name" is the path without its Graphite 1.1 tags; "tags" holds the
// ";k=v" tags in their order (a tag without '=' has the value null).
// "timestamp" is left out when the metric has none; Parse then stamps the
// metric with the time it reads it, as graphite.Append does.
//
// A StatsD metric has a "type" (c, g, ms, h, d or s):
//
//	{"name":"api.hits","value":1,"type":"c","rate":0.1}
//	{"name":"queue","value":-2,"type":"g","delta":true}
//	{"name":"users","value":"u42","type":"s"}
//	{"name":"req","value":12,"type":"ms","tags":{"env":"prod","canary":null},"key_tags":{"host":"a"}}
//
// Its keys:
//
//   - "rate" is the sample rate ("|@0.1"), left out when absent.
//   - A gauge whose value is signed ("+3", "-2") is a delta in StatsD: it is
//     written with "delta":true and a signed value (3, -2); Parse writes
//     "+3" for a positive delta. A gauge without "delta" must not be
//     negative: StatsD has no one-line form for it, so Parse refuses it.
//   - A set member is a string value (always, numeric members too; Parse
//     also takes a number).
//   - "tags" are the DogStatsD tags ("|#env:prod,canary"), split at their
//     first ':'; a bare tag has the value null. "key_tags" are the
//     Influx-style tags of the path ("name,host=a:12|ms"), which belong to
//     the series key (the consistent-hash key), split at their first '=',
//     bare tags null. Both keep their order, duplicates included. An empty
//     bare tag (",," or "|#a,,b") is left out.
//   - "timestamp" is the DogStatsD "|T" section, in Unix seconds.
//
// Numbers are written as the token the metric came with when that token is
// a JSON number, otherwise as the value formatted by strconv (so "0x1p3"
// becomes 8, a counter's "+3" becomes 3).
//
// Refused, by Append and by Parse, with a reason (an output counts them):
// an opaque StatsD line (passed on unparsed), a value that is NaN or
// infinite, a DogStatsD multi-value ("1:2:3") or Etsy multi-metric line,
// unknown StatsD sections, a name that is empty, not valid UTF-8 or holds a
// control byte, a space, or a separator of its format (Graphite ';',
// StatsD ':' '|' ','), and tags holding their separators. So an object can
// never carry a second metric into a line.
//
// Parse reads the object with a scanner of its own that takes what
// encoding/json.Unmarshal takes and reads it alike (see Parse), writes the
// equivalent Graphite or StatsD line straight into the caller's arena and
// runs that codec's Parse on it: the metric it makes is the one the line
// protocol would give (its Raw is that line), and the codec validates it.
package jsonmetric

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/metric"
)

// Reasons for refusing a metric or an object (constant values).
var (
	ErrOpaque     = errors.New("json: opaque statsd line (passed on unparsed)")
	ErrNotNumber  = errors.New("json: value is not a finite number")
	ErrManyValues = errors.New("json: multi-value or multi-metric statsd line")
	ErrExt        = errors.New("json: unknown statsd sections")
	ErrName       = errors.New("json: name empty, not UTF-8, or with a control byte, space or separator")
	ErrTag        = errors.New("json: tag key or value not UTF-8 or with a control byte or separator")
	ErrFormat     = errors.New("json: no metric format")
	ErrObject     = errors.New("json: not a metric object")
	ErrType       = errors.New("json: unknown type")
	ErrValue      = errors.New("json: bad value")
	ErrRate       = errors.New("json: bad rate")
	ErrTime       = errors.New("json: bad timestamp")
	ErrDelta      = errors.New("json: delta on a non-gauge, or a negative gauge without delta")
)

// Bytes a field may not hold, besides control bytes, per format.
const (
	gName   = " ;"
	gTagKey = " ;="
	gTagVal = " ;"
	sName   = " :|,"
	sKeyKey = " :|,="
	sKeyVal = " :|,"
	sDogKey = ":|,"
	sDogVal = "|,"
	sMember = ":|"
)

// clean reports whether s is valid UTF-8 without control bytes (< 0x20,
// 0x7f) and without the bytes of bad.
func clean(s []byte, bad string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
		for i := 0; i < len(bad); i++ {
			if c == bad[i] {
				return false
			}
		}
	}
	return utf8.Valid(s)
}

// Refused returns why Append refuses m, or nil.
func Refused(m *metric.Metric) error {
	_, err := Append(nil, m)
	return err
}

// Append appends m as one JSON object, without a newline, to dst; or, when
// the format cannot carry m, returns dst unchanged and the reason.
func Append(dst []byte, m *metric.Metric) ([]byte, error) {
	start := len(dst)
	var err error
	switch m.Format() {
	case metric.Graphite:
		dst, err = appendGraphite(dst, m)
	case metric.StatsD:
		dst, err = appendStatsD(dst, m)
	default:
		err = ErrFormat
	}
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

func appendGraphite(dst []byte, m *metric.Metric) ([]byte, error) {
	name := m.Name()
	if len(name) == 0 || !clean(name, gName) {
		return dst, ErrName
	}
	v := m.Value()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return dst, ErrNotNumber
	}
	dst = append(dst, `{"name":"`...)
	dst = appendString(dst, name)
	dst = append(dst, `","value":`...)
	dst = appendNumber(dst, m.ValueToken(), v)
	if ts := m.TimeToken(); len(ts) > 0 {
		dst = append(dst, `,"timestamp":`...)
		if isNumber(ts) {
			dst = append(dst, ts...)
		} else {
			dst = strconv.AppendInt(dst, m.Time(), 10)
		}
	}
	var err error
	open := false
	if pt := m.PathTags(); len(pt) > 0 {
		dst, open, err = appendTags(dst, "tags", pt[1:], ';', '=', gTagKey, gTagVal, open)
		if err != nil {
			return dst, err
		}
	}
	if dog := m.Tags(); len(dog) > 0 {
		// DogStatsD tags set on a Graphite metric: Graphite tags, as
		// graphite.Append writes them
		dst, open, err = appendTags(dst, "tags", dog, ',', ':', gTagKey, gTagVal, open)
		if err != nil {
			return dst, err
		}
	}
	if open {
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

func appendStatsD(dst []byte, m *metric.Metric) ([]byte, error) {
	if m.Opaque() {
		return dst, ErrOpaque
	}
	name := m.Name()
	if len(name) == 0 || !clean(name, sName) {
		return dst, ErrName
	}
	tok := m.ValueToken()
	if bytes.IndexByte(tok, ':') >= 0 {
		return dst, ErrManyValues
	}
	if ext := m.Ext(); len(ext) > 0 {
		if ext[0] == ':' || (len(ext) > 1 && ext[1] == '@' && m.RateToken() == nil) {
			return dst, ErrManyValues
		}
		return dst, ErrExt
	}
	typ := m.Type()
	if typ == metric.Untyped {
		typ = metric.Gauge
	}
	dst = append(dst, `{"name":"`...)
	dst = appendString(dst, name)
	dst = append(dst, `","value":`...)
	delta := false
	if typ == metric.Set {
		if len(tok) == 0 || !clean(tok, sMember) {
			return dst, ErrValue
		}
		dst = append(dst, '"')
		dst = appendString(dst, tok)
		dst = append(dst, '"')
	} else {
		v := m.Value()
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return dst, ErrNotNumber
		}
		if typ == metric.Gauge && len(tok) > 0 && (tok[0] == '+' || tok[0] == '-') {
			delta = true
		}
		if len(tok) > 0 && tok[0] == '+' {
			tok = tok[1:]
		}
		dst = appendNumber(dst, tok, v)
	}
	dst = append(dst, `,"type":"`...)
	dst = append(dst, typ.String()...)
	dst = append(dst, '"')
	if r := m.RateToken(); len(r) > 0 {
		dst = append(dst, `,"rate":`...)
		dst = appendNumber(dst, r, m.Rate())
	}
	if delta {
		dst = append(dst, `,"delta":true`...)
	}
	if ts := m.TimeToken(); len(ts) > 0 {
		dst = append(dst, `,"timestamp":`...)
		if isNumber(ts) {
			dst = append(dst, ts...)
		} else {
			dst = strconv.AppendInt(dst, m.Time(), 10) // leading zeros
		}
	}
	var err error
	if dog := m.Tags(); dog != nil {
		var open bool
		dst, open, err = appendTags(dst, "tags", dog, ',', ':', sDogKey, sDogVal, false)
		if err != nil {
			return dst, err
		}
		if !open {
			dst = append(dst, `,"tags":{`...)
		}
		dst = append(dst, '}')
	}
	if pt := m.PathTags(); len(pt) > 0 {
		var open bool
		dst, open, err = appendTags(dst, "key_tags", pt[1:], ',', '=', sKeyKey, sKeyVal, false)
		if err != nil {
			return dst, err
		}
		if open {
			dst = append(dst, '}')
		}
	}
	return append(dst, '}'), nil
}

// appendTags appends the tags of list (separated by sep, key and value
// split at the first kv) as members of the object key, opening it unless
// open, and reports whether it is open. Empty bare tags are left out.
func appendTags(dst []byte, key string, list []byte, sep, kv byte, badKey, badVal string, open bool) ([]byte, bool, error) {
	for {
		t := list
		n := bytes.IndexByte(list, sep)
		if n >= 0 {
			t = list[:n]
		}
		if len(t) > 0 {
			k, v, hasV := t, []byte(nil), false
			if i := bytes.IndexByte(t, kv); i >= 0 {
				k, v, hasV = t[:i], t[i+1:], true
			}
			if !clean(k, badKey) || (hasV && !clean(v, badVal)) {
				return dst, open, ErrTag
			}
			if open {
				dst = append(dst, ',')
			} else {
				dst = append(dst, ',', '"')
				dst = append(dst, key...)
				dst = append(dst, `":{`...)
				open = true
			}
			dst = append(dst, '"')
			dst = appendString(dst, k)
			if hasV {
				dst = append(dst, `":"`...)
				dst = appendString(dst, v)
				dst = append(dst, '"')
			} else {
				dst = append(dst, `":null`...)
			}
		}
		if n < 0 {
			break
		}
		list = list[n+1:]
	}
	return dst, open, nil
}

// appendString appends s, valid UTF-8 without control bytes, as the inside
// of a JSON string.
func appendString(dst, s []byte) []byte {
	for {
		i := bytes.IndexAny(s, `"\`)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, '\\', s[i])
		s = s[i+1:]
	}
}

// appendNumber appends tok when it is a JSON number, else v (finite).
func appendNumber(dst, tok []byte, v float64) []byte {
	if isNumber(tok) {
		return append(dst, tok...)
	}
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		return strconv.AppendFloat(dst, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

// isNumber reports whether b is a JSON number
// (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == s {
			return false
		}
	}
	return i == len(b)
}

// minArena is the least Parse allocates when the arena is full.
const minArena = 64 << 10

// number checks a JSON number and returns it with its value.
func number(raw []byte) ([]byte, float64, error) {
	if !isNumber(raw) {
		return nil, 0, ErrValue
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) {
		return nil, 0, ErrNotNumber
	}
	return raw, v, nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
