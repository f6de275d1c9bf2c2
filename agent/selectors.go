package agent

import (
	"context"
	"sync/atomic"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/selector"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Telegraf's metric selectors (namepass, namedrop, tagpass, tagdrop) on
// inputs, processors, aggregators and outputs. A metric an input's or output's selector does not pass is
// counted in that instance's filtered_total; it is configuration, not a
// loss, so it is not a drop.

// selectBatch returns the metrics of b that sel passes: b itself when
// all pass, else a new batch.
func selectBatch(sel *selector.Selector, b metric.Batch, filtered *atomic.Uint64) metric.Batch {
	first := -1
	for i := range b {
		if !sel.PassMetric(&b[i]) {
			first = i
			break
		}
	}
	if first < 0 {
		return b
	}
	out := make(metric.Batch, first, len(b)-1)
	copy(out, b[:first])
	for i := first + 1; i < len(b); i++ {
		if sel.PassMetric(&b[i]) {
			out = append(out, b[i])
		}
	}
	filtered.Add(uint64(len(b) - len(out)))
	return out
}

// selNode is an output that gets only what its selector passes.
type selNode struct {
	node
	sel      *selector.Selector
	filtered *atomic.Uint64
}

func (n *selNode) Enqueue(ctx context.Context, b metric.Batch) error {
	b = selectBatch(n.sel, b, n.filtered)
	if len(b) == 0 {
		return nil
	}
	return n.node.Enqueue(ctx, b)
}

// selWrap wraps output oi's node when its table has a selector.
func (a *Agent) selWrap(oi *config.Instance, n node) node {
	if oi.Sel == nil {
		return n
	}
	f := a.metrics.Scope("outputs."+oi.Name, oi.ID).Counter("filtered_total", "Metrics namepass / namedrop / tagpass / tagdrop kept from this output.")
	return &selNode{node: n, sel: oi.Sel, filtered: f}
}

// selProc runs a processor on the metrics its selector passes; the others
// go on unchanged (after the processed ones: the order of one series is
// kept, since a series either passes or not).
type selProc struct {
	p   registry.Processor
	sel *selector.Selector
}

func (s *selProc) Process(b metric.Batch) metric.Batch { return onSelected(s.sel, b, s.p.Process) }

// onSelected runs fn on the metrics of b that sel passes and returns the
// others followed by what fn returned.
func onSelected(sel *selector.Selector, b metric.Batch, fn func(metric.Batch) metric.Batch) metric.Batch {
	var in, out metric.Batch
	for i := range b {
		if sel.PassMetric(&b[i]) {
			in = append(in, b[i])
		} else {
			out = append(out, b[i])
		}
	}
	if len(in) == 0 {
		return b
	}
	if len(out) == 0 {
		return fn(b)
	}
	return append(out, fn(in)...)
}
