package admin

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	stdlog "log"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

// Control endpoints: what changes the router's routing at run time exists
// only where the operator enabled it ([agent] api_addr, and the "health
// up|down" command of management_addr), and can require a token
// (api_token / api_token_file). stats_addr only reads.
//
// On api_addr, HTTP requests must also name this host (Host is an IP
// address, localhost, or one of api_allowed_hosts: a DNS-rebinding page
// names its own domain) and must not come from another site (Origin,
// Sec-Fetch-Site), so a browser on the operator's desk cannot be used to
// reroute metrics.

// control checks the credentials of control requests.
type control struct {
	digest   [sha256.Size]byte
	hasToken bool
	hosts    map[string]bool // api_allowed_hosts, lower case
	refused  *atomic.Uint64
	log      zerolog.Logger // sampled
}

// newControl reads the token (api_token, or the first line of
// api_token_file) and warns when api_addr accepts changes without one.
func newControl(cfg config.Agent, refused *atomic.Uint64, log zerolog.Logger) (*control, error) {
	c := &control{hosts: map[string]bool{}, refused: refused,
		log: log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})}
	for _, h := range cfg.APIAllowedHosts {
		c.hosts[strings.TrimSuffix(strings.ToLower(h), ".")] = true
	}
	token := cfg.APIToken
	if f := cfg.APITokenFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("api_token_file: %w", err)
		}
		token = strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
		if token == "" {
			return nil, fmt.Errorf("api_token_file %s: empty", f)
		}
		registry.WarnLaxFile(log, "api_token_file", f)
	}
	if token != "" {
		c.digest, c.hasToken = sha256.Sum256([]byte(token)), true
	}
	if cfg.APIAddr != "" && !c.hasToken {
		if host, _, err := net.SplitHostPort(cfg.APIAddr); err == nil && !loopbackHost(host) {
			log.Warn().Str("addr", cfg.APIAddr).Msg("api_addr is not on loopback and no api_token is set: anyone who can reach it can change the destinations")
		}
	}
	return c, nil
}

// loopbackHost reports whether a listen host is loopback only.
func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// tokenOK compares a presented token in constant time.
func (c *control) tokenOK(tok string) bool {
	if !c.hasToken {
		return true
	}
	d := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(d[:], c.digest[:]) == 1
}

// refuse counts and logs (sampled) a refused control request.
func (c *control) refuse(remote, why string) {
	c.refused.Add(1)
	c.log.Warn().Str("remote", remote).Str("reason", why).Msg("control request refused")
}

// checkHTTP returns 0 if r may use the API, else the status to answer and why.
func (c *control) checkHTTP(r *http.Request) (int, string) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" && !c.hosts[host] {
		return http.StatusForbidden, "Host " + r.Host + " is not this router's: use its address, or list the name in [agent] api_allowed_hosts"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return http.StatusForbidden, "cross-site request refused"
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return http.StatusForbidden, "cross-site request refused"
	}
	if c.hasToken {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !c.tokenOK(strings.TrimSpace(tok)) {
			return http.StatusUnauthorized, "a valid token is required (Authorization: Bearer TOKEN)"
		}
	}
	return 0, ""
}

// apiServer serves [agent] api_addr: Polymur's line protocol (one command
// per connection, after "auth TOKEN" when a token is set) and, on the same
// port, HTTP /api/destinations; a connection is one or the other by its
// first word.
type apiServer struct {
	ln    *netx.Listener
	srv   *http.Server
	hl    *netx.Handoff
	sem   chan struct{}
	wg    sync.WaitGroup
	conns connSet
}

// apiMaxConns bounds the connections api_addr serves at once.
const apiMaxConns = 64

func startAPI(addr string, d *destAPI, c *control, log zerolog.Logger) (*apiServer, error) {
	ln, err := netx.Listen(addr, netx.Config{Log: log.With().Str("service", "api_addr").Logger()})
	if err != nil {
		return nil, fmt.Errorf("api_addr %s: %w", addr, err)
	}
	s := &apiServer{ln: ln, hl: netx.NewHandoff(ln.Addr()), sem: make(chan struct{}, apiMaxConns)}
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) {
		if code, why := c.checkHTTP(r); code != 0 {
			c.refuse(r.RemoteAddr, why)
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="router"`)
			}
			http.Error(w, why, code)
			return
		}
		d.handleHTTP(w, r)
	}
	mux.HandleFunc("/api/destinations", h)
	mux.HandleFunc("/api/destinations/", h)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          stdlog.New(debugWriter{log}, "", 0),
	}
	log.Info().Str("addr", ln.Addr().String()).Bool("token", c.hasToken).Msg("api_addr listening (line commands and HTTP /api/destinations)")
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(s.hl)
	}()
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed: netx retries everything else
			}
			select {
			case s.sem <- struct{}{}:
			default:
				conn.Close() // too many at once
				continue
			}
			if !s.conns.add(conn, 0) {
				<-s.sem
				conn.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(conn, d, c)
			}()
		}
	}()
	return s, nil
}

// release ends the connection's slot (once).
func (s *apiServer) release(c net.Conn) {
	if s.conns.remove(c) {
		<-s.sem
	}
}

// serveConn tells HTTP from a line command by the first word.
func (s *apiServer) serveConn(c net.Conn, d *destAPI, ctl *control) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 1024)
	word := firstWord(br)
	if isHTTPMethod(word) {
		_ = c.SetDeadline(time.Time{}) // net/http sets its own
		hc := &apiConn{PrefixConn: netx.PrefixConn{Conn: c, R: br}, done: func() { s.release(c) }}
		if !s.hl.Push(hc) {
			hc.Close()
		}
		return
	}
	defer func() {
		c.Close()
		s.release(c)
	}()
	line, err := br.ReadString('\n')
	if err != nil && line == "" {
		return
	}
	remote := c.RemoteAddr().String()
	if f := strings.Fields(line); len(f) > 0 && f[0] == "auth" {
		if len(f) != 2 || !ctl.tokenOK(f[1]) {
			ctl.refuse(remote, "bad token")
			io.WriteString(c, "error: bad token\n")
			return
		}
		if line, err = br.ReadString('\n'); err != nil && line == "" {
			return
		}
	} else if ctl.hasToken {
		ctl.refuse(remote, "no token")
		io.WriteString(c, "error: a token is required: send \"auth TOKEN\" first\n")
		return
	}
	io.WriteString(c, d.command(line, remote))
}

// firstWord peeks at the first word of a connection (up to 16 bytes).
func firstWord(br *bufio.Reader) string {
	for n := 1; n <= 16; n++ {
		p, err := br.Peek(n)
		if err != nil {
			return string(p)
		}
		if c := p[n-1]; c == ' ' || c == '\n' || c == '\r' {
			return string(p[:n-1])
		}
	}
	p, _ := br.Peek(16)
	return string(p)
}

func isHTTPMethod(w string) bool {
	switch w {
	case "GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "CONNECT", "TRACE":
		return true
	}
	return false
}

func (s *apiServer) close() {
	s.ln.Close()
	s.hl.Close()
	s.conns.closeAll()
	_ = s.srv.Close()
	s.wg.Wait()
}

// apiConn is a connection handed to net/http with the bytes already peeked;
// closing it frees its slot.
type apiConn struct {
	netx.PrefixConn
	once sync.Once
	done func()
}

func (c *apiConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}

// debugWriter sends net/http's own messages (bad requests, TLS) to the log
// at debug level.
type debugWriter struct{ l zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("error", strings.TrimSpace(string(p))).Msg("http server")
	return len(p), nil
}

// errReadOnly is what stats_addr answers to a change.
var errReadOnly = errors.New("stats_addr is read-only: change destinations on [agent] api_addr")
