package agent

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/agent/selector"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// node is where the fan-out hands a batch: an output's runner or a
// distributor that splits the batch over its targets.
type node interface {
	Enqueue(ctx context.Context, b metric.Batch) error
	Healthy() bool
}

var _ node = (*runner.Runner)(nil)

// distNode routes batches over target nodes with a registry.Distributor.
type distNode struct {
	id      string
	name    string // plugin name
	print   string // the instance's fingerprint (its targets' included)
	d       registry.Distributor
	fanout  bool
	targets []node
	routed  *atomic.Uint64
	unrout  *atomic.Uint64
}

func (n *distNode) Healthy() bool {
	for _, t := range n.targets {
		if t.Healthy() {
			return true
		}
	}
	return false
}

func (n *distNode) Enqueue(ctx context.Context, b metric.Batch) error { return n.enqueue(ctx, b, nil) }

// enqueue routes b; keys, when not nil, are what each metric is placed by
// (keys[i] for b[i]: a rule's route_using).
func (n *distNode) enqueue(ctx context.Context, b, keys metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	if n.fanout {
		var first error
		for _, t := range n.targets {
			if err := t.Enqueue(ctx, b); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	nt := len(n.targets)
	if nt == 0 {
		n.unrout.Add(uint64(len(b)))
		return registry.ErrStopped // no targets yet (catalog unreachable)
	}
	up := make([]bool, nt)
	for i, t := range n.targets {
		up[i] = t.Healthy()
	}
	// Pass 1: route every metric, remember its targets.
	counts := make([]int, nt)
	picks := make([]uint16, 0, len(b)+len(b)/2)
	per := make([]uint8, len(b))
	var dst [16]int
	unrouted := 0
	for i := range b {
		m := &b[i]
		if keys != nil {
			m = &keys[i]
		}
		d := n.d.Route(m, up, dst[:0])
		if len(d) == 0 {
			unrouted++
		}
		for _, t := range d {
			counts[t]++
			picks = append(picks, uint16(t))
		}
		per[i] = uint8(len(d))
	}
	// Pass 2: one backing array, carved into one sub-batch per target.
	backing := make(metric.Batch, len(picks))
	subs := make([]metric.Batch, nt)
	off := 0
	for t, c := range counts {
		subs[t] = backing[off : off : off+c]
		off += c
	}
	p := 0
	for i := range b {
		for k := 0; k < int(per[i]); k++ {
			t := picks[p]
			p++
			subs[t] = append(subs[t], b[i])
		}
	}
	n.routed.Add(uint64(len(b) - unrouted))
	if unrouted > 0 {
		n.unrout.Add(uint64(unrouted))
	}
	var first error
	for t, s := range subs {
		if len(s) == 0 {
			continue
		}
		if err := n.targets[t].Enqueue(ctx, s); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// pipeline is one generation of the wiring: processors in file order, then
// the top-level outputs. Inputs run it from their own goroutines (see
// emitter). A reconcile swaps it as a whole.
type pipeline struct {
	procs []registry.Processor
	aggs  []*aggRun // after the processors, in file order
	outs  []node
	// chain, when the file has rules, decides where each metric goes:
	// slots[i] is the node of the chain's output i. Without rules every
	// metric goes to every node of outs.
	chain *rules.Chain
	slots []node
	// self, when [agent] metrics_send_to names outputs, is where the
	// self-metrics go instead of through processors and rules.
	self []node

	refs    atomic.Int64 // Emits running on this pipeline
	retired atomic.Bool  // replaced: idle is closed when refs reaches 0
	once    sync.Once
	idle    chan struct{}
}

func newPipeline() *pipeline { return &pipeline{idle: make(chan struct{})} }

// acquire returns the current pipeline with a reference held. The second
// load makes it safe against a swap between the load and the increment:
// a pipeline whose reference count a reconcile read as 0 after the swap is
// never used again.
func acquire(cur *atomic.Pointer[pipeline]) *pipeline {
	for {
		p := cur.Load()
		p.refs.Add(1)
		if cur.Load() == p {
			return p
		}
		p.release()
	}
}

func (p *pipeline) release() {
	if p.refs.Add(-1) == 0 && p.retired.Load() {
		p.once.Do(func() { close(p.idle) })
	}
}

// retire marks a pipeline replaced; the returned channel is closed once no
// Emit uses it any more.
func (p *pipeline) retire() <-chan struct{} {
	p.retired.Store(true)
	if p.refs.Load() == 0 {
		p.once.Do(func() { close(p.idle) })
	}
	return p.idle
}

// emitter is the registry.Emitter one input instance gets. It runs the
// processors and the fan-out in the caller's goroutine, so a batch is queued
// in every output's buffer when Emit returns.
type emitter struct {
	p        *atomic.Pointer[pipeline]
	received *atomic.Uint64
	self     bool // the self-metrics emitter (see pipeline.self)
	// sel is the input's namepass / namedrop; filtered counts what it kept
	// out.
	sel      *selector.Selector
	filtered *atomic.Uint64
}

func (e *emitter) Emit(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	if e.sel != nil {
		if b = selectBatch(e.sel, b, e.filtered); len(b) == 0 {
			return nil
		}
	}
	e.received.Add(uint64(len(b)))
	p := acquire(e.p)
	defer p.release()
	if e.self && len(p.self) > 0 {
		return enqueueAll(ctx, p.self, b)
	}
	for _, pr := range p.procs {
		b = pr.Process(b)
		if len(b) == 0 {
			return nil
		}
	}
	for _, ag := range p.aggs {
		if b = ag.take(b); len(b) == 0 {
			return nil
		}
	}
	return p.deliver(ctx, b)
}

// enqueueAll hands b to every node; the first error is returned.
func enqueueAll(ctx context.Context, nodes []node, b metric.Batch) error {
	var first error
	for _, o := range nodes {
		if err := o.Enqueue(ctx, b); err != nil && first == nil {
			first = err
		}
	}
	return first
}

var _ registry.Emitter = (*emitter)(nil)
