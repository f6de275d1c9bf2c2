package agent

import (
	"bytes"
	"context"
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
		})
		m.Gauge("aggregate_series", "Series the aggregate rule holds (every compute).", func() float64 { n, _ := g.Series(); return float64(n) })
		m.Gauge("aggregate_values", "Values its buckets keep for median, percentile, variance and stddev.", func() float64 { _, v := g.Series(); return float64(v) })
		s.byPrint[r.Print] = g
		return g
	})
}

// startAggregates runs the emission of expired buckets until shutdown.
func (a *Agent) startAggregates() {
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
		n, _ := r.Agg.Series()
		c := r.Agg.C
		a.log.Info().Str("aggregate", r.Label).Uint64("received", c.Received.Load()).Uint64("emitted", c.Emitted.Load()).
			Uint64("late", c.Late.Load()).Uint64("future", c.Future.Load()).Uint64("refused", c.Refused.Load()).
			Int("series_open", n).Msg("aggregate summary")
	}
}

// expireAggregates emits what has expired (final: what has ended) in every
// aggregate rule of the current pipeline.
func (a *Agent) expireAggregates(final bool) {
	p := acquire(&a.pipe)
	defer p.release()
	if p.chain == nil {
		return
	}
	for _, r := range p.chain.Aggregates() {
		if r.Agg == nil {
			continue
		}
		if lines := r.Agg.Expire(nil, final); len(lines) > 0 {
			a.deliverAggregate(p, r, lines)
		}
	}
}

// deliverAggregate sends produced lines to the rule's outputs, or through
// the chain from the top (skipping the rule itself).
func (a *Agent) deliverAggregate(p *pipeline, r *rules.AggRule, lines []byte) {
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
	for i, sub := range p.chain.RouteFrom(b, r.Index) {
		if len(sub) > 0 {
			_ = p.slots[i].Enqueue(ctx, sub)
		}
	}
}
