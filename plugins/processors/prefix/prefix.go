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

	prefix []byte
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
	p.prefix = []byte(p.Prefix)
	return nil
}

// Process prepends the prefix to every metric's path. The batch's new lines
// share one arena, sized for all of them.
func (p *Prefix) Process(b metric.Batch) metric.Batch {
	n := 0
	for i := range b {
		n += len(p.Prefix) + len(b[i].Line()) + len(b[i].Tags()) + 8
	}
	arena := make([]byte, 0, n)
	for i := range b {
		arena = b[i].PrefixPath(arena, p.prefix)
	}
	return b
}

var (
	_ registry.Processor   = (*Prefix)(nil)
	_ registry.Initializer = (*Prefix)(nil)
)
