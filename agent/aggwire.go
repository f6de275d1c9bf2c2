package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// aggTick is how often expired buckets are looked for (carbon-c-relay's
// aggregator sleeps 250 ms when it has nothing to do).
const aggTick = 250 * time.Millisecond

// aggStates keeps the state of aggregate rules across reloads: a rule
// whose expressions and [rules.aggregate] are unchanged keeps its open
// buckets.
type aggStates struct {
	mu      sync.Mutex
	byPrint map[string]*aggregate.Aggregate
	stop    context.CancelFunc
	done    chan struct{}
}

// bindAggregates gives the aggregate rules of ch their state: the running
// one of an unchanged rule, or a new one with its counters.
func (a *Agent) bindAggregates(ch *rules.Chain) {
	if len(ch.Aggregates()) == 0 {
		return
	}
	s := &a.aggs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPrint == nil {
		s.byPrint = map[string]*aggregate.Aggregate{}
	}
	ch.BindAggregates(func(r *rules.AggRule) *aggregate.Aggregate {
		if g := s.byPrint[r.Print]; g != nil {
			return g
		}
		g := aggregate.New(r.Cfg, nil, uint64(time.Now().UnixNano()))
		m := a.metrics.Labeled("aggregate", r.Label)
		g.SetCounters(aggregate.Counters{
			Received:      m.Counter("aggregate_received_total", "Metrics that matched the aggregate rule."),
			Late:          m.Counter("aggregate_late_total", "Values older than the oldest open bucket of their series (dropped, counted)."),
			Future:        m.Counter("aggregate_future_total", "Values past the newest bucket of their series (dropped, counted)."),
			Refused:       m.Counter("aggregate_refused_total", "Values of new series refused at max_series (dropped, counted)."),
			ValuesRefused: m.Counter("aggregate_values_refused_total", "Values left out of median, percentile, variance and stddev: a bucket keeps at most 1048576."),
			Emitted:       m.Counter("aggregate_emitted_total", "Aggregate metrics produced."),
			Dropped:       m.Counter("aggregate_dropped_total", "Values of open buckets dropped when a reload removed or changed the rule."),
		})
		m.Gauge("aggregate_series", "Series the aggregate rule holds (every compute).", func() float64 { n, _ := g.Series(); return float64(n) })
		m.Gauge("aggregate_values", "Values its buckets keep for median, percentile, variance and stddev.", func() float64 { _, v := g.Series(); return float64(v) })
		s.byPrint[r.Print] = g
		return g
	})
}

// startAggregates takes up the buckets the last run saved (spool_dir) and
// runs the emission of expired buckets until shutdown.
func (a *Agent) startAggregates() {
	if p := acquire(&a.pipe); p.chain != nil {
		for _, r := range p.chain.Aggregates() {
			if r.Agg != nil {
				a.loadAggregate(r, r.Agg)
			}
		}
		p.release()
	} else {
		p.release()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.aggs.stop, a.aggs.done = cancel, make(chan struct{})
	go func() {
		defer close(a.aggs.done)
		t := time.NewTicker(aggTick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.expireAggregates(false)
			}
		}
	}()
}

// stopAggregates ends the emission and, once inputs have stopped, emits
// every bucket that has ended, as carbon-c-relay does at shutdown, and
// logs per rule what it did and how many series still had open buckets.
func (a *Agent) stopAggregates() {
	if a.aggs.stop == nil {
		return
	}
	a.aggs.stop()
	<-a.aggs.done
	a.expireAggregates(true)
	p := acquire(&a.pipe)
	defer p.release()
	if p.chain == nil {
		return
	}
	for _, r := range p.chain.Aggregates() {
		if r.Agg == nil {
			continue
		}
		a.saveAggregate(r)
		n, _ := r.Agg.Series()
		c := r.Agg.C
		a.log.Info().Str("aggregate", r.Label).Uint64("received", c.Received.Load()).Uint64("emitted", c.Emitted.Load()).
			Uint64("late", c.Late.Load()).Uint64("future", c.Future.Load()).Uint64("refused", c.Refused.Load()).
			Int("series_open", n).Msg("aggregate summary")
	}
}

// aggStateFile is where an aggregate rule with spool_dir keeps its open
// buckets between a shutdown and the next start.
func aggStateFile(r *rules.AggRule) string {
	name := strings.Map(func(c rune) rune {
		if c == '/' || c == 0 || c == '\\' {
			return '_'
		}
		return c
	}, r.Label)
	return filepath.Join(r.Cfg.SpoolDir, "aggregate-"+name+".state")
}

// saveAggregate writes the open buckets of r to its spool_dir.
func (a *Agent) saveAggregate(r *rules.AggRule) {
	if r.Cfg.SpoolDir == "" {
		return
	}
	file := aggStateFile(r)
	err := os.MkdirAll(r.Cfg.SpoolDir, 0o750)
	var n int
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(r.Cfg.SpoolDir, ".aggregate-*"); err == nil {
			n, err = r.Agg.Save(f, r.Print)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(f.Name(), file)
			} else {
				os.Remove(f.Name())
			}
		}
	}
	if err != nil {
		a.log.Error().Err(err).Str("aggregate", r.Label).Str("file", file).Msg("aggregate: open buckets not saved (lost)")
		return
	}
	a.log.Info().Str("aggregate", r.Label).Str("file", file).Int("series", n).Msg("aggregate: open buckets saved for the next start")
}

// loadAggregate takes up what saveAggregate wrote, once.
func (a *Agent) loadAggregate(r *rules.AggRule, g *aggregate.Aggregate) {
	if r.Cfg.SpoolDir == "" {
		return
	}
	file := aggStateFile(r)
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return
	}
	if err == nil {
		var n int
		n, err = g.Load(f, r.Print)
		f.Close()
		if err == nil {
			os.Remove(file)
			a.log.Info().Str("aggregate", r.Label).Str("file", file).Int("series", n).Msg("aggregate: open buckets of the last run taken up")
			return
		}
	}
	a.log.Warn().Err(err).Str("aggregate", r.Label).Str("file", file).Msg("aggregate: saved buckets not taken up (file kept)")
}

// retireAggregates ends the state of rules a reload removed or changed:
// what has ended is emitted through the current rules (into no aggregate),
// the values of buckets still open are dropped, counted and logged.
func (a *Agent) retireAggregates(p *pipeline) {
	s := &a.aggs
	s.mu.Lock()
	live := map[*aggregate.Aggregate]bool{}
	if p.chain != nil {
		for _, r := range p.chain.Aggregates() {
			live[r.Agg] = true
		}
	}
	var gone []*aggregate.Aggregate
	for print, g := range s.byPrint {
		if !live[g] {
			gone = append(gone, g)
			delete(s.byPrint, print)
		}
	}
	s.mu.Unlock()
	for _, g := range gone {
		lines := g.Expire(nil, true)
		emitted := bytes.Count(lines, []byte{'\n'})
		if len(lines) > 0 && p.chain != nil {
			a.deliverAggregate(p, &rules.AggRule{Index: rules.SkipAggregates}, lines, true)
		}
		dropped := g.Pending()
		if emitted == 0 && dropped == 0 {
			continue // never used (a reload prepared, then refused)
		}
		g.C.Dropped.Add(dropped)
		a.log.Warn().Int("emitted", emitted).Uint64("dropped", dropped).
			Msg("aggregate rule removed or changed by a reload: ended buckets emitted through the rules, values of open buckets dropped")
	}
}

// expireAggregates emits what has expired (final: what has ended) in every
// aggregate rule of the current pipeline, after retiring the state of rules
// a reload took away.
func (a *Agent) expireAggregates(final bool) {
	p := acquire(&a.pipe)
	defer p.release()
	if !final {
		a.retireAggregates(p)
	}
	if p.chain == nil {
		return
	}
	for _, r := range p.chain.Aggregates() {
		if r.Agg == nil {
			continue
		}
		if lines := r.Agg.Expire(nil, final); len(lines) > 0 {
			a.deliverAggregate(p, r, lines, final)
		}
	}
}

// deliverAggregate sends produced lines to the rule's outputs, or through
// the chain from the top (skipping the rule itself).
func (a *Agent) deliverAggregate(p *pipeline, r *rules.AggRule, lines []byte, final bool) {
	b := make(metric.Batch, 0, bytes.Count(lines, []byte{'\n'}))
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		b = append(b, metric.Metric{})
		if graphite.Parse(lines[:i:i], &b[len(b)-1]) != nil {
			b = b[:len(b)-1] // "nan" or "inf": carbon would drop it too
		}
		lines = lines[i+1:]
	}
	if len(b) == 0 {
		return
	}
	ctx := a.rctx
	if ctx == nil {
		ctx = context.Background()
	}
	if len(r.Sends) > 0 {
		for _, s := range r.Sends {
			_ = p.slots[s].Enqueue(ctx, b)
		}
		return
	}
	origin := r.Index
	if final {
		origin = rules.SkipAggregates // as carbon-c-relay, no aggregate takes values while stopping
	}
	for i, sub := range p.chain.RouteFrom(b, origin) {
		if len(sub) > 0 {
			_ = p.slots[i].Enqueue(ctx, sub)
		}
	}
}
