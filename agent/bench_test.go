package agent

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// discardOut accepts everything.
type discardOut struct{ n atomic.Int64 }

func (d *discardOut) Connect(context.Context) error { return nil }
func (d *discardOut) Write(_ context.Context, b metric.Batch) error {
	d.n.Add(int64(len(b)))
	return nil
}
func (d *discardOut) Close() error { return nil }

// BenchmarkEmit: the hot path from an input's Emit to the outputs' queues
// (processors none; runners writing to outputs that discard), per 1000-line
// batch, for broadcast and carbon_ch over 1, 2, 8 and 32 destinations: how
// the cost grows with destinations.
func BenchmarkEmit(b *testing.B) {
	batch := make(metric.Batch, 1000)
	for i := range batch {
		graphite.Parse([]byte(fmt.Sprintf("bench.metric.path.%d %d.5 1700000000", i, i)), &batch[i])
	}
	for _, kind := range []string{"broadcast", "carbon_ch"} {
		for _, n := range []int{1, 2, 8, 32} {
			b.Run(fmt.Sprintf("%s/destinations=%d", kind, n), func(b *testing.B) {
				var targets []node
				var regTargets []registry.Target
				var runners []*runner.Runner
				for i := 0; i < n; i++ {
					r := runner.New("outputs.discard", fmt.Sprint(i), "", runner.Options{Limit: 1 << 30},
						runner.Env{Log: plugintest.Logger(b), Metrics: plugintest.NewMetrics()})
					if err := r.Open(); err != nil {
						b.Fatal(err)
					}
					runners = append(runners, r)
					targets = append(targets, r)
					regTargets = append(regTargets, registry.Target{Host: fmt.Sprintf("10.0.0.%d", i), Port: "2003", Instance: fmt.Sprint("i", i)})
				}
				for _, r := range runners {
					r.Start(context.Background(), []registry.Output{&discardOut{}}, runner.Config{BatchSize: 5000, RetryInitial: 1e6, RetryMax: 1e7, WriteTimeout: 1e9})
				}
				defer func() {
					for _, r := range runners {
						r.Close()
						r.Wait()
					}
				}()
				m := plugintest.NewMetrics()
				dn := &distNode{targets: targets, routed: m.Counter("r", ""), unrout: m.Counter("u", "")}
				if kind == "broadcast" {
					dn.fanout = true
				} else {
					ch := &consistent_hash.ConsistentHash{Hash: "carbon_ch", Collision: "bump", Replication: 1, OnDown: "queue"}
					ch.SetTargets(regTargets)
					env, _ := plugintest.Env(b, "x")
					if err := ch.Init(env); err != nil {
						b.Fatal(err)
					}
					dn.d = ch
				}
				var p atomic.Pointer[pipeline]
				pl := newPipeline()
				pl.outs = []node{dn}
				p.Store(pl)
				em := &emitter{p: &p, received: m.Counter("in", "")}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := em.Emit(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
			})
		}
	}
}
