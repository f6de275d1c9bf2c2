// Package graphite is the Graphite plaintext output: TCP with large buffered
// writes (one write(2) per write_buffer bytes, not per line) or UDP datagrams.
//
// Unmodified metrics leave byte for byte as they arrived; others are rendered
// by plugins/codec/graphite (StatsD metrics get the write time as timestamp).
// A batch that fails half way is resumed after the last line the kernel took,
// so a reconnect does not duplicate what was already sent on the old
// connection.
package graphite

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
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

	conn    net.Conn
	raw     syscall.RawConn // TCP: to peek for a close by the peer
	peekFn  func(fd uintptr)
	peekBuf [1]byte
	peeked  bool
	buf     []byte

	// resume point of the last batch that failed part way
	resumeKey  [3]uintptr
	resumeDone int
}

// Init validates the configuration.
func (g *Graphite) Init(env registry.Env) error {
	if g.Address == "" {
		return errors.New("address: required (host:port)")
	}
	if _, _, err := net.SplitHostPort(g.Address); err != nil {
		return fmt.Errorf("address %q: %w", g.Address, err)
	}
	switch g.Protocol {
	case "tcp", "udp":
	default:
		return fmt.Errorf("protocol %q: want \"tcp\" or \"udp\"", g.Protocol)
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
	d := net.Dialer{Timeout: g.Timeout.D(), KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, g.Protocol, g.Address)
	if err != nil {
		return err
	}
	g.conn = c
	if tc, ok := c.(*net.TCPConn); ok {
		g.raw, _ = tc.SyscallConn()
		if g.peekFn == nil {
			g.peekFn = g.peek
		}
	}
	return nil
}

// peerClosed peeks at the socket without blocking. Carbon never talks back,
// so end-of-stream or an error means the peer closed or reset the
// connection: writing more would only feed a dead socket.
func (g *Graphite) peerClosed() bool {
	if g.raw == nil {
		return false
	}
	g.peeked = false
	_ = g.raw.Control(g.peekFn)
	return g.peeked
}

// peek is the RawConn.Control callback of peerClosed; it is bound once per
// Graphite value (peekFn) so that peeking allocates nothing.
func (g *Graphite) peek(fd uintptr) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), g.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
		case err != nil || n == 0:
			g.peeked = true
		}
		return
	}
}

// Write writes the batch; see the package doc for partial failures.
func (g *Graphite) Write(ctx context.Context, b metric.Batch) error {
	if g.conn == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	start := 0
	key := batchKey(b)
	if key == g.resumeKey {
		start = g.resumeDone
	}
	if g.Protocol == "udp" {
		return g.writeUDP(b, start, key)
	}
	now := time.Now().Unix()
	dl, hasDL := ctx.Deadline()
	buf := g.buf[:0]
	flushed := start // b[:flushed] are fully in the kernel
	for i := start; i < len(b); i++ {
		buf = codec.Append(buf, &b[i], now)
		if len(buf) >= g.WriteBuffer || i == len(b)-1 {
			if g.peerClosed() {
				g.resumeKey, g.resumeDone = key, flushed
				g.buf = buf[:0]
				g.Close()
				return fmt.Errorf("%s: connection closed by peer: %w", g.Address, registry.ErrNotConnected)
			}
			d := time.Now().Add(g.Timeout.D())
			if hasDL && dl.Before(d) {
				d = dl
			}
			_ = g.conn.SetWriteDeadline(d)
			n, err := g.conn.Write(buf)
			if err != nil {
				g.resumeKey = key
				g.resumeDone = flushed + bytes.Count(buf[:n], []byte{'\n'})
				g.buf = buf[:0]
				g.Close()
				return fmt.Errorf("write %s: %w: %w", g.Address, err, registry.ErrNotConnected)
			}
			flushed = i + 1
			buf = buf[:0]
		}
	}
	g.buf = buf[:0]
	g.resumeKey = [3]uintptr{}
	return nil
}

func (g *Graphite) writeUDP(b metric.Batch, start int, key [3]uintptr) error {
	now := time.Now().Unix()
	buf := g.buf[:0]
	flushed := start
	var line []byte
	for i := start; i <= len(b); i++ {
		if i < len(b) {
			line = codec.Append(line[:0], &b[i], now)
			if len(line) > g.MaxPacketSize {
				g.oversize.Add(1)
				g.log.Warn().Int("bytes", len(line)).Msg("line longer than max_packet_size dropped")
				continue
			}
		}
		if len(buf) > 0 && (i == len(b) || len(buf)+len(line) > g.MaxPacketSize) {
			if _, err := g.conn.Write(buf); err != nil {
				g.resumeKey, g.resumeDone = key, flushed
				g.buf = buf[:0]
				return fmt.Errorf("write udp %s: %w", g.Address, err)
			}
			flushed = i
			buf = buf[:0]
		}
		if i < len(b) {
			buf = append(buf, line...)
		}
	}
	g.buf = buf[:0]
	g.resumeKey = [3]uintptr{}
	return nil
}

// batchKey identifies a batch across retries without hashing its contents.
func batchKey(b metric.Batch) [3]uintptr {
	first, last := b[0].Path(), b[len(b)-1].Path()
	return [3]uintptr{uintptr(unsafe.Pointer(unsafe.SliceData(first))), uintptr(unsafe.Pointer(unsafe.SliceData(last))), uintptr(len(b))}
}

// Close closes the connection.
func (g *Graphite) Close() error {
	if g.conn == nil {
		return nil
	}
	err := g.conn.Close()
	g.conn, g.raw = nil, nil
	return err
}

var (
	_ registry.Output      = (*Graphite)(nil)
	_ registry.Initializer = (*Graphite)(nil)
	_ registry.Addresser   = (*Graphite)(nil)
)
