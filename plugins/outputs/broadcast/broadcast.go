// Package broadcast is the distributor that sends every metric to every
// target. The agent hands the same read-only batch to each target's queue
// (no copy); each target retries and buffers on its own, so one slow or dead
// destination never blocks the others unless overflow = "block".
package broadcast

import (
	_ "embed"

	"github.com/metricsrouter/router/plugins/discovery/consul"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddDistributor("broadcast", func() registry.Distributor { return &Broadcast{} }, sample, registry.DistributorSpec{Fanout: true})
}

// Broadcast is the outputs.broadcast plugin.
type Broadcast struct {
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
	// Destinations from a service catalog (consul_service = ...), instead
	// of or on top of the list above.
	consul.Keys
}

// Shorthand returns the destinations shorthand.
func (b *Broadcast) Shorthand() (string, []string) { return b.Protocol, b.Destinations }

// Route picks every target (used only when the agent cannot fan out whole batches).
func (b *Broadcast) Route(_ *metric.Metric, up []bool, dst []int) []int {
	for i := range up {
		dst = append(dst, i)
	}
	return dst
}

var (
	_ registry.Distributor = (*Broadcast)(nil)
	_ registry.Shorthand   = (*Broadcast)(nil)
)
