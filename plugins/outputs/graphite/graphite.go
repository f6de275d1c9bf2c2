// Package graphite is the Graphite plaintext output: TCP with large buffered
// writes (plugins/internal/streamout: one write(2) per write_buffer bytes,
// peer-close detection, resume after a partial write) or UDP datagrams.
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
	refused  *atomic.Uint64
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

// Write writes the batch (see package streamout for partial failures). A
// batch with metrics left out returns a *streamout.Refused error once the
// others are written.
func (g *Graphite) Write(ctx context.Context, b metric.Batch) error {
	g.now = time.Now().Unix()
	var err error
	if g.Protocol == "tcp" {
		if g.line == nil {
			g.line = g.appendLine // bound once: no allocation per Write
		}
		err = g.tcp.Write(ctx, b, g.line)
	} else {
		if g.udp == nil {
			return registry.ErrNotConnected
		}
		if len(b) == 0 {
			return nil
		}
		start, skipped := g.resume.Start(b)
		err = g.writeUDP(b, start, skipped)
	}
	var r *streamout.Refused
	if errors.As(err, &r) {
		g.explain(b, r)
	}
	return err
}

func (g *Graphite) appendLine(dst []byte, m *metric.Metric) []byte {
	return codec.Append(dst, m, g.now)
}

// explain counts and logs (sampled) the metrics of b that r left out, and
// gives r the reason of the first: the codec's, or oversize (UDP).
func (g *Graphite) explain(b metric.Batch, r *streamout.Refused) {
	conv := 0
	var first *metric.Metric
	for i := range b {
		if err := codec.Refused(&b[i]); err != nil {
			conv++
			if first == nil {
				first, r.Reason = &b[i], err
			}
		}
	}
	if conv > 0 {
		g.refused.Add(uint64(conv))
		g.log.Warn().Int("count", conv).Err(r.Reason).Bytes("name", logName(first.Name())).Str("format", first.Format().String()).
			Msg("metrics a Graphite line cannot carry were not written (counted as rejected)")
	}
	if over := r.N - conv; over > 0 {
		g.oversize.Add(uint64(over))
		g.log.Warn().Int("count", over).Int("max_packet_size", g.MaxPacketSize).
			Msg("lines longer than max_packet_size dropped (counted as rejected)")
		if first == nil {
			r.Reason = errOversize
		}
	}
}

// logName is a metric name cut for a log line: names can be as long as a
// line.
func logName(name []byte) []byte { return name[:min(len(name), 200)] }

var errOversize = errors.New("line longer than max_packet_size")

// writeUDP sends b[start:] in datagrams; skipped is how many of b[:start]
// were left out before.
func (g *Graphite) writeUDP(b metric.Batch, start, skipped int) error {
	buf := g.buf[:0]
	var line []byte
	total := skipped // left out of b[:i]
	for i := start; i <= len(b); i++ {
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
				g.resume.Failed(b, start, skipped)
				g.buf = buf[:0]
				return fmt.Errorf("write udp %s: %w", g.Address, err)
			}
			start, skipped = i, total
			buf = buf[:0]
		}
		if i < len(b) {
			buf = append(buf, line...)
		}
	}
	g.buf = buf[:0]
	g.resume.Succeeded()
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
