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
	registry.AddOutput("mirror", func() any { return &Mirror{} }, sample)
}

// Mirror is the outputs.mirror plugin.
type Mirror struct {
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
}

// Shorthand returns the destinations shorthand.
func (m *Mirror) Shorthand() (string, []string) { return m.Protocol, m.Destinations }

// Fanout: every metric goes to every target.
func (m *Mirror) Fanout() bool { return true }

// BestEffort: every target but the first.
func (m *Mirror) BestEffort(target int) bool { return target > 0 }

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
	_ registry.Fanout      = (*Mirror)(nil)
	_ registry.BestEffort  = (*Mirror)(nil)
)
