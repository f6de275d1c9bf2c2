// Package mirror is the distributor that copies every metric to all targets.
// The first target is the primary: it keeps the output's overflow policy, so
// with overflow = "block" it pushes back on the inputs. Every other target is
// a best-effort mirror: its overflow is forced to "drop_oldest", so a slow or
// dead mirror never slows the primary; its drops are counted in its own
// dropped_total.
package mirror

import (
	_ "embed"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	// every metric to every destination; the copies (targets 1..) never push
	// back on the primary
	registry.AddDistributor("mirror", func() registry.Distributor { return &Mirror{} }, sample, registry.DistributorSpec{Fanout: true, BestEffortFrom: 1})
}

// Mirror is the outputs.mirror plugin.
type Mirror struct {
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
}

// Shorthand returns the destinations shorthand.
func (m *Mirror) Shorthand() (string, []string) { return m.Protocol, m.Destinations }

// Route picks every target.
func (m *Mirror) Route(_ *metric.Metric, up []bool, dst []int) []int {
	for i := range up {
		dst = append(dst, i)
	}
	return dst
}

var (
	_ registry.Distributor = (*Mirror)(nil)
	_ registry.Shorthand   = (*Mirror)(nil)
)
