package plugintest

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// UDPSink is a UDP server on 127.0.0.1 that records every datagram it
// receives, whole, so tests can check how lines were packed.
type UDPSink struct {
	Addr string

	conn   *net.UDPConn
	mu     sync.Mutex
	grams  [][]byte
	notify chan struct{}
	done   chan struct{}
}

// NewUDPSink starts a sink on a free port; it stops when the test ends.
func NewUDPSink(t testing.TB) *UDPSink {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20) // best effort: loopback bursts must not be dropped
	s := &UDPSink{Addr: c.LocalAddr().String(), conn: c, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go s.serve()
	t.Cleanup(s.Stop)
	return s
}

func (s *UDPSink) serve() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if n > 0 {
			s.mu.Lock()
			s.grams = append(s.grams, append([]byte(nil), buf[:n]...))
			s.mu.Unlock()
			select {
			case s.notify <- struct{}{}:
			default:
			}
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Stop closes the socket and waits for the reader to end.
func (s *UDPSink) Stop() {
	s.conn.Close()
	<-s.done
}

// Datagrams returns a copy of the datagrams received so far, in order.
func (s *UDPSink) Datagrams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.grams))
	for i, g := range s.grams {
		out[i] = string(g)
	}
	return out
}

// Lines returns the '\n'-terminated lines of every datagram received so far,
// without their '\n' (a final unterminated fragment counts as a line).
func (s *UDPSink) Lines() []string {
	var out []string
	for _, g := range s.Datagrams() {
		g = strings.TrimSuffix(g, "\n")
		if g != "" {
			out = append(out, strings.Split(g, "\n")...)
		}
	}
	return out
}

// WaitLines waits until at least n lines arrived, or timeout.
func (s *UDPSink) WaitLines(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(s.Lines()) < n {
		select {
		case <-s.notify:
		case <-deadline.C:
			return len(s.Lines()) >= n
		}
	}
	return true
}
