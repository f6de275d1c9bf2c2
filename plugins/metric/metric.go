// Package metric defines the one metric type the router carries: a Graphite
// plaintext line or a StatsD line, with nothing lost.
//
// A Metric keeps the exact bytes it was parsed from (Raw). As long as nothing
// modifies it, an appender writes those bytes back unchanged, so an untouched
// line leaves the router byte for byte as it arrived. Every setter clears Raw;
// appenders then render the line from the fields, reusing the original tokens
// (value, timestamp, rate) for whatever was not changed.
//
// Only codecs (plugins/codec/...) and the New* constructors build metrics.
// A Metric's byte slices usually point into a buffer shared by the whole
// batch: after the last processor, metrics are read-only and shared by all
// outputs, so nobody may write through the slices a getter returns.
package metric

import (
	"math"
	"strconv"
	"time"
)

// Format is the wire format a metric was parsed from.
type Format uint8

// Formats.
const (
	FormatNone Format = iota
	Graphite          // "path value timestamp"
	StatsD            // "name:value|type[|@rate][|#tags]..."
)

func (f Format) String() string {
	switch f {
	case Graphite:
		return "graphite"
	case StatsD:
		return "statsd"
	}
	return "none"
}

// Type is the StatsD metric type. Graphite metrics are Untyped.
type Type uint8

// StatsD types.
const (
	Untyped      Type = iota
	Counter           // c
	Gauge             // g
	Timer             // ms
	Histogram         // h
	Set               // s
	Distribution      // d
)

var typeNames = [...]string{"", "c", "g", "ms", "h", "s", "d"}

// String returns the StatsD spelling of t ("c", "g", "ms", ...), or "" for Untyped.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return ""
}

// ParseType maps a StatsD type token to a Type. ok is false for an unknown token.
func ParseType(b []byte) (t Type, ok bool) {
	switch len(b) {
	case 1:
		switch b[0] {
		case 'c':
			return Counter, true
		case 'g':
			return Gauge, true
		case 'h':
			return Histogram, true
		case 's':
			return Set, true
		case 'd':
			return Distribution, true
		}
	case 2:
		if b[0] == 'm' && b[1] == 's' {
			return Timer, true
		}
	}
	return Untyped, false
}

// Metric is one Graphite or StatsD line. The zero value is an empty metric of
// FormatNone. Metrics are passed by value inside a Batch; use pointers into the
// batch (&b[i]) to read or modify them in place.
type Metric struct {
	raw     []byte  // exact input line without its '\n'; nil once modified
	path    []byte  // name plus key-bearing tags (Graphite ";k=v", Influx ",k=v")
	value   []byte  // value token (Graphite value, StatsD value incl. "+3", set member)
	ts      []byte  // Graphite timestamp token; StatsD "|T" section value
	rate    []byte  // StatsD sample rate token without '@'
	tags    []byte  // DogStatsD tags without the leading "|#"
	ext     []byte  // unknown StatsD sections, verbatim, each with its leading '|'
	num     float64 // parsed value (NaN for StatsD sets)
	nameLen int32   // len of the name part of path
	format  Format
	typ     Type
}

// Batch is a slice of metrics: the unit that channels and queues carry.
type Batch []Metric

// Parts is the exploded form codecs fill in and hand to Assemble. It exists so
// that codecs in other packages can build a Metric without exported fields.
type Parts struct {
	Raw     []byte
	Path    []byte
	NameLen int
	Value   []byte
	Num     float64
	Time    []byte
	Rate    []byte
	Tags    []byte
	Ext     []byte
	Format  Format
	Type    Type
}

// Assemble builds a metric from parts. It validates nothing: only codecs call it.
func Assemble(p *Parts) Metric {
	return Metric{
		raw: p.Raw, path: p.Path, nameLen: int32(p.NameLen), value: p.Value, num: p.Num,
		ts: p.Time, rate: p.Rate, tags: p.Tags, ext: p.Ext, format: p.Format, typ: p.Type,
	}
}

// Raw returns the exact bytes the metric was parsed from (without the line
// terminator), or nil if it has been modified or was built by a constructor.
func (m *Metric) Raw() []byte { return m.raw }

// Format returns the wire format the metric came in.
func (m *Metric) Format() Format { return m.format }

// Path returns the name plus the tags that belong to the series key: Graphite
// ";k=v" tags and Influx-style ",k=v" StatsD tags. It is the consistent-hash key
// of both protocols (Graphite: the line up to the first space; StatsD: the text
// before the first ':').
func (m *Metric) Path() []byte { return m.path }

// Name returns the metric name without any tags.
func (m *Metric) Name() []byte { return m.path[:m.nameLen] }

// PathTags returns the tag part of Path, starting with its ';' or ',', or nil.
func (m *Metric) PathTags() []byte { return m.path[m.nameLen:] }

// ValueToken returns the value exactly as received ("1.5", "+3", "-2", a set member).
func (m *Metric) ValueToken() []byte { return m.value }

// Value returns the numeric value; NaN for a StatsD set member that is not a number.
func (m *Metric) Value() float64 { return m.num }

// TimeToken returns the timestamp token (Graphite field 3, StatsD "|T"), or nil.
func (m *Metric) TimeToken() []byte { return m.ts }

// Time returns the timestamp in Unix seconds, or 0 if the metric has none or it
// does not parse or does not fit an int64. Fractional seconds are truncated.
func (m *Metric) Time() int64 {
	if len(m.ts) == 0 {
		return 0
	}
	if n, ok := parseInt(m.ts); ok {
		return n
	}
	f, err := strconv.ParseFloat(unsafeString(m.ts), 64)
	if err != nil || !(f >= math.MinInt64 && f < math.MaxInt64) { // also NaN, ±Inf
		return 0
	}
	return int64(f)
}

// Type returns the StatsD type, Untyped for Graphite.
func (m *Metric) Type() Type { return m.typ }

// RateToken returns the StatsD sample-rate token without '@', or nil.
func (m *Metric) RateToken() []byte { return m.rate }

// Rate returns the sample rate, or 0 when absent.
func (m *Metric) Rate() float64 {
	if len(m.rate) == 0 {
		return 0
	}
	f, err := strconv.ParseFloat(unsafeString(m.rate), 64)
	if err != nil {
		return 0
	}
	return f
}

// Tags returns DogStatsD tags (the text after "|#", order kept), or nil.
func (m *Metric) Tags() []byte { return m.tags }

// Ext returns unknown StatsD sections, verbatim, each with its leading '|'.
func (m *Metric) Ext() []byte { return m.ext }

// Modified reports whether the metric has to be rendered from its fields.
func (m *Metric) Modified() bool { return m.raw == nil }

// SetPath replaces name and key tags. p is used as is (not copied): the
// caller must not change it afterwards. The name ends at the first ';'
// (Graphite) or ',' (StatsD).
func (m *Metric) SetPath(p []byte) {
	m.raw = nil
	m.path = p
	m.nameLen = int32(nameLen(p, m.format))
}

// SetValue sets the numeric value, rendering its token in the shortest form
// that parses back to v. It allocates; hot paths use SetValueToken.
func (m *Metric) SetValue(v float64) {
	m.raw = nil
	m.num = v
	m.value = strconv.AppendFloat(nil, v, 'f', -1, 64)
}

// SetValueToken sets the value token and its numeric value. tok is used as is.
func (m *Metric) SetValueToken(tok []byte, v float64) {
	m.raw = nil
	m.value = tok
	m.num = v
}

// SetTime sets the timestamp (Unix seconds). It allocates the token.
func (m *Metric) SetTime(t time.Time) {
	m.raw = nil
	m.ts = strconv.AppendInt(nil, t.Unix(), 10)
}

// SetTimeToken sets the timestamp token. tok is used as is.
func (m *Metric) SetTimeToken(tok []byte) {
	m.raw = nil
	m.ts = tok
}

// SetRate sets the StatsD sample-rate token (without '@'); nil removes it.
func (m *Metric) SetRate(tok []byte) {
	m.raw = nil
	m.rate = tok
}

// SetTags replaces the DogStatsD tags (text after "|#"); nil removes them.
// On a Graphite metric they are rendered as extra tags (";k=v" by the
// Graphite appender, after the path's own tags by the StatsD appender).
func (m *Metric) SetTags(tags []byte) {
	m.raw = nil
	m.tags = tags
}

// SetType sets the StatsD type.
func (m *Metric) SetType(t Type) {
	m.raw = nil
	m.typ = t
}

// NewGraphite builds a Graphite metric. It allocates its tokens; it is meant
// for inputs that do not parse lines (HTTP, self-metrics), not for hot paths
// that can use the codec.
func NewGraphite(path string, value float64, ts time.Time) Metric {
	p := []byte(path)
	return Metric{
		path:    p,
		nameLen: int32(nameLen(p, Graphite)),
		value:   strconv.AppendFloat(nil, value, 'f', -1, 64),
		num:     value,
		ts:      strconv.AppendInt(nil, ts.Unix(), 10),
		format:  Graphite,
	}
}

// StatsDSpec describes a StatsD metric for NewStatsD.
type StatsDSpec struct {
	Path  string  // name, optionally followed by Influx-style ",k=v" tags
	Value string  // value token exactly as it should appear ("1", "+3", "user42")
	Type  Type    // c, g, ms, h, s, d
	Rate  float64 // 0 or 1 = no "@rate" section
	Tags  string  // DogStatsD tags "k:v,bare" (without "|#"), or ""
}

// NewStatsD builds a StatsD metric from a spec. It allocates; meant for inputs
// such as HTTP that build metrics from request fields.
func NewStatsD(s StatsDSpec) Metric {
	p := []byte(s.Path)
	m := Metric{
		path:    p,
		nameLen: int32(nameLen(p, StatsD)),
		value:   []byte(s.Value),
		typ:     s.Type,
		format:  StatsD,
		num:     math.NaN(),
	}
	if f, err := strconv.ParseFloat(s.Value, 64); err == nil {
		m.num = f
	}
	if s.Rate > 0 && s.Rate != 1 {
		m.rate = strconv.AppendFloat(nil, s.Rate, 'g', -1, 64)
	}
	if s.Tags != "" {
		m.tags = []byte(s.Tags)
	}
	return m
}

func nameLen(p []byte, f Format) int {
	sep := byte(';')
	if f == StatsD {
		sep = ','
	}
	for i, c := range p {
		if c == sep {
			return i
		}
	}
	return len(p)
}

// parseInt parses a plain optionally-signed decimal integer without
// allocating. ok is false for anything else, including an int64 overflow.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := false
	i := 0
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i = 1
		if len(b) == 1 {
			return 0, false
		}
	}
	const limit = uint64(1) << 63 // |math.MinInt64|
	var n uint64
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 || n > limit/10 {
			return 0, false
		}
		n = n*10 + uint64(c)
		if n > limit {
			return 0, false
		}
	}
	if neg {
		return int64(-n), true // -limit wraps to math.MinInt64
	}
	if n == limit {
		return 0, false
	}
	return int64(n), true
}
