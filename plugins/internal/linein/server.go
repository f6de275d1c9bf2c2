package linein

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

// Config configures a line listener.
type Config struct {
	Listen         string        // "host:port"
	MaxLine        int           // bytes; longer lines are counted and skipped
	MaxConnections int           // TCP: at this many, a new connection sheds the oldest idle one, or is closed (counted)
	MaxPerIP       int           // TCP: the same for the connections of one source address (0 = no limit)
	ShedMinIdle    time.Duration // TCP: a connection may be shed once it sent nothing this long (0 = 1 s)
	IdleTimeout    time.Duration // TCP: close a connection idle this long (0 = never)
	ReadBuffer     int           // socket receive buffer (SO_RCVBUF), 0 = kernel default
	DrainGrace     time.Duration // at shutdown, keep reading open connections this long
	// ReadBatch > 0: UDP reads up to this many datagrams per recvmmsg(2)
	// (BatchReader) and emits one batch per read; 0 = one datagram per read.
	ReadBatch int
	// ForceReadBuffer: when the kernel caps ReadBuffer at net.core.rmem_max,
	// try SO_RCVBUFFORCE (works with CAP_NET_ADMIN).
	ForceReadBuffer bool
	// Network of ServeTCP: "tcp" (the default) or "unix", for which Listen
	// is a socket path (netx removes a stale socket file there, and the
	// file goes with the socket); MaxPerIP does not apply to unix
	// connections, which have no source address.
	Network string
	// Cleanse, if set, cleanses every line before it is parsed (see
	// Framer.SetCleanse), in ServeTCP and in ServeUDP without ReadBatch.
	Cleanse CleanseFunc
	// TLS, if enabled, serves TCP connections over TLS: ServeTCP builds the
	// *tls.Config when it starts (kept up to date by registry.ReloadTLS
	// until it returns); the handshake runs in the connection's goroutine,
	// within handshakeTimeout; a failed one is counted
	// (tls_handshake_errors_total) and logged with the peer.
	TLS *registry.TLSServer
	// Transport, if set, wraps each TCP connection (after TLS) for a
	// compressed transport (plugins/internal/transport.Server). Deadlines set
	// on the wrapped connection must apply to its reads without breaking the
	// stream: a connection handed to the next instance at a reload is handed
	// wrapped, and read on as it is.
	Transport func(net.Conn) net.Conn
	// NewFramer, if set, returns the framer of each TCP connection instead
	// of a line Framer (Cleanse and MaxLine then do not apply to it), given
	// the server's counters and its (sampled) logger of bad input.
	NewFramer func(c Counters, onError func(line []byte, err error)) StreamFramer
}

// Server is a TCP or UDP line listener feeding an Emitter.
type Server struct {
	cfg   Config
	parse ParseFunc
	log   zerolog.Logger
	bad   zerolog.Logger // sampled: bad lines
	c     Counters

	connsTotal, connsRejected, idleClosed *atomic.Uint64
	connsShed, acceptErrors, readErrors   *atomic.Uint64
	handedOver                            *atomic.Uint64
	tlsErrors                             *atomic.Uint64
	active                                atomic.Int64
	datagrams, readCalls                  *atomic.Uint64 // batched UDP only
	rcvbuf                                atomic.Int64   // SO_RCVBUF the kernel gave (UDP)

	tlsConf *tls.Config // built by ServeTCP when TLS is enabled

	ready chan struct{}
	addr  atomic.Value // net.Addr
	owner string       // netx.Config.Owner: instances of one input share sockets
}

// NewServer returns a server; call Init-time things only (no sockets).
func NewServer(cfg Config, parse ParseFunc, env registry.Env) *Server {
	s := &Server{cfg: cfg, parse: parse, log: env.Log, ready: make(chan struct{})}
	if env.ID != "" {
		s.owner = env.Plugin + " " + env.ID
	}
	s.bad = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	m := env.Metrics
	s.c = Counters{
		ParseErrors: m.Counter("parse_errors_total", "Malformed lines, counted and skipped."),
		TooLong:     m.Counter("lines_too_long_total", "Lines over max_line_length, counted and skipped."),
		Truncated:   m.Counter("truncated_total", "Incomplete last lines dropped when a connection was cut."),
	}
	s.connsTotal = m.Counter("connections_total", "TCP connections accepted.")
	s.connsRejected = m.Counter("connections_rejected_total", "TCP connections closed at once: max_connections or max_connections_per_ip reached and no connection idle to shed.")
	s.connsShed = m.Counter("connections_shed_total", "Idle TCP connections closed to admit a new one at max_connections or max_connections_per_ip.")
	s.idleClosed = m.Counter("connections_idle_closed_total", "TCP connections closed after idle_timeout.")
	s.acceptErrors = m.Counter("accept_errors_total", "Failed accepts (e.g. out of file descriptors), retried with backoff.")
	s.readErrors = m.Counter("read_errors_total", "Failed UDP reads, retried.")
	s.handedOver = m.Counter("connections_handed_over_total", "Open TCP connections handed to the next instance of this input (a reload), with their unread bytes.")
	if cfg.TLS != nil && cfg.TLS.Enabled() {
		s.tlsErrors = m.Counter("tls_handshake_errors_total", "TLS handshakes that failed (wrong or missing client certificate, protocol version, not TLS): the connection is closed.")
	}
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
// returns when every connection goroutine has ended. A failing accept (out
// of descriptors, ...) is retried with backoff (netx), never fatal.
//
// The listening socket is shared through netx (see its documentation): a
// successor (the next instance of this input, at a reload) listening on the
// same address shares it. If one exists when ctx ends (or a netx hold is
// active), every connection instead stops reading at once, emits the
// complete lines it has and is handed over, open, with its incomplete last
// line, to the successor, which reads on from there: nothing is lost, cut or
// emitted twice, and lines keep their order. A handed-over connection counts
// towards the successor's limits (not again in connections_total), and
// connections_handed_over_total counts them here.
//
// Limits: at MaxConnections open connections, or MaxPerIP from the new
// connection's source address, the connection (of that address) that has
// been idle longest is closed to make room, if one has been idle at least
// ShedMinIdle; otherwise the new connection is closed. So idle connections
// cannot lock other senders out, and one address cannot take every slot.
func (s *Server) ServeTCP(ctx context.Context, out registry.Emitter) error {
	network := s.cfg.Network
	if network == "" {
		network = "tcp"
	}
	if s.cfg.TLS != nil && s.cfg.TLS.Enabled() {
		c, err := s.cfg.TLS.ServerConfig()
		if err != nil {
			close(s.ready)
			return err
		}
		s.tlsConf = c
		defer registry.ReleaseTLS(c)
	}
	ln, err := netx.ListenContext(ctx, network, s.cfg.Listen, netx.Config{Errors: s.acceptErrors, Log: s.log, Owner: s.owner})
	if err != nil {
		close(s.ready)
		return fmt.Errorf("listen %s %s: %w", network, s.cfg.Listen, err)
	}
	s.addr.Store(ln.Addr())
	close(s.ready)
	if network == "unix" {
		s.log.Info().Str("addr", ln.Addr().String()).Msg("listening (unix)")
	} else {
		s.log.Info().Str("addr", ln.Addr().String()).Msg("listening (tcp)")
	}

	emitCtx := context.WithoutCancel(ctx)
	t := &tracker{conns: map[*tcpConn]struct{}{}, byIP: map[netip.Addr]map[*tcpConn]struct{}{}}
	var wg sync.WaitGroup
	var handed atomic.Int64 // connections handed over by this instance
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed: netx retries everything else
			}
			tc := &tcpConn{c: c, ip: remoteIP(c)}
			if hc, ok := c.(*netx.HandedConn); ok {
				tc.handed = true
				tc.state = hc.State
			}
			tc.last.Store(time.Now().UnixNano())
			if !s.admit(t, tc) {
				c.Close()
				continue
			}
			if !tc.handed {
				s.connsTotal.Add(1)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s.readConn(t, tc, out, emitCtx, ln) {
					handed.Add(1)
				} else {
					c.Close()
				}
				s.release(t, tc)
			}()
		}
	}()
	<-ctx.Done()
	// asked before Close: afterwards the socket may be gone with it
	handOver := ln.CanHandOver()
	ln.Close()
	<-acceptDone
	t.mu.Lock()
	t.stopping, t.handOver = true, handOver
	deadline := time.Now().Add(s.cfg.DrainGrace)
	if handOver {
		deadline = time.Now() // each reader stops at its next read
	}
	for tc := range t.conns {
		_ = tc.c.SetReadDeadline(deadline)
	}
	t.mu.Unlock()
	wg.Wait()
	if handOver {
		s.log.Info().Int64("count", handed.Load()).Msg("connections handed to the next instance")
	}
	return nil
}

// defShedMinIdle is how long a connection must have sent nothing before a
// new connection may shed it: a sender between two lines is not idle.
const defShedMinIdle = time.Second

// shedSample bounds the connections looked at to find the one idle longest
// (a sample when there are more: Go maps iterate from a random point).
const shedSample = 64

// tcpConn is an open connection of ServeTCP.
type tcpConn struct {
	c    net.Conn
	ip   netip.Addr
	last atomic.Int64 // UnixNano of the last read that brought bytes (or the accept)
	shed atomic.Bool  // closed to make room: its partial line is dropped

	handed bool // handed over by the previous instance (netx.HandedConn)
	state  any  // ... with its framer's state (StreamFramer.Pending)
}

// tracker is the open connections of ServeTCP, by source address.
type tracker struct {
	mu       sync.Mutex
	conns    map[*tcpConn]struct{}
	byIP     map[netip.Addr]map[*tcpConn]struct{}
	stopping bool
	handOver bool // stopping with a successor: hand connections over
}

// admit registers tc if there is room, shedding the connection idle longest
// (of tc's address when it is that address's limit that is reached) if
// needed; false: tc must be closed (counted).
func (s *Server) admit(t *tracker, tc *tcpConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopping {
		return false
	}
	now := time.Now().UnixNano()
	if s.cfg.MaxPerIP > 0 && tc.ip.IsValid() && len(t.byIP[tc.ip]) >= s.cfg.MaxPerIP {
		if !s.shed(t, t.byIP[tc.ip], now) {
			s.connsRejected.Add(1)
			s.log.Debug().Str("remote", tc.c.RemoteAddr().String()).Msg("connection refused: max_connections_per_ip")
			return false
		}
	}
	if s.cfg.MaxConnections > 0 && len(t.conns) >= s.cfg.MaxConnections {
		if !s.shed(t, t.conns, now) {
			s.connsRejected.Add(1)
			s.log.Debug().Str("remote", tc.c.RemoteAddr().String()).Msg("connection refused: max_connections")
			return false
		}
	}
	t.conns[tc] = struct{}{}
	m := t.byIP[tc.ip]
	if m == nil {
		m = map[*tcpConn]struct{}{}
		t.byIP[tc.ip] = m
	}
	m[tc] = struct{}{}
	s.active.Store(int64(len(t.conns)))
	return true
}

// shed closes the connection of set idle longest (of a sample), if one has
// been idle at least ShedMinIdle, and forgets it; t.mu is held.
func (s *Server) shed(t *tracker, set map[*tcpConn]struct{}, now int64) bool {
	var victim *tcpConn
	n := 0
	for tc := range set {
		if victim == nil || tc.last.Load() < victim.last.Load() {
			victim = tc
		}
		if n++; n == shedSample {
			break
		}
	}
	minIdle := s.cfg.ShedMinIdle
	if minIdle <= 0 {
		minIdle = defShedMinIdle
	}
	if victim == nil || now-victim.last.Load() < int64(minIdle) {
		return false
	}
	victim.shed.Store(true)
	_ = victim.c.Close()
	t.forget(victim)
	s.connsShed.Add(1)
	return true
}

// forget removes tc from the tracker (once); t.mu is held.
func (t *tracker) forget(tc *tcpConn) {
	if _, ok := t.conns[tc]; !ok {
		return
	}
	delete(t.conns, tc)
	if m := t.byIP[tc.ip]; m != nil {
		delete(m, tc)
		if len(m) == 0 {
			delete(t.byIP, tc.ip)
		}
	}
}

// release forgets a connection whose reader ended.
func (s *Server) release(t *tracker, tc *tcpConn) {
	t.mu.Lock()
	t.forget(tc)
	s.active.Store(int64(len(t.conns)))
	t.mu.Unlock()
}

// remoteIP is the source address of c (IPv4-mapped addresses unmapped).
func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// readConn reads one connection until it ends, or until the server stops
// (after DrainGrace, or at once when the connection can be handed over to
// a successor through ln); true: it was handed over (not to be closed).
func (s *Server) readConn(t *tracker, tc *tcpConn, out registry.Emitter, ctx context.Context, ln *netx.Listener) bool {
	if !tc.handed && (s.tlsConf != nil || s.cfg.Transport != nil) {
		// a handed-over connection comes wrapped as it was
		if !s.wrap(t, tc) {
			return false
		}
	}
	c := tc.c
	f := s.newStreamFramer()
	if tc.state != nil {
		f.Resume(tc.state)
	}
	remote := c.RemoteAddr().String()
	ctx = registry.WithPeer(ctx, connPeer(c.RemoteAddr())) // once per connection
	// armIdle sets the idle deadline unless shutdown already set the drain
	// deadline (under mu, so it cannot undo it); it reports whether the
	// server is stopping, and if so whether to hand connections over.
	armIdle := func() (stopping, handOver bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopping && s.cfg.IdleTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		return t.stopping, t.handOver
	}
	draining := false // handing over failed: drain as without a successor
	for {
		buf := f.Space(2048)
		armIdle()
		n, err := c.Read(buf)
		if n > 0 {
			tc.last.Store(time.Now().UnixNano())
			if b := f.Advance(n); len(b) > 0 {
				if e := out.Emit(ctx, b); e != nil {
					s.log.Error().Err(e).Str("remote", remote).Int("count", len(b)).Msg("emit failed, closing connection")
					return false
				}
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		switch {
		case tc.shed.Load():
			// closed to make room for another sender: its last line was cut
			s.log.Debug().Str("remote", remote).Msg("idle connection shed")
			f.DropPartial()
			return false
		case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			stopping, handOver := armIdle()
			if !stopping {
				s.idleClosed.Add(1)
				s.log.Debug().Str("remote", remote).Msg("idle connection closed")
				f.DropPartial()
				return false
			}
			if handOver && !draining {
				// every complete line is emitted: the rest goes on with it
				tail, state := f.Pending()
				if ln.HandOver(c, tail, state) {
					s.handedOver.Add(1)
					return true
				}
				// nobody took it (the hold's grace ran out): drain as a
				// shutdown without a successor does
				draining = true
				_ = c.SetReadDeadline(time.Now().Add(s.cfg.DrainGrace))
				continue
			}
			f.DropPartial()
			return false
		case errors.Is(err, syscall.ECONNRESET):
			f.DropPartial()
			return false
		default: // io.EOF and the like: the last line without '\n' still counts
			if b := f.Final(); len(b) > 0 {
				if e := out.Emit(ctx, b); e != nil {
					s.log.Error().Err(e).Str("remote", remote).Int("count", len(b)).Msg("emit failed")
				}
			}
			return false
		}
	}
}

// newStreamFramer returns the framer of one TCP connection.
func (s *Server) newStreamFramer() StreamFramer {
	if s.cfg.NewFramer != nil {
		return s.cfg.NewFramer(s.c, s.onError)
	}
	f := NewFramer(s.parse, s.cfg.MaxLine, s.c, s.onError)
	f.SetCleanse(s.cfg.Cleanse)
	return f
}

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// wrap runs the TLS handshake of a new connection and wraps it for its
// transport; false: it failed (counted and logged), the connection is to be
// closed.
func (s *Server) wrap(t *tracker, tc *tcpConn) bool {
	c := tc.c
	if s.tlsConf != nil {
		tlc := tls.Server(c, s.tlsConf)
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
		err := tlc.Handshake()
		_ = c.SetDeadline(time.Time{})
		if err != nil {
			if tc.shed.Load() {
				return false
			}
			s.tlsErrors.Add(1)
			remote := c.RemoteAddr().String()
			s.bad.Warn().Err(registry.TLSHandshakeError(remote, err)).Str("remote", remote).Msg("TLS handshake failed: connection closed")
			return false
		}
		c = tlc
	}
	if s.cfg.Transport != nil {
		c = s.cfg.Transport(c)
	}
	t.mu.Lock()
	tc.c = c
	stopping := t.stopping
	t.mu.Unlock()
	if stopping {
		// the shutdown set its deadline on the raw connection
		_ = c.SetReadDeadline(time.Now())
	}
	return true
}

// ServeUDP reads datagrams until ctx ends. Each datagram is one or more
// lines; its last line needs no '\n'. At the end it reads what the kernel
// queued for DrainGrace more, unless a successor shares the socket (netx)
// or a netx hold is active: then it stops at once and leaves the queued
// datagrams to the successor.
func (s *Server) ServeUDP(ctx context.Context, out registry.Emitter) error {
	pc, err := netx.ListenPacket(ctx, "udp", s.cfg.Listen, netx.Config{Owner: s.owner})
	if err != nil {
		close(s.ready)
		return fmt.Errorf("listen udp %s: %w", s.cfg.Listen, err)
	}
	conn := pc.UDPConn
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
			if pc.CanHandOver() {
				// a successor reads what the kernel holds: stop now
				dl.drain(time.Now())
				s.log.Info().Msg("stopped reading: the next instance reads on")
				return
			}
			// read what the kernel already queued for a moment more
			dl.drain(time.Now().Add(s.cfg.DrainGrace))
		case <-done:
		}
	}()
	defer close(done)
	defer pc.Close() // the handle: the socket stays if a successor shares it
	emitCtx := context.WithoutCancel(ctx)
	if s.cfg.ReadBatch > 0 {
		return s.readBatches(ctx, emitCtx, conn, dl, out)
	}
	f := NewFramer(s.parse, s.cfg.MaxLine, s.c, s.onError)
	f.SetCleanse(s.cfg.Cleanse)
	f.SetChunkSizes(256<<10, 256<<10)
	peers := newUDPPeers(emitCtx) // one batch per datagram: one sender each
	for {
		buf := f.Space(65536)
		n, src, err := conn.ReadFromUDPAddrPort(buf[:65536])
		if n > 0 {
			if b := f.Datagram(n); len(b) > 0 {
				b[0].MarkPacketStart()
				if e := out.Emit(peers.ctx(src.Addr()), b); e != nil {
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
			s.readFailed(err)
		}
	}
}

// readFailed counts a failed UDP read, logs it (sampled) and pauses a
// little, so that an error that repeats does not spin.
func (s *Server) readFailed(err error) {
	s.readErrors.Add(1)
	s.bad.Warn().Err(err).Msg("udp read failed: retrying")
	time.Sleep(10 * time.Millisecond)
}

// readBatches is ServeUDP's loop with a BatchReader.
//
// Under load (a read that filled every slot) a goroutine reads while this
// one emits, so the socket is drained while the previous batch is routed; at
// most emitQueue batches (and ReadAheadMetrics metrics) wait between them.
// At lighter rates the reader gathers the metrics of consecutive reads (into
// one batch: a copy, of a few reads) and emits them itself, at most gatherDelay after the first and once gatherMax are
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
				g.add(b, now)
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
				s.readFailed(err)
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

// gathered is the metrics of consecutive reads, to be emitted as one batch.
type gathered struct {
	parts []metric.Batch
	n     int // metrics in parts
	since time.Time
}

func (g *gathered) len() int { return g.n }

// add appends the batch of a read made at now.
func (g *gathered) add(b metric.Batch, now time.Time) {
	if g.n == 0 {
		g.since = now
	}
	g.parts = append(g.parts, b)
	g.n += len(b)
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

// take returns what is gathered, as one batch, and forgets it.
func (g *gathered) take() metric.Batch {
	if g.n == 0 {
		return nil
	}
	b := g.parts[0]
	if len(g.parts) > 1 {
		b = make(metric.Batch, 0, g.n)
		for _, p := range g.parts {
			b = append(b, p...)
		}
	}
	clear(g.parts)
	g.parts, g.n = g.parts[:0], 0
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
