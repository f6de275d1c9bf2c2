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
// the same name, DogStatsD tags, timestamp and extra sections become one line, at the
// place of the first, whose value is the sum of value / sample rate (no
// rate section: the sum is already scaled). A counter alone in its batch,
// and every other metric, is written unchanged, in order.
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

// summable reports a counter whose value can be summed.
func summable(m *metric.Metric) bool {
	if m.Format() != metric.StatsD || m.Opaque() || m.Type() != metric.Counter {
		return false
	}
	if ext := m.Ext(); len(ext) > 0 && ext[0] == ':' {
		return false // an Etsy multi-value line: its other values follow
	}
	v := m.Value()
	return !math.IsNaN(v) && !math.IsInf(v, 0)
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
		if summable(m) {
			s.key = append(append(append(append(s.key[:0], m.Path()...), 0), m.Tags()...), 0)
			s.key = append(append(append(s.key, m.TimeToken()...), 0), m.Ext()...)
			h := maphash.Bytes(s.seed, s.key)
			v := m.Value()
			if r := m.Rate(); r > 0 {
				v /= r
			}
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
	if !anyMerged(s.groups) {
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
			need += len(m.Path()) + len(m.Tags()) + len(m.TimeToken()) + len(m.Ext()) + 40
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
			s.arena = strconv.AppendFloat(s.arena, s.groups[g].sum, 'g', -1, 64)
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
				// cannot happen (a finite sum of a parsed counter): keep
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

func anyMerged(gs []sumGroup) bool {
	for _, g := range gs {
		if g.n > 1 {
			return true
		}
	}
	return false
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
