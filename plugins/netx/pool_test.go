package netx

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const wait = 5 * time.Second

// freeAddr returns a loopback address free a moment ago on network.
func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func listen(t *testing.T, addr, owner string) *Listener {
	t.Helper()
	l, err := ListenContext(t.Context(), "tcp", addr, Config{Log: zerolog.Nop(), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return c
}

// pooled reports whether the pool has a socket for network and addr.
func pooled(network, addr string) bool {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return pool.sockets[key{network, addr}] != nil
}

// waitFor polls cond until it holds or the test's wait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func refused(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// accept accepts on l within the test's wait.
func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("accept: %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		_ = r.c.SetDeadline(time.Now().Add(wait))
		return r.c
	case <-time.After(wait):
		t.Fatal("accept blocked")
		return nil
	}
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// shortGrace sets HoldGrace for one test.
func shortGrace(t *testing.T, d time.Duration) {
	old := HoldGrace
	HoldGrace = d
	t.Cleanup(func() { HoldGrace = old })
}

// TestListenSharesAndCounts: two Listens of one owner on one address share
// the socket, each serving connections; the socket stays while a handle is
// open (reference count) and closes with the last one.
func TestListenSharesAndCounts(t *testing.T) {
	addr := freeAddr(t, "tcp")
	l1, l2, l3 := listen(t, addr, "in a"), listen(t, addr, "in a"), listen(t, addr, "in a")
	if l1.Addr().String() != addr || l2.Addr().String() != addr {
		t.Fatalf("addresses %s %s, want %s", l1.Addr(), l2.Addr(), addr)
	}
	for _, l := range []*Listener{l1, l2, l3} {
		c := dial(t, addr)
		s := accept(t, l) // only l accepts: it gets the connection
		write(t, c, "x")
		if got := readN(t, s, 1); got != "x" {
			t.Fatalf("read %q", got)
		}
	}
	l1.Close()
	l3.Close()
	c := dial(t, addr)
	write(t, c, "y")
	if got := readN(t, accept(t, l2), 1); got != "y" {
		t.Fatalf("read %q", got)
	}
	if !pooled("tcp", addr) {
		t.Fatal("socket gone with a handle open")
	}
	l2.Close()
	if pooled("tcp", addr) || !refused(addr) {
		t.Fatal("socket still open after its last handle closed")
	}
	if _, err := l2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
}

// TestListenOwners: Listens of different owners, or without an owner, do
// not share an open socket: the second fails as a second bind does. Port 0
// binds a fresh socket every time and is not pooled.
func TestListenOwners(t *testing.T) {
	addr := freeAddr(t, "tcp")
	listen(t, addr, "in a")
	for _, owner := range []string{"in b", ""} {
		if l, err := ListenContext(t.Context(), "tcp", addr, Config{Owner: owner}); !errors.Is(err, syscall.EADDRINUSE) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("owner %q: err = %v, want address in use", owner, err)
		}
	}
	anon := listen(t, freeAddr(t, "tcp"), "")
	if _, err := ListenContext(t.Context(), "tcp", anon.Addr().String(), Config{}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("two listens without owner: %v", err)
	}
	z1, z2 := listen(t, "127.0.0.1:0", "in a"), listen(t, "127.0.0.1:0", "in a")
	if z1.Addr().String() == z2.Addr().String() || z1.h != nil || z1.CanHandOver() {
		t.Fatalf("port 0 shared or pooled: %s %s", z1.Addr(), z2.Addr())
	}
}

// TestHandOverWakesBlockedAccept: a connection handed over by a stopping
// handle reaches another handle's Accept blocked in the kernel at once,
// with the bytes read before it first and its state.
func TestHandOverWakesBlockedAccept(t *testing.T) {
	addr := freeAddr(t, "tcp")
	old, next := listen(t, addr, "in"), listen(t, addr, "in")
	c := dial(t, addr)
	s := accept(t, old)
	write(t, c, "abc")
	if got := readN(t, s, 3); got != "abc" {
		t.Fatalf("read %q", got)
	}
	got := make(chan net.Conn, 1)
	go func() {
		hc, err := next.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- hc
	}()
	waitFor(t, "an Accept in the kernel", func() bool {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		return next.h.waiters == 1
	})
	if !old.CanHandOver() {
		t.Fatal("CanHandOver false with a successor open")
	}
	_ = s.SetReadDeadline(aLongTimeAgo) // cleared by HandOver
	old.Close()
	if !old.HandOver(s, []byte("bc"), "st") {
		t.Fatal("HandOver refused")
	}
	var hc net.Conn
	select {
	case hc = <-got:
	case <-time.After(wait):
		t.Fatal("the blocked Accept was not woken")
	}
	defer hc.Close()
	h, ok := hc.(*HandedConn)
	if !ok || h.State != "st" {
		t.Fatalf("accepted %T %+v", hc, hc)
	}
	write(t, c, "def")
	if got := readN(t, hc, 5); got != "bcdef" {
		t.Fatalf("read %q, want the pending bytes then the rest", got)
	}
	// handed over again: not nested, what was not read comes first
	write(t, c, "g")
	if !next.HandOver(hc, []byte("x"), nil) {
		// no successor, no hold: refused, still ours
		if next.CanHandOver() {
			t.Fatal("CanHandOver true alone")
		}
	} else {
		t.Fatal("HandOver accepted without successor")
	}
	third := listen(t, addr, "in")
	if !next.HandOver(hc, []byte("x"), nil) {
		t.Fatal("HandOver refused with a successor")
	}
	h3 := accept(t, third)
	if inner := h3.(*HandedConn).Conn; inner != h.Conn {
		t.Fatalf("handed over again: %T wraps %T", h3, inner)
	}
	if got := readN(t, h3, 2); got != "xg" {
		t.Fatalf("read %q", got)
	}
	// a new connection still reaches the successor (deadline re-armed)
	c2 := dial(t, addr)
	write(t, c2, "n")
	if got := readN(t, accept(t, third), 1); got != "n" {
		t.Fatalf("read %q", got)
	}
}

// TestAcceptDuringCloseGoesToSuccessor: a connection that a handle's
// accept(2) returns while the handle is closing is not dropped: the next
// handle's Accept gets it.
func TestAcceptDuringCloseGoesToSuccessor(t *testing.T) {
	addr := freeAddr(t, "tcp")
	old, next := listen(t, addr, "in"), listen(t, addr, "in")
	var once sync.Once
	old.h.afterAccept = func() { once.Do(func() { old.Close() }) }
	errc := make(chan error, 1)
	go func() {
		_, err := old.Accept()
		errc <- err
	}()
	c := dial(t, addr)
	write(t, c, "z")
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("old Accept = %v, want closed", err)
		}
	case <-time.After(wait):
		t.Fatal("old Accept did not return")
	}
	if got := readN(t, accept(t, next), 1); got != "z" {
		t.Fatalf("read %q", got)
	}
}

// TestHoldKeepsSocket: during a hold, a socket whose last handle closed
// stays open (new connections wait in the kernel, connections handed over
// in its queue) and the next Listen, of any owner, takes it over with both;
// after Release and its grace, a socket nobody took is closed with the
// connections queued on it.
func TestHoldKeepsSocket(t *testing.T) {
	shortGrace(t, 20*time.Millisecond)
	addr := freeAddr(t, "tcp")
	h := Hold()
	old := listen(t, addr, "in old")
	c1 := dial(t, addr)
	s1 := accept(t, old)
	write(t, c1, "pending")
	if got := readN(t, s1, 7); got != "pending" {
		t.Fatal(got)
	}
	if !old.CanHandOver() {
		t.Fatal("CanHandOver false during a hold")
	}
	old.Close()
	if !old.HandOver(s1, []byte("ing"), nil) {
		t.Fatal("HandOver refused during a hold")
	}
	c2 := dial(t, addr) // nobody listens: it waits in the kernel's queue
	write(t, c2, "new")
	next := listen(t, addr, "in renamed")
	h.Release()
	if got := readN(t, accept(t, next), 3); got != "ing" {
		t.Fatalf("first Accept read %q, want the handed-over connection", got)
	}
	if got := readN(t, accept(t, next), 3); got != "new" {
		t.Fatalf("second Accept read %q", got)
	}
	next.Close()
	if !refused(addr) {
		t.Fatal("socket open after its last handle closed, no hold")
	}

	// nobody takes it: closed after the grace, with its queue
	h = Hold()
	old = listen(t, addr, "in")
	c3 := dial(t, addr)
	s3 := accept(t, old)
	old.Close()
	if !old.HandOver(s3, nil, nil) {
		t.Fatal("HandOver refused during a hold")
	}
	h.Release()
	waitFor(t, "the grace to close the socket", func() bool { return !pooled("tcp", addr) })
	// the pool forgets the socket before the close of its descriptor
	// returns: wait for the refusal rather than expect it at once
	waitFor(t, "the socket to refuse connections after the grace", func() bool { return refused(addr) })
	if _, err := c3.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("queued connection: read %v, want closed", err)
	}
	if old.HandOver(s3, nil, nil) {
		t.Fatal("HandOver accepted on a closed socket")
	}
}

// TestHoldsNest: the grace starts when the last hold is released.
func TestHoldsNest(t *testing.T) {
	shortGrace(t, 10*time.Millisecond)
	addr := freeAddr(t, "tcp")
	h1, h2 := Hold(), Hold()
	listen(t, addr, "in").Close()
	h1.Release()
	h1.Release() // twice: once
	pool.mu.Lock()
	holds := pool.holds
	pool.mu.Unlock()
	if holds != 1 || !pooled("tcp", addr) {
		t.Fatalf("holds %d, pooled %v", holds, pooled("tcp", addr))
	}
	h2.Release()
	waitFor(t, "the socket to close", func() bool { return !pooled("tcp", addr) })
}

func listenUDP(t *testing.T, addr, owner string) *PacketConn {
	t.Helper()
	p, err := ListenPacket(t.Context(), "udp", addr, Config{Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func readUDP(t *testing.T, p *PacketConn) string {
	t.Helper()
	_ = p.SetReadDeadline(time.Now().Add(wait))
	b := make([]byte, 100)
	n, _, err := p.ReadFromUDP(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// TestPacketShared: UDP handles of one owner share a socket, each with its
// own deadlines; the datagrams a closed handle did not read are read by the
// other, then by the next ListenPacket during a hold; the socket closes
// with the last handle.
func TestPacketShared(t *testing.T) {
	shortGrace(t, 20*time.Millisecond)
	addr := freeAddr(t, "udp")
	p1 := listenUDP(t, addr, "in")
	if p1.CanHandOver() {
		t.Fatal("CanHandOver true alone")
	}
	p2 := listenUDP(t, addr, "in")
	if _, err := ListenPacket(t.Context(), "udp", addr, Config{Owner: "other"}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("other owner: %v", err)
	}
	if err := p1.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	snd, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	for _, d := range []string{"a", "b", "c"} {
		write(t, snd, d)
	}
	_ = p1.SetReadDeadline(aLongTimeAgo) // p1 stops; p2 is not affected
	if _, _, err := p1.ReadFromUDP(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("p1 read: %v", err)
	}
	if !p1.CanHandOver() {
		t.Fatal("CanHandOver false with another handle")
	}
	p1.Close()
	if got := readUDP(t, p2); got != "a" {
		t.Fatalf("read %q", got)
	}
	h := Hold()
	p2.Close()
	write(t, snd, "d")
	p3 := listenUDP(t, addr, "in renamed")
	h.Release()
	for _, want := range []string{"b", "c", "d"} {
		if got := readUDP(t, p3); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
	}
	p3.Close()
	if pooled("udp", addr) {
		t.Fatal("socket kept after its last handle closed")
	}
	listenUDP(t, addr, "other").Close() // the address is free again
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestConnCount: a connection is busy while new or active, not while idle
// (HTTP/1 keep-alive, HTTP/2 without streams); wait ends when none is busy.
func TestConnCount(t *testing.T) {
	var cc ConnCount
	a, b := &net.TCPConn{}, &net.UDPConn{} // identities only
	steps := []struct {
		c    net.Conn
		s    http.ConnState
		busy int
	}{
		{a, http.StateNew, 1}, {b, http.StateNew, 2}, {a, http.StateActive, 2},
		{a, http.StateIdle, 1}, {b, http.StateActive, 1}, {a, http.StateActive, 2},
		{b, http.StateClosed, 1}, {a, http.StateIdle, 0}, {a, http.StateClosed, 0},
	}
	for i, st := range steps {
		cc.State(st.c, st.s)
		if got := cc.Busy(); got != st.busy {
			t.Fatalf("step %d (%v): busy %d, want %d", i, st.s, got, st.busy)
		}
	}
	cc.State(a, http.StateNew)
	done := make(chan bool, 1)
	go func() { done <- cc.wait(t.Context()) }()
	cc.State(a, http.StateHijacked)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("wait failed")
		}
	case <-time.After(wait):
		t.Fatal("wait did not end when the last busy connection closed")
	}
}
