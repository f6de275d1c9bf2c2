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
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool // close ran: connections accepted from now on are closed at once
}

// startTCPService listens on addr; handle serves one connection, which is
// closed when it returns.
func startTCPService(addr, what string, maxConns int, handle func(net.Conn), log zerolog.Logger) (*tcpService, error) {
	ln, err := netx.Listen(addr, netx.Config{Log: log.With().Str("service", what).Logger()})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, addr, err)
	}
	s := &tcpService{ln: ln, conns: map[net.Conn]struct{}{}}
	log.Info().Str("addr", ln.Addr().String()).Str("service", what).Msg("listening")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed: netx retries everything else
			}
			s.mu.Lock()
			if s.closed || len(s.conns) >= maxConns {
				s.mu.Unlock()
				c.Close()
				continue
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				handle(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *tcpService) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
