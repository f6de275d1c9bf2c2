package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// wireRules gives a new pipeline its rule chain and the nodes the chain and
// the self-metrics send to (desired.Outputs[i] is pipe.outs[i]). The
// chain's counters are the registry's, so they survive a reload for rules
// that keep their label.
func (a *Agent) wireRules(pipe *pipeline, desired *config.Config) {
	byID := make(map[string]node, len(desired.Outputs))
	for i, oi := range desired.Outputs {
		byID[oi.ID] = pipe.outs[i]
	}
	for _, id := range desired.Agent.MetricsSendTo {
		pipe.self = append(pipe.self, byID[id])
	}
	ch := desired.Chain
	if ch == nil {
		return
	}
	for i, id := range ch.Outputs() {
		n := byID[id]
		if k := ch.Keyer(i); k != nil {
			n = keyWrap(n, k)
		}
		pipe.slots = append(pipe.slots, n)
	}
	m := a.metrics.Scope("agent", "rules")
	ch.Bind(
		m.Counter("unmatched_total", "Metrics no rule sent anywhere (dropped, counted)."),
		m.Counter("blackholed_total", "Metrics a blackhole rule discarded."),
		m.Counter("validate_dropped_total", "Metrics a failed validate ended (else = \"drop\" or \"log\")."),
		func(label string) *atomic.Uint64 {
			return a.metrics.Labeled("rule", label).Counter("rule_matched_total", "Metrics that matched the rule.")
		})
	ch.OnInvalid = a.logInvalid
	a.bindAggregates(ch)
	pipe.chain = ch
}

// invalidLog rate-limits the log of metrics that failed a validate with
// else = "log": at most invalidBurst lines a second, then one line saying
// how many were not shown (all of them are counted in
// router_validate_dropped_total).
type invalidLog struct {
	mu         sync.Mutex
	second     int64
	shown      int
	suppressed int
}

const invalidBurst = 10

func (a *Agent) logInvalid(rule string, line []byte) {
	l := &a.invalid
	now := time.Now().Unix()
	l.mu.Lock()
	if now != l.second {
		if l.suppressed > 0 {
			a.log.Warn().Int("not_shown", l.suppressed).Msg("more metrics failed validation (counted in router_validate_dropped_total)")
		}
		l.second, l.shown, l.suppressed = now, 0, 0
	}
	show := l.shown < invalidBurst
	if show {
		l.shown++
	} else {
		l.suppressed++
	}
	l.mu.Unlock()
	if show {
		a.log.Warn().Str("rule", rule).Bytes("metric", line).Msg("dropping metric due to validation error")
	}
}

// dropRuleSeries removes the counters of rules the new chain no longer has,
// as removed outputs lose theirs.
func (a *Agent) dropRuleSeries(old, cur *rules.Chain) {
	if old == nil || old == cur {
		return
	}
	keep := map[string]bool{}
	if cur != nil {
		for i, s := range cur.Specs() {
			keep[s.Label(i)] = true
		}
	}
	for i, s := range old.Specs() {
		if l := s.Label(i); !keep[l] {
			a.metrics.Remove("rule", l)
		}
	}
}

// peerNode is an output whose plugin wants each line prefixed with the
// sender's address (registry.PeerPrefixer: outputs.file with ip = true).
type peerNode struct{ node }

// peerWrap wraps n when oi asks for the sender's address.
func peerWrap(oi *config.Instance, n node) node {
	if pp, ok := oi.Plugin.(registry.PeerPrefixer); ok && pp.PrefixPeer() {
		return &peerNode{n}
	}
	return n
}

// Enqueue queues a copy of b whose lines are "<peer> <line>", rendered into
// one arena: the batch b is shared with other outputs and is not changed.
func (n *peerNode) Enqueue(ctx context.Context, b metric.Batch) error {
	peer := registry.PeerFrom(ctx)
	prefix := make([]byte, 0, len(peer)+1)
	prefix = append(append(prefix, peer...), ' ')
	size := 0
	for i := range b {
		size += len(prefix) + len(b[i].Line()) + len(b[i].Tags()) + len(b[i].Ext()) + len(b[i].RateToken()) + 8
	}
	arena := make([]byte, 0, size)
	c := make(metric.Batch, len(b))
	copy(c, b)
	for i := range c {
		arena = c[i].PrefixPath(arena, prefix)
	}
	return n.node.Enqueue(ctx, c)
}
