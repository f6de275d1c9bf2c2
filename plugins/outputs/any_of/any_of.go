// Package any_of is the distributor that spreads metrics over the healthy
// targets by a hash of the metric path (FNV-1a), so one name keeps going to
// one target while the set of healthy targets does not change, as
// carbon-c-relay's any_of does. A name whose target is down moves to another
// healthy target chosen by the same hash; when no target is healthy, it
// queues at its own target.
package any_of

import (
	_ "embed"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddDistributor("any_of", func() registry.Distributor { return &AnyOf{} }, sample, registry.DistributorSpec{})
}

// AnyOf is the outputs.any_of plugin.
type AnyOf struct {
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
}

// Shorthand returns the destinations shorthand.
func (a *AnyOf) Shorthand() (string, []string) { return a.Protocol, a.Destinations }

// Route picks the key's target, or the key's pick among the healthy ones.
func (a *AnyOf) Route(m *metric.Metric, up []bool, dst []int) []int {
	n := len(up)
	if n == 0 {
		return dst
	}
	h := hashring.FNV1a32(m.Path())
	i := int(h % uint32(n))
	if up[i] {
		return append(dst, i)
	}
	live := 0
	for _, u := range up {
		if u {
			live++
		}
	}
	if live == 0 {
		return append(dst, i)
	}
	k := int(h % uint32(live))
	for j, u := range up {
		if u {
			if k == 0 {
				return append(dst, j)
			}
			k--
		}
	}
	return append(dst, i)
}

var (
	_ registry.Distributor = (*AnyOf)(nil)
	_ registry.Shorthand   = (*AnyOf)(nil)
)
