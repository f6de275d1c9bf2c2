package rules

import (
	"fmt"
	"testing"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// w6Specs is bench/w6-conf.sh's rule set as specs: 100 rewrites, 300
// regexes, 600 prefixes and a catch-all (rules = 1001), or its first n-1
// rules plus the catch-all.
func w6Specs(n int) []Spec {
	var s []Spec
	for k := 100; k < 200; k++ {
		into := `bench.metric.path.\1\2`
		s = append(s, Spec{Rewrite: fmt.Sprintf(`^bench\.metric\.path\.(%d)([0-9]{2})$`, k), Into: &into})
	}
	for r := 200; r < 450; r++ {
		s = append(s, Spec{Match: Exprs{fmt.Sprintf(`^bench\.metric\.path\.(%d)[0-9]*[13579]$`, r)}, SendTo: []string{"caches"}, Stop: true})
	}
	for r := 450; r < 500; r++ {
		s = append(s, Spec{Match: Exprs{fmt.Sprintf(`^bench\.metric\.path\.(%d|%d0)[0-9]*5$`, r, r)}, SendTo: []string{"caches"}, Stop: true})
	}
	for p := 500; p < 1100; p++ {
		s = append(s, Spec{Match: Exprs{fmt.Sprintf(`^bench\.metric\.path\.%d`, p)}, SendTo: []string{"caches"}, Stop: true})
	}
	if n < len(s) {
		s = s[:n-1]
	}
	return append(s, Spec{Match: Exprs{"*"}, SendTo: []string{"caches"}, Stop: true})
}

// benchBatch is 5000 Graphite lines over 100k names, parsed as an input
// would.
func benchBatch(tb testing.TB) metric.Batch {
	b := make(metric.Batch, 5000)
	for i := range b {
		line := fmt.Sprintf("bench.metric.path.%d %d 1700000000", (i*7919)%100000, i)
		if err := graphite.Parse([]byte(line), &b[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// BenchmarkRoute is the chain's cost per metric (ns/op is per batch of
// 5000) for 10 and 1000 rules of the w6 shape.
func BenchmarkRoute(b *testing.B) {
	for _, n := range []int{10, 1001} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ch, err := Compile(w6Specs(n), func(string) bool { return true })
			if err != nil {
				b.Fatal(err)
			}
			batch := benchBatch(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				subs := ch.Route(batch)
				if len(subs) != 1 || len(subs[0]) != len(batch) {
					b.Fatalf("routed %d", len(subs[0]))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
		})
	}
}

// BenchmarkRouteAggregate: batches of 5000 lines into one aggregate rule
// of 10,000 groups (hosts) with sum, count, average and percentile95, as
// bench w7 does; per metric: the match, four produced names, the bucket
// updates under one lock per batch.
func BenchmarkRouteAggregate(b *testing.B) {
	specs := []Spec{{Match: Exprs{`^bench\.host([0-9]+)\.cpu\.[0-9]+$`}, Stop: true, SendTo: []string{"out"},
		Aggregate: aggSpec("sum", `agg.\1.sum`, "count", `agg.\1.count`, "average", `agg.\1.avg`, "percentile95", `agg.\1.p95`)}}
	ch, err := Compile(specs, func(string) bool { return true })
	if err != nil {
		b.Fatal(err)
	}
	now := int64(1700000100)
	ch.BindAggregates(func(r *AggRule) *aggregate.Aggregate { return aggregate.New(r.Cfg, func() int64 { return now }, 1) })
	batches := make([]metric.Batch, 20)
	for k := range batches {
		batches[k] = make(metric.Batch, 5000)
		for i := range batches[k] {
			n := k*5000 + i
			line := fmt.Sprintf("bench.host%d.cpu.%d %d 1700000095", (n*7919)%10000, n%8, n%100)
			if err := graphite.Parse([]byte(line), &batches[k][i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	// the series exist: what is measured is the steady state
	for _, bt := range batches {
		ch.Route(bt)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ch.Route(batches[i%len(batches)])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*5000), "ns/metric")
}
