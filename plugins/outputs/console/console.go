// Package console is an output that prints metrics on standard output, one
// line per metric: the quick start's output and a debugging aid.
package console

import (
	"context"
	_ "embed"
	"io"
	"os"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("console", func() registry.Output { return &Console{Format: "native", w: os.Stdout} }, sample, registry.OutputSpec{})
}

// Console is the outputs.console plugin.
type Console struct {
	Format string `toml:"format"`

	w   io.Writer
	buf []byte
}

// Init validates the configuration.
func (c *Console) Init(registry.Env) error {
	return registry.CheckOneOf("format", c.Format, "native", "graphite", "statsd")
}

// Connect does nothing: standard output is always there.
func (c *Console) Connect(context.Context) error { return nil }

// Write prints the batch with one write. A metric the chosen format cannot
// carry (the codecs' Refused) is left out and reported as rejected.
func (c *Console) Write(_ context.Context, b metric.Batch) error {
	now := time.Now().Unix()
	buf := c.buf[:0]
	refused := 0
	var why error
	for i := range b {
		m := &b[i]
		n := len(buf)
		if c.Format == "statsd" || (c.Format == "native" && m.Format() == metric.StatsD) {
			if buf = statsd.Append(buf, m, metric.Untyped); len(buf) == n && why == nil {
				why = statsd.Refused(m, metric.Untyped)
			}
		} else if buf = graphite.Append(buf, m, now); len(buf) == n && why == nil {
			why = graphite.Refused(m)
		}
		if len(buf) == n {
			refused++
		}
	}
	c.buf = buf[:0]
	if _, err := c.w.Write(buf); err != nil {
		return err
	}
	if refused > 0 {
		return &streamout.Refused{N: refused, Reason: why}
	}
	return nil
}

// Close does nothing.
func (c *Console) Close() error { return nil }

var (
	_ registry.Output      = (*Console)(nil)
	_ registry.Initializer = (*Console)(nil)
)
