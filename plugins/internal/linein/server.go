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

	"github.com/rs/zerolog"

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
	}
	s.addr.Store(conn.LocalAddr())
	close(s.ready)
	s.log.Info().Str("addr", conn.LocalAddr().String()).Int("rcvbuf", ReceiveBuffer(conn)).Msg("listening (udp)")
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// read what the kernel already queued for a moment more
			_ = conn.SetReadDeadline(time.Now().Add(s.cfg.DrainGrace))
		case <-done:
		}
	}()
	defer close(done)
	defer conn.Close()
	emitCtx := context.WithoutCancel(ctx)
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
