package linein

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Config configures a line listener.
type Config struct {
	Listen         string        // "host:port"
	MaxLine        int           // bytes; longer lines are counted and skipped
	MaxConnections int           // TCP: further connections are closed at once (counted)
	IdleTimeout    time.Duration // TCP: close a connection idle this long (0 = never)
	ReadBuffer     int           // socket receive buffer (SO_RCVBUF), 0 = kernel default
	DrainGrace     time.Duration // at shutdown, keep reading open connections this long
	// ReadBatch > 0: UDP reads up to this many datagrams per recvmmsg(2)
	// (BatchReader) and emits one batch per read; 0 = one datagram per read.
	ReadBatch int
	// ForceReadBuffer: when the kernel caps ReadBuffer at net.core.rmem_max,
	// try SO_RCVBUFFORCE (works with CAP_NET_ADMIN).
	ForceReadBuffer bool
}

// Server is a TCP or UDP line listener feeding an Emitter.
type Server struct {
	cfg   Config
	parse ParseFunc
	log   zerolog.Logger
	bad   zerolog.Logger // sampled: bad lines
	c     Counters

	connsTotal, connsRejected, idleClosed *atomic.Uint64
	active                                atomic.Int64
	datagrams, readCalls                  *atomic.Uint64 // batched UDP only
	rcvbuf                                atomic.Int64   // SO_RCVBUF the kernel gave (UDP)

	ready chan struct{}
	addr  atomic.Value // net.Addr
}

// NewServer returns a server; call Init-time things only (no sockets).
func NewServer(cfg Config, parse ParseFunc, env registry.Env) *Server {
	s := &Server{cfg: cfg, parse: parse, log: env.Log, ready: make(chan struct{})}
	s.bad = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	m := env.Metrics
	s.c = Counters{
		ParseErrors: m.Counter("parse_errors_total", "Malformed lines, counted and skipped."),
		TooLong:     m.Counter("lines_too_long_total", "Lines over max_line_length, counted and skipped."),
		Truncated:   m.Counter("truncated_total", "Incomplete last lines dropped when a connection was cut."),
	}
	s.connsTotal = m.Counter("connections_total", "TCP connections accepted.")
	s.connsRejected = m.Counter("connections_rejected_total", "TCP connections closed at once: max_connections reached.")
	s.idleClosed = m.Counter("connections_idle_closed_total", "TCP connections closed after idle_timeout.")
	m.Gauge("connections_active", "Open TCP connections.", func() float64 { return float64(s.active.Load()) })
	if cfg.ReadBatch > 0 {
		s.datagrams = m.Counter("datagrams_total", "UDP datagrams received.")
		s.readCalls = m.Counter("udp_reads_total", "UDP read calls (recvmmsg); datagrams_total / udp_reads_total = datagrams per call.")
		m.Gauge("receive_buffer_bytes", "UDP socket receive buffer (SO_RCVBUF) as the kernel reports it.", func() float64 { return float64(s.rcvbuf.Load()) })
	}
	return s
}

// Addr returns the bound address once the listener is up (tests use :0).
func (s *Server) Addr() net.Addr {
	<-s.ready
	a, _ := s.addr.Load().(net.Addr)
	return a
}

func (s *Server) onError(line []byte, err error) {
	if len(line) > 200 {
		line = line[:200]
	}
	s.bad.Warn().Err(err).Bytes("line", line).Msg("bad line skipped")
}

// ServeTCP accepts connections until ctx ends, then stops accepting, lets
// open connections finish reading for DrainGrace, emits what they read, and
// returns when every connection goroutine has ended.
func (s *Server) ServeTCP(ctx context.Context, out registry.Emitter) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		close(s.ready)
		return fmt.Errorf("listen tcp %s: %w", s.cfg.Listen, err)
	}
	s.addr.Store(ln.Addr())
	close(s.ready)
	s.log.Info().Str("addr", ln.Addr().String()).Msg("listening (tcp)")

	emitCtx := context.WithoutCancel(ctx)
	var (
		mu       sync.Mutex
		conns    = map[net.Conn]struct{}{}
		stopping bool
		wg       sync.WaitGroup
	)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		delay := 5 * time.Millisecond
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// e.g. EMFILE: back off instead of spinning
				s.log.Warn().Err(err).Msg("accept failed")
				time.Sleep(delay)
				delay = min(2*delay, time.Second)
				continue
			}
			delay = 5 * time.Millisecond
			if s.cfg.MaxConnections > 0 && s.active.Load() >= int64(s.cfg.MaxConnections) {
				s.connsRejected.Add(1)
				c.Close()
				continue
			}
			mu.Lock()
			if stopping {
				mu.Unlock()
				c.Close()
				continue
			}
			conns[c] = struct{}{}
			s.active.Add(1)
			s.connsTotal.Add(1)
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				// armIdle sets the idle deadline unless shutdown already
				// set the drain deadline (under mu, so it cannot undo it).
				armIdle := func() bool {
					mu.Lock()
					defer mu.Unlock()
					if !stopping && s.cfg.IdleTimeout > 0 {
						_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
					}
					return stopping
				}
				s.readConn(c, out, emitCtx, armIdle)
				c.Close()
				s.active.Add(-1)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	<-ctx.Done()
	ln.Close()
	<-acceptDone
	mu.Lock()
	stopping = true
	deadline := time.Now().Add(s.cfg.DrainGrace)
	for c := range conns {
		_ = c.SetReadDeadline(deadline)
	}
	mu.Unlock()
	wg.Wait()
	return nil
}

// readConn reads one connection. armIdle re-arms the idle deadline (unless
// shutting down) and reports whether the server is stopping.
func (s *Server) readConn(c net.Conn, out registry.Emitter, ctx context.Context, armIdle func() bool) {
	f := NewFramer(s.parse, s.cfg.MaxLine, s.c, s.onError)
	remote := c.RemoteAddr().String()
	for {
		buf := f.Space(2048)
		armIdle()
		n, err := c.Read(buf)
		if n > 0 {
			if b := f.Advance(n); len(b) > 0 {
				if e := out.Emit(ctx, b); e != nil {
					s.log.Error().Err(e).Str("remote", remote).Int("count", len(b)).Msg("emit failed, closing connection")
					return
				}
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			if armIdle() {
				f.DropPartial()
				return
			}
			s.idleClosed.Add(1)
			s.log.Debug().Str("remote", remote).Msg("idle connection closed")
			f.DropPartial()
			return
		case errors.Is(err, syscall.ECONNRESET):
			f.DropPartial()
			return
		default: // io.EOF and the like: the last line without '\n' still counts
			if b := f.Final(); len(b) > 0 {
				if e := out.Emit(ctx, b); e != nil {
					s.log.Error().Err(e).Str("remote", remote).Int("count", len(b)).Msg("emit failed")
				}
			}
			return
		}
	}
}

// ServeUDP reads datagrams until ctx ends. Each datagram is one or more
// lines; its last line needs no '\n'.
func (s *Server) ServeUDP(ctx context.Context, out registry.Emitter) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", s.cfg.Listen)
	if err != nil {
		close(s.ready)
		return fmt.Errorf("listen udp %s: %w", s.cfg.Listen, err)
	}
	conn := pc.(*net.UDPConn)
	if s.cfg.ReadBuffer > 0 {
		if err := conn.SetReadBuffer(s.cfg.ReadBuffer); err != nil {
			s.log.Warn().Err(err).Int("bytes", s.cfg.ReadBuffer).Msg("set receive buffer")
		}
		if s.cfg.ForceReadBuffer && ReceiveBuffer(conn) < 2*s.cfg.ReadBuffer {
			forceReceiveBuffer(conn, s.cfg.ReadBuffer)
		}
	}
	rcvbuf := ReceiveBuffer(conn)
	s.rcvbuf.Store(int64(rcvbuf))
	s.addr.Store(conn.LocalAddr())
	close(s.ready)
	s.log.Info().Str("addr", conn.LocalAddr().String()).Int("rcvbuf", rcvbuf).Msg("listening (udp)")
	// the kernel doubles what it is asked for (bookkeeping) and caps that
	if s.cfg.ReadBuffer > 0 && rcvbuf < 2*s.cfg.ReadBuffer {
		s.log.Warn().Int("bytes", s.cfg.ReadBuffer).Int("rcvbuf", rcvbuf).Msg("receive buffer smaller than read_buffer: raise net.core.rmem_max")
	}
	dl := &readDeadline{conn: conn}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// read what the kernel already queued for a moment more
			dl.drain(time.Now().Add(s.cfg.DrainGrace))
		case <-done:
		}
	}()
	defer close(done)
	defer conn.Close()
	emitCtx := context.WithoutCancel(ctx)
	if s.cfg.ReadBatch > 0 {
		return s.readBatches(ctx, emitCtx, conn, dl, out)
	}
	f := NewFramer(s.parse, s.cfg.MaxLine, s.c, s.onError)
	f.SetChunkSizes(256<<10, 256<<10)
	for {
		buf := f.Space(65536)
		n, _, err := conn.ReadFromUDP(buf[:65536])
		if n > 0 {
			if b := f.Datagram(n); len(b) > 0 {
				if e := out.Emit(emitCtx, b); e != nil {
					s.log.Error().Err(e).Int("count", len(b)).Msg("emit failed")
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn().Err(err).Msg("udp read")
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// readBatches is ServeUDP's loop with a BatchReader.
//
// Under load (a read that filled every slot) a goroutine reads while this
// one emits, so the socket is drained while the previous batch is routed; at
// most emitQueue batches (and ReadAheadMetrics metrics) wait between them.
// At lighter rates the reader gathers the metrics of consecutive reads (they
// are adjacent in the reader's slab, so this copies nothing) and emits them
// itself, at most gatherDelay after the first and once gatherMax are
// waiting, so that an output gets a few large batches instead of one per
// read: that saves a wake-up of each output's writer per read. Batches are
// emitted in the order they were read. It returns when the reader has
// stopped and everything it read was emitted.
func (s *Server) readBatches(ctx, emitCtx context.Context, conn *net.UDPConn, dl *readDeadline, out registry.Emitter) error {
	r := NewBatchReader(conn, s.cfg.ReadBatch, s.parse, s.cfg.MaxLine, s.c, s.onError, s.datagrams, s.readCalls)
	ch := make(chan metric.Batch, emitQueue)
	// metrics in the batches handed to the emitting goroutine, not yet
	// emitted (batches are never empty: 0 means none waits)
	var queued atomic.Int64
	room := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		defer r.Close()
		var g gathered
		deadline := false // a read deadline is set for g
		flush := func(inline bool) {
			b := g.take()
			if len(b) == 0 {
				return
			}
			if inline && queued.Load() == 0 {
				s.emit(emitCtx, out, b) // nothing waits: emit here (order is kept)
				return
			}
			// Bound the read-ahead by metrics as well as batches: past
			// ReadAheadMetrics, wait for the emitter (the socket's receive
			// buffer holds what arrives meanwhile).
			for q := queued.Load(); q > 0 && q+int64(len(b)) > ReadAheadMetrics; q = queued.Load() {
				<-room
			}
			queued.Add(int64(len(b)))
			ch <- b
		}
		defer flush(false)
		for {
			b, n, err := r.Read()
			now := time.Now()
			if len(b) > 0 {
				heavy := n >= s.cfg.ReadBatch // the read was full: more is waiting
				if !g.add(r.slab, b, now) {
					flush(!heavy)
					g.add(r.slab, b, now)
				}
				if heavy || g.len() >= gatherMax || now.Sub(g.since) >= gatherDelay {
					flush(!heavy)
				}
			}
			var timedOut bool
			if err != nil {
				// our gathering deadline, not the end of the drain
				timedOut = errors.Is(err, os.ErrDeadlineExceeded) && !dl.ended(now)
				if timedOut {
					flush(true)
				}
			}
			switch {
			case g.len() > 0 && !deadline:
				dl.set(g.since.Add(gatherDelay))
				deadline = true
			case g.len() == 0 && deadline:
				dl.set(time.Time{})
				deadline = false
			}
			if err != nil && !timedOut {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Warn().Err(err).Msg("udp read")
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	for b := range ch {
		s.emit(emitCtx, out, b)
		queued.Add(-int64(len(b)))
		select {
		case room <- struct{}{}:
		default:
		}
	}
	return nil
}

// Gathering of light reads (see readBatches).
const (
	emitQueue   = 16                   // read batches waiting for Emit, at most
	gatherDelay = 5 * time.Millisecond // the first gathered metric waits this long, at most
	gatherMax   = 4096                 // metrics gathered before they are emitted
)

// ReadAheadMetrics bounds the metrics of the read batches waiting for Emit
// (one batch waits whatever its size). Past it the reader stops reading and
// the socket's receive buffer (read_buffer) holds what arrives: datagrams
// there cost their bytes, parsed metrics 56 bytes each besides their line,
// so a larger read-ahead only multiplies the memory a burst takes (w3p, 70
// metrics per datagram: peak RSS 49 -> 27 MiB at the same rate).
const ReadAheadMetrics = 8192

// gathered is a run of metrics of consecutive reads, adjacent in the
// reader's slab.
type gathered struct {
	slab     metric.Batch
	from, to int
	since    time.Time
}

func (g *gathered) len() int { return g.to - g.from }

// add appends b, which ends the slab, if it follows what is gathered (or
// nothing is); it reports false if b is elsewhere (a new slab).
func (g *gathered) add(slab, b metric.Batch, now time.Time) bool {
	end := len(slab)
	base := end - len(b)
	if g.len() == 0 {
		g.slab, g.from, g.to, g.since = slab, base, end, now
		return true
	}
	if unsafe.SliceData(g.slab) != unsafe.SliceData(slab) || g.to != base {
		return false
	}
	g.slab, g.to = slab, end
	return true
}

// readDeadline is the read deadline of a UDP socket, shared by the reader
// (which sets one while it gathers) and the shutdown watcher (which sets the
// end of the drain): whoever sets it last, the earlier of the two holds.
type readDeadline struct {
	conn *net.UDPConn
	mu   sync.Mutex
	want time.Time // the reader's; zero = none
	end  time.Time // the drain's; zero = not stopping
}

// set sets the reader's deadline (zero = none).
func (d *readDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.want = t
	d.apply()
}

// drain sets the end of the drain at shutdown.
func (d *readDeadline) drain(end time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.end = end
	d.apply()
}

// ended reports whether the drain is over at now.
func (d *readDeadline) ended(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.end.IsZero() && !now.Before(d.end)
}

func (d *readDeadline) apply() {
	t := d.want
	if t.IsZero() || (!d.end.IsZero() && d.end.Before(t)) {
		t = d.end
	}
	_ = d.conn.SetReadDeadline(t)
}

// take returns what is gathered and forgets it.
func (g *gathered) take() metric.Batch {
	if g.len() == 0 {
		return nil
	}
	b := g.slab[g.from:g.to:g.to]
	*g = gathered{}
	return b
}

func (s *Server) emit(ctx context.Context, out registry.Emitter, b metric.Batch) {
	if e := out.Emit(ctx, b); e != nil {
		s.log.Error().Err(e).Int("count", len(b)).Msg("emit failed")
	}
}

// ReceiveBuffer returns the socket's SO_RCVBUF as the kernel reports it (it
// doubles what was asked, and caps it at net.core.rmem_max).
func ReceiveBuffer(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var v int
	_ = rc.Control(func(fd uintptr) {
		v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	return v
}
