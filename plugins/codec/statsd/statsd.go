// Package statsd parses and appends StatsD lines, losslessly.
//
// Grammar (Etsy StatsD with the DogStatsD and Influx extensions):
//
//	line    = path ":" value "|" type *( "|" section )
//	path    = name *( "," key "=" value )        ; Influx-style tags are part of the key
//	value   = number | "+"number | "-"number | set member | v1 ":" v2 ...
//	type    = "c" | "g" | "ms" | "h" | "s" | "d"
//	section = "@" rate | "#" tags | "T" unix-seconds | anything else (kept verbatim)
//
// The hash key of a line is its path (the text before the first ':'), as in
// Etsy's proxy.js. Parse keeps the exact input bytes; Append writes them back
// unchanged for an unmodified metric. Neither allocates.
package statsd

import (
	"bytes"
	"errors"
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
// A trailing '\r' is kept in Raw and excluded from the fields.
func Parse(line []byte, m *metric.Metric) error {
	end := len(line)
	if end > 0 && line[end-1] == '\r' {
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
		p.Ext = rest
		rest = nil
	}
	num := math.NaN()
	first := value
	if k := bytes.IndexByte(first, ':'); k >= 0 {
		first = first[:k] // DogStatsD multi-value "1:2:3"
	}
	if typ != metric.Set {
		if len(first) == 0 {
			return ErrValue
		}
		f, err := strconv.ParseFloat(metric.UnsafeString(first), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return ErrValue
		}
		num = f
	} else if f, err := strconv.ParseFloat(metric.UnsafeString(first), 64); err == nil {
		num = f
	}
	extStart := -1
	for len(rest) > 0 { // rest starts with '|'
		sec := rest[1:]
		n := bytes.IndexByte(sec, '|')
		if n < 0 {
			n = len(sec)
		}
		s := sec[:n:n]
		switch {
		case len(s) > 0 && s[0] == '@' && p.Rate == nil && extStart < 0:
			r := s[1:]
			f, err := strconv.ParseFloat(metric.UnsafeString(r), 64)
			if err != nil || !(f > 0) || math.IsInf(f, 0) {
				return ErrRate
			}
			p.Rate = r
		case len(s) > 0 && s[0] == '#' && p.Tags == nil && extStart < 0:
			p.Tags = s[1:]
		case len(s) > 1 && s[0] == 'T' && p.Time == nil && extStart < 0 && allDigits(s[1:]):
			p.Time = s[1:]
		default:
			// first unknown section: it and everything after it are kept verbatim
			if extStart < 0 {
				extStart = len(body) - len(rest)
			}
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
	*m = metric.Assemble(&p)
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
// sections. A Graphite metric becomes name:value|as, its ";k=v" tags becoming
// DogStatsD "|#k:v" tags, and its timestamp is dropped (StatsD backends stamp
// at flush). as = Untyped means a gauge.
func Append(dst []byte, m *metric.Metric, as metric.Type) []byte {
	if raw := m.Raw(); raw != nil && m.Format() == metric.StatsD {
		dst = append(dst, raw...)
		return append(dst, '\n')
	}
	if m.Format() == metric.Graphite {
		if as == metric.Untyped {
			as = metric.Gauge
		}
		dst = append(dst, m.Name()...)
		dst = append(dst, ':')
		dst = append(dst, m.ValueToken()...)
		dst = append(dst, '|')
		dst = append(dst, as.String()...)
		if tags := m.PathTags(); len(tags) > 1 {
			dst = append(dst, "|#"...)
			for _, c := range tags[1:] {
				switch c {
				case ';':
					c = ','
				case '=':
					c = ':'
				}
				dst = append(dst, c)
			}
		}
		return append(dst, '\n')
	}
	dst = append(dst, m.Path()...)
	dst = append(dst, ':')
	if v := m.ValueToken(); len(v) > 0 {
		dst = append(dst, v...)
	} else {
		dst = strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
	}
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
	if tags := m.Tags(); tags != nil {
		dst = append(dst, "|#"...)
		dst = append(dst, tags...)
	}
	if ts := m.TimeToken(); len(ts) > 0 {
		dst = append(dst, "|T"...)
		dst = append(dst, ts...)
	}
	dst = append(dst, ext...)
	return append(dst, '\n')
}
