// Package prefix is a processor that prepends a fixed string to metric names.
// The new paths of a batch share one allocation.
package prefix

import (
	_ "embed"
	"errors"
	"strings"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddProcessor("prefix", func() registry.Processor { return &Prefix{} }, sample)
}

// Prefix is the processors.prefix plugin.
type Prefix struct {
	Prefix string `toml:"prefix"`
}

// Init validates the prefix.
func (p *Prefix) Init(registry.Env) error {
	if p.Prefix == "" {
		return errors.New("prefix: required")
	}
	// ';' and ',' start Graphite and Influx-style tags: the name would end
	// inside the prefix and the real name become a tag.
	if strings.ContainsAny(p.Prefix, " \t\n\r:|;,") {
		return errors.New("prefix: must not contain blanks, ':', '|', ';' or ','")
	}
	return nil
}

// Process prepends the prefix to every metric's path.
func (p *Prefix) Process(b metric.Batch) metric.Batch {
	n := 0
	for i := range b {
		n += len(p.Prefix) + len(b[i].Path())
	}
	arena := make([]byte, 0, n)
	for i := range b {
		s := len(arena)
		arena = append(arena, p.Prefix...)
		arena = append(arena, b[i].Path()...)
		b[i].SetPath(arena[s:len(arena):len(arena)])
	}
	return b
}

var (
	_ registry.Processor   = (*Prefix)(nil)
	_ registry.Initializer = (*Prefix)(nil)
)
