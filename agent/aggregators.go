package agent

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/selector"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Aggregators ([[aggregators.*]]) take metrics after the processors and put
// back what they computed, every interval:
//
//   - the pipeline hands each batch to them in file order (aggNode.take);
//     what one keeps goes nowhere else;
//   - each instance has a flush loop, on wall-clock multiples of its
//     interval; what a flush returns enters the rules from the top, or
//     goes to every output without rules (not through the processors or
//     the aggregators again);
//   - a reload keeps an instance whose table is unchanged, with its state;
//     one removed or changed makes a final flush once no Emit uses the old
//     pipeline (its successor starts from nothing);
//   - at shutdown, once the inputs have stopped, each makes its final
//     flush before the outputs drain.

// aggRun is a running aggregator instance and its flush loop.
type aggRun struct {
	inst *config.Instance
	agg  registry.Aggregator
	sel  *selector.Selector

	stop     chan struct{}
	done     chan struct{}
	started  bool
	flushMu  sync.Mutex // one Flush at a time, and none after the final one
	final    bool
	flushes  *atomic.Uint64
	emitted  *atomic.Uint64
	lastNano atomic.Int64 // duration of the last flush
	maxNano  atomic.Int64 // longest flush since start
}

// newAggRun initialises a new instance of ai.
func (a *Agent) newAggRun(cfg *config.Config, ai *config.Instance) (*aggRun, error) {
	v, err := a.initFresh(cfg, ai)
	if err != nil {
		return nil, err
	}
	r := &aggRun{inst: ai, agg: v.(registry.Aggregator), sel: ai.Sel, stop: make(chan struct{}), done: make(chan struct{})}
	m := a.metrics.Scope("aggregators."+ai.Name, ai.ID)
	r.flushes = m.Counter("flushes_total", "Flushes made (the final one at shutdown or removal included).")
	r.emitted = m.Counter("emitted_total", "Metrics the flushes put into the pipeline.")
	m.Gauge("flush_duration_seconds", "How long the last flush took (rendering and queueing its metrics).", func() float64 { return float64(r.lastNano.Load()) / 1e9 })
	m.Gauge("flush_duration_max_seconds", "The longest flush since the instance started.", func() float64 { return float64(r.maxNano.Load()) / 1e9 })
	return r, nil
}

// take hands b to the aggregator and returns what it did not keep.
func (r *aggRun) take(b metric.Batch) metric.Batch {
	if r.sel == nil {
		return r.agg.Take(b)
	}
	return onSelected(r.sel, b, r.agg.Take)
}

// start runs the flush loop until stopFlushing.
func (a *Agent) startAggRun(r *aggRun) {
	if r.started {
		return
	}
	r.started = true
	go func() {
		defer close(r.done)
		every := r.agg.Interval()
		for {
			now := time.Now()
			t := time.NewTimer(now.Truncate(every).Add(every).Sub(now))
			select {
			case <-r.stop:
				t.Stop()
				return
			case <-t.C:
			}
			a.flushAgg(r, false)
		}
	}()
}

// finish stops the flush loop and makes the final flush, once.
func (a *Agent) finishAggRun(r *aggRun) {
	if r.started {
		select {
		case <-r.stop:
		default:
			close(r.stop)
		}
		<-r.done
	}
	a.flushAgg(r, true)
}

// flushAgg flushes r into the current pipeline.
func (a *Agent) flushAgg(r *aggRun, final bool) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if r.final {
		return
	}
	r.final = final
	ctx := a.rctx
	if ctx == nil {
		ctx = context.Background()
	}
	p := acquire(&a.pipe)
	defer p.release()
	var emitted, failed int
	var firstErr error
	began := time.Now()
	r.agg.Flush(began, final, func(b metric.Batch) {
		if len(b) == 0 {
			return
		}
		emitted += len(b)
		if err := p.deliver(ctx, b); err != nil {
			failed += len(b)
			if firstErr == nil {
				firstErr = err
			}
		}
	})
	d := int64(time.Since(began))
	r.lastNano.Store(d)
	for {
		m := r.maxNano.Load()
		if d <= m || r.maxNano.CompareAndSwap(m, d) {
			break
		}
	}
	r.flushes.Add(1)
	r.emitted.Add(uint64(emitted))
	if firstErr != nil {
		a.log.Warn().Err(firstErr).Str("plugin", "aggregators."+r.inst.Name).Str("id", r.inst.ID).Int("metrics", failed).
			Msg("flush not queued everywhere (counted by the outputs)")
	}
}

// deliver routes b (metrics that start past the processors and
// aggregators) through the rules, else to every output.
func (p *pipeline) deliver(ctx context.Context, b metric.Batch) error {
	if p.chain != nil {
		var first error
		for i, sub := range p.chain.Route(b) {
			if len(sub) == 0 {
				continue
			}
			if err := p.slots[i].Enqueue(ctx, sub); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	return enqueueAll(ctx, p.outs, b)
}

// stopAggregators makes the final flush of every running aggregator (at
// shutdown, after the inputs stopped) and logs what each did.
func (a *Agent) stopAggregators() {
	a.mu.Lock()
	runs := make([]*aggRun, 0, len(a.st.aggs))
	for _, id := range sortedKeys(a.st.aggs) {
		runs = append(runs, a.st.aggs[id])
	}
	a.mu.Unlock()
	for _, r := range runs {
		a.finishAggRun(r)
		d := time.Duration(r.maxNano.Load())
		a.log.Info().Str("plugin", "aggregators."+r.inst.Name).Str("id", r.inst.ID).Uint64("flushes", r.flushes.Load()).
			Uint64("emitted", r.emitted.Load()).Float64("flush_max_ms", math.Round(float64(d)/1e4)/100).Msg("aggregator summary")
	}
}

// currentAgg returns the running aggregator with id, nil if none.
func (a *Agent) currentAgg(id string) *aggRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.aggs[id]
}
