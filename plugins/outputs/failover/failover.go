// Package failover is the distributor that sends every metric to the first
// healthy target in configuration order, like carbon-c-relay's failover
// cluster. What a target had queued before it went down stays in its queue
// and is written when it returns; new metrics go to the next healthy target.
// When no target is healthy, metrics queue at the first one.
package failover

import (
	_ "embed"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddDistributor("failover", func() registry.Distributor { return &Failover{} }, sample, registry.DistributorSpec{})
}

// Failover is the outputs.failover plugin.
type Failover struct {
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
}

// Shorthand returns the destinations shorthand.
func (f *Failover) Shorthand() (string, []string) { return f.Protocol, f.Destinations }

// Route picks the first healthy target, or the first target if none is.
func (f *Failover) Route(_ *metric.Metric, up []bool, dst []int) []int {
	for i, u := range up {
		if u {
			return append(dst, i)
		}
	}
	return append(dst, 0)
}

var (
	_ registry.Distributor = (*Failover)(nil)
	_ registry.Shorthand   = (*Failover)(nil)
)
