package broadcast_test

import (
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/broadcast"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

var metricTime = time.Unix(1700000000, 0)

func TestRoute(t *testing.T) {
	m := metric.NewGraphite("a.b.c", 1, metricTime)
	for _, tc := range []struct {
		name string
		up   []bool
		dst  []int // passed in: Route appends
		want []int
	}{
		{"no targets", nil, nil, nil},
		{"one target", []bool{true}, nil, []int{0}},
		{"all healthy", []bool{true, true, true}, nil, []int{0, 1, 2}},
		{"unhealthy targets too: each buffers on its own", []bool{false, true, false}, nil, []int{0, 1, 2}},
		{"none healthy", []bool{false, false}, nil, []int{0, 1}},
		{"appends to dst", []bool{true, true}, []int{7}, []int{7, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b broadcast.Broadcast
			if got := b.Route(&m, tc.up, tc.dst); !slices.Equal(got, tc.want) {
				t.Fatalf("Route = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	m := metric.NewGraphite("a.b.c", 1, metricTime)
	up := make([]bool, 16)
	dst := make([]int, 0, len(up))
	var b broadcast.Broadcast
	if n := testing.AllocsPerRun(100, func() { dst = b.Route(&m, up, dst[:0]) }); n != 0 {
		t.Fatalf("Route allocates %v times per call", n)
	}
}

func TestFanoutAndShorthand(t *testing.T) {
	b := &broadcast.Broadcast{Protocol: "graphite", Destinations: []string{"10.0.0.1:2003", "10.0.0.2:2003:a"}}
	if p, _ := registry.Default.Lookup(registry.Outputs, "broadcast"); p.Distributor == nil || !p.Distributor.Fanout {
		t.Error("not registered as a fanout distributor: broadcast sends every metric to every target")
	}
	proto, dests := b.Shorthand()
	if proto != "graphite" || !slices.Equal(dests, b.Destinations) {
		t.Errorf("Shorthand = %q, %q", proto, dests)
	}
	var empty broadcast.Broadcast
	if proto, dests := empty.Shorthand(); proto != "" || dests != nil {
		t.Errorf("Shorthand of an unconfigured broadcast = %q, %q; want nothing", proto, dests)
	}
}

func TestFactoryAndSample(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Outputs, "broadcast")
	if !ok {
		t.Fatal("outputs.broadcast is not registered")
	}
	v := p.New()
	for _, check := range []struct {
		name string
		ok   bool
	}{
		{"Distributor", is[registry.Distributor](v)},
		{"Shorthand", is[registry.Shorthand](v)},
	} {
		if !check.ok {
			t.Errorf("the factory's %T is not a registry.%s", v, check.name)
		}
	}
	var b broadcast.Broadcast
	if err := plugintest.DecodeSample(p.Sample, "outputs", "broadcast", &b); err != nil {
		t.Fatal(err)
	}
	proto, dests := b.Shorthand()
	if want := []string{"127.0.0.1:2103", "127.0.0.1:2104"}; proto != "graphite" || !slices.Equal(dests, want) {
		t.Fatalf("sample shorthand = %q, %q; want graphite, %q", proto, dests, want)
	}
}

func is[T any](v any) bool {
	_, ok := v.(T)
	return ok
}

func BenchmarkRoute(b *testing.B) {
	m := metric.NewGraphite("a.b.c", 1, metricTime)
	up := []bool{true, true, false, true}
	dst := make([]int, 0, len(up))
	var br broadcast.Broadcast
	b.ReportAllocs()
	for b.Loop() {
		dst = br.Route(&m, up, dst[:0])
	}
}
