package netx

import (
	"io"
	"net"
	"sync"
)

// Handoff is the net.Listener of a server (net/http, typically) that serves
// connections another accept loop hands it after looking at their first
// bytes: the fast path of inputs.http_json, the line/HTTP sniffing of the
// agent's api_addr.
type Handoff struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewHandoff returns a listener reporting addr as its address.
func NewHandoff(addr net.Addr) *Handoff {
	return &Handoff{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// Push hands c to the server, waiting until it accepts it; false if the
// listener was closed first (c is then the caller's to close).
func (l *Handoff) Push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// Accept returns the next connection pushed, or net.ErrClosed after Close.
func (l *Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close ends Accept and Push; it may be called more than once.
func (l *Handoff) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr returns the address given to NewHandoff.
func (l *Handoff) Addr() net.Addr { return l.addr }

// PrefixConn is a connection whose first bytes come from R, a reader that
// already read them from Conn (a bufio.Reader that peeked at them).
type PrefixConn struct {
	net.Conn
	R io.Reader
}

// Read reads through R.
func (c *PrefixConn) Read(b []byte) (int, error) { return c.R.Read(b) }

// HandedConn is a client connection that a stopping server handed over to
// its successor (Listener.HandOver), which gets it from Accept. Read returns
// first the bytes the previous server had read but not yet processed (an
// incomplete last line), then what Conn reads. Unlike PrefixConn its prefix
// is bytes, not a reader, so that a connection handed over again carries
// what is left of it instead of wrapping one more layer.
type HandedConn struct {
	net.Conn
	prefix []byte
	// State is what the previous server left for the next one (nil:
	// nothing), e.g. "inside a line already counted as too long".
	State any
}

// Read reads what is left of the prefix, then from Conn.
func (c *HandedConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
