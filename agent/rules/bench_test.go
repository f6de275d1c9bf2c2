package rules

import (
	"fmt"
	"testing"

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
