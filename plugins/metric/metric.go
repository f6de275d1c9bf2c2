// Package metric defines the one metric type the router carries: a Graphite
// plaintext line or a StatsD line, with nothing lost.
//
// A Metric keeps the exact bytes it was parsed from (Raw). As long as nothing
// modifies it, an appender writes those bytes back unchanged, so an untouched
// line leaves the router byte for byte as it arrived. Every setter re-renders
// the metric's line in its own format (canonical spacing and section order,
// the original tokens for everything not changed) and clears Raw; appenders
// write that line, or convert from the fields to the other format.
//
// Only codecs (plugins/codec/...) and the New* constructors build metrics.
// A Metric's bytes usually live in a buffer shared by the whole batch: after
// the last processor, metrics are read-only and shared by all outputs, so
// nobody may write through the slices a getter returns.
package metric

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"
	"unsafe"
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
//
// A Metric holds a single reference: its buffer (ptr, bufLen), whose first
// lineEnd bytes are the line (the exact input, or a rendering after a change)
// and which may hold, after the line, fields the line's format has no place
// for (e.g. DogStatsD tags set on a Graphite metric). Fields are spans of the
// buffer. One pointer per metric keeps queued metrics cheap for the garbage
// collector and writes into a batch free of write barriers but one; 16-bit
// spans keep a metric at 56 bytes (it was 104 with a slice and 32-bit
// spans): that is what a queued metric costs besides its line. A metric
// whose buffer is longer than 65535 bytes (a rare, very long line) is
// "wide": its spans are in a table at the end of its own copy of the buffer.
type Metric struct {
	ptr     *byte   // the buffer's first byte; nil for the zero Metric
	num     float64 // parsed value (NaN for StatsD sets)
	bufLen  uint32  // len of the buffer (with the span table of a wide metric)
	lineEnd uint32  // buffer[:lineEnd] is the line
	// The fields of a narrow metric: fPath the name plus key-bearing tags
	// (Graphite ";k=v", Influx ",k=v"); fValue the value token (Graphite
	// value, StatsD value incl. "+3", set member); fTime the Graphite
	// timestamp token or the StatsD "|T" section value; fRate the StatsD
	// sample rate token without '@'; fTags the DogStatsD tags without the
	// leading "|#"; fExt unknown StatsD sections, verbatim, each with its
	// leading '|'.
	sp      [nFields]span16
	nameLen uint16 // len of the name part of the path (narrow metrics)
	format  Format
	typ     Type
	flags   uint8
}

const (
	flagModified uint8 = 1 << iota // the buffer is a rendering, not the input
	flagTags                       // tags present (possibly empty: "|#")
	flagWide                       // the spans are in the table at the buffer's end
	flagOpaque                     // a StatsD line passed on unparsed (see Opaque)
	flagPacket                     // the first metric of its datagram (see PacketStart)
)

// The fields of a metric: indexes of Metric.sp and layout.sp.
const (
	fPath = iota
	fValue
	fTime
	fRate
	fTags
	fExt
	nFields
)

// narrowMax is the longest buffer whose spans fit Metric.sp.
const narrowMax = 1<<16 - 1

// wideTable is the size of a wide metric's span table: (off, n) of each
// field, then nameLen, as little-endian uint32s.
const wideTable = nFields*8 + 4

// span is a field's place in the buffer.
type span struct{ off, n uint32 }

// span16 is a span as a narrow metric keeps it.
type span16 struct{ off, n uint16 }

// layout is a metric's fields while it is being built.
type layout struct {
	sp      [nFields]span
	nameLen uint32
}

// buf returns the metric's buffer (nil for the zero Metric).
func (m *Metric) buf() []byte { return unsafe.Slice(m.ptr, m.bufLen) }

// span returns field f's place in the buffer.
func (m *Metric) span(f int) span {
	if m.flags&flagWide == 0 {
		s := m.sp[f]
		return span{uint32(s.off), uint32(s.n)}
	}
	t := m.buf()[m.bufLen-wideTable:]
	return span{binary.LittleEndian.Uint32(t[f*8:]), binary.LittleEndian.Uint32(t[f*8+4:])}
}

// field returns field f, nil if it is empty.
func (m *Metric) field(f int) []byte {
	s := m.span(f)
	if s.n == 0 {
		return nil
	}
	e := s.off + s.n
	return m.buf()[s.off:e:e]
}

// nameLength returns the length of the name part of the path.
func (m *Metric) nameLength() uint32 {
	if m.flags&flagWide == 0 {
		return uint32(m.nameLen)
	}
	return binary.LittleEndian.Uint32(m.buf()[m.bufLen-4:])
}

// setLayout points m at buf (whose line is buf[:lineEnd]) with the fields of
// l. A buffer too long for 16-bit spans is copied, the span table after it.
func (m *Metric) setLayout(buf []byte, lineEnd int, l *layout) {
	if len(buf) > narrowMax {
		wide := make([]byte, len(buf), len(buf)+wideTable)
		copy(wide, buf)
		for _, s := range l.sp {
			wide = binary.LittleEndian.AppendUint32(wide, s.off)
			wide = binary.LittleEndian.AppendUint32(wide, s.n)
		}
		wide = binary.LittleEndian.AppendUint32(wide, l.nameLen)
		m.ptr, m.bufLen, m.lineEnd = unsafe.SliceData(wide), uint32(len(wide)), uint32(lineEnd)
		m.sp, m.nameLen = [nFields]span16{}, 0
		m.flags |= flagWide
		return
	}
	m.ptr, m.bufLen, m.lineEnd = unsafe.SliceData(buf), uint32(len(buf)), uint32(lineEnd)
	for i, s := range l.sp {
		m.sp[i] = span16{uint16(s.off), uint16(s.n)}
	}
	m.nameLen = uint16(l.nameLen)
	m.flags &^= flagWide
}

// Batch is a slice of metrics: the unit that channels and queues carry.
type Batch []Metric

// Parts is the exploded form codecs fill in and hand to Assemble. It exists so
// that codecs in other packages can build a Metric without exported fields.
// Every part should be a sub-slice of Raw (they are then referenced, not
// copied); a part outside Raw is copied after it.
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
	// Opaque: a line forwarded without being understood (see
	// Metric.Opaque): Path is its hash key, Ext the rest of the line.
	Opaque bool
}

// AssembleInto builds a metric from parts into *m, overwriting every field.
// It validates nothing: only codecs call it. (It writes field by field:
// assigning a whole Metric into a batch's slot would copy it with a bulk
// write barrier while the collector runs.)
func AssembleInto(m *Metric, p *Parts) {
	m.num, m.format, m.typ, m.flags = p.Num, p.Format, p.Type, 0
	if p.Tags != nil {
		m.flags |= flagTags
	}
	if p.Opaque {
		m.flags |= flagOpaque
	}
	l := layout{nameLen: uint32(p.NameLen)}
	buf := p.Raw
	ok := len(p.Raw) > 0
	if ok {
		base := uintptr(unsafe.Pointer(unsafe.SliceData(p.Raw)))
		end := base + uintptr(len(p.Raw))
		ok = spanIn(base, end, p.Path, &l.sp[fPath]) && spanIn(base, end, p.Value, &l.sp[fValue]) &&
			spanIn(base, end, p.Time, &l.sp[fTime]) && spanIn(base, end, p.Rate, &l.sp[fRate]) &&
			spanIn(base, end, p.Tags, &l.sp[fTags]) && spanIn(base, end, p.Ext, &l.sp[fExt])
	}
	if !ok {
		// some part lies outside Raw: copy them all after the line
		extra := append(make([]byte, 0, len(p.Raw)+len(p.Path)+len(p.Value)+len(p.Time)+len(p.Rate)+len(p.Tags)+len(p.Ext)), p.Raw...)
		put := func(part []byte) span {
			if len(part) == 0 {
				return span{}
			}
			o := len(extra)
			extra = append(extra, part...)
			return span{uint32(o), uint32(len(part))}
		}
		for f, part := range [nFields][]byte{fPath: p.Path, fValue: p.Value, fTime: p.Time, fRate: p.Rate, fTags: p.Tags, fExt: p.Ext} {
			l.sp[f] = put(part)
		}
		buf = extra[:len(extra):len(extra)]
	}
	m.setLayout(buf, len(p.Raw), &l)
}

// SetGraphite makes *m the unmodified Graphite metric of line, whose fields
// are at the given offsets: path line[ps:pe] (its name the first nameLen
// bytes), value line[vs:ve] (parsed: num), timestamp line[ts:te]. It is the
// Graphite codec's fast path of Assemble (no Parts to fill, no range checks)
// and, like Assemble, validates nothing: only codecs call it, with
// 0 <= ps <= pe <= vs <= ve <= ts <= te <= len(line) < 4 GiB.
func SetGraphite(m *Metric, line []byte, ps, pe, nameLen, vs, ve, ts, te int, num float64) {
	if len(line) > narrowMax {
		*m = Metric{num: num, format: Graphite}
		m.setLayout(line, len(line), &layout{
			sp:      [nFields]span{fPath: {uint32(ps), uint32(pe - ps)}, fValue: {uint32(vs), uint32(ve - vs)}, fTime: {uint32(ts), uint32(te - ts)}},
			nameLen: uint32(nameLen),
		})
		return
	}
	// Field by field rather than *m = Metric{...}: a composite literal is
	// copied with a bulk write barrier (runtime.wbMove) while the collector
	// runs; this way only ptr takes a barrier. Every field is set.
	m.ptr = unsafe.SliceData(line)
	m.num = num
	m.bufLen = uint32(len(line))
	m.lineEnd = uint32(len(line))
	// element by element: an array literal is built on the stack in 2-byte
	// stores and copied in 16-byte loads, which wait for those stores
	m.sp[fPath] = span16{uint16(ps), uint16(pe - ps)}
	m.sp[fValue] = span16{uint16(vs), uint16(ve - vs)}
	m.sp[fTime] = span16{uint16(ts), uint16(te - ts)}
	m.sp[fRate], m.sp[fTags], m.sp[fExt] = span16{}, span16{}, span16{}
	m.nameLen = uint16(nameLen)
	m.format = Graphite
	m.typ = 0
	m.flags = 0
}

// spanIn sets *sp to part's place in [base, end); false if it lies outside.
func spanIn(base, end uintptr, part []byte, sp *span) bool {
	if len(part) == 0 {
		return true
	}
	q := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	if q < base || q+uintptr(len(part)) > end {
		return false
	}
	*sp = span{uint32(q - base), uint32(len(part))}
	return true
}

// Raw returns the exact bytes the metric was parsed from (without the line
// terminator), or nil if it has been modified or was built by a constructor.
func (m *Metric) Raw() []byte {
	if m.flags&flagModified != 0 {
		return nil
	}
	return m.buf()[:m.lineEnd:m.lineEnd]
}

// Line returns the metric's current line in its own format, without the line
// terminator: the input bytes while unmodified, its rendering after a change
// (canonical form: single spaces; StatsD sections in the order rate, tags,
// time, unknown). A Graphite metric without timestamp has a two-field line.
func (m *Metric) Line() []byte { return m.buf()[:m.lineEnd:m.lineEnd] }

// Format returns the wire format the metric came in.
func (m *Metric) Format() Format { return m.format }

// Path returns the name plus the tags that belong to the series key: Graphite
// ";k=v" tags and Influx-style ",k=v" StatsD tags. It is the consistent-hash key
// of both protocols (Graphite: the line up to the first space; StatsD: the text
// before the first ':').
func (m *Metric) Path() []byte { return m.field(fPath) }

// Name returns the metric name without any tags.
func (m *Metric) Name() []byte {
	s := m.span(fPath)
	e := s.off + m.nameLength()
	return m.buf()[s.off:e:e]
}

// PathTags returns the tag part of Path, starting with its ';' or ',', or nil.
func (m *Metric) PathTags() []byte {
	s, nl := m.span(fPath), m.nameLength()
	if nl == s.n {
		return nil
	}
	e := s.off + s.n
	return m.buf()[s.off+nl : e : e]
}

// ValueToken returns the value exactly as received ("1.5", "+3", "-2", a set member).
func (m *Metric) ValueToken() []byte { return m.field(fValue) }

// Value returns the numeric value; NaN for a StatsD set member that is not a number.
func (m *Metric) Value() float64 { return m.num }

// TimeToken returns the timestamp token (Graphite field 3, StatsD "|T"), or nil.
func (m *Metric) TimeToken() []byte { return m.field(fTime) }

// Time returns the timestamp in Unix seconds, or 0 if the metric has none or it
// does not parse or does not fit an int64. Fractional seconds are truncated.
func (m *Metric) Time() int64 {
	ts := m.TimeToken()
	if len(ts) == 0 {
		return 0
	}
	if n, ok := parseInt(ts); ok {
		return n
	}
	f, err := strconv.ParseFloat(unsafeString(ts), 64)
	// float64(MaxInt64) rounds up to 2^63, which does not fit: hence >=
	if err != nil || math.IsNaN(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return 0
	}
	return int64(f)
}

// Type returns the StatsD type, Untyped for Graphite.
func (m *Metric) Type() Type { return m.typ }

// RateToken returns the StatsD sample-rate token without '@', or nil.
func (m *Metric) RateToken() []byte { return m.field(fRate) }

// Rate returns the sample rate, or 0 when absent.
func (m *Metric) Rate() float64 {
	r := m.RateToken()
	if len(r) == 0 {
		return 0
	}
	f, err := strconv.ParseFloat(unsafeString(r), 64)
	if err != nil {
		return 0
	}
	return f
}

// Tags returns DogStatsD tags (the text after "|#", order kept), or nil.
func (m *Metric) Tags() []byte {
	if m.flags&flagTags == 0 {
		return nil
	}
	if t := m.field(fTags); t != nil {
		return t
	}
	return m.buf()[m.lineEnd:m.lineEnd:m.lineEnd] // present but empty ("|#")
}

// Ext returns unknown StatsD sections, verbatim, each with its leading '|'.
func (m *Metric) Ext() []byte { return m.field(fExt) }

// Opaque reports a StatsD line that a proxy passes on without having
// understood it (a DogStatsD event "_e{5,4}:title|text", a service check
// "_sc|name|0", an unknown type, a NaN gauge): Path (and Name) is its hash
// key, the text before the first ':' (the whole line without one), as Etsy
// proxy.js hashes it; Ext is the rest of the line; it has no type and no
// value (NaN). The StatsD appender writes its line; other formats refuse it.
// A processor may rename it: the new path replaces the key, the rest stays.
func (m *Metric) Opaque() bool { return m.flags&flagOpaque != 0 }

// PacketStart reports the first metric of a UDP datagram (a StatsD
// server counts the packets it received by it). Only inputs set it
// (MarkPacketStart), after parsing.
func (m *Metric) PacketStart() bool { return m.flags&flagPacket != 0 }

// MarkPacketStart marks m as the first metric of its datagram.
func (m *Metric) MarkPacketStart() { m.flags |= flagPacket }

// Modified reports whether the metric's line is a rendering, not the input
// (also true for the zero Metric, which has no input).
func (m *Metric) Modified() bool { return m.flags&flagModified != 0 || m.ptr == nil }

// fields are a metric's parts as views into its buf, for a rebuild.
type fields struct {
	prefix                           []byte // rendered before path, as part of it
	path, value, ts, rate, tags, ext []byte
	hasTags                          bool
}

func (m *Metric) fields() fields {
	return fields{path: m.Path(), value: m.ValueToken(), ts: m.TimeToken(), rate: m.RateToken(),
		tags: m.Tags(), ext: m.Ext(), hasTags: m.flags&flagTags != 0}
}

// rebuild renders f in m's format at the end of dst (which it returns) and
// makes m point into that rendering. The parts of f may point into m's
// old buffer: it is not written to.
func (m *Metric) rebuild(dst []byte, f *fields) []byte {
	s := len(dst)
	put := func(b []byte) span {
		if len(b) == 0 {
			return span{}
		}
		o := len(dst) - s
		dst = append(dst, b...)
		return span{uint32(o), uint32(len(b))}
	}
	var n Metric
	var l layout
	n.num, n.format, n.typ, n.flags = m.num, m.format, m.typ, flagModified|m.flags&(flagOpaque|flagPacket)
	if f.hasTags {
		n.flags |= flagTags
	}
	putPath := func() span {
		o := len(dst) - s
		dst = append(dst, f.prefix...)
		dst = append(dst, f.path...)
		return span{uint32(o), uint32(len(f.prefix) + len(f.path))}
	}
	var lineEnd int
	switch {
	case m.flags&flagOpaque != 0:
		// the key, then the rest of the line as it came
		l.sp[fPath] = putPath()
		l.sp[fExt] = put(f.ext)
		lineEnd = len(dst) - s
	case m.format == StatsD:
		l.sp[fPath] = putPath()
		dst = append(dst, ':')
		l.sp[fValue] = put(f.value)
		dst = append(dst, '|')
		tt := n.typ
		if tt == Untyped {
			tt = Gauge // the line needs a type; Type() stays Untyped for appenders
		}
		dst = append(dst, tt.String()...)
		multi := len(f.ext) > 0 && f.ext[0] == ':'
		if multi {
			l.sp[fExt] = put(f.ext) // Etsy multi-metric remainder follows the type
		}
		if len(f.rate) > 0 {
			dst = append(dst, "|@"...)
			l.sp[fRate] = put(f.rate)
		}
		if f.hasTags {
			dst = append(dst, "|#"...)
			l.sp[fTags] = put(f.tags)
		}
		if len(f.ts) > 0 {
			dst = append(dst, "|T"...)
			l.sp[fTime] = put(f.ts)
		}
		if !multi {
			l.sp[fExt] = put(f.ext)
		}
		lineEnd = len(dst) - s
	default:
		l.sp[fPath] = putPath()
		if m.format == Graphite || len(f.value) > 0 {
			dst = append(dst, ' ')
			l.sp[fValue] = put(f.value)
		}
		if len(f.ts) > 0 {
			dst = append(dst, ' ')
			l.sp[fTime] = put(f.ts)
		}
		lineEnd = len(dst) - s
		// fields a Graphite line has no place for are kept after it
		l.sp[fRate] = put(f.rate)
		l.sp[fTags] = put(f.tags)
		l.sp[fExt] = put(f.ext)
	}
	buf := dst[s:len(dst):len(dst)]
	p := l.sp[fPath]
	l.nameLen = uint32(nameLen(buf[p.off:p.off+p.n], m.format))
	if m.flags&flagOpaque != 0 {
		l.nameLen = p.n // a key, not a name with Influx tags
	}
	n.setLayout(buf, lineEnd, &l)
	*m = n
	return dst
}

// SetPath replaces name and key tags (the name ends at the first ';' for
// Graphite, ',' for StatsD). The metric is re-rendered into a new buffer; p
// is copied.
func (m *Metric) SetPath(p []byte) {
	f := m.fields()
	f.path = p
	m.rebuild(nil, &f)
}

// SetPathIn is SetPath rendering the metric at the end of arena, which it
// returns grown (see PrefixPath).
func (m *Metric) SetPathIn(arena, p []byte) []byte {
	f := m.fields()
	f.path = p
	return m.rebuild(arena, &f)
}

// PrefixPath prepends prefix to the path, rendering the metric at the end of
// arena, and returns the grown arena: processors give one arena to a whole
// batch so that renaming costs one allocation per batch, not per metric.
func (m *Metric) PrefixPath(arena, prefix []byte) []byte {
	f := m.fields()
	f.prefix = prefix
	return m.rebuild(arena, &f)
}

// SetValue sets the numeric value, rendering its token in the shortest form
// that parses back to v.
func (m *Metric) SetValue(v float64) {
	m.SetValueToken(strconv.AppendFloat(nil, v, 'f', -1, 64), v)
}

// SetValueToken sets the value token and its numeric value; an empty token
// renders v.
func (m *Metric) SetValueToken(tok []byte, v float64) {
	if len(tok) == 0 {
		tok = strconv.AppendFloat(nil, v, 'f', -1, 64)
	}
	f := m.fields()
	f.value = tok
	m.num = v
	m.rebuild(nil, &f)
}

// SetTime sets the timestamp (Unix seconds).
func (m *Metric) SetTime(t time.Time) {
	m.SetTimeToken(strconv.AppendInt(nil, t.Unix(), 10))
}

// SetTimeToken sets the timestamp token; nil removes it.
func (m *Metric) SetTimeToken(tok []byte) {
	f := m.fields()
	f.ts = tok
	m.rebuild(nil, &f)
}

// SetRate sets the StatsD sample-rate token (without '@'); nil removes it.
func (m *Metric) SetRate(tok []byte) {
	f := m.fields()
	f.rate = tok
	m.rebuild(nil, &f)
}

// SetTags replaces the DogStatsD tags (text after "|#"); nil removes them.
// On a Graphite metric they are kept beside the line and rendered as extra
// tags (";k=v" by the Graphite appender, after the path's own tags by the
// StatsD appender).
func (m *Metric) SetTags(tags []byte) {
	f := m.fields()
	f.tags, f.hasTags = tags, tags != nil
	m.rebuild(nil, &f)
}

// SetType sets the StatsD type.
func (m *Metric) SetType(t Type) {
	f := m.fields()
	m.typ = t
	m.rebuild(nil, &f)
}

// NewGraphite builds a Graphite metric. It allocates; it is meant for inputs
// that do not parse lines (HTTP, self-metrics), not for hot paths that can
// use the codec.
func NewGraphite(path string, value float64, ts time.Time) Metric {
	m := Metric{format: Graphite, num: value}
	m.rebuild(nil, &fields{
		path:  []byte(path),
		value: strconv.AppendFloat(nil, value, 'f', -1, 64),
		ts:    strconv.AppendInt(nil, ts.Unix(), 10),
	})
	return m
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
	m := Metric{format: StatsD, typ: s.Type, num: math.NaN()}
	if f, err := strconv.ParseFloat(s.Value, 64); err == nil {
		m.num = f
	}
	f := fields{path: []byte(s.Path), value: []byte(s.Value)}
	if s.Rate > 0 && s.Rate != 1 {
		f.rate = strconv.AppendFloat(nil, s.Rate, 'g', -1, 64)
	}
	if s.Tags != "" {
		f.tags, f.hasTags = []byte(s.Tags), true
	}
	m.rebuild(nil, &f)
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
