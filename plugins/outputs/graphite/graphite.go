// Package graphite is the Graphite plaintext output: TCP with large buffered
// writes (plugins/internal/streamout: one write(2) per write_buffer bytes,
// peer-close detection, resume after a partial write) or UDP datagrams.
//
// Unmodified metrics leave byte for byte as they arrived; others are rendered
// by plugins/codec/graphite (StatsD metrics get the write time as timestamp).
package graphite

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("graphite", func() any {
		return &Graphite{Protocol: "tcp", Timeout: registry.Duration(10 * time.Second), WriteBuffer: 64 << 10, MaxPacketSize: 1432}
	}, sample)
}

// Graphite is the outputs.graphite plugin.
type Graphite struct {
	Address       string            `toml:"address"`
	Protocol      string            `toml:"protocol"`
	Timeout       registry.Duration `toml:"timeout"`
	WriteBuffer   int               `toml:"write_buffer"`
	MaxPacketSize int               `toml:"max_packet_size"`

	oversize *atomic.Uint64
	log      zerolog.Logger

	tcp    streamout.Stream
	udp    net.Conn
	buf    []byte
	resume streamout.Resume // UDP: where a failed batch resumes
	now    int64
	line   streamout.AppendFunc
}

// Init validates the configuration.
func (g *Graphite) Init(env registry.Env) error {
	if g.Address == "" {
		return errors.New("address: required (host:port)")
	}
	if err := registry.CheckHostPort("address", g.Address); err != nil {
		return err
	}
	if err := registry.CheckOneOf("protocol", g.Protocol, "tcp", "udp"); err != nil {
		return err
	}
	if g.WriteBuffer < 512 {
		return errors.New("write_buffer: at least 512 bytes")
	}
	if g.MaxPacketSize < 64 || g.MaxPacketSize > 65507 {
		return errors.New("max_packet_size: between 64 and 65507")
	}
	g.oversize = env.Metrics.Counter("oversize_dropped_total", "UDP: lines longer than max_packet_size, dropped.")
	g.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	return nil
}

// Destination returns the configured address (for hash rings and logs).
func (g *Graphite) Destination() string { return g.Address }

// Connect dials the destination.
func (g *Graphite) Connect(ctx context.Context) error {
	g.Close()
	if g.Protocol == "tcp" {
		g.tcp.Address, g.tcp.Timeout, g.tcp.WriteBuffer = g.Address, g.Timeout.D(), g.WriteBuffer
		return g.tcp.Connect(ctx)
	}
	d := net.Dialer{Timeout: g.Timeout.D()}
	c, err := d.DialContext(ctx, "udp", g.Address)
	if err != nil {
		return err
	}
	g.udp = c
	return nil
}

// Write writes the batch (see package streamout for partial failures).
func (g *Graphite) Write(ctx context.Context, b metric.Batch) error {
	g.now = time.Now().Unix()
	if g.Protocol == "tcp" {
		if g.line == nil {
			g.line = g.appendLine // bound once: no allocation per Write
		}
		return g.tcp.Write(ctx, b, g.line)
	}
	if g.udp == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	return g.writeUDP(b, g.resume.Start(b))
}

func (g *Graphite) appendLine(dst []byte, m *metric.Metric) []byte {
	return codec.Append(dst, m, g.now)
}

func (g *Graphite) writeUDP(b metric.Batch, start int) error {
	buf := g.buf[:0]
	var line []byte
	for i := start; i <= len(b); i++ {
		if i < len(b) {
			line = codec.Append(line[:0], &b[i], g.now)
			if len(line) > g.MaxPacketSize {
				g.oversize.Add(1)
				g.log.Warn().Int("bytes", len(line)).Msg("line longer than max_packet_size dropped")
				continue
			}
		}
		if len(buf) > 0 && (i == len(b) || len(buf)+len(line) > g.MaxPacketSize) {
			if _, err := g.udp.Write(buf); err != nil {
				g.resume.Failed(b, start)
				g.buf = buf[:0]
				return fmt.Errorf("write udp %s: %w", g.Address, err)
			}
			start = i
			buf = buf[:0]
		}
		if i < len(b) {
			buf = append(buf, line...)
		}
	}
	g.buf = buf[:0]
	g.resume.Succeeded()
	return nil
}

// Close closes the connection.
func (g *Graphite) Close() error {
	if g.udp != nil {
		g.udp.Close()
		g.udp = nil
	}
	return g.tcp.Close()
}

var (
	_ registry.Output      = (*Graphite)(nil)
	_ registry.Initializer = (*Graphite)(nil)
	_ registry.Addresser   = (*Graphite)(nil)
)
