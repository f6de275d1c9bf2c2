package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/metrics"
	"github.com/metricsrouter/router/plugins/codec/graphite"
)

func TestSelfMetricsCollect(t *testing.T) {
	s := metrics.New()
	m := s.Scope("outputs.graphite", "caches/10.0.0.1:2003")
	m.Counter("sent_total", "").Add(42)
	m.Gauge("queued", "", func() float64 { return 7 })
	s.Scope("agent", "agent").Gauge("buffered_bytes", "", func() float64 { return 1024 })
	sm := &selfMetrics{reg: s, prefix: "carbon.relays.web1"}
	b := sm.collect(time.Unix(1700000000, 0))
	var lines []string
	for i := range b {
		lines = append(lines, strings.TrimSuffix(string(graphite.Append(nil, &b[i], 0)), "\n"))
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{
		"carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.sent_total 42 1700000000",
		"carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.queued 7 1700000000",
		"carbon.relays.web1.agent.buffered_bytes 1024 1700000000",
		"carbon.relays.web1.runtime.goroutines ",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	for _, l := range lines {
		var x = b[0]
		if err := graphite.Parse([]byte(l), &x); err != nil {
			t.Errorf("not a Graphite line: %q", l)
		}
	}
	if p := expandPrefix("{host}.polymur"); strings.Contains(p, "{host}") || strings.Count(p, ".") != 1 {
		t.Errorf("expandPrefix: %q", p)
	}
}
