package statsd

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"math"
	"strconv"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// summer merges the counters of a batch (sum_counters): the counters with
// the same name, DogStatsD tags, timestamp and extra sections become one
// line, at the place of the first, whose value is the sum of value /
// sample rate (no rate section: the sum is already scaled), written as
// metric.SetValue renders a value (the shortest decimal that parses back,
// no exponent; Etsy statsd reads it with Number()). A counter alone in its
// batch, and every other metric, is written unchanged, in order. So is a
// counter a StatsD server may read otherwise than the codec (see
// summable), and the counters of a name whose sum overflows to Inf.
type summer struct {
	seed   maphash.Seed
	group  map[uint64]int32 // key hash -> index in groups
	groups []sumGroup
	member []int32 // per metric of the batch: its group, -1 if not merged
	merged metric.Batch
	cover  []int32 // per merged metric: how many metrics of the batch it stands for
	arena  []byte  // the lines of the summed counters
	key    []byte
}

type sumGroup struct {
	first int32 // index in the batch
	n     int32
	sum   float64
}

func newSummer() *summer {
	return &summer{seed: maphash.MakeSeed(), group: map[uint64]int32{}}
}

// summable returns the scaled value (value / sample rate) of a counter
// whose lines can be summed: parsed (not opaque), finite, its value and
// rate tokens read alike by the codec and by Etsy statsd, and no extra
// sections after a rate (without the rate they would take its place).
// Others are written unchanged: NaN and Inf as the codec handles them
// (refused), and tokens like "1_000", "0x1p4" or "@1e-1", which Etsy's
// Number() and its rate pattern /^@([\d\.]+)/ do not read as the codec does.
func summable(m *metric.Metric) (float64, bool) {
	if m.Format() != metric.StatsD || m.Opaque() || m.Type() != metric.Counter {
		return 0, false
	}
	ext := m.Ext()
	if len(ext) > 0 && ext[0] == ':' {
		return 0, false // an Etsy multi-value line: its other values follow
	}
	if !plainNumber(m.ValueToken(), true) {
		return 0, false
	}
	v := m.Value()
	if rt := m.RateToken(); len(rt) > 0 {
		if len(ext) > 0 || !plainNumber(rt, false) {
			return 0, false
		}
		v /= m.Rate()
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// plainNumber reports a decimal token: digits and '.', with a sign and an
// exponent when exp (what both strconv.ParseFloat and JavaScript's
// Number() read the same way), digits and '.' only otherwise. An empty
// token (a value a processor set) is plain.
func plainNumber(tok []byte, exp bool) bool {
	for _, c := range tok {
		switch {
		case c >= '0' && c <= '9', c == '.':
		case exp && (c == '+' || c == '-' || c == 'e' || c == 'E'):
		default:
			return false
		}
	}
	return true
}

// sameCounter reports whether a and b have the same name, tags, timestamp
// and extra sections (a hash collision is not a match).
func sameCounter(a, b *metric.Metric) bool {
	return bytes.Equal(a.Path(), b.Path()) && bytes.Equal(a.Tags(), b.Tags()) &&
		bytes.Equal(a.TimeToken(), b.TimeToken()) && bytes.Equal(a.Ext(), b.Ext())
}

// merge returns b with its counters summed, and how many lines merging took
// away. The result and its lines are valid until the next merge.
func (s *summer) merge(b metric.Batch) (metric.Batch, int) {
	clear(s.group)
	s.groups = s.groups[:0]
	s.member = s.member[:0]
	for i := range b {
		m := &b[i]
		g := int32(-1)
		if v, ok := summable(m); ok {
			s.key = append(append(append(append(s.key[:0], m.Path()...), 0), m.Tags()...), 0)
			s.key = append(append(append(s.key, m.TimeToken()...), 0), m.Ext()...)
			h := maphash.Bytes(s.seed, s.key)
			if j, ok := s.group[h]; ok && sameCounter(&b[s.groups[j].first], m) {
				g = j
				s.groups[j].n++
				s.groups[j].sum += v
			} else if !ok {
				g = int32(len(s.groups))
				s.group[h] = g
				s.groups = append(s.groups, sumGroup{first: int32(i), n: 1, sum: v})
			}
		}
		s.member = append(s.member, g)
	}
	merged := false
	for j := range s.groups {
		g := &s.groups[j]
		if math.IsInf(g.sum, 0) {
			g.n = 1 // an overflowing sum: its counters are written as they came
		}
		merged = merged || g.n > 1
	}
	if !merged {
		return b, 0
	}
	s.merged = s.merged[:0]
	s.cover = s.cover[:0]
	s.arena = s.arena[:0]
	// the lines of the merged counters first, in one arena that does not
	// move while the metrics point into it
	need := 0
	for _, g := range s.groups {
		if g.n > 1 {
			m := &b[g.first]
			need += len(m.Path()) + len(m.Tags()) + len(m.TimeToken()) + len(m.Ext()) + 8 + maxDecimal(g.sum)
		}
	}
	if cap(s.arena) < need {
		s.arena = make([]byte, 0, need+need/4)
	}
	gone := 0
	for i := range b {
		g := s.member[i]
		switch {
		case g < 0 || s.groups[g].n == 1:
			s.merged = append(s.merged, b[i])
			s.cover = append(s.cover, 1)
		case int(s.groups[g].first) == i:
			m := &b[i]
			start := len(s.arena)
			s.arena = append(s.arena, m.Path()...)
			s.arena = append(s.arena, ':')
			s.arena = strconv.AppendFloat(s.arena, s.groups[g].sum, 'f', -1, 64)
			s.arena = append(s.arena, "|c"...)
			if t := m.Tags(); len(t) > 0 {
				s.arena = append(s.arena, "|#"...)
				s.arena = append(s.arena, t...)
			}
			if ts := m.TimeToken(); len(ts) > 0 {
				s.arena = append(s.arena, "|T"...)
				s.arena = append(s.arena, ts...)
			}
			s.arena = append(s.arena, m.Ext()...)
			line := s.arena[start:len(s.arena):len(s.arena)]
			s.merged = append(s.merged, metric.Metric{})
			if codec.Parse(line, &s.merged[len(s.merged)-1]) != nil {
				// not expected (a finite sum of a parsed counter): keep
				// the counters as they came
				s.merged = s.merged[:len(s.merged)-1]
				return b, 0
			}
			s.cover = append(s.cover, s.groups[g].n)
			gone += int(s.groups[g].n) - 1
		}
	}
	return s.merged, gone
}

// maxDecimal bounds the length of v written with 'f' and precision -1:
// at most 17 significant digits, a sign and a point, within 21 digits of
// the point from 1e-6 to 1e21, and up to 324 digits from it beyond.
func maxDecimal(v float64) int {
	if a := math.Abs(v); a == 0 || a >= 1e-6 && a < 1e21 {
		return 32
	}
	return 350
}

// writeSummed writes b with its counters summed. A sum cannot be split
// again, so a write cut short after some lines went out (a TCP connection
// lost mid-batch) does not retry the rest: it is dropped and counted as
// rejected, and logged. A write that sent nothing is retried whole, as
// without sum_counters.
func (s *StatsD) writeSummed(ctx context.Context, b metric.Batch) error {
	mb, gone := s.sum.merge(b)
	err := s.write(ctx, mb)
	if err == nil {
		s.summed.Add(uint64(gone))
		return nil
	}
	var pw *registry.PartialWriteError
	if !errors.As(err, &pw) || pw.Written <= 0 {
		var ref *streamout.Refused
		if errors.As(err, &ref) {
			s.summed.Add(uint64(gone)) // the others went out
		}
		return err // nothing went out (retried whole), or refusals only
	}
	covered := 0
	for _, c := range s.sum.cover[:min(pw.Written, len(s.sum.cover))] {
		covered += int(c)
	}
	if len(mb) == len(b) {
		covered = pw.Written // nothing was merged: exact as without the option
	}
	if covered >= len(b) || pw.Err == nil {
		s.summed.Add(uint64(gone))
		return &registry.PartialWriteError{Written: len(b), Refused: pw.Refused, Err: pw.Err}
	}
	if len(mb) == len(b) {
		return err
	}
	lost := len(b) - covered
	s.summed.Add(uint64(gone))
	s.log.Warn().Err(pw.Err).Int("count", lost).Msg("sum_counters: write cut short; the rest of the batch (already summed) dropped, counted as rejected")
	return &registry.PartialWriteError{Written: len(b), Refused: pw.Refused + lost}
}
