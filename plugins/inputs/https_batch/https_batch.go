// Package https_batch is the Polymur-gateway input: it receives batches of
// Graphite lines over HTTP and HTTPS (`POST /ingest`, gzip or plain), checks
// the API key of every request (header X-Polymur-Key, constant time), and
// answers `/ping` and `/ingest` with the original's status codes and bodies,
// so original polymur-proxies work against it unchanged.
//
// Better than the original: a batch is acknowledged (200 Batch Received)
// only after it is queued in every output; a queue that stays full answers
// 503 with Retry-After; bodies are bounded before and after decompression
// (gzip bombs) and stream into memory as they arrive, within a budget shared
// by all requests in flight (max_inflight_bytes, see body.go); a plain (not
// gzipped) body is accepted too; malformed lines are counted and skipped
// instead of forwarded; a request framed by Transfer-Encoding is refused and
// its connection closed, so no request can hide behind a body; accept errors
// (out of descriptors) are retried, never fatal.
package https_batch

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/inputs/https_batch/keystore"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddInput("https_batch", func() registry.Input {
		return &Gateway{
			MaxBodyBytes:         32 << 20,
			MaxDecompressedBytes: 32 << 20,
			MaxInflightBytes:     128 << 20,
			MaxLineLength:        64 << 10,
			EnqueueTimeout:       registry.Duration(5 * time.Second),
			ReadHeaderTimeout:    registry.Duration(10 * time.Second),
			ReadTimeout:          registry.Duration(60 * time.Second),
			WriteTimeout:         registry.Duration(60 * time.Second),
			IdleTimeout:          registry.Duration(120 * time.Second),
		}
	}, sample)
}

// Gateway is the inputs.https_batch plugin.
type Gateway struct {
	Listen               string            `toml:"listen"`
	TLSListen            string            `toml:"tls_listen"`
	TLSCert              string            `toml:"tls_cert"`
	TLSKey               string            `toml:"tls_key"`
	KeyPrefix            bool              `toml:"key_prefix"`
	TrustedProxies       []string          `toml:"trusted_proxies"`
	MaxBodyBytes         int64             `toml:"max_body_bytes"`
	MaxDecompressedBytes int64             `toml:"max_decompressed_bytes"`
	MaxInflightBytes     int64             `toml:"max_inflight_bytes"`
	MaxLineLength        int               `toml:"max_line_length"`
	EnqueueTimeout       registry.Duration `toml:"enqueue_timeout"`
	ReadHeaderTimeout    registry.Duration `toml:"read_header_timeout"`
	ReadTimeout          registry.Duration `toml:"read_timeout"`
	WriteTimeout         registry.Duration `toml:"write_timeout"`
	IdleTimeout          registry.Duration `toml:"idle_timeout"`
	Keystore             keystore.Config   `toml:"keystore"`

	keys    keystore.Store
	trusted []netip.Prefix
	tlsConf *tls.Config
	log     zerolog.Logger
	warn    zerolog.Logger // sampled
	c       counters
	budget  *netx.Budget // max_inflight_bytes
	fixed   int64        // what a request reading a body takes first
	readers sync.Pool    // *bodyReader
	// listen, if set, opens a listening socket (tests inject accept
	// errors); nil: netx.ListenContext, shared with the next instance.
	listen   func(ctx context.Context, addr string) (net.Listener, error)
	owner    string       // netx.Config.Owner
	inflight atomic.Int64 // requests reading or emitting a batch

	mu    sync.Mutex
	addrs map[string]net.Addr
	ready chan struct{}
}

type counters struct {
	pings, ingests, batches, lines, invalidKey, malformed, tooLarge, unavailable *atomic.Uint64
	parseErrors, tooLong, bytesIn, bytesOut                                      *atomic.Uint64
	busy, badFraming, acceptErrors                                               *atomic.Uint64
}

// Init validates the configuration and builds the key store (opens nothing).
func (g *Gateway) Init(env registry.Env) error {
	g.log = env.Log
	g.warn = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	if g.Listen == "" && g.TLSListen == "" {
		return errors.New("listen or tls_listen: set at least one")
	}
	for key, a := range map[string]string{"listen": g.Listen, "tls_listen": g.TLSListen} {
		if a == "" {
			continue // off
		}
		if err := registry.CheckHostPort(key, a); err != nil {
			return err
		}
	}
	if g.TLSListen != "" {
		if g.TLSCert == "" || g.TLSKey == "" {
			return errors.New("tls_listen needs tls_cert and tls_key")
		}
		cert, err := tls.LoadX509KeyPair(g.TLSCert, g.TLSKey)
		if err != nil {
			return fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		g.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	} else if g.TLSCert != "" || g.TLSKey != "" {
		return errors.New("tls_cert/tls_key given without tls_listen")
	}
	for _, p := range g.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, err2 := netip.ParseAddr(p)
			if err2 != nil {
				return fmt.Errorf("trusted_proxies %q: want a CIDR or an address", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		g.trusted = append(g.trusted, pfx)
	}
	if g.MaxBodyBytes <= 0 || g.MaxDecompressedBytes <= 0 || g.MaxLineLength <= 0 {
		return errors.New("max_body_bytes, max_decompressed_bytes and max_line_length must be positive")
	}
	if g.MaxLineLength > maxLineCeil {
		return fmt.Errorf("max_line_length: at most %d (each request in flight holds twice this)", maxLineCeil)
	}
	g.fixed = fixedCost(g.MaxLineLength)
	if g.MaxInflightBytes != -1 && g.MaxInflightBytes < max(1<<20, 4*g.fixed) {
		return fmt.Errorf("max_inflight_bytes: at least %d (1 MiB, and 4 requests' fixed cost with this max_line_length), or -1 for no bound",
			max(1<<20, 4*g.fixed))
	}
	g.budget = netx.NewBudget(g.MaxInflightBytes)
	if env.ID != "" {
		g.owner = env.Plugin + " " + env.ID
	}
	ks, err := keystore.New(g.Keystore, env)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	g.keys = ks
	m := env.Metrics
	g.c = counters{
		pings:        m.Counter("ping_requests_total", "Requests to /ping."),
		ingests:      m.Counter("ingest_requests_total", "Requests to /ingest."),
		batches:      m.Counter("batches_total", "Batches acknowledged (200 Batch Received)."),
		lines:        m.Counter("lines_total", "Lines in acknowledged batches, malformed ones included."),
		invalidKey:   m.Counter("invalid_key_total", "Requests refused with 401 invalid key."),
		malformed:    m.Counter("malformed_total", "Batches refused with 400 Batch Malformed (bad gzip)."),
		tooLarge:     m.Counter("too_large_total", "Batches refused with 413: over max_body_bytes or max_decompressed_bytes, or alone larger than max_inflight_bytes."),
		unavailable:  m.Counter("unavailable_total", "Batches refused with 503: the queue stayed full (the proxy resends)."),
		busy:         m.Counter("inflight_full_total", "Batches refused with 503: requests in flight held max_inflight_bytes (the proxy resends)."),
		badFraming:   m.Counter("bad_framing_total", "Requests refused with 400 and their connection closed: framed by Transfer-Encoding (only Content-Length is accepted)."),
		acceptErrors: m.Counter("accept_errors_total", "Failed accepts (out of file descriptors, buffers...), retried with backoff."),
		parseErrors:  m.Counter("parse_errors_total", "Malformed lines, counted and skipped."),
		tooLong:      m.Counter("lines_too_long_total", "Lines over max_line_length, counted and skipped."),
		bytesIn:      m.Counter("bytes_received_total", "Request body bytes as received."),
		bytesOut:     m.Counter("bytes_decompressed_total", "Batch bytes after decompression."),
	}
	m.Gauge("inflight_bytes", "Memory reserved by requests reading or emitting a batch (bounded by max_inflight_bytes).",
		func() float64 { return float64(g.budget.Used()) })
	m.Gauge("inflight_requests", "Requests reading or emitting a batch.", func() float64 { return float64(g.inflight.Load()) })
	g.addrs = map[string]net.Addr{}
	g.ready = make(chan struct{})
	return nil
}

// Addr returns the bound address of "listen" or "tls_listen" once listening.
func (g *Gateway) Addr(which string) net.Addr {
	<-g.ready
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[which]
}

// Run loads the keys, serves until ctx ends, then shuts the servers down
// gracefully (requests in flight finish and are acknowledged).
func (g *Gateway) Run(ctx context.Context, out registry.Emitter) error {
	var once sync.Once
	markReady := func() { once.Do(func() { close(g.ready) }) }
	defer markReady()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := g.keys.Open(octx)
	cancel()
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if g.TLSKey != "" {
		registry.WarnLaxFile(g.log, "tls_key", g.TLSKey)
	}
	var wg sync.WaitGroup
	kctx, stopKeys := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := g.keys.Run(kctx); err != nil {
			g.log.Error().Err(err).Msg("keystore stopped")
		}
	}()
	defer func() {
		stopKeys()
		wg.Wait()
	}()

	h := &handler{g: g, out: out}
	// a server, its listener (before TLS) and its connections
	type server struct {
		srv    *http.Server
		ln     net.Listener
		nl     *netx.Listener
		cc     netx.ConnCount
		served chan struct{} // closed when Serve returned
	}
	var servers []*server
	var stopping atomic.Bool // listeners closed on purpose
	serveErr := make(chan error, 2)
	start := func(which, addr string, tc *tls.Config) error {
		// Accept never fails for good: a temporary error (EMFILE, ENOBUFS...)
		// would otherwise end Serve, and Run with it. The socket is shared
		// with the next instance of this input (netx): a restart binds
		// nothing new, and the connections waiting to be accepted when this
		// one stops are the next one's.
		nc := netx.Config{Errors: g.c.acceptErrors, Log: g.log, Owner: g.owner}
		sv := &server{served: make(chan struct{})}
		if g.listen != nil {
			raw, err := g.listen(ctx, addr)
			if err != nil {
				return fmt.Errorf("%s %s: %w", which, addr, err)
			}
			sv.nl = netx.Wrap(raw, nc)
		} else {
			nl, err := netx.ListenContext(ctx, "tcp", addr, nc)
			if err != nil {
				return fmt.Errorf("%s %s: %w", which, addr, err)
			}
			sv.nl = nl
		}
		var ln net.Listener = sv.nl
		g.mu.Lock()
		g.addrs[which] = ln.Addr()
		g.mu.Unlock()
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: g.ReadHeaderTimeout.D(),
			ReadTimeout:       g.ReadTimeout.D(),
			WriteTimeout:      g.WriteTimeout.D(),
			IdleTimeout:       g.IdleTimeout.D(),
			MaxHeaderBytes:    64 << 10,
			TLSConfig:         tc,
			ErrorLog:          log.New(serverLog{g.warn}, "", 0),
			ConnState:         sv.cc.State,
		}
		if tc != nil {
			ln = tls.NewListener(ln, tc)
		}
		sv.srv, sv.ln = srv, ln
		servers = append(servers, sv)
		g.log.Info().Str("addr", ln.Addr().String()).Bool("tls", tc != nil).Msg("gateway listening")
		go func() {
			defer close(sv.served)
			err := srv.Serve(ln)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !(stopping.Load() && errors.Is(err, net.ErrClosed)) {
				serveErr <- fmt.Errorf("%s: %w", which, err)
			}
		}()
		return nil
	}
	if g.Listen != "" {
		if err := start("listen", g.Listen, nil); err != nil {
			return err
		}
	}
	if g.TLSListen != "" {
		if err := start("tls_listen", g.TLSListen, g.tlsConf); err != nil {
			for _, s := range servers {
				s.srv.Close()
			}
			return err
		}
	}
	markReady()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	sctx, cancelShutdown := context.WithTimeout(context.Background(), g.EnqueueTimeout.D()+5*time.Second)
	defer cancelShutdown()
	// A server whose socket has a successor (the next instance, at a
	// reload) drains without net/http's Shutdown, which would drop the
	// requests it finishes reading after it began (netx.DrainHTTP).
	stopping.Store(true)
	var stopped sync.WaitGroup
	for _, s := range servers {
		handOver := s.nl.CanHandOver() // before any Close
		stopped.Go(func() {
			if handOver {
				netx.DrainHTTP(sctx, s.srv, s.ln, s.served, &s.cc)
			}
			if e := s.srv.Shutdown(sctx); e != nil {
				s.srv.Close()
			}
		})
	}
	stopped.Wait()
	return err
}

// serverLog sends net/http's own messages (TLS handshake errors, ...) to the
// sampled plugin logger.
type serverLog struct{ l zerolog.Logger }

func (s serverLog) Write(p []byte) (int, error) {
	s.l.Debug().Str("msg", strings.TrimSpace(string(p))).Msg("http server")
	return len(p), nil
}

type handler struct {
	g   *Gateway
	out registry.Emitter
}

var (
	bodyKeyValid      = []byte("key is valid\n")
	bodyInvalidKey    = []byte("invalid key")
	bodyReceived      = []byte("Batch Received\n")
	bodyMalformed     = []byte("Batch Malformed\n")
	bodyTooLarge      = []byte("Batch Too Large\n")
	bodyUnavailable   = []byte("Queue Full, Retry Later\n")
	bodyBusy          = []byte("Busy, Retry Later\n")
	bodyBadFraming    = []byte("Bad Request: send Content-Length, not Transfer-Encoding\n")
	bodyNotFound      = []byte("404 page not found\n")
	headerContentType = "text/plain; charset=utf-8"
)

// ServeHTTP serves /ping and /ingest for any method, as the original does.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	w.Header().Set("Content-Type", headerContentType)
	if !h.checkFraming(w, r) {
		return
	}
	switch r.URL.Path {
	case "/ping":
		g.c.pings.Add(1)
		if _, ok := h.checkKey(w, r); !ok {
			return
		}
		w.WriteHeader(http.StatusOK)
		w.Write(bodyKeyValid)
	case "/ingest":
		g.c.ingests.Add(1)
		name, ok := h.checkKey(w, r)
		if !ok {
			return
		}
		h.ingest(w, r, name)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write(bodyNotFound)
	}
}

// checkFraming refuses (400, connection closed) a request framed by
// Transfer-Encoding. net/http frames a request carrying both
// Transfer-Encoding and Content-Length by the former, drops the latter and
// keeps the connection open (RFC 9112 section 6.1 asks to close it), so a
// handler cannot tell that request smuggling attempt from a plain chunked
// request; Polymur proxies and outputs.https_batch always send
// Content-Length, so refusing every Transfer-Encoding costs nothing. An
// HTTP/1.0 request, whose Transfer-Encoding net/http ignores and hides, gets
// its answer and the connection closed.
func (h *handler) checkFraming(w http.ResponseWriter, r *http.Request) bool {
	if !r.ProtoAtLeast(1, 1) {
		w.Header().Set("Connection", "close")
	}
	if len(r.TransferEncoding) == 0 {
		return true
	}
	h.g.c.badFraming.Add(1)
	h.g.warn.Warn().Str("remote", h.client(r)).Str("path", r.URL.Path).Strs("transfer_encoding", r.TransferEncoding).
		Msg("request framed by transfer-encoding refused")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	w.Write(bodyBadFraming)
	return false
}

// checkKey answers 401 (and closes the connection) unless the key is valid.
// It runs before any byte of the body is read.
func (h *handler) checkKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	if key := r.Header.Get("X-Polymur-Key"); key != "" {
		if name, ok := keystore.LookupString(h.g.keys, key); ok {
			return name, true
		}
	}
	h.g.c.invalidKey.Add(1)
	h.g.warn.Warn().Str("remote", h.client(r)).Str("path", r.URL.Path).Msg("invalid key")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write(bodyInvalidKey)
	return "", false
}

// client is the address for logs: X-Forwarded-For only from trusted proxies.
func (h *handler) client(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	xff := r.Header.Get("X-Forwarded-For")
	if xff == "" || !h.g.isTrusted(ap.Addr()) {
		return r.RemoteAddr
	}
	// the right-most address not itself a trusted proxy
	parts := strings.Split(xff, ",")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSpace(parts[i])
		a, err := netip.ParseAddr(p)
		if err != nil {
			return p
		}
		if !h.g.isTrusted(a) || i == 0 {
			return p
		}
	}
	return r.RemoteAddr
}

func (g *Gateway) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range g.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *handler) ingest(w http.ResponseWriter, r *http.Request, name string) {
	g := h.g
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	res := reservation{b: g.budget}
	defer res.release() // once the batch is queued (or refused)
	var b metric.Batch
	var lines int
	err := errBodyTooLarge
	if r.ContentLength <= g.MaxBodyBytes {
		b, lines, err = h.readBatch(r, &res)
	}
	if err == nil && g.KeyPrefix && len(b) > 0 {
		err = h.prefix(b, name, &res)
	}
	switch {
	case errors.Is(err, errBodyTooLarge):
		g.c.tooLarge.Add(1)
		g.warn.Warn().Str("remote", h.client(r)).Str("key", name).Int64("bytes", r.ContentLength).Msg("batch too large")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		w.Write(bodyTooLarge)
		return
	case errors.Is(err, errBusy):
		g.c.busy.Add(1)
		g.warn.Warn().Str("remote", h.client(r)).Str("key", name).Int64("bytes", g.budget.Used()).
			Msg("max_inflight_bytes reached: 503, the proxy will resend")
		// the rest of the body is not read: close rather than drain it
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write(bodyBusy)
		return
	case err != nil:
		g.c.malformed.Add(1)
		g.warn.Warn().Err(err).Str("remote", h.client(r)).Str("key", name).Msg("batch malformed")
		w.WriteHeader(http.StatusBadRequest)
		w.Write(bodyMalformed)
		return
	}
	if len(b) > 0 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.EnqueueTimeout.D())
		err = h.out.Emit(ctx, b)
		cancel()
		if err != nil {
			g.c.unavailable.Add(1)
			g.warn.Warn().Err(err).Str("remote", h.client(r)).Int("count", len(b)).Msg("queue full: 503, the proxy will resend")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(bodyUnavailable)
			return
		}
	}
	g.c.batches.Add(1)
	g.c.lines.Add(uint64(lines))
	w.WriteHeader(http.StatusOK)
	w.Write(bodyReceived)
}

// prefix puts "<name>." before every path (key_prefix), rendering the
// metrics into one new arena.
func (h *handler) prefix(b metric.Batch, name string, res *reservation) error {
	prefix := make([]byte, 0, len(name)+1)
	prefix = append(append(prefix, name...), '.')
	size := 0
	for i := range b {
		size += len(prefix) + len(b[i].Line()) + 8
	}
	if err := res.take(int64(size)); err != nil {
		return err
	}
	arena := make([]byte, 0, size)
	for i := range b {
		arena = b[i].PrefixPath(arena, prefix)
	}
	return nil
}

var (
	_ registry.Input       = (*Gateway)(nil)
	_ registry.Initializer = (*Gateway)(nil)
)
