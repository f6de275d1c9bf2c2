// Package graphite is the Graphite plaintext input: TCP (many concurrent
// connections, newline framed), a unix stream socket, or UDP (lines per
// datagram).
//
// Lines are parsed by plugins/codec/graphite and forwarded byte for byte;
// malformed lines are counted (parse_errors_total), logged at most 5 per 10 s,
// and skipped without affecting the connection or other clients. With
// cleanse = true each line is first cleansed as carbon-c-relay does
// (codec.Cleanser), in place in the read buffer, and the cleansed bytes are
// what is forwarded.
package graphite

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/internal/picklein"
	"github.com/metricsrouter/router/plugins/internal/transport"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddInput("graphite", func() registry.Input {
		return &Graphite{
			Listen:         ":2003",
			Protocol:       "tcp",
			MaxLineLength:  64 << 10,
			MaxConnections: 10000,
			MaxPerIP:       1000,
			IdleTimeout:    registry.Duration(10 * time.Minute),
			DrainGrace:     registry.Duration(200 * time.Millisecond),
			AllowedChars:   codec.DefaultAllowedChars,
			MaxInputLength: codec.DefaultMaxInputLength,
			Format:         "plaintext",
			Transport:      "none",
			Tags:           "keep",
			MaxMessageSize: picklein.DefaultMaxMessage,
		}
	}, sample)
}

// Graphite is the inputs.graphite plugin.
type Graphite struct {
	Listen         string            `toml:"listen"`
	Protocol       string            `toml:"protocol"`
	MaxLineLength  int               `toml:"max_line_length"`
	MaxConnections int               `toml:"max_connections"`
	MaxPerIP       int               `toml:"max_connections_per_ip"`
	IdleTimeout    registry.Duration `toml:"idle_timeout"`
	DrainGrace     registry.Duration `toml:"drain_grace"`
	ReadBuffer     int               `toml:"read_buffer"`

	// carbon-c-relay's input cleansing (its -c, -M and -m)
	Cleanse         bool   `toml:"cleanse"`
	AllowedChars    string `toml:"allowed_chars"`
	MaxInputLength  int    `toml:"max_input_length"`
	MaxMetricLength int    `toml:"max_metric_length"`

	// carbon's pickle receiver (format = "pickle")
	Format         string `toml:"format"`
	MaxMessageSize int    `toml:"max_message_size"`

	// carbon-c-relay's compressed transports (TCP, unix)
	Transport string `toml:"transport"`

	// Graphite 1.1 tags: "keep" as they come, or "sort" into carbon's
	// canonical form
	Tags string `toml:"tags"`

	// TCP: TLS, mutual with tls_ca (registry.TLSServer)
	registry.TLSServer

	srv *linein.Server
}

// maxSocketPath is the longest unix socket path (sockaddr_un's sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// Init validates the configuration.
func (g *Graphite) Init(env registry.Env) error {
	if err := registry.CheckOneOf("protocol", g.Protocol, "tcp", "udp", "unix"); err != nil {
		return err
	}
	if g.Protocol == "unix" {
		if g.Listen == "" || len(g.Listen) > maxSocketPath {
			return fmt.Errorf("listen %q: want a socket path of 1 to %d bytes", g.Listen, maxSocketPath)
		}
	} else if err := registry.CheckHostPort("listen", g.Listen); err != nil {
		return err
	}
	if err := registry.CheckOneOf("format", g.Format, "plaintext", "pickle"); err != nil {
		return err
	}
	if g.Format == "pickle" {
		if g.Protocol == "udp" {
			return fmt.Errorf("format = \"pickle\": for protocol \"tcp\" or \"unix\" (carbon's pickle receiver is TCP)")
		}
		if g.Cleanse {
			return fmt.Errorf("format = \"pickle\": cleanse is for plaintext lines")
		}
		if g.MaxMessageSize <= 0 {
			return fmt.Errorf("max_message_size: must be positive")
		}
	}
	if err := registry.CheckOneOf("tags", g.Tags, "keep", "sort"); err != nil {
		return err
	}
	if g.Tags == "sort" && g.Format == "pickle" {
		return fmt.Errorf("tags = \"sort\": for format \"plaintext\"")
	}
	if err := transport.Check(g.Transport); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	if transport.Compressed(g.Transport) && g.Protocol == "udp" {
		return fmt.Errorf("transport = %q: for protocol \"tcp\" or \"unix\"", g.Transport)
	}
	if g.MaxLineLength <= 0 {
		return fmt.Errorf("max_line_length: must be positive")
	}
	if g.MaxConnections < 0 || g.MaxPerIP < 0 || g.ReadBuffer < 0 {
		return fmt.Errorf("max_connections, max_connections_per_ip and read_buffer must not be negative")
	}
	if g.MaxInputLength <= 0 {
		return fmt.Errorf("max_input_length: must be positive")
	}
	if g.MaxMetricLength < 0 {
		return fmt.Errorf("max_metric_length: must not be negative")
	}
	if g.MaxMetricLength > 0 && g.MaxMetricLength >= g.MaxInputLength {
		return fmt.Errorf("max_metric_length %d: must be smaller than max_input_length %d", g.MaxMetricLength, g.MaxInputLength)
	}
	if g.TLSServer.Enabled() && g.Protocol == "udp" {
		return fmt.Errorf("tls_cert: TLS is for protocol \"tcp\" or \"unix\", not udp")
	}
	if err := g.TLSServer.Check(); err != nil {
		return err
	}
	cfg := linein.Config{
		TLS:            &g.TLSServer,
		Listen:         g.Listen,
		MaxLine:        g.MaxLineLength,
		MaxConnections: g.MaxConnections,
		MaxPerIP:       g.MaxPerIP,
		IdleTimeout:    g.IdleTimeout.D(),
		ReadBuffer:     g.ReadBuffer,
		DrainGrace:     g.DrainGrace.D(),
	}
	if g.Protocol == "unix" {
		cfg.Network = "unix"
	}
	if g.Cleanse {
		cfg.Cleanse = codec.NewCleanser(g.AllowedChars, g.MaxInputLength, g.MaxMetricLength).Cleanse
	}
	if g.Tags == "sort" {
		if cleanse := cfg.Cleanse; cleanse != nil {
			cfg.Cleanse = func(line []byte) ([]byte, error) {
				l, err := cleanse(line)
				if err != nil {
					return l, err
				}
				return codec.SortTags(l)
			}
		} else {
			cfg.Cleanse = codec.SortTags
		}
	}
	if kind := g.Transport; transport.Compressed(kind) {
		cfg.Transport = func(c net.Conn) net.Conn { return transport.Server(kind, c) }
	}
	if g.Format == "pickle" {
		refused := env.Metrics.Counter("pickle_refused_total", "Pickle messages refused whole because they hold what carbon's data never does (GLOBAL, REDUCE, BUILD, ...: never executed).")
		maxMsg := g.MaxMessageSize
		cfg.NewFramer = func(c linein.Counters, onError func([]byte, error)) linein.StreamFramer {
			return picklein.NewFramer(maxMsg, c, refused, onError)
		}
	}
	g.srv = linein.NewServer(cfg, codec.Parse, env)
	return nil
}

// Run serves until ctx is cancelled.
func (g *Graphite) Run(ctx context.Context, out registry.Emitter) error {
	if g.Protocol == "udp" {
		return g.srv.ServeUDP(ctx, out)
	}
	return g.srv.ServeTCP(ctx, out)
}

// Addr returns the bound address once listening (for tests using port 0).
func (g *Graphite) Addr() net.Addr { return g.srv.Addr() }

var (
	_ registry.Input       = (*Graphite)(nil)
	_ registry.Initializer = (*Graphite)(nil)
)
