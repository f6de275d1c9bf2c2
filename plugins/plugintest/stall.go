package plugintest

import (
	"net"
	"testing"
	"time"
)

// StallServer accepts TCP connections on 127.0.0.1 with a tiny receive
// buffer (4 KiB) and reads nothing itself: the test takes each connection
// (Accept) and reads it when it wants, so that a writer can be blocked
// mid-batch. Its connections are closed when the test ends.
type StallServer struct {
	Addr  string
	conns chan net.Conn
}

// NewStallServer starts a StallServer on a free port.
func NewStallServer(t testing.TB) *StallServer {
	t.Helper()
	ln := ListenRcvBuf(t, 4096)
	s := &StallServer{Addr: ln.Addr().String(), conns: make(chan net.Conn, 8)}
	go func() {
		defer close(s.conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

// Accept returns the next connection, failing the test if none comes
// within 10 s.
func (s *StallServer) Accept(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return nil
	}
}

// AcceptFast accepts a connection that is to be read at full speed: with the
// tiny inherited buffer the peer would wait on zero-window probes.
func (s *StallServer) AcceptFast(t testing.TB) net.Conn {
	t.Helper()
	c := s.Accept(t)
	if err := c.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	return c
}
