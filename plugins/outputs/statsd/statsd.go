// Package statsd is the StatsD output: UDP datagrams packed with several
// lines up to max_packet_size and sent with one sendmmsg(2) per write, or a
// TCP stream with large buffered writes.
//
// Unmodified StatsD metrics leave byte for byte as they arrived; others are
// rendered by plugins/codec/statsd (Graphite metrics become `as`, a gauge by
// default). A line is never split across datagrams: one longer than
// max_packet_size goes alone in its own datagram, and one that no datagram
// can carry (over 65507 bytes) is dropped and counted.
//
// With `admin` set, the output checks the backend's health the way Etsy
// statsd's proxy.js does and reports it through registry.HealthReporter, so a
// consistent_hash with on_down = "rehash" takes a down backend out of its
// ring. UDP gives no other sign of a dead backend: the socket is not
// connected, so the kernel reports no ICMP errors, and writes succeed.
package statsd

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("statsd", func() any {
		return &StatsD{
			Protocol:      "udp",
			MaxPacketSize: 1432,
			As:            "g",
			Timeout:       registry.Duration(10 * time.Second),
			WriteBuffer:   64 << 10,
			CheckInterval: registry.Duration(10 * time.Second),
		}
	}, sample)
}

// maxUDPPayload is the largest UDP datagram payload over IPv4.
const maxUDPPayload = 65507

// StatsD is the outputs.statsd plugin.
type StatsD struct {
	Address       string            `toml:"address"`
	Protocol      string            `toml:"protocol"`
	MaxPacketSize int               `toml:"max_packet_size"`
	As            string            `toml:"as"`
	Timeout       registry.Duration `toml:"timeout"`
	WriteBuffer   int               `toml:"write_buffer"`
	Admin         string            `toml:"admin"`
	CheckInterval registry.Duration `toml:"check_interval"`

	as        metric.Type
	oversize  *atomic.Uint64
	datagrams *atomic.Uint64
	log       zerolog.Logger // sampled: per-line problems
	hc        *checker       // nil without admin

	// UDP: an unconnected socket and one message per datagram of a write
	udp  *net.UDPConn
	pc   batchWriter
	dst  *net.UDPAddr
	msgs []ipv4.Message
	bufs [][]byte
	ends []int // per datagram: its end in buf, after the last line's '\n'
	next []int // per datagram: the index of the first metric after it

	// TCP
	tcp  streamout.Stream
	line streamout.AppendFunc

	buf []byte

	resume streamout.Resume // UDP: where a failed batch resumes
}

// batchWriter is ipv4.PacketConn or ipv6.PacketConn (their Message types
// are the same).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Init validates the configuration.
func (s *StatsD) Init(env registry.Env) error {
	if s.Address == "" {
		return errors.New("address: required (host:port)")
	}
	if err := registry.CheckHostPort("address", s.Address); err != nil {
		return err
	}
	if err := registry.CheckOneOf("protocol", s.Protocol, "udp", "tcp"); err != nil {
		return err
	}
	if s.MaxPacketSize < 64 || s.MaxPacketSize > maxUDPPayload {
		return fmt.Errorf("max_packet_size = %d: want 64..%d", s.MaxPacketSize, maxUDPPayload)
	}
	switch s.As {
	case "g":
		s.as = metric.Gauge
	case "c":
		s.as = metric.Counter
	case "ms":
		s.as = metric.Timer
	default:
		return fmt.Errorf("as %q: want \"g\", \"c\" or \"ms\"", s.As)
	}
	if s.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	if s.WriteBuffer < 512 {
		return errors.New("write_buffer: at least 512 bytes")
	}
	s.oversize = env.Metrics.Counter("oversize_dropped_total", "UDP: lines longer than 65507 bytes, which no datagram carries, dropped.")
	s.datagrams = env.Metrics.Counter("datagrams_total", "UDP datagrams sent.")
	s.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	if s.Admin != "" {
		if err := registry.CheckHostPort("admin", s.Admin); err != nil {
			return err
		}
		if s.CheckInterval < registry.Duration(10*time.Millisecond) {
			return errors.New("check_interval: at least 10ms")
		}
		changes := env.Metrics.Counter("health_changes_total", "Health check state changes (healthy <-> unhealthy).")
		s.hc = newChecker(s.Admin, s.Address, s.CheckInterval.D(), env.Log, changes)
	}
	env.Metrics.Gauge("healthy", "1 if the admin health check says healthy (always 1 without admin).", func() float64 {
		if s.Healthy() {
			return 1
		}
		return 0
	})
	return nil
}

// BatchDefaults: wait up to 10 ms for a batch to fill (unless the
// configuration sets flush_interval). At moderate rates a write then packs
// many metrics per datagram instead of sending one for each read, which
// costs the router and the backend far less; StatsD backends aggregate over
// seconds, so the delay does not matter. A batch is 1000 metrics (~20
// datagrams of 1432 bytes per sendmmsg) rather than the agent's 5000: the
// metrics waiting for a write, and the read chunks they keep alive, are most
// of a StatsD proxy's heap under load (w3s/w3p peak RSS 23 -> 17-19 MiB, the
// same metrics per CPU-second).
func (s *StatsD) BatchDefaults() (int, registry.Duration) {
	return 1000, registry.Duration(10 * time.Millisecond)
}

// Destination returns the configured address (for hash rings and logs).
func (s *StatsD) Destination() string { return s.Address }

// Healthy reports the last health check (true without admin). It is safe
// for concurrent use.
func (s *StatsD) Healthy() bool { return s.hc == nil || s.hc.up.Load() }

// Connect starts the health checks (if not running) and opens the socket:
// for UDP an unconnected one, of the family of the destination's address.
func (s *StatsD) Connect(ctx context.Context) error {
	if s.hc != nil {
		s.hc.start()
	}
	s.closeConn()
	if s.Protocol == "tcp" {
		s.tcp.Address, s.tcp.Timeout, s.tcp.WriteBuffer = s.Address, s.Timeout.D(), s.WriteBuffer
		return s.tcp.Connect(ctx)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(s.Address))
	if err != nil {
		return fmt.Errorf("resolve %s: %w", s.Address, err)
	}
	port, err := net.DefaultResolver.LookupPort(ctx, "udp", portOf(s.Address))
	if err != nil {
		return fmt.Errorf("resolve %s: %w", s.Address, err)
	}
	ip := addrs[0].Unmap()
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return err
	}
	s.udp = c
	s.dst = &net.UDPAddr{IP: ip.AsSlice(), Port: port, Zone: ip.Zone()}
	if ip.Is6() {
		s.pc = ipv6.NewPacketConn(c)
	} else {
		s.pc = ipv4.NewPacketConn(c)
	}
	for i := range s.msgs {
		s.msgs[i].Addr = s.dst
	}
	return nil
}

func hostOf(a string) string { h, _, _ := net.SplitHostPort(a); return h }
func portOf(a string) string { _, p, _ := net.SplitHostPort(a); return p }

// Write writes the batch. A batch that failed part way is resumed after the
// last metric the kernel took, so a retry does not duplicate it.
func (s *StatsD) Write(ctx context.Context, b metric.Batch) error {
	if s.Protocol == "tcp" {
		if s.line == nil {
			s.line = s.appendLine // bound once: no allocation per Write
		}
		return s.tcp.Write(ctx, b, s.line)
	}
	if s.udp == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	err := s.writeUDP(ctx, b, s.resume.Start(b))
	if err == nil {
		s.resume.Succeeded()
	}
	return err
}

func (s *StatsD) appendLine(dst []byte, m *metric.Metric) []byte { return codec.Append(dst, m, s.as) }

// pack appends the lines of b[start:] to buf and cuts them into datagrams
// of at most size bytes (the last line of a datagram without its '\n'),
// never splitting a line. It returns buf and, per datagram, its end in buf
// (after its last '\n') and the index of the first metric after it. Lines
// over 65507 bytes are left out and counted in dropped.
func pack(buf []byte, b metric.Batch, start int, as metric.Type, size int, ends, next []int) ([]byte, []int, []int, int) {
	dropped := 0
	ds := len(buf) // start of the open datagram
	for i := start; i < len(b); i++ {
		ls := len(buf)
		buf = codec.Append(buf, &b[i], as)
		if len(buf)-ls-1 > maxUDPPayload {
			buf = buf[:ls]
			dropped++
			continue
		}
		if ls > ds && len(buf)-1-ds > size {
			// the line does not fit: close the open datagram before it
			ends = append(ends, ls)
			next = append(next, i)
			ds = ls
		}
	}
	if len(buf) > ds {
		ends = append(ends, len(buf))
		next = append(next, len(b))
	}
	return buf, ends, next, dropped
}

func (s *StatsD) writeUDP(ctx context.Context, b metric.Batch, start int) error {
	buf, ends, next, dropped := pack(s.buf[:0], b, start, s.as, s.MaxPacketSize, s.ends[:0], s.next[:0])
	s.buf, s.ends, s.next = buf[:0], ends[:0], next[:0]
	if dropped > 0 {
		s.oversize.Add(uint64(dropped))
		s.log.Warn().Int("dropped", dropped).Msg("lines longer than a UDP datagram can carry dropped")
	}
	nd := len(ends)
	if nd == 0 {
		return nil
	}
	s.grow(nd)
	prev := 0
	for j, e := range ends {
		s.bufs[j] = buf[prev : e-1] // without the last '\n'
		prev = e
	}
	s.setDeadline(ctx, s.udp)
	sent := 0
	for sent < nd {
		n, err := s.pc.WriteBatch(s.msgs[sent:nd], 0)
		if n > 0 {
			sent += n
			s.datagrams.Add(uint64(n))
		}
		if err != nil {
			done := start
			if sent > 0 {
				done = next[sent-1]
			}
			s.resume.Failed(b, done)
			return fmt.Errorf("write udp %s: %w", s.Address, err)
		}
	}
	return nil
}

// grow makes room for n messages, each with one buffer and the destination.
func (s *StatsD) grow(n int) {
	if n <= len(s.msgs) {
		return
	}
	n = max(n, 2*len(s.msgs), 64)
	s.msgs = make([]ipv4.Message, n)
	s.bufs = make([][]byte, n)
	for i := range s.msgs {
		s.msgs[i].Buffers = s.bufs[i : i+1 : i+1]
		s.msgs[i].Addr = s.dst
	}
}

func (s *StatsD) setDeadline(ctx context.Context, c net.Conn) {
	d := time.Now().Add(s.Timeout.D())
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	_ = c.SetWriteDeadline(d)
}

func (s *StatsD) closeConn() {
	_ = s.tcp.Close()
	if s.udp != nil {
		_ = s.udp.Close()
		s.udp, s.pc = nil, nil
	}
}

// Close stops the health checks and closes the socket.
func (s *StatsD) Close() error {
	if s.hc != nil {
		s.hc.stop()
	}
	s.closeConn()
	return nil
}

var (
	_ registry.Output         = (*StatsD)(nil)
	_ registry.Initializer    = (*StatsD)(nil)
	_ registry.Addresser      = (*StatsD)(nil)
	_ registry.HealthReporter = (*StatsD)(nil)
	_ registry.BatchDefaults  = (*StatsD)(nil)
)
