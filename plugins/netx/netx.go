// Package netx has the listener that every TCP server of the router (inputs
// and the agent's own endpoints) accepts through, and that third-party input
// plugins may use too.
//
// A listening socket that cannot accept for a moment (the process is out of
// file descriptors: EMFILE, ENFILE; the kernel is out of buffers: ENOBUFS,
// ENOMEM; a client reset its connection before it was accepted:
// ECONNABORTED) must not stop a server: one client holding every descriptor
// would otherwise stop the whole router. Listener.Accept retries such errors
// with a backoff (5 ms doubling to 1 s), counts each one, and logs at most
// once per interval with the exact count since the previous message. It
// returns an error only once the listener is closed.
package netx

import (
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
}

// Wrap returns ln with a retrying Accept. Close closes ln.
func Wrap(ln net.Listener, c Config) *Listener {
	if c.LogInterval <= 0 {
		c.LogInterval = DefaultLogInterval
	}
	return &Listener{Listener: ln, cfg: c, closed: make(chan struct{}), sleep: sleep}
}

// Listen listens on the TCP address addr and wraps the listener.
func Listen(addr string, c Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Wrap(ln, c), nil
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

// Close closes the listener and ends a backoff in progress.
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
