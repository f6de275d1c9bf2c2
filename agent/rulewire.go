package agent

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/agent/config"
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
	for _, id := range ch.Outputs() {
		pipe.slots = append(pipe.slots, byID[id])
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
