package netx

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// ConnCount follows the connections of an http.Server (set the server's
// ConnState to State) and counts those that are busy: new (no request read
// yet) or active (serving a request, or HTTP/2 streams). DrainHTTP waits
// until none is.
type ConnCount struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
	busy  int
	idle  chan struct{} // closed when busy drops to 0; nil while busy == 0
}

// State is an http.Server ConnState hook.
func (c *ConnCount) State(conn net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state = map[net.Conn]http.ConnState{}
	}
	was, known := c.state[conn]
	wasBusy := known && was != http.StateIdle
	isBusy := s == http.StateNew || s == http.StateActive
	if s == http.StateClosed || s == http.StateHijacked {
		delete(c.state, conn)
	} else {
		c.state[conn] = s
	}
	switch {
	case isBusy && !wasBusy:
		if c.busy == 0 {
			c.idle = make(chan struct{})
		}
		c.busy++
	case wasBusy && !isBusy:
		c.busy--
		if c.busy == 0 {
			close(c.idle)
			c.idle = nil
		}
	}
}

// Busy returns the connections new or active now.
func (c *ConnCount) Busy() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy
}

// wait waits until no connection is busy; false if ctx ended first.
func (c *ConnCount) wait(ctx context.Context) bool {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	if idle == nil {
		return true
	}
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		return false
	}
}

// DrainHTTP stops srv, whose listener ln has a successor (CanHandOver), so
// that no request is dropped. srv.Shutdown would drop some: net/http closes
// without an answer a connection whose request it finishes reading after
// Shutdown began, even one accepted just before. So DrainHTTP disables
// keep-alives (idle connections are closed, as Shutdown does; every other
// one is closed after answering its current or first request), closes ln
// (the connections not yet accepted are the successor's; Serve returns an
// error wrapping net.ErrClosed), waits until served is closed (by the
// caller, when Serve has returned: every connection it accepted is then
// counted) and then until cc, srv's ConnState hook, counts no busy
// connection (HTTP/2 connections that went idle are left to Shutdown,
// whose GOAWAY is graceful). False if ctx ended first. The caller then
// calls srv.Shutdown as usual, which closes what is left.
func DrainHTTP(ctx context.Context, srv *http.Server, ln io.Closer, served <-chan struct{}, cc *ConnCount) bool {
	srv.SetKeepAlivesEnabled(false)
	_ = ln.Close()
	select {
	case <-served:
	case <-ctx.Done():
		return false
	}
	return cc.wait(ctx)
}
