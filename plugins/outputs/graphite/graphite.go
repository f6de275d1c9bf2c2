// Package graphite is the Graphite plaintext output: TCP with large buffered
// writes (plugins/internal/streamout: one write(2) per write_buffer bytes,
// peer-close detection, partial writes that say how many metrics went out)
// or UDP datagrams.
//
// Unmodified metrics leave byte for byte as they arrived; others are rendered
// by plugins/codec/graphite (StatsD metrics get the write time as timestamp,
// and names carbon would split or refuse are mapped). A StatsD metric that
// no Graphite line can carry (a set member that is not a number, a line with
// several values) is left out: the write then reports it as rejected, so
// the runner counts it, and the output counts and logs it.
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
	"github.com/metricsrouter/router/plugins/codec/pickle"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/internal/transport"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("graphite", func() registry.Output {
		return &Graphite{Protocol: "tcp", Format: "plaintext", Transport: "none", Timeout: registry.Duration(10 * time.Second), WriteBuffer: 64 << 10, MaxPacketSize: 1432}
	}, sample, registry.OutputSpec{})
}

// Graphite is the outputs.graphite plugin.
type Graphite struct {
	Address string `toml:"address"`

	// TCP: TLS, mutual with tls_cert (registry.TLSClient)
	registry.TLSClient

	Protocol      string            `toml:"protocol"`
	Timeout       registry.Duration `toml:"timeout"`
	WriteBuffer   int               `toml:"write_buffer"`
	MaxPacketSize int               `toml:"max_packet_size"`
	Format        string            `toml:"format"`
	Transport     string            `toml:"transport"`

	oversize *atomic.Uint64
	refused  *atomic.Uint64
	log      zerolog.Logger

	tcp  streamout.Stream
	udp  net.Conn
	buf  []byte
	now  int64
	line streamout.AppendFunc

	// format = "pickle": one message per chunk of write_buffer bytes
	enc     pickle.Encoder
	scratch []byte
	conv    metric.Metric
}

// Init validates the configuration.
func (g *Graphite) Init(env registry.Env) error {
	if g.Address == "" {
		return errors.New("address: required (host:port)")
	}
	if err := registry.CheckAddress("address", g.Address); err != nil {
		return err
	}
	if err := registry.CheckOneOf("protocol", g.Protocol, "tcp", "udp"); err != nil {
		return err
	}
	if g.TLSClient.Enabled() && g.Protocol != "tcp" {
		return errors.New("tls_enable, tls_cert, tls_ca: TLS is for protocol \"tcp\"")
	}
	if err := g.TLSClient.Check(); err != nil {
		return err
	}
	if w := g.TLSClient.Warning(); w != "" {
		env.Log.Warn().Str("address", g.Address).Msg(w)
	}
	if err := registry.CheckOneOf("format", g.Format, "plaintext", "pickle"); err != nil {
		return err
	}
	if g.Format == "pickle" && g.Protocol != "tcp" {
		return errors.New(`format = "pickle": for protocol "tcp" (carbon's pickle receiver is TCP)`)
	}
	if err := transport.Check(g.Transport); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	if transport.Compressed(g.Transport) {
		if g.Protocol != "tcp" {
			return fmt.Errorf("transport = %q: for protocol \"tcp\"", g.Transport)
		}
		c, err := transport.NewCompressor(g.Transport)
		if err != nil {
			return err
		}
		g.tcp.Compressor = c
	}
	if g.WriteBuffer < 512 {
		return errors.New("write_buffer: at least 512 bytes")
	}
	if g.MaxPacketSize < 64 || g.MaxPacketSize > 65507 {
		return errors.New("max_packet_size: between 64 and 65507")
	}
	g.oversize = env.Metrics.Counter("oversize_dropped_total", "UDP: lines longer than max_packet_size, dropped (and counted as rejected).")
	g.refused = env.Metrics.Counter("conversion_refused_total", "StatsD metrics a Graphite line cannot carry (a set member that is not a number, several values), not written (and counted as rejected).")
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
		g.tcp.TLSClient = &g.TLSClient
		if g.Format == "pickle" && g.tcp.Framing == nil {
			g.tcp.Framing = &streamout.Framing{
				Begin: g.enc.Begin,
				End:   func(dst []byte, _ int) []byte { return g.enc.End(dst) },
			}
		}
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

// Write writes the batch. A write that fails after some metrics went out
// returns a *registry.PartialWriteError whose Written counts them: over TCP
// the metrics whose lines the kernel took whole (see package streamout),
// over UDP those of the datagrams sent. A batch with metrics left out
// returns a *streamout.Refused error once the others are written.
func (g *Graphite) Write(ctx context.Context, b metric.Batch) error {
	g.now = time.Now().Unix()
	var err error
	if g.Protocol == "tcp" {
		if g.line == nil {
			g.line = g.appendLine // bound once: no allocation per Write
			if g.Format == "pickle" {
				g.line = g.appendPickle
			}
		}
		err = g.tcp.Write(ctx, b, g.line)
	} else {
		if g.udp == nil {
			return registry.ErrNotConnected
		}
		if len(b) == 0 {
			return nil
		}
		err = g.writeUDP(b)
	}
	if err != nil {
		streamout.Explain(b, err, g.explain)
	}
	return err
}

func (g *Graphite) appendLine(dst []byte, m *metric.Metric) []byte {
	return codec.Append(dst, m, g.now)
}

// appendPickle appends m's datapoint to the pickle message being written:
// a StatsD metric as its Graphite line would carry it; nothing for a metric
// the Graphite line or carbon's unpickler cannot carry (refused).
func (g *Graphite) appendPickle(dst []byte, m *metric.Metric) []byte {
	if m.Format() != metric.Graphite {
		g.scratch = codec.Append(g.scratch[:0], m, g.now)
		if len(g.scratch) == 0 || codec.Parse(g.scratch[:len(g.scratch)-1], &g.conv) != nil {
			return dst
		}
		m = &g.conv
	}
	out, err := g.enc.AppendMetric(dst, m, g.now)
	if err != nil {
		return dst
	}
	return out
}

// explain counts and logs (sampled) the n metrics of b that a write left
// out, and returns the reason of the first: the codec's, or oversize (UDP).
func (g *Graphite) explain(b metric.Batch, n int) error {
	conv, first, reason := streamout.CountRefused(b, codec.Refused)
	if conv > 0 {
		g.refused.Add(uint64(conv))
		g.log.Warn().Int("count", conv).Err(reason).Bytes("name", streamout.LogName(first.Name())).Str("format", first.Format().String()).
			Msg("metrics a Graphite line cannot carry were not written (counted as rejected)")
	}
	if over := n - conv; over > 0 && g.Format == "pickle" {
		g.refused.Add(uint64(over))
		g.log.Warn().Int("count", over).Msg("metrics carbon's pickle receiver cannot take (a name that is not UTF-8, a timestamp that is not a finite number) were not written (counted as rejected)")
		if first == nil {
			reason = errPickle
		}
	} else if over > 0 {
		g.oversize.Add(uint64(over))
		g.log.Warn().Int("count", over).Int("max_packet_size", g.MaxPacketSize).
			Msg("lines longer than max_packet_size dropped (counted as rejected)")
		if first == nil {
			reason = errOversize
		}
	}
	return reason
}

var (
	errOversize = errors.New("line longer than max_packet_size")
	errPickle   = errors.New("not a datapoint carbon's pickle receiver takes")
)

// writeUDP sends b in datagrams. If a send fails, the metrics of the
// datagrams sent before it are written (a datagram goes whole or not at
// all).
func (g *Graphite) writeUDP(b metric.Batch) error {
	buf := g.buf[:0]
	var line []byte
	start, skipped := 0, 0 // b[:start] are sent, skipped of them left out
	total := 0             // left out of b[:i]
	for i := 0; i <= len(b); i++ {
		if i < len(b) {
			line = codec.Append(line[:0], &b[i], g.now)
			if len(line) == 0 {
				total++ // refused by the codec
				continue
			}
			if len(line) > g.MaxPacketSize {
				total++ // counted and logged by explain
				continue
			}
		}
		if len(buf) > 0 && (i == len(b) || len(buf)+len(line) > g.MaxPacketSize) {
			if _, err := g.udp.Write(buf); err != nil {
				g.buf = buf[:0]
				return streamout.Partial(start, skipped, fmt.Errorf("write udp %s: %w", g.Address, err))
			}
			start, skipped = i, total
			buf = buf[:0]
		}
		if i < len(b) {
			buf = append(buf, line...)
		}
	}
	g.buf = buf[:0]
	if total > 0 {
		return &streamout.Refused{N: total}
	}
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
