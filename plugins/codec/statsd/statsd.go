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
//
// # From Graphite
//
// Append writes a Graphite metric as a StatsD line that StatsD servers read
// as exactly that metric, under the mapped name below, or refuses it and
// writes nothing (Refused says why; the output counts it). Etsy statsd
// splits a line at every ':' into several metrics (so a Graphite name
// "evil:666|c" would add 666 to a counter "evil"), DogStatsD reads up to
// the first '|' as name and value and splits tags at ','; Influx-style
// parsers (this codec, Telegraf) read ",k=v" after the name as tags; and
// Etsy itself turns whitespace in a key into '_'. So:
//
//   - Name: each ':', '|', ',', space and ASCII control byte becomes '_';
//     everything else ('@', '#', '=', ';' never occurs, non-ASCII bytes) is
//     kept, one for one: none of it means anything inside a name. The
//     Graphite line "evil:666|c 1 1700000000" becomes "evil_666_c:1|g".
//   - Tags: ";k=v" tags become DogStatsD "|#k:v" tags in their order (Etsy
//     statsd 0.9 turns those back into ";k=v" for Graphite), split at the
//     first '=' only, ':', '|', ',', space and control bytes in a key and
//     '|', ',', space and control bytes in a value becoming '_' (a value may
//     hold ':': a tag is split at its first). A tag without '=' stays a bare
//     tag, an empty one (";;") is left out. DogStatsD tags set with SetTags
//     follow, '|' and control bytes in them becoming '_'.
//   - Type: the metric's own (set with SetType), else the output's as, else
//     a gauge.
//   - Value: the token when it is a plain decimal, which every StatsD server
//     reads, without a leading '+'; otherwise the number, formatted by
//     strconv ('f', shortest), so "1_000" becomes "1000". A signed gauge
//     value is a delta in StatsD, so a negative gauge is written as two
//     lines, in one write and one datagram, "name:0|g" then "name:-5|g", as
//     Etsy's documentation prescribes; "-0" becomes "0". Refused: NaN and
//     Inf (no StatsD server reads them as a number; carbon itself drops
//     NaN, as graphite.Parse does, but a processor may set it), a negative
//     timer (Etsy drops it), and a metric without a name.
//   - The timestamp is dropped: StatsD servers stamp at flush.
//
// A StatsD metric is never refused, and its path and tags are written as
// they came: a relay passes StatsD through as its sender wrote it.
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

// ParseOpaque makes m the opaque metric of a line Parse refused (see
// metric.Metric.Opaque): what Etsy proxy.js forwards, which is any line that
// is not empty. Its key is the text before the first ':' (the whole line
// without one), as proxy.js hashes it; the line is kept as it came, '\r'
// included. It returns ErrEmpty for an empty line and does not allocate.
func ParseOpaque(line []byte, m *metric.Metric) error {
	if len(line) == 0 {
		return ErrEmpty
	}
	k := bytes.IndexByte(line, ':')
	if k < 0 {
		k = len(line)
	}
	p := metric.Parts{Raw: line, Path: line[:k:k], NameLen: k, Ext: line[k:], Num: math.NaN(), Format: metric.StatsD, Opaque: true}
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

// Why Append refuses a Graphite metric (see Refused).
var (
	ErrNoName        = errors.New("statsd: metric has no name")
	ErrNotNumber     = errors.New("statsd: value is not a finite number (NaN or Inf)")
	ErrNegativeTimer = errors.New("statsd: negative timer")
)

// Append appends m as a StatsD line, terminated by '\n', to dst; or
// nothing, returning dst as it is, when StatsD cannot carry m (Refused says
// why): the caller then counts m as refused.
//
// An unmodified StatsD metric is written as its original bytes, and so is an
// opaque line (ParseOpaque; its new key first if it was renamed). A modified one
// is rendered as path:value|type[|@rate][|#tags][|Tts] followed by its unknown
// sections (the rest of an Etsy multi-metric line follows the type directly).
// A metric without a type gets as, and a gauge if as is Untyped.
//
// A Graphite metric is converted as the package doc says; parsed Graphite
// metrics have no type, so they become as, or gauges.
func Append(dst []byte, m *metric.Metric, as metric.Type) []byte {
	if m.Format() == metric.StatsD && (m.Type() != metric.Untyped || m.Opaque()) {
		// the input bytes, or the metric's own rendering after a change
		dst = append(dst, m.Line()...)
		return append(dst, '\n')
	}
	if m.Format() == metric.StatsD {
		return appendUntyped(dst, m, as)
	}
	return appendConverted(dst, m, as)
}

// typeOf is the type m is written with.
func typeOf(m *metric.Metric, as metric.Type) metric.Type {
	t := m.Type()
	if t == metric.Untyped {
		t = as
		if t == metric.Untyped {
			t = metric.Gauge
		}
	}
	return t
}

// Refused returns why Append writes nothing for m with as, or nil when it
// writes it. Only a metric of another format is ever refused.
func Refused(m *metric.Metric, as metric.Type) error {
	if m.Format() == metric.StatsD {
		return nil
	}
	if len(m.Name()) == 0 {
		return ErrNoName
	}
	v := m.Value()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ErrNotNumber
	}
	if v < 0 && typeOf(m, as) == metric.Timer {
		return ErrNegativeTimer
	}
	return nil
}

// appendUntyped renders a StatsD metric that has no type (one built
// without): its fields as they are, with the type as gives it.
func appendUntyped(dst []byte, m *metric.Metric, as metric.Type) []byte {
	dst = append(dst, m.Path()...)
	dst = append(dst, ':')
	if v := m.ValueToken(); len(v) > 0 {
		dst = append(dst, v...)
	} else {
		dst = strconv.AppendFloat(dst, m.Value(), 'f', -1, 64)
	}
	dst = append(dst, '|')
	dst = append(dst, typeOf(m, as).String()...)
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

// appendConverted writes a metric of another format (Graphite): see the
// package doc.
func appendConverted(dst []byte, m *metric.Metric, as metric.Type) []byte {
	if Refused(m, as) != nil {
		return dst
	}
	t := typeOf(m, as)
	v := m.Value()
	if v == 0 {
		v = 0 // not -0, which renders as "-0": a gauge delta of nothing
	}
	tok := m.ValueToken()
	switch {
	case !fnum.PlainDecimal(tok):
		tok = nil // rendered from v
	case tok[0] == '+':
		tok = tok[1:] // a gauge delta in StatsD
	case tok[0] == '-' && v == 0:
		tok = zero // "-0" would be a gauge delta of nothing
	}
	start := len(dst)
	dst = appendMapped(dst, m.Name(), &nameSet)
	nameEnd := len(dst)
	dst = append(dst, ':')
	pair := t == metric.Gauge && v < 0
	if pair {
		// A signed gauge value is a delta: set the gauge to 0, then add v.
		dst = append(dst, '0')
	} else {
		dst = appendNumber(dst, tok, v)
	}
	rest := len(dst)
	dst = append(dst, '|')
	dst = append(dst, t.String()...)
	if r := m.RateToken(); len(r) > 0 {
		dst = append(dst, "|@"...)
		dst = append(dst, r...)
	}
	dst = appendGraphiteTags(dst, m.PathTags(), m.Tags())
	dst = append(dst, '\n')
	if pair {
		end := len(dst)
		dst = append(dst, dst[start:nameEnd]...)
		dst = append(dst, ':')
		dst = appendNumber(dst, tok, v)
		dst = append(dst, dst[rest:end]...)
	}
	return dst
}

var zero = []byte("0")

// appendNumber writes tok, or v when tok is nil.
func appendNumber(dst, tok []byte, v float64) []byte {
	if tok != nil {
		return append(dst, tok...)
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

// The bytes that become '_': ASCII control bytes everywhere; space, ':',
// '|' and ',' in a name and a Graphite tag's key; space, '|' and ',' in its
// value; '|' in DogStatsD tags set with SetTags.

var (
	nameSet  = fnum.ByteSet{fnum.Controls | 1<<' ' | 1<<':' | 1<<',', 1<<('|'-64) | 1<<(0x7f-64)}
	keySet   = nameSet
	valueSet = fnum.ByteSet{fnum.Controls | 1<<' ' | 1<<',', 1<<('|'-64) | 1<<(0x7f-64)}
	tagsSet  = fnum.ByteSet{fnum.Controls, 1<<('|'-64) | 1<<(0x7f-64)}
)

// appendMapped appends s with each byte of set written as '_'.
func appendMapped(dst, s []byte, set *fnum.ByteSet) []byte {
	for i := 0; i < len(s); {
		if set.Has(s[i]) {
			dst = append(dst, '_')
			i++
			continue
		}
		j := i + 1
		for j < len(s) && !set.Has(s[j]) {
			j++
		}
		dst = append(dst, s[i:j]...)
		i = j
	}
	return dst
}

// appendGraphiteTags writes Graphite tags ";k=v;k2=v2" (pathTags) and
// DogStatsD tags (dog) as one "|#k:v,k2:v2,dog" section. A tag is split at
// its first '=' only, so "k=a=b" becomes "k:a=b"; one without '=' stays a
// bare tag; empty ones are left out.
func appendGraphiteTags(dst, pathTags, dog []byte) []byte {
	open := false
	for i := 0; i < len(pathTags); {
		e, k := i, -1 // the tag is pathTags[i:e], its key pathTags[i:k]
		for ; e < len(pathTags) && pathTags[e] != ';'; e++ {
			if k < 0 && pathTags[e] == '=' {
				k = e
			}
		}
		switch {
		case e == i: // empty: the leading ';', or ";;"
		case k < 0:
			dst = openTag(dst, open)
			dst = appendMapped(dst, pathTags[i:e], &keySet)
			open = true
		default:
			dst = openTag(dst, open)
			dst = appendMapped(dst, pathTags[i:k], &keySet)
			dst = append(dst, ':')
			dst = appendMapped(dst, pathTags[k+1:e], &valueSet)
			open = true
		}
		i = e + 1
	}
	if len(dog) > 0 {
		dst = openTag(dst, open)
		dst = appendMapped(dst, dog, &tagsSet)
	}
	return dst
}

// openTag starts the tags section, or the next tag in it.
func openTag(dst []byte, open bool) []byte {
	if open {
		return append(dst, ',')
	}
	return append(dst, "|#"...)
}
