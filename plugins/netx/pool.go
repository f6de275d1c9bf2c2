package netx

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// HoldGrace is how long sockets that a hold kept open, and that no Listen
// took, stay open after the last hold is released (then they close, with
// the connections queued on them). Tests may shorten it before they start.
var HoldGrace = 5 * time.Second

// key identifies a pooled socket: the network and the address as given.
type key struct{ network, addr string }

// pool is the process's shared listening sockets. One mutex guards the
// pool, every socket and every handle: it is held for a few instructions
// per accept and per open or close.
var pool = struct {
	mu         sync.Mutex
	sockets    map[key]*socket
	holds      int         // active holds
	graceUntil time.Time   // sockets kept by a released hold close after this
	sweep      *time.Timer // armed while a grace runs
}{sockets: map[key]*socket{}}

// socket is one bound socket and its handles. The master descriptor is
// never read: each handle reads or accepts through its own duplicate, so
// that deadlines (used to wake a reader) and Close (which wakes a blocked
// Accept) are per handle, and the socket closes with its last descriptor.
type socket struct {
	key   key
	owner string
	tcp   streamListener // master (TCP, unix)
	udp   *net.UDPConn   // master (UDP)
	open  int            // handles not closed
	conns map[*tcpHandle]struct{}
	queue []net.Conn // TCP: connections handed over, for the next Accept
	held  bool       // its last handle closed during a hold
	dead  bool       // closed, out of the pool
}

// streamListener is a listening stream socket: *net.TCPListener or
// *net.UnixListener.
type streamListener interface {
	net.Listener
	SetDeadline(time.Time) error
	File() (*os.File, error)
}

// fixedPort reports whether addr names a port (so two Listens may mean the
// same socket); ":0" or no port binds a fresh socket every time.
func fixedPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err != nil || n != 0 // a service name is a fixed port too
}

// find returns the pooled socket a Listen by owner may share (pool.mu held).
func find(k key, owner string) *socket {
	s := pool.sockets[k]
	if s == nil || (s.open > 0 && (owner == "" || owner != s.owner)) {
		return nil
	}
	return s
}

// adopt puts the freshly bound s in the pool (pool.mu held); false: another
// Listen put one there meanwhile, and s must be closed.
func adopt(s *socket) bool {
	if pool.sockets[s.key] != nil {
		return false
	}
	pool.sockets[s.key] = s
	return true
}

// attach counts a new handle of s (pool.mu held).
func (s *socket) attach(owner string) {
	s.open++
	s.held = false
	s.owner = owner
}

// detach counts a closed handle of s and returns what must be closed when
// it was the last one and no hold keeps s (pool.mu held).
func (s *socket) detach() []closer {
	s.open--
	if s.open > 0 || s.dead {
		return nil
	}
	if pool.holds > 0 {
		s.held = true
		return nil
	}
	return s.kill()
}

type closer interface{ Close() error }

// kill takes s out of the pool and closes its master socket at once, so
// that the address (and a unix socket's file) is free as soon as the pool
// no longer has it: a Listen that finds no socket in the pool can bind.
// It returns the queued connections, to be closed by the caller (pool.mu
// held).
func (s *socket) kill() []closer {
	s.dead = true
	if pool.sockets[s.key] == s {
		delete(pool.sockets, s.key)
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	if s.udp != nil {
		_ = s.udp.Close()
	}
	var cs []closer
	for _, c := range s.queue {
		cs = append(cs, c)
	}
	clear(s.queue)
	s.queue = nil
	return cs
}

func closeAll(cs []closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// successor reports whether something other than the caller's handle (self:
// 1 while it is open, else 0) will read s: another open handle, an active
// hold, or the hold that kept s (pool.mu held).
func (s *socket) successor(self int) bool {
	return !s.dead && (s.open > self || s.held || pool.holds > 0)
}

// Hold keeps the sockets whose last handle closes from now on open until
// Release, and for HoldGrace after it, so that a Listen on the same address
// takes them over with the connections handed to them: see the package
// documentation for the agent's use of it.
func Hold() *Holding {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	pool.holds++
	return &Holding{}
}

// Holding is an active hold.
type Holding struct{ once sync.Once }

// Release ends the hold (more calls do nothing). Once no hold is left, the
// sockets kept and not taken close after HoldGrace.
func (h *Holding) Release() {
	h.once.Do(func() {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		pool.holds--
		if pool.holds > 0 {
			return
		}
		if until := time.Now().Add(HoldGrace); until.After(pool.graceUntil) {
			pool.graceUntil = until
		}
		if pool.sweep == nil {
			pool.sweep = time.AfterFunc(time.Until(pool.graceUntil), sweep)
		}
	})
}

// sweep closes the kept sockets nobody took once the grace is over.
func sweep() {
	pool.mu.Lock()
	pool.sweep = nil
	if pool.holds > 0 {
		pool.mu.Unlock()
		return // the Release that ends it arms the next sweep
	}
	if d := time.Until(pool.graceUntil); d > 0 {
		pool.sweep = time.AfterFunc(d, sweep)
		pool.mu.Unlock()
		return
	}
	var cs []closer
	for _, s := range pool.sockets {
		if s.open == 0 {
			cs = append(cs, s.kill()...)
		}
	}
	pool.mu.Unlock()
	closeAll(cs)
}

// listenShared returns a handle on the pooled TCP or unix socket for addr,
// binding it if needed; nil and no error: the platform cannot duplicate the
// socket, and raw is a plain listener (not pooled).
func listenShared(ctx context.Context, network, addr, owner string) (h *tcpHandle, raw net.Listener, err error) {
	k := key{network, addr}
	pool.mu.Lock()
	if s := find(k, owner); s != nil {
		defer pool.mu.Unlock()
		h, err := s.newTCPHandle(owner)
		return h, nil, err
	}
	_, ours := pool.sockets[k] // a socket of another owner: in use, not stale
	pool.mu.Unlock()
	if network == "unix" && !ours {
		removeStale(ctx, addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			// a Listen of the same owner may have bound it meanwhile
			pool.mu.Lock()
			defer pool.mu.Unlock()
			if s := find(k, owner); s != nil {
				h, err := s.newTCPHandle(owner)
				return h, nil, err
			}
		}
		return nil, nil, err
	}
	tl, ok := ln.(streamListener)
	if !ok {
		return nil, ln, nil
	}
	s := &socket{key: k, tcp: tl, conns: map[*tcpHandle]struct{}{}}
	pool.mu.Lock()
	if !adopt(s) {
		pool.mu.Unlock()
		_ = tl.Close()
		return nil, nil, errInUse(network, tl.Addr())
	}
	h, err = s.newTCPHandle(owner)
	var cs []closer
	if err != nil {
		cs = s.kill()
	}
	pool.mu.Unlock()
	if err == nil {
		return h, nil, nil
	}
	// no duplicate descriptors here: bind as before, unshared
	closeAll(cs)
	ln, err = lc.Listen(ctx, network, addr)
	return nil, ln, err
}

// errInUse is the error of a bind that a Listen racing with this one won.
func errInUse(network string, addr net.Addr) error {
	return &net.OpError{Op: "listen", Net: network, Addr: addr, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
}

// tcpHandle is one Listen's view of a pooled TCP or unix socket.
type tcpHandle struct {
	s      *socket
	ln     streamListener // this handle's descriptor
	closed bool
	// Accepts in the kernel, and whether a wake-up (a deadline in the
	// past) is under way: until they have all left, no Accept enters, and
	// the last one out clears the deadline.
	waiters int
	kicking bool
	cond    sync.Cond
	// afterAccept, if set, runs after each accept(2) returns (tests).
	afterAccept func()
}

// newTCPHandle opens a handle on s (pool.mu held).
func (s *socket) newTCPHandle(owner string) (*tcpHandle, error) {
	f, err := s.tcp.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	tl, ok := ln.(streamListener)
	if !ok {
		_ = ln.Close()
		return nil, errors.New("duplicate of a stream listener is not one")
	}
	h := &tcpHandle{s: s, ln: tl}
	h.cond.L = &pool.mu
	s.conns[h] = struct{}{}
	s.attach(owner)
	return h, nil
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked call at once.
var aLongTimeAgo = time.Unix(1, 0)

// Accept returns a connection handed over to the socket, else the next one
// the kernel accepts. A connection accepted while this handle closes goes
// to the socket's queue (another handle's Accept), or is closed when the
// socket itself closed.
func (h *tcpHandle) Accept() (net.Conn, error) {
	s := h.s
	pool.mu.Lock()
	for {
		if h.closed {
			pool.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: s.key.network, Addr: s.tcp.Addr(), Err: net.ErrClosed}
		}
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			pool.mu.Unlock()
			return c, nil
		}
		if h.kicking {
			h.cond.Wait()
			continue
		}
		h.waiters++
		pool.mu.Unlock()
		c, err := h.ln.Accept()
		if h.afterAccept != nil {
			h.afterAccept()
		}
		pool.mu.Lock()
		h.waiters--
		if h.kicking && h.waiters == 0 {
			h.kicking = false
			if !h.closed {
				_ = h.ln.SetDeadline(time.Time{})
			}
			h.cond.Broadcast()
		}
		if err == nil {
			if !h.closed {
				pool.mu.Unlock()
				return c, nil
			}
			if s.dead {
				pool.mu.Unlock()
				_ = c.Close()
				pool.mu.Lock()
			} else {
				s.push(c)
			}
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // a wake-up: look at the queue again
		}
		if h.closed || errors.Is(err, net.ErrClosed) {
			continue // returns net.ErrClosed above
		}
		pool.mu.Unlock()
		return nil, err // temporary (EMFILE...): Listener retries
	}
}

// push queues c for the next Accept of an open handle and wakes the
// handles blocked in the kernel (pool.mu held).
func (s *socket) push(c net.Conn) {
	s.queue = append(s.queue, c)
	for h := range s.conns {
		if h.waiters > 0 && !h.kicking {
			h.kicking = true
			_ = h.ln.SetDeadline(aLongTimeAgo)
		}
	}
}

// Close closes the handle: its blocked Accepts return net.ErrClosed. The
// socket closes if it was the last handle and no hold keeps it.
func (h *tcpHandle) Close() error {
	pool.mu.Lock()
	if h.closed {
		pool.mu.Unlock()
		return nil
	}
	h.closed = true
	delete(h.s.conns, h)
	h.cond.Broadcast()
	cs := h.s.detach()
	pool.mu.Unlock()
	err := h.ln.Close()
	closeAll(cs)
	return err
}

// Addr returns the socket's address.
func (h *tcpHandle) Addr() net.Addr { return h.s.tcp.Addr() }

// canHandOver: see Listener.CanHandOver.
func (h *tcpHandle) canHandOver() bool {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return h.s.successor(h.self())
}

// self is 1 while h is open (it does not count as its own successor).
func (h *tcpHandle) self() int {
	if h.closed {
		return 0
	}
	return 1
}

// handOver: see Listener.HandOver.
func (h *tcpHandle) handOver(c net.Conn, pending []byte, state any) bool {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if !h.s.successor(h.self()) {
		return false
	}
	hc := &HandedConn{Conn: c, State: state}
	if len(pending) > 0 {
		hc.prefix = append([]byte(nil), pending...)
	}
	if prev, ok := c.(*HandedConn); ok {
		// not nested: what it had not yet read follows pending
		hc.Conn = prev.Conn
		hc.prefix = append(hc.prefix, prev.prefix...)
	}
	_ = hc.Conn.SetDeadline(time.Time{})
	h.s.push(hc)
	return true
}

// PacketConn is a handle on a UDP socket opened by ListenPacket: UDPConn
// is this handle's own descriptor (its deadlines are its own), and Close
// closes only the handle.
type PacketConn struct {
	*net.UDPConn
	s      *socket // nil: not pooled
	closed bool    // under pool.mu
	once   sync.Once
	err    error
}

// ListenPacket opens a UDP socket (network "udp", "udp4" or "udp6") on
// addr, or returns a handle on the one this process has on addr: the same
// sharing rules as ListenContext. Options set on the handle after it is
// open (SetReadBuffer, SO_RCVBUFFORCE through SyscallConn) apply to the
// shared socket. Of c only Owner is used.
func ListenPacket(ctx context.Context, network, addr string, c Config) (*PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	var lc net.ListenConfig
	if !fixedPort(addr) {
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &PacketConn{UDPConn: pc.(*net.UDPConn)}, nil
	}
	k := key{network, addr}
	pool.mu.Lock()
	if s := find(k, c.Owner); s != nil {
		defer pool.mu.Unlock()
		return s.newUDPHandle(c.Owner)
	}
	pool.mu.Unlock()
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			pool.mu.Lock()
			defer pool.mu.Unlock()
			if s := find(k, c.Owner); s != nil {
				return s.newUDPHandle(c.Owner)
			}
		}
		return nil, err
	}
	s := &socket{key: k, udp: pc.(*net.UDPConn)}
	pool.mu.Lock()
	if !adopt(s) {
		pool.mu.Unlock()
		_ = pc.Close()
		return nil, errInUse(network, pc.LocalAddr())
	}
	h, err := s.newUDPHandle(c.Owner)
	var cs []closer
	if err != nil {
		cs = s.kill()
	}
	pool.mu.Unlock()
	if err == nil {
		return h, nil
	}
	// no duplicate descriptors here: bind as before, unshared
	closeAll(cs)
	if pc, err = lc.ListenPacket(ctx, network, addr); err != nil {
		return nil, err
	}
	return &PacketConn{UDPConn: pc.(*net.UDPConn)}, nil
}

// newUDPHandle opens a handle on s (pool.mu held).
func (s *socket) newUDPHandle(owner string) (*PacketConn, error) {
	f, err := s.udp.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		_ = pc.Close()
		return nil, errors.New("duplicate of a udp socket is not one")
	}
	s.attach(owner)
	return &PacketConn{UDPConn: uc, s: s}, nil
}

// Close closes the handle's descriptor (a read in progress on it returns);
// the socket closes when its last handle closes, unless a hold keeps it.
// Datagrams the kernel holds stay for the other handles.
func (c *PacketConn) Close() error {
	c.once.Do(func() {
		var cs []closer
		if c.s != nil {
			pool.mu.Lock()
			c.closed = true
			cs = c.s.detach()
			pool.mu.Unlock()
		}
		c.err = c.UDPConn.Close()
		closeAll(cs)
	})
	return c.err
}

// CanHandOver reports whether another handle on the socket is open, or a
// hold is active: then a reader that stops leaves what the kernel holds
// to the other (it stops at once instead of draining, and closes only its
// handle). Called before Close; false for a socket that is not pooled.
func (c *PacketConn) CanHandOver() bool {
	if c.s == nil {
		return false
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	self := 1
	if c.closed {
		self = 0
	}
	return c.s.successor(self)
}
