package any_of

import (
	"fmt"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
)

func TestRouteStableAndSpread(t *testing.T) {
	a := &AnyOf{}
	all := []bool{true, true, true, true}
	count := make([]int, 4)
	moved := 0
	for i := 0; i < 20000; i++ {
		m := metric.NewGraphite(fmt.Sprintf("host%d.cpu.load", i), 1, time.Unix(1, 0))
		first := a.Route(&m, all, nil)[0]
		if again := a.Route(&m, all, nil)[0]; again != first {
			t.Fatalf("not stable: %d then %d", first, again)
		}
		count[first]++
		down := []bool{true, false, true, true}
		got := a.Route(&m, down, nil)[0]
		if got == 1 {
			t.Fatalf("routed to the down target")
		}
		if first != 1 && got != first {
			t.Fatalf("a metric of a live target moved (%d -> %d)", first, got)
		}
		if first == 1 {
			moved++
		}
		if got := a.Route(&m, []bool{false, false, false, false}, nil)[0]; got != first {
			t.Fatalf("all down: %d, want its own %d", got, first)
		}
	}
	for i, c := range count {
		if c < 4000 || c > 6000 {
			t.Errorf("target %d got %d of 20000", i, c)
		}
	}
	if moved == 0 {
		t.Fatal("nothing was on target 1")
	}
}
