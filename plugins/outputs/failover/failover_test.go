package failover

import (
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
)

func TestRoute(t *testing.T) {
	m := metric.NewGraphite("a.b", 1, time.Unix(1, 0))
	f := &Failover{}
	for _, c := range []struct {
		up   []bool
		want []int
	}{
		{[]bool{true, true, true}, []int{0}},
		{[]bool{false, true, true}, []int{1}},
		{[]bool{false, false, true}, []int{2}},
		{[]bool{false, false, false}, []int{0}}, // nobody healthy: queue at the first
	} {
		if got := f.Route(&m, c.up, nil); !slices.Equal(got, c.want) {
			t.Errorf("up %v: %v, want %v", c.up, got, c.want)
		}
	}
}
