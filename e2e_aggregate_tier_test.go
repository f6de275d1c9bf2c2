package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// tierAggregator is an aggregating router: groups "agg.<group>.*" into
// sum, count and max per group, to sink.
func tierAggregator(stats, in, sink string) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "20s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "carbon"
  address = %q
[[rules]]
  match = '^agg\.([^.]+)\..*$'
  send_to = ["carbon"]
  stop = true
  [rules.aggregate]
    every = "10s"
    expire = "60s"
    compute = [
      { type = "sum", write_to = 'group.\1.sum' },
      { type = "count", write_to = 'group.\1.count' },
      { type = "max", write_to = 'group.\1.max' },
    ]
`, stats, in, sink)
}

// tierFront is a first-tier router: every metric of a group goes to the
// one aggregating router its group hashes to (route_using).
func tierFront(stats, in string, aggregators []string) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "20s"
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "aggregators"
  hash = "carbon_ch"
  protocol = "graphite"
  destinations = ["%s:a", "%s:b"]
[[rules]]
  match = '^agg\.([^.]+)\..*$'
  route_using = '\1'
  send_to = ["aggregators"]
  stop = true
`, stats, in, aggregators[0], aggregators[1])
}

// TestAggregateTwoTier: 3 front routers place each group (route_using) on
// one of 2 aggregating routers; 100,000 series in 1,000 groups, each line
// sent to a random front router. The totals equal those of a single
// aggregating router fed the same lines, byte for byte.
func TestAggregateTwoTier(t *testing.T) {
	single, tier := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	sIn, sStats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	sp := startRouter(t, tierAggregator(sStats, sIn, single.Addr))
	aIn := []string{plugintest.FreeAddr(t), plugintest.FreeAddr(t)}
	aStats := []string{plugintest.FreeAddr(t), plugintest.FreeAddr(t)}
	var aggs []*routerProc
	for i, in := range aIn {
		aggs = append(aggs, startRouter(t, tierAggregator(aStats[i], in, tier.Addr)))
	}
	var fIn, fStats []string
	var fronts []*routerProc
	for range 3 {
		in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
		fIn, fStats = append(fIn, in), append(fStats, stats)
		fronts = append(fronts, startRouter(t, tierFront(stats, in, aIn)))
	}
	for _, in := range append(append([]string{sIn}, aIn...), fIn...) {
		waitListen(t, in)
	}
	// a bucket that has ended (the stop emits it) and has not expired
	ts := (time.Now().Unix()/10)*10 - 10
	r := rand.New(rand.NewPCG(3, 5))
	perFront := make([][]string, 3)
	var all []string
	for s := range 100_000 {
		l := fmt.Sprintf("agg.g%d.s%d.v %d %d", s%1000, s, r.IntN(100000), ts)
		all = append(all, l)
		f := r.IntN(3)
		perFront[f] = append(perFront[f], l)
	}
	sendLines(t, sIn, all, 2)
	for f, in := range fIn {
		sendLines(t, in, perFront[f], 2)
	}
	// every line read by a front (what is still in a socket when a router
	// stops is not read), then the fronts drain into the aggregators, then
	// the aggregators emit
	if !waitFor(30*time.Second, func() bool {
		n := 0.0
		for _, s := range fStats {
			n += scrape(t, s)[series("received_total", "inputs.graphite", "graphite-1")]
		}
		return n == 100_000
	}) {
		t.Fatal("the front routers did not read every line")
	}
	for _, p := range fronts {
		if code := p.stop(t); code != 0 {
			t.Fatalf("front router exit %d", code)
		}
	}
	received := func(stats ...string) float64 {
		n := 0.0
		for _, s := range stats {
			n += scrape(t, s)[`router_aggregate_received_total{aggregate="1"}`]
		}
		return n
	}
	if !waitFor(30*time.Second, func() bool { return received(sStats) == 100_000 && received(aStats...) == 100_000 }) {
		t.Fatalf("aggregated: single %v, two tiers %v, of 100000", received(sStats), received(aStats...))
	}
	for _, p := range append(aggs, sp) {
		if code := p.stop(t); code != 0 {
			t.Fatalf("aggregating router exit %d", code)
		}
	}
	// what the routers sent, read by the sinks
	single.WaitLen(3000, 10*time.Second)
	tier.WaitLen(3000, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	want, got := single.Sorted(), tier.Sorted()
	if len(want) != 3000 {
		t.Fatalf("the single aggregator produced %d lines, want 3000 (1000 groups x 3)\n%s", len(want), tail(sp.out.String(), 3000))
	}
	if !slices.Equal(got, want) {
		n := 0
		for _, l := range got {
			if !slices.Contains(want, l) && n < 5 {
				t.Errorf("two tiers only: %s", l)
				n++
			}
		}
		t.Fatalf("two tiers: %d lines, single: %d", len(got), len(want))
	}
	t.Logf("100000 series in 1000 groups: 2 tiers (3 front, 2 aggregating routers) and 1 aggregator agree on all %d lines", len(got))
}
