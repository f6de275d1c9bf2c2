// Package statsd parses and appends StatsD lines, losslessly.
//
// Grammar (Etsy StatsD with the DogStatsD and Influx extensions):
//
//	line    = path ":" value "|" type ( *( "|" section ) | ":" etsy-rest )
//	path    = name *( "," key "=" value )        ; Influx-style tags are part of the key
//	value   = number | "+"number | "-"number | set member | v1 ":" v2 ...
//	type    = "c" | "g" | "ms" | "h" | "s" | "d"
//	section = "@" rate | "#" tags | "T" unix-seconds | anything else (kept verbatim)
//
// Numbers are what strconv.ParseFloat accepts, finite; every value of a
// DogStatsD multi-value "1:2:3" must be one, except for sets, whose members
// may be any text. The first unknown section and everything after it are kept
// verbatim in Ext, as is the rest of an Etsy multi-metric line
// ("name:1|c:2|ms", or "name:1|c|@0.1:2|ms" with a rate on the first metric).
//
// The hash key of a line is its path (the text before the first ':'), as in
// Etsy's proxy.js. Parse keeps the exact input bytes; Append writes them back
// unchanged for an unmodified metric. Neither allocates (Append only grows
// dst), bad lines included; the one exception is a number out of float64
// range, for which strconv allocates its range error.
package statsd

import (
	"bytes"
	"errors"
	fnum "github.com/metricsrouter/router/plugins/codec/internal/num"
	"math"
	"strconv"

	"github.com/metricsrouter/router/plugins/metric"
)

// Parse errors (constant values: counting a bad line costs no allocation).
var (
	ErrEmpty = errors.New("statsd: empty line")
	ErrName  = errors.New("statsd: missing name or ':'")
	ErrType  = errors.New("statsd: missing or unknown type")
	ErrValue = errors.New("statsd: bad value")
	ErrRate  = errors.New("statsd: bad sample rate")
	ErrTime  = errors.New("statsd: bad timestamp section")
)

// Parse parses one line (without '\n') into m. m keeps slices of line.
// Trailing '\r's are kept in Raw and excluded from the fields.
func Parse(line []byte, m *metric.Metric) error {
	end := len(line)
	for end > 0 && line[end-1] == '\r' {
		end--
	}
	if end == 0 {
		return ErrEmpty
	}
	body := line[:end]
	colon := bytes.IndexByte(body, ':')
	if colon <= 0 {
		return ErrName
	}
	path := body[:colon:colon]
	rest := body[colon+1:]
	bar := bytes.IndexByte(rest, '|')
	if bar < 0 {
		return ErrType
	}
	value := rest[:bar:bar]
	if len(value) == 0 {
		return ErrValue
	}
	rest = rest[bar+1:]
	// type section
	te := 0
	for te < len(rest) && rest[te] != '|' && rest[te] != ':' {
		te++
	}
	typ, ok := metric.ParseType(rest[:te])
	if !ok {
		return ErrType
	}
	rest = rest[te:]
	var p metric.Parts
	if len(rest) > 0 && rest[0] == ':' {
		// Etsy multi-metric form "name:1|c:2|ms": keep the remainder verbatim.
		p.Ext = rest[:len(rest):len(rest)]
		rest = nil
	}
	// Num is the first value of a DogStatsD multi-value "1:2:3".
	num := math.NaN()
	if typ != metric.Set {
		// every value must be a finite number
		for v, first := value, true; ; first = false {
			k := bytes.IndexByte(v, ':')
			if k < 0 {
				k = len(v)
			}
			f, ok := fnum.ParseFloat(v[:k])
			if !ok || math.IsInf(f, 0) || math.IsNaN(f) {
				return ErrValue
			}
			if first {
				num = f
			}
			if k == len(v) {
				break
			}
			v = v[k+1:]
		}
	} else {
		first := value
		if k := bytes.IndexByte(first, ':'); k >= 0 {
			first = first[:k]
		}
		if f, ok := fnum.ParseFloat(first); ok {
			num = f // a numeric set member
		}
	}
	extStart := -1
sections:
	for len(rest) > 0 { // rest starts with '|'
		sec := rest[1:]
		n := bytes.IndexByte(sec, '|')
		if n < 0 {
			n = len(sec)
		}
		s := sec[:n:n]
		switch {
		case len(s) > 0 && s[0] == '@' && p.Rate == nil:
			r := s[1:]
			multi := bytes.IndexByte(r, ':')
			if multi >= 0 {
				// Etsy multi-metric after a rate, "name:1|c|@0.1:2|ms": the
				// rate belongs to the first metric only; keep it all verbatim.
				r = r[:multi]
			}
			f, ok := fnum.ParseFloat(r)
			if !ok || !(f > 0) || math.IsInf(f, 0) {
				return ErrRate
			}
			if multi >= 0 {
				extStart = len(body) - len(rest)
				break sections
			}
			p.Rate = r
		case len(s) > 0 && s[0] == '#' && p.Tags == nil:
			p.Tags = s[1:]
		case len(s) > 1 && s[0] == 'T' && p.Time == nil && allDigits(s[1:]):
			p.Time = s[1:]
		default:
			// first unknown section: it and everything after it are kept verbatim
			extStart = len(body) - len(rest)
			break sections
		}
		rest = sec[n:]
	}
	if extStart >= 0 {
		p.Ext = body[extStart:len(body):len(body)]
	}
	nl := colon
	if k := bytes.IndexByte(path, ','); k >= 0 {
		nl = k
	}
	if nl == 0 {
		return ErrName
	}
	p.Raw = line
	p.Path = path
	p.NameLen = nl
	p.Value = value
	p.Num = num
	p.Type = typ
	p.Format = metric.StatsD
	metric.AssembleInto(m, &p)
	return nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// Append appends m as one StatsD line, terminated by '\n', to dst.
//
// An unmodified StatsD metric is written as its original bytes. A modified one
// is rendered as path:value|type[|@rate][|#tags][|Tts] followed by its unknown
// sections (the rest of an Etsy multi-metric line follows the type directly).
// A metric without a type gets as, and a gauge if as is Untyped.
//
// A Graphite metric becomes name:value|type[|@rate][|#tags]: its ";k=v" tags
// become DogStatsD "k:v" tags, followed by any set with SetTags, and its
// timestamp is dropped (StatsD backends stamp at flush). Parsed Graphite
// metrics have no type, so they become as, or gauges.
func Append(dst []byte, m *metric.Metric, as metric.Type) []byte {
	if m.Format() == metric.StatsD && m.Type() != metric.Untyped {
		// the input bytes, or the metric's own rendering after a change
		dst = append(dst, m.Line()...)
		return append(dst, '\n')
	}
	graphite := m.Format() == metric.Graphite
	if graphite {
		dst = append(dst, m.Name()...)
	} else {
		dst = append(dst, m.Path()...)
	}
	dst = append(dst, ':')
	dst = appendValue(dst, m)
	dst = append(dst, '|')
	t := m.Type()
	if t == metric.Untyped {
		t = as
		if t == metric.Untyped {
			t = metric.Gauge
		}
	}
	dst = append(dst, t.String()...)
	ext := m.Ext()
	if len(ext) > 0 && ext[0] == ':' {
		// Etsy multi-metric remainder follows the type directly
		dst = append(dst, ext...)
		ext = nil
	}
	if r := m.RateToken(); len(r) > 0 {
		dst = append(dst, "|@"...)
		dst = append(dst, r...)
	}
	if graphite {
		dst = appendGraphiteTags(dst, m.PathTags(), m.Tags())
	} else if tags := m.Tags(); tags != nil {
		dst = append(dst, "|#"...)
		dst = append(dst, tags...)
	}
	if ts := m.TimeToken(); len(ts) > 0 && !graphite {
		dst = append(dst, "|T"...)
		dst = append(dst, ts...)
	}
	dst = append(dst, ext...)
	return append(dst, '\n')
}

// appendGraphiteTags writes Graphite tags ";k=v;k2=v2" (pathTags) and
// DogStatsD tags (dog) as one "|#k:v,k2:v2,dog" section. Only the first '='
// of a tag becomes ':', so "k=a=b" becomes "k:a=b".
func appendGraphiteTags(dst, pathTags, dog []byte) []byte {
	if len(pathTags) > 0 {
		pathTags = pathTags[1:] // the leading ';'
	}
	if len(pathTags) == 0 && len(dog) == 0 {
		return dst
	}
	dst = append(dst, "|#"...)
	first := true // no '=' seen yet in this tag
	for _, c := range pathTags {
		switch {
		case c == ';':
			c = ','
			first = true
		case c == '=' && first:
			c = ':'
			first = false
		}
		dst = append(dst, c)
	}
	if len(pathTags) > 0 && len(dog) > 0 {
		dst = append(dst, ',')
	}
	return append(dst, dog...)
}

// appendValue writes the value token, or the number if there is none.
func appendValue(dst []byte, m *metric.Metric) []byte {
	if v := m.ValueToken(); len(v) > 0 {
		return append(dst, v...)
	}
	return strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
}
