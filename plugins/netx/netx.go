// Package netx has the listeners that every server of the router (inputs
// and the agent's own endpoints) listens through, and that third-party input
// plugins may use too.
//
// # Accept errors
//
// A listening socket that cannot accept for a moment (the process is out of
// file descriptors: EMFILE, ENFILE; the kernel is out of buffers: ENOBUFS,
// ENOMEM; a client reset its connection before it was accepted:
// ECONNABORTED) must not stop a server: one client holding every descriptor
// would otherwise stop the whole router. Listener.Accept retries such errors
// with a backoff (5 ms doubling to 1 s), counts each one, and logs at most
// once per interval with the exact count since the previous message. It
// returns an error only once the listener is closed.
//
// # Shared sockets and handover
//
// A reload that changes an input replaces its instance by a new one on the
// same address. Closing the old socket and binding again would lose what is
// in between: the connections in the accept queue are reset, the port
// refuses connections until the new bind, and open connections are cut with
// their lines in flight. So the new listener is bound first (it shares the
// socket) and the old one hands over what it has:
//
//   - Listen, ListenContext and ListenPacket keep a process-wide pool of
//     sockets keyed by network and address as written ("tcp",
//     "0.0.0.0:2003"), for addresses with a fixed port (":0" binds a fresh
//     socket every time) and for unix socket paths. A Listen on an address
//     the pool has returns a handle on that socket instead of binding, if
//     the open handles have the
//     same non-empty Config.Owner (inputs pass their plugin and id: an
//     instance and its successor share, while two inputs configured on one
//     address still fail with "address already in use", as before), or if
//     the socket has no open handle and is kept by a hold (below; then any
//     owner takes it). Each handle has its own duplicate of the socket's
//     descriptor, so its deadlines and its Close are its own; the socket
//     closes when its last handle closes, unless a hold keeps it.
//   - TCP: a server that stops while its successor exists asks
//     Listener.CanHandOver before closing its listener; if true it stops
//     reading each connection at a safe point (a read deadline in the past),
//     processes what it read completely, and gives the connection to
//     Listener.HandOver with the bytes it read but did not process (an
//     incomplete last line). The successor's Accept returns the connections
//     handed over before new ones, as *HandedConn, whose Read returns those
//     bytes first; an Accept blocked in the kernel is woken for them (a
//     deadline in the past on its own descriptor, cleared once it is out).
//     A connection that a closing handle's Accept still got from the kernel
//     goes to the successor too, never dropped.
//   - UDP: a reader that stops while PacketConn.CanHandOver is true just
//     stops reading (at once, without the drain it does when it is the last)
//     and closes its handle; the datagrams the kernel holds are read by the
//     successor.
//
// What a server's Run does, then: listen through ListenContext or
// ListenPacket with Config.Owner set (plugin and instance id); when its ctx
// ends, ask CanHandOver before closing anything; if true, close the
// listener and hand over (TCP: each connection at a safe point, with its
// unprocessed bytes, falling back to the usual drain if HandOver says no;
// UDP: stop reading at once); if false, stop exactly as before. An HTTP
// server uses DrainHTTP instead of going straight to Shutdown. Where the
// platform cannot duplicate a socket descriptor, nothing is pooled and
// every Listen binds, as before.
//
// Why not SO_REUSEPORT: with it every socket has its own accept queue (and
// UDP receive queue), the kernel spreads new connections over them, and
// closing one socket resets the connections queued on it: the loss this
// avoids. One socket shared inside the process keeps one queue.
//
// # Holds: the agent's side
//
// The successor's Run calls Listen asynchronously, maybe only after the old
// instance has stopped. A hold bridges that gap: while any hold is active, a
// pooled socket whose last handle closes stays open (connections handed
// over to it wait in its queue, new ones in the kernel's), and the next
// Listen on its address takes it over with them. To replace input X by a
// new instance of the same id (at a reload, or to restart it):
//
//	h := netx.Hold()
//	// start the new instance: its Run calls Listen when it gets there
//	// cancel the old instance's ctx and wait for its Run to return
//	h.Release()
//
// Release starts a grace (HoldGrace, a few seconds) after which the sockets
// nobody took are closed, with the connections queued on them (what their
// clients had in flight is then lost, as at a stop). So a hold is for an
// input that has a successor: one that a reload only removes must be
// stopped without a hold, and then drains as before. A hold is global: it
// keeps any pooled socket whose last handle closes while it is active.
// Without a hold and without another handle, stopping is exactly what it
// was: CanHandOver is false, the server drains its connections and closes
// them, and the socket closes with its handle.
package netx

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Backoff bounds of a failing Accept.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// DefaultLogInterval is how often a failing Accept logs, at most.
const DefaultLogInterval = 10 * time.Second

// Config configures a Listener.
type Config struct {
	// Errors counts failed accepts (exposed as accept_errors_total); nil = not counted.
	Errors *atomic.Uint64
	// Log receives a warning when accepts start failing (at most once per
	// LogInterval, with the count since the previous message) and a note
	// with the last count once an accept succeeds again.
	Log zerolog.Logger
	// LogInterval defaults to DefaultLogInterval.
	LogInterval time.Duration
	// Owner says who listens (inputs: plugin and instance id). Listens with
	// the same non-empty Owner share a socket; "" never shares an open one.
	Owner string
}

// Listener wraps a net.Listener: Accept never returns a temporary error.
type Listener struct {
	net.Listener
	cfg    Config
	closed chan struct{}
	once   sync.Once

	failing atomic.Bool // errors since the last successful accept
	mu      sync.Mutex
	pending uint64    // failures not yet logged
	lastLog time.Time // of the last warning
	sleep   func(time.Duration, <-chan struct{}) bool

	h *tcpHandle // nil: not pooled (Wrap, port 0)
}

// Wrap returns ln with a retrying Accept. Close closes ln.
func Wrap(ln net.Listener, c Config) *Listener {
	if c.LogInterval <= 0 {
		c.LogInterval = DefaultLogInterval
	}
	return &Listener{Listener: ln, cfg: c, closed: make(chan struct{}), sleep: sleep}
}

// Listen listens on the TCP address addr and wraps the listener: it is
// ListenContext(context.Background(), "tcp", addr, c).
func Listen(addr string, c Config) (*Listener, error) {
	return ListenContext(context.Background(), "tcp", addr, c)
}

// ListenContext listens on addr ("tcp", "tcp4" or "tcp6"), sharing the
// socket this process already has there when Owner allows it (see the
// package documentation), and wraps the listener. Close closes this handle;
// the socket closes with its last handle, unless a hold keeps it.
//
// Network "unix" listens on the socket file addr, pooled and handed over in
// the same way. A socket file left there by a process that ended without
// removing it (nothing accepts on it) is removed first; a live one, or a
// file that is not a socket, makes the Listen fail. The file is created
// with the process's umask (0777 &^ umask: connecting needs write
// permission on it, so the directory's permissions are the usual way to
// restrict who may) and removed when the socket closes, with its last
// handle.
func ListenContext(ctx context.Context, network, addr string, c Config) (*Listener, error) {
	if network != "unix" && !fixedPort(addr) {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(ln, c), nil
	}
	h, raw, err := listenShared(ctx, network, addr, c.Owner)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return Wrap(raw, c), nil
	}
	l := Wrap(h, c)
	l.h = h
	return l, nil
}

// CanHandOver reports whether connections handed over now would be served:
// another handle on the socket is open, or a hold is active or keeps it. A
// stopping server asks before Close; false for a listener that is not
// pooled (Wrap, port 0).
func (l *Listener) CanHandOver() bool {
	return l.h != nil && l.h.canHandOver()
}

// HandOver gives c, whose server is stopping, to the socket's next Accept
// by another handle (or by the next Listen, during a hold), with pending,
// the bytes the server read from c but did not process, to be read first,
// and state for the next server (HandedConn.State). It clears c's deadlines.
// It may be called after Close. False: nobody would take c (no other
// handle, no hold), which is still the caller's; nothing changed.
func (l *Listener) HandOver(c net.Conn, pending []byte, state any) bool {
	return l.h != nil && l.h.handOver(c, pending, state)
}

// Accept waits for the next connection. Errors other than the listener's
// closing are counted, logged (see Config) and retried after a backoff; after
// Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	delay := minDelay
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if l.failing.Load() {
				l.recovered()
			}
			return c, nil
		}
		if l.isClosed() || errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		l.failed(err)
		if !l.sleep(delay, l.closed) {
			return nil, net.ErrClosed
		}
		delay = min(2*delay, maxDelay)
	}
}

// Close closes the listener (of a pooled socket: this handle, see
// ListenContext) and ends a backoff in progress.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

func (l *Listener) failed(err error) {
	if l.cfg.Errors != nil {
		l.cfg.Errors.Add(1)
	}
	l.failing.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending++
	now := time.Now()
	if l.lastLog.IsZero() || now.Sub(l.lastLog) >= l.cfg.LogInterval {
		l.cfg.Log.Warn().Err(err).Str("addr", l.Addr().String()).Uint64("count", l.pending).
			Msg("accept failed: retrying (count: failures since the last message)")
		l.pending = 0
		l.lastLog = now
	}
}

func (l *Listener) recovered() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing.Load() {
		return
	}
	l.failing.Store(false)
	l.cfg.Log.Info().Str("addr", l.Addr().String()).Uint64("count", l.pending).
		Msg("accepting again (count: failures since the last message)")
	l.pending = 0
	l.lastLog = time.Time{}
}

// sleep waits d or until stop is closed; false if stopped.
func sleep(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
