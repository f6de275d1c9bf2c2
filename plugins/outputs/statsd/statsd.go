// Package statsd is the StatsD output: UDP datagrams packed with several
// lines up to max_packet_size and sent with one sendmmsg(2) per write, or a
// TCP stream with large buffered writes.
//
// Unmodified StatsD metrics leave byte for byte as they arrived; others are
// rendered by plugins/codec/statsd (Graphite metrics become `as`, a gauge by
// default, and names StatsD servers would split are mapped). A line is never
// split across datagrams: one longer than max_packet_size goes alone in its
// own datagram. A line that no datagram can carry (over 65507 bytes) and a
// Graphite metric StatsD cannot carry (NaN, Inf, a negative timer) are left
// out: the write then reports them as rejected, so the runner counts them,
// and the output counts and logs them.
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
	// Batches: wait up to 10 ms for a batch to fill (unless the
	// configuration sets flush_interval). At moderate rates a write then
	// packs many metrics per datagram instead of sending one for each read,
	// which costs the router and the backend far less; StatsD backends
	// aggregate over seconds, so the delay does not matter. A batch is 1000
	// metrics (~20 datagrams of 1432 bytes per sendmmsg) rather than the
	// agent's 5000: the metrics waiting for a write, and the read chunks they
	// keep alive, are most of a StatsD proxy's heap under load
	// (PERFORMANCE.md, w3s/w3p).
	registry.AddOutput("statsd", func() registry.Output {
		return &StatsD{
			Protocol:      "udp",
			MaxPacketSize: 1432,
			As:            "g",
			Timeout:       registry.Duration(10 * time.Second),
			WriteBuffer:   64 << 10,
			CheckInterval: registry.Duration(10 * time.Second),
		}
	}, sample, registry.OutputSpec{BatchSize: 1000, FlushInterval: registry.Duration(10 * time.Millisecond)})
}

// maxUDPPayload is the largest UDP datagram payload over IPv4.
const maxUDPPayload = 65507

// StatsD is the outputs.statsd plugin.
type StatsD struct {
	Address string `toml:"address"`

	// TCP: TLS, mutual with tls_cert (registry.TLSClient)
	registry.TLSClient

	Protocol      string            `toml:"protocol"`
	MaxPacketSize int               `toml:"max_packet_size"`
	As            string            `toml:"as"`
	Timeout       registry.Duration `toml:"timeout"`
	WriteBuffer   int               `toml:"write_buffer"`
	Admin         string            `toml:"admin"`
	CheckInterval registry.Duration `toml:"check_interval"`
	SumCounters   bool              `toml:"sum_counters"`

	sum       *summer        // sum_counters
	summed    *atomic.Uint64 // lines sum_counters merged away
	as        metric.Type
	oversize  *atomic.Uint64
	refused   *atomic.Uint64
	datagrams *atomic.Uint64
	log       zerolog.Logger // sampled: per-line problems
	hc        *checker       // nil without admin

	// UDP: an unconnected socket and one message per datagram of a write
	udp   *net.UDPConn
	pc    batchWriter
	dst   *net.UDPAddr
	msgs  []ipv4.Message
	bufs  [][]byte
	grams []gram // the datagrams of a write

	// TCP
	tcp  streamout.Stream
	line streamout.AppendFunc

	buf []byte
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
	if err := registry.CheckAddress("address", s.Address); err != nil {
		return err
	}
	if err := registry.CheckOneOf("protocol", s.Protocol, "udp", "tcp"); err != nil {
		return err
	}
	if s.TLSClient.Enabled() && s.Protocol != "tcp" {
		return errors.New("tls_enable, tls_cert, tls_ca: TLS is for protocol \"tcp\"")
	}
	if err := s.TLSClient.Check(); err != nil {
		return err
	}
	if w := s.TLSClient.Warning(); w != "" {
		env.Log.Warn().Str("address", s.Address).Msg(w)
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
	s.oversize = env.Metrics.Counter("oversize_dropped_total", "UDP: lines longer than 65507 bytes, which no datagram carries, dropped (and counted as rejected).")
	s.refused = env.Metrics.Counter("conversion_refused_total", "Graphite metrics StatsD cannot carry (NaN, Inf, a negative timer), not written (and counted as rejected).")
	s.datagrams = env.Metrics.Counter("datagrams_total", "UDP datagrams sent.")
	if s.SumCounters {
		s.sum = newSummer()
		s.summed = env.Metrics.Counter("counters_summed_total", "sum_counters: counter lines merged into the sum of their batch (not written on their own).")
	}
	s.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	if s.Admin != "" {
		if err := registry.CheckAddress("admin", s.Admin); err != nil {
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
		s.tcp.TLSClient = &s.TLSClient
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

// Write writes the batch. A write that fails after some metrics went out
// returns a *registry.PartialWriteError whose Written counts them: over UDP
// those of the datagrams the kernel took, over TCP the metrics whose lines
// it took whole (see package streamout); the runner writes only the rest
// again. A batch with metrics left out returns a *streamout.Refused error
// once the others are written.
func (s *StatsD) Write(ctx context.Context, b metric.Batch) error {
	if s.sum != nil {
		return s.writeSummed(ctx, b)
	}
	return s.write(ctx, b)
}

func (s *StatsD) write(ctx context.Context, b metric.Batch) error {
	var err error
	if s.Protocol == "tcp" {
		if s.line == nil {
			s.line = s.appendLine // bound once: no allocation per Write
		}
		err = s.tcp.Write(ctx, b, s.line)
	} else {
		if s.udp == nil {
			return registry.ErrNotConnected
		}
		if len(b) == 0 {
			return nil
		}
		err = s.writeUDP(ctx, b)
	}
	if err != nil {
		streamout.Explain(b, err, s.explain)
	}
	return err
}

func (s *StatsD) appendLine(dst []byte, m *metric.Metric) []byte { return codec.Append(dst, m, s.as) }

// explain counts and logs (sampled) the n metrics of b that a write left
// out, and returns the reason of the first: the codec's, or oversize (UDP).
func (s *StatsD) explain(b metric.Batch, n int) error {
	conv, first, reason := streamout.CountRefused(b, func(m *metric.Metric) error { return codec.Refused(m, s.as) })
	if conv > 0 {
		s.refused.Add(uint64(conv))
		s.log.Warn().Int("count", conv).Err(reason).Bytes("name", streamout.LogName(first.Name())).Str("format", first.Format().String()).
			Msg("metrics StatsD cannot carry were not written (counted as rejected)")
	}
	if over := n - conv; over > 0 {
		s.oversize.Add(uint64(over))
		s.log.Warn().Int("count", over).Msg("lines longer than a UDP datagram can carry dropped (counted as rejected)")
		if first == nil {
			reason = errOversize
		}
	}
	return reason
}

var errOversize = errors.New("line longer than a UDP datagram can carry")

// gram is one datagram of a write: its end in the write's buffer (after its
// last line's '\n'), the index of the first metric after it, and how many
// metrics before that were left out.
type gram struct{ end, next, left int }

// pack appends the lines of b to buf and cuts them into datagrams of at
// most size bytes (the last line of a datagram without its '\n'), never
// splitting a line (nor the two lines of a negative gauge). Lines over
// 65507 bytes and metrics the codec refuses are left out. It returns buf,
// the datagrams, and how many metrics of b are left out.
func pack(buf []byte, b metric.Batch, as metric.Type, size int, grams []gram) ([]byte, []gram, int) {
	ds := len(buf) // start of the open datagram
	skipped := 0
	for i := range b {
		ls := len(buf)
		buf = codec.Append(buf, &b[i], as)
		if n := len(buf) - ls; n == 0 || n-1 > maxUDPPayload {
			buf = buf[:ls]
			skipped++
			continue
		}
		if ls > ds && len(buf)-1-ds > size {
			// the line does not fit: close the open datagram before it
			grams = append(grams, gram{ls, i, skipped})
			ds = ls
		}
	}
	if len(buf) > ds {
		grams = append(grams, gram{len(buf), len(b), skipped})
	}
	return buf, grams, skipped
}

// writeUDP sends b. If a send fails, the metrics of the datagrams the
// kernel took before it are written (a datagram goes whole or not at all).
func (s *StatsD) writeUDP(ctx context.Context, b metric.Batch) error {
	buf, grams, total := pack(s.buf[:0], b, s.as, s.MaxPacketSize, s.grams[:0])
	s.buf, s.grams = buf[:0], grams[:0]
	nd := len(grams)
	if nd > 0 {
		s.grow(nd)
		prev := 0
		for j, g := range grams {
			s.bufs[j] = buf[prev : g.end-1] // without the last '\n'
			prev = g.end
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
				written, refused := 0, 0
				if sent > 0 {
					written, refused = grams[sent-1].next, grams[sent-1].left
				}
				return streamout.Partial(written, refused, fmt.Errorf("write udp %s: %w", s.Address, err))
			}
		}
	}
	if total > 0 {
		return &streamout.Refused{N: total}
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
)
