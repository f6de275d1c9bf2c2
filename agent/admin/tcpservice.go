package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
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

// errLineTooLong is what cmdReader.next returns for a line longer than its
// bound.
var errLineTooLong = errors.New("line too long")

// cmdReader splits what a client of a line service sends into commands, as
// the daemons these services stand in for answer them: proxy.js answers
// each read ('data' event) of its management port, go-statsd-proxy and
// Polymur's runstats each connection's first read, so a client that writes
// "health" or "stats" without a newline is answered at once, before it
// closes its side. The rule:
//
//   - a line ended by '\n' (or "\r\n") is a command;
//   - the bytes a read ends with, without a '\n', are a command as well
//     when complete says so: when they cannot still grow into another
//     command (a word cut short by the read, as "hea" of "health", waits
//     for the rest, as proxy.js does not);
//   - a command answered before its newline is not answered again when the
//     newline comes; a line that goes on after it ("health", then " down")
//     is answered again as the whole line;
//   - at the end of the connection (or a read error, or a deadline) what is
//     left is a command.
//
// Commands come back trimmed of blanks, never empty. The caller sets the
// read deadlines and writes the answers before it asks for the next one.
type cmdReader struct {
	c        net.Conn
	max      int                    // the longest line taken
	complete func(line string) bool // whether an unended line is a whole command
	buf      []byte                 // 2*max: what was read
	pending  []byte                 // the part of buf not yet a command
	answered string                 // the unended line already answered ("": none)
	check    bool                   // a read came: its unended rest is still to be looked at
	err      error                  // the read error that ends the connection
}

func newCmdReader(c net.Conn, max int, complete func(string) bool) *cmdReader {
	return &cmdReader{c: c, max: max, complete: complete, buf: make([]byte, 2*max)}
}

// next returns the next command, or the error that ended the connection
// (io.EOF when the client closed it), or errLineTooLong.
func (r *cmdReader) next() (string, error) {
	for {
		if i := bytes.IndexByte(r.pending, '\n'); i >= 0 {
			if i > r.max {
				return "", errLineTooLong
			}
			line := strings.TrimSpace(string(r.pending[:i]))
			r.pending = r.pending[i+1:]
			prev := r.answered
			r.answered = ""
			if line != "" && line != prev {
				return line, nil
			}
			continue
		}
		if len(r.pending) > r.max {
			return "", errLineTooLong
		}
		if r.err != nil {
			line := strings.TrimSpace(string(r.pending))
			r.pending = nil
			if line != "" && line != r.answered {
				r.answered = line
				return line, nil
			}
			return "", r.err
		}
		if r.check {
			r.check = false
			if line := strings.TrimSpace(string(r.pending)); line != "" && line != r.answered && r.complete(string(r.pending)) {
				r.answered = line
				return line, nil
			}
		}
		n := copy(r.buf, r.pending)
		m, err := r.c.Read(r.buf[n:])
		r.pending = r.buf[:n+m]
		r.check, r.err = m > 0, err
	}
}

// cutShort reports whether word is a proper prefix of one of words: a
// read may have cut it.
func cutShort(word string, words ...string) bool {
	for _, w := range words {
		if len(word) < len(w) && strings.HasPrefix(w, word) {
			return true
		}
	}
	return false
}

// endsBlank reports whether s ends with a space or a tab: a word may follow.
func endsBlank(s string) bool {
	return s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t')
}
