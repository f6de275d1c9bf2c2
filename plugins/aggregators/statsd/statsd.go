// Package statsd is the StatsD server: [[aggregators.statsd]] takes the
// StatsD metrics of every input (UDP, TCP, http_json), aggregates them as
// Etsy statsd 0.9.0 does (agent/statsdagg) and, every flush_interval,
// returns what its graphite backend would write, as Graphite metrics.
package statsd

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/statsdagg"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddAggregator("statsd", func() registry.Aggregator { return New() }, sample)
}

// Histogram is one entry of the histogram key. As in Etsy, metric "" matches
// every timer, and empty bins keep the timers it matches out of the later
// entries.
type Histogram struct {
	Metric string `toml:"metric"`
	// Bins are numbers or "inf".
	Bins []any `toml:"bins"`
}

// StatsD is the aggregators.statsd plugin.
type StatsD struct {
	FlushInterval    registry.Duration `toml:"flush_interval"`
	PercentThreshold []float64         `toml:"percent_threshold"`
	TimerTypes       []string          `toml:"timer_types"`
	LegacyNamespace  bool              `toml:"legacy_namespace"`
	GlobalPrefix     string            `toml:"global_prefix"`
	PrefixCounter    string            `toml:"prefix_counter"`
	PrefixTimer      string            `toml:"prefix_timer"`
	PrefixGauge      string            `toml:"prefix_gauge"`
	PrefixSet        string            `toml:"prefix_set"`
	GlobalSuffix     string            `toml:"global_suffix"`
	PrefixStats      string            `toml:"prefix_stats"`
	FlushCounts      bool              `toml:"flush_counts"`
	DeleteIdleStats  bool              `toml:"delete_idle_stats"`
	DeleteCounters   *bool             `toml:"delete_counters"`
	DeleteTimers     *bool             `toml:"delete_timers"`
	DeleteGauges     *bool             `toml:"delete_gauges"`
	DeleteSets       *bool             `toml:"delete_sets"`
	GaugesMaxTTL     int               `toml:"gauges_max_ttl"`
	Histogram        []Histogram       `toml:"histogram"`
	MaxSeries        int               `toml:"max_series"`
	MaxValues        int               `toml:"max_values"`

	log       zerolog.Logger
	every     time.Duration
	timerTyp  [8]bool // by metric.Type
	mu        sync.Mutex
	st        *statsdagg.State
	pmu       sync.Mutex // pend, pendLines
	pend      []byte     // lines taken while a flush held mu
	render    []byte     // the text of the last flush (Flush only)
	pendLines []pendLine
	values    int // timer values and set members taken since the last flush

	received, bad, refused, valuesRefused, notNumbers *atomic.Uint64
}

// New returns the plugin with Etsy's defaults (and timer_types ms, h, d).
func New() *StatsD {
	return &StatsD{
		FlushInterval:    registry.Duration(10 * time.Second),
		PercentThreshold: []float64{90},
		TimerTypes:       []string{"ms", "h", "d"},
		LegacyNamespace:  true,
		GlobalPrefix:     "stats",
		PrefixCounter:    "counters",
		PrefixTimer:      "timers",
		PrefixGauge:      "gauges",
		PrefixSet:        "sets",
		PrefixStats:      "statsd",
		FlushCounts:      true,
		GaugesMaxTTL:     1,
		MaxSeries:        1_000_000,
		MaxValues:        10_000_000,
	}
}

// config turns the keys into statsdagg's configuration.
func (s *StatsD) config() (statsdagg.Config, error) {
	c := statsdagg.DefaultConfig()
	if s.FlushInterval.D() < time.Second {
		return c, errors.New("flush_interval: want 1s or more")
	}
	if s.FlushInterval.D()%time.Second != 0 {
		return c, errors.New("flush_interval: want whole seconds (flushes are timestamped in seconds)")
	}
	c.FlushInterval = s.FlushInterval.D()
	c.PercentThreshold = s.PercentThreshold
	if c.PercentThreshold == nil {
		c.PercentThreshold = []float64{}
	}
	for _, p := range s.PercentThreshold {
		if p == 0 || p < -100 || p > 100 || math.IsNaN(p) {
			return c, fmt.Errorf("percent_threshold: %v is not in [-100, 0) or (0, 100]", p)
		}
	}
	for _, t := range s.TimerTypes {
		switch t {
		case "ms", "h", "d":
		default:
			return c, fmt.Errorf("timer_types: %q is not one of \"ms\", \"h\", \"d\"", t)
		}
	}
	if !slices.Contains(s.TimerTypes, "ms") {
		return c, errors.New(`timer_types: "ms" is always a timer`)
	}
	c.TimerTypes = s.TimerTypes
	c.LegacyNamespace = s.LegacyNamespace
	c.GlobalPrefix, c.PrefixCounter, c.PrefixTimer = s.GlobalPrefix, s.PrefixCounter, s.PrefixTimer
	c.PrefixGauge, c.PrefixSet, c.GlobalSuffix, c.PrefixStats = s.PrefixGauge, s.PrefixSet, s.GlobalSuffix, s.PrefixStats
	c.FlushCounts = s.FlushCounts
	del := func(p *bool) bool {
		if p != nil {
			return *p
		}
		return s.DeleteIdleStats
	}
	c.DeleteCounters, c.DeleteTimers, c.DeleteGauges, c.DeleteSets = del(s.DeleteCounters), del(s.DeleteTimers), del(s.DeleteGauges), del(s.DeleteSets)
	c.GaugesMaxTTL = s.GaugesMaxTTL
	if c.GaugesMaxTTL < 1 {
		return c, errors.New("gauges_max_ttl: want 1 or more")
	}
	for i, h := range s.Histogram {
		hs := statsdagg.Histogram{Metric: h.Metric}
		for _, b := range h.Bins {
			switch v := b.(type) {
			case int64:
				hs.Bins = append(hs.Bins, float64(v))
			case float64:
				hs.Bins = append(hs.Bins, v)
			case string:
				if v != "inf" {
					return c, fmt.Errorf("histogram[%d]: bin %q: want a number or \"inf\"", i, v)
				}
				hs.Bins = append(hs.Bins, math.Inf(1))
			default:
				return c, fmt.Errorf("histogram[%d]: bin %v: want a number or \"inf\"", i, b)
			}
		}
		c.Histogram = append(c.Histogram, hs)
	}
	if s.MaxSeries <= 0 {
		return c, errors.New("max_series: want 1 or more")
	}
	if s.MaxValues <= 0 {
		return c, errors.New("max_values: want 1 or more")
	}
	c.MaxSeries = s.MaxSeries
	return c, nil
}

// Init checks the keys and registers the plugin's metrics.
func (s *StatsD) Init(env registry.Env) error {
	c, err := s.config()
	if err != nil {
		return err
	}
	if s.st, err = statsdagg.New(c); err != nil {
		return err
	}
	s.every = c.FlushInterval
	for _, t := range s.TimerTypes {
		if typ, ok := metric.ParseType([]byte(t)); ok {
			s.timerTyp[typ] = true
		}
	}
	s.log = env.Log
	m := env.Metrics
	s.received = m.Counter("received_total", "StatsD lines taken.")
	s.bad = m.Counter("bad_lines_total", "Lines (or values of multi-value lines) Etsy statsd counts as bad: not aggregated (also in <prefix_stats>.bad_lines_seen).")
	s.refused = m.Counter("refused_total", "Values of new keys refused at max_series (dropped).")
	s.valuesRefused = m.Counter("values_refused_total", "Timer values and set members refused at max_values until the next flush (dropped).")
	s.notNumbers = m.Counter("not_numbers_total", "Flushed statistics that are NaN (Etsy writes them, carbon drops them): not emitted.")
	m.Gauge("series", "Keys held (counters, timers, gauges and sets).", func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.st.Series())
	})
	return nil
}

// Interval is flush_interval.
func (s *StatsD) Interval() time.Duration { return s.every }

// Take aggregates the StatsD metrics of b (opaque lines included: Etsy
// counts them as bad lines) and returns the others. While a flush holds
// the state, the lines wait in a side buffer (up to maxPending bytes) that
// the flush adds once it is done: an input never waits for a flush.
func (s *StatsD) Take(b metric.Batch) metric.Batch {
	rest := b[:0]
	if !s.mu.TryLock() {
		s.pmu.Lock()
		if len(s.pend) < maxPending {
			var taken uint64
			for i := range b {
				m := &b[i]
				if m.Format() != metric.StatsD {
					rest = append(rest, *m)
					continue
				}
				taken++
				s.pend = append(s.pend, m.Line()...)
				s.pendLines = append(s.pendLines, pendLine{end: uint32(len(s.pend)), kind: s.kindOf(m)})
			}
			s.pmu.Unlock()
			s.received.Add(taken)
			return rest
		}
		s.pmu.Unlock()
		s.mu.Lock() // a flush of more than maxPending bytes of input: wait
	}
	var c takeCounts
	s.addPending(&c)
	packetsBefore := c.packets
	refusedBefore := s.st.Refused()
	for i := range b {
		m := &b[i]
		if m.Format() != metric.StatsD {
			rest = append(rest, *m)
			continue
		}
		c.taken++
		s.add(m.Line(), s.kindOf(m), &c)
	}
	if n := c.packets - packetsBefore; n > 0 {
		s.st.AddPackets(int(n))
	}
	refused := s.st.Refused() - refusedBefore
	s.mu.Unlock()
	s.count(&c, refused)
	return rest
}

// maxPending bounds the input a flush makes wait (see Take).
const maxPending = 64 << 20

// pendLine is a line waiting for a flush to end: its end in StatsD.pend.
type pendLine struct {
	end  uint32
	kind uint8
}

// Line kinds for add.
const (
	kindPacket uint8 = 1 << iota // the first line of its datagram
	kindValue                    // a timer value or set member (max_values)
)

func (s *StatsD) kindOf(m *metric.Metric) uint8 {
	var k uint8
	if m.PacketStart() {
		k |= kindPacket
	}
	if !m.Opaque() && (m.Type() == metric.Set || s.timerTyp[m.Type()]) {
		k |= kindValue
	}
	return k
}

type takeCounts struct{ taken, bad, valuesRefused, packets uint64 }

// add adds one line (s.mu held).
func (s *StatsD) add(line []byte, kind uint8, c *takeCounts) {
	if kind&kindPacket != 0 {
		c.packets++
	}
	if kind&kindValue != 0 {
		if s.values >= s.MaxValues {
			c.valuesRefused++
			return
		}
		s.values++
	}
	if err := s.st.Add(line); err != nil {
		c.bad++
		if e := s.log.Debug(); e.Enabled() {
			e.Err(err).Msg("bad line")
		}
	}
}

// addPending adds the lines that waited for a flush (s.mu held).
func (s *StatsD) addPending(c *takeCounts) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pendLines) == 0 {
		return
	}
	refusedBefore := s.st.Refused()
	packets := c.packets
	start := uint32(0)
	for _, l := range s.pendLines {
		s.add(s.pend[start:l.end], l.kind, c)
		start = l.end
	}
	if n := c.packets - packets; n > 0 {
		s.st.AddPackets(int(n))
	}
	s.refused.Add(s.st.Refused() - refusedBefore)
	s.pend, s.pendLines = s.pend[:0], s.pendLines[:0]
	if cap(s.pend) > 1<<20 {
		s.pend, s.pendLines = nil, nil // what a long flush made grow
	}
}

func (s *StatsD) count(c *takeCounts, refused uint64) {
	s.received.Add(c.taken)
	if c.bad > 0 {
		s.bad.Add(c.bad)
	}
	if refused > 0 {
		s.refused.Add(refused)
	}
	if c.valuesRefused > 0 {
		s.valuesRefused.Add(c.valuesRefused)
	}
}

// Flush renders the interval as Etsy's graphite backend does, timestamped
// with now rounded to the second (as Etsy: Math.round(Date.now() / 1000)),
// and hands it to emit in batches of flushBatch metrics. The rendering
// buffer is kept from one flush to the next; each batch gets a copy of its
// lines, small enough for the memory of earlier batches to be reused.
func (s *StatsD) Flush(now time.Time, final bool, emit func(metric.Batch)) {
	ts := (now.UnixMilli() + 500) / 1000
	s.mu.Lock()
	s.render = s.st.Flush(ts, s.render[:0])
	lines := s.st.Lines() // valid until the next Flush: after the unlock too
	s.values = 0
	// what came during the flush is the next interval's
	var c takeCounts
	s.addPending(&c)
	s.mu.Unlock()
	s.count(&c, 0)
	text := s.render
	var nan uint64
	for len(lines) > 0 {
		chunk := lines[:min(flushBatch, len(lines))]
		lines = lines[len(chunk):]
		from, to := chunk[0].Start, chunk[len(chunk)-1].End
		buf := append([]byte(nil), text[from:to]...)
		b := make(metric.Batch, len(chunk))
		n := 0
		for _, l := range chunk {
			if l.Value != l.Value {
				nan++ // "NaN": carbon would drop it
				continue
			}
			st, end := l.Start-from, l.End-from
			graphite.SetRendered(&b[n], buf[st:end:end], int(l.PathEnd-l.Start), int(l.ValueEnd-l.Start), l.Value)
			n++
		}
		if n > 0 {
			emit(b[:n])
		}
	}
	if cap(s.render) > 4*len(text)+1<<20 {
		s.render = nil // the keys went (delete_*): let the buffer go too
	}
	if nan > 0 {
		s.notNumbers.Add(nan)
	}
}

// flushBatch is the most metrics of one batch of a flush.
const flushBatch = 8192

var (
	_ registry.Aggregator  = (*StatsD)(nil)
	_ registry.Initializer = (*StatsD)(nil)
)
