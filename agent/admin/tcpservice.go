package admin

import (
	"fmt"
	"net"
	"sync"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/netx"
)

// tcpService is a small line-protocol server (management_addr,
// runstats_addr): an accept loop that never gives up on a passing error
// (netx), a goroutine per connection (at most maxConns; more are closed at
// once), and a close that ends them all.
type tcpService struct {
	ln    net.Listener
	wg    sync.WaitGroup
	conns connSet
}

// connSet is the connections a server is serving, all closed at once when
// the server closes.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool // closeAll ran: add refuses every connection from now on
}

// add adds c, unless closeAll ran or the set holds limit connections
// already (limit 0: no bound); it reports whether it did.
func (s *connSet) add(c net.Conn, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || limit > 0 && len(s.conns) >= limit {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// remove removes c and reports whether it was in the set.
func (s *connSet) remove(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	return ok
}

// closeAll closes every connection of the set, and each one add is given
// from now on is refused.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// startTCPService listens on addr; handle serves one connection, which is
// closed when it returns.
func startTCPService(addr, what string, maxConns int, handle func(net.Conn), log zerolog.Logger) (*tcpService, error) {
	ln, err := netx.Listen(addr, netx.Config{Log: log.With().Str("service", what).Logger()})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	s := &tcpService{ln: ln}
	log.Info().Str("addr", ln.Addr().String()).Str("service", what).Msg("listening")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed: netx retries everything else
			}
			if !s.conns.add(c, maxConns) {
				c.Close()
				continue
			}
			s.wg.Add(1) // the accept loop holds a count: never an Add at zero while close waits
			go func() {
				defer s.wg.Done()
				handle(c)
				c.Close()
				s.conns.remove(c)
			}()
		}
	}()
	return s, nil
}

func (s *tcpService) close() {
	s.ln.Close()
	s.conns.closeAll()
	s.wg.Wait()
}
