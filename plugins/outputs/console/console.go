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
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("console", func() any { return &Console{Format: "native", w: os.Stdout} }, sample)
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

// Write prints the batch with one write.
func (c *Console) Write(_ context.Context, b metric.Batch) error {
	now := time.Now().Unix()
	buf := c.buf[:0]
	for i := range b {
		m := &b[i]
		switch {
		case c.Format == "statsd" || (c.Format == "native" && m.Format() == metric.StatsD):
			buf = statsd.Append(buf, m, metric.Untyped)
		default:
			buf = graphite.Append(buf, m, now)
		}
	}
	c.buf = buf[:0]
	_, err := c.w.Write(buf)
	return err
}

// Close does nothing.
func (c *Console) Close() error { return nil }

var (
	_ registry.Output      = (*Console)(nil)
	_ registry.Initializer = (*Console)(nil)
)
