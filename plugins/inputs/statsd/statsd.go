// Package statsd is the StatsD input: UDP (many datagrams per recvmmsg(2),
// each with one or more lines) or TCP (many connections, newline framed).
//
// Lines are parsed by plugins/codec/statsd and forwarded byte for byte; they
// are neither aggregated nor sampled (this is a proxy, not a StatsD server).
// A line the codec does not understand (a DogStatsD event "_e{5,4}:title|text"
// or service check "_sc|name|0", an unknown type, a NaN or overflowing value,
// leading spaces) is forwarded as Etsy proxy.js forwards it, as an opaque
// line hashed on the text before its first ':' (codec.ParseOpaque), and
// counted in passed_unparsed_total. With strict = true such lines are
// counted (parse_errors_total), logged at most 5 per 10 s, and skipped: the
// other lines of the same datagram still pass.
package statsd

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddInput("statsd", func() registry.Input {
		return &StatsD{
			Listen:         ":8125",
			Protocol:       "udp",
			ReadBatch:      64,
			MaxLineLength:  64 << 10,
			MaxConnections: 10000,
			MaxPerIP:       1000,
			IdleTimeout:    registry.Duration(10 * time.Minute),
			DrainGrace:     registry.Duration(200 * time.Millisecond),
		}
	}, sample)
}

// maxReadBatch bounds read_batch: each datagram of a read gets a 64 KiB
// receive slot.
const maxReadBatch = 1024

// StatsD is the inputs.statsd plugin.
type StatsD struct {
	Listen         string            `toml:"listen"`
	Protocol       string            `toml:"protocol"`
	ReadBuffer     int               `toml:"read_buffer"`
	ReadBatch      int               `toml:"read_batch"`
	MaxLineLength  int               `toml:"max_line_length"`
	MaxConnections int               `toml:"max_connections"`
	MaxPerIP       int               `toml:"max_connections_per_ip"`
	IdleTimeout    registry.Duration `toml:"idle_timeout"`
	DrainGrace     registry.Duration `toml:"drain_grace"`
	Strict         bool              `toml:"strict"`

	// TCP: TLS, mutual with tls_ca (registry.TLSServer)
	registry.TLSServer

	srv *linein.Server
}

// Init validates the configuration.
func (s *StatsD) Init(env registry.Env) error {
	if err := registry.CheckOneOf("protocol", s.Protocol, "udp", "tcp"); err != nil {
		return err
	}
	if err := registry.CheckHostPort("listen", s.Listen); err != nil {
		return err
	}
	if s.MaxLineLength <= 0 {
		return fmt.Errorf("max_line_length: must be positive")
	}
	if s.MaxConnections < 0 || s.MaxPerIP < 0 || s.ReadBuffer < 0 {
		return fmt.Errorf("max_connections, max_connections_per_ip and read_buffer must not be negative")
	}
	if s.ReadBatch < 1 || s.ReadBatch > maxReadBatch {
		return fmt.Errorf("read_batch = %d: want 1..%d", s.ReadBatch, maxReadBatch)
	}

	if s.TLSServer.Enabled() && s.Protocol == "udp" {
		return fmt.Errorf("tls_cert: TLS is for protocol \"tcp\", not udp")
	}
	if err := s.TLSServer.Check(); err != nil {
		return err
	}
	cfg := linein.Config{
		TLS:             &s.TLSServer,
		Listen:          s.Listen,
		MaxLine:         s.MaxLineLength,
		MaxConnections:  s.MaxConnections,
		MaxPerIP:        s.MaxPerIP,
		IdleTimeout:     s.IdleTimeout.D(),
		ReadBuffer:      s.ReadBuffer,
		DrainGrace:      s.DrainGrace.D(),
		ForceReadBuffer: true,
	}
	if s.Protocol == "udp" {
		cfg.ReadBatch = s.ReadBatch
	}
	parse := linein.ParseFunc(codec.Parse)
	if !s.Strict {
		unparsed := env.Metrics.Counter("passed_unparsed_total", "Lines the StatsD codec does not understand (events, service checks, unknown types, bad values), forwarded as they came (strict = false).")
		parse = func(line []byte, m *metric.Metric) error {
			if codec.Parse(line, m) == nil {
				return nil
			}
			if err := codec.ParseOpaque(line, m); err != nil {
				return err
			}
			unparsed.Add(1)
			return nil
		}
	}
	s.srv = linein.NewServer(cfg, parse, env)
	return nil
}

// Run serves until ctx is cancelled.
func (s *StatsD) Run(ctx context.Context, out registry.Emitter) error {
	if s.Protocol == "udp" {
		return s.srv.ServeUDP(ctx, out)
	}
	return s.srv.ServeTCP(ctx, out)
}

// Addr returns the bound address once listening (for tests using port 0).
func (s *StatsD) Addr() net.Addr { return s.srv.Addr() }

var (
	_ registry.Input       = (*StatsD)(nil)
	_ registry.Initializer = (*StatsD)(nil)
)
