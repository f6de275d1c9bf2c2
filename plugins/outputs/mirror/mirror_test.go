package mirror

import (
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

func TestMirror(t *testing.T) {
	m := &Mirror{}
	if p, _ := registry.Default.Lookup(registry.Outputs, "mirror"); p.Distributor == nil || !p.Distributor.Fanout || p.Distributor.BestEffortFrom != 1 {
		t.Fatal("mirror: fanout to all, primary is not best effort, the rest are")
	}
	x := metric.NewGraphite("a", 1, time.Unix(1, 0))
	if got := m.Route(&x, []bool{false, true, true}, nil); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("route: %v", got)
	}
}
