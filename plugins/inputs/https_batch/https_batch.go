// Package https_batch is the Polymur-gateway input: it receives batches of
// Graphite lines over HTTP and HTTPS (`POST /ingest`, gzip or plain), checks
// the API key of every request (header X-Polymur-Key, constant time), and
// answers `/ping` and `/ingest` with the original's status codes and bodies,
// so original polymur-proxies work against it unchanged.
//
// Better than the original: a batch is acknowledged (200 Batch Received)
// only after it is queued in every output; a queue that stays full answers
// 503 with Retry-After; bodies are bounded before and after decompression
// (gzip bombs); a plain (not gzipped) body is accepted too; malformed lines
// are counted and skipped instead of forwarded.
package https_batch

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/inputs/https_batch/keystore"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddInput("https_batch", func() registry.Input {
		return &Gateway{
			MaxBodyBytes:         32 << 20,
			MaxDecompressedBytes: 256 << 20,
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

	mu    sync.Mutex
	addrs map[string]net.Addr
	ready chan struct{}
}

type counters struct {
	pings, ingests, batches, lines, invalidKey, malformed, tooLarge, unavailable *atomic.Uint64
	parseErrors, tooLong, bytesIn, bytesOut                                      *atomic.Uint64
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
	ks, err := keystore.New(g.Keystore, env)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	g.keys = ks
	m := env.Metrics
	g.c = counters{
		pings:       m.Counter("ping_requests_total", "Requests to /ping."),
		ingests:     m.Counter("ingest_requests_total", "Requests to /ingest."),
		batches:     m.Counter("batches_total", "Batches acknowledged (200 Batch Received)."),
		lines:       m.Counter("lines_total", "Lines in acknowledged batches, malformed ones included."),
		invalidKey:  m.Counter("invalid_key_total", "Requests refused with 401 invalid key."),
		malformed:   m.Counter("malformed_total", "Batches refused with 400 Batch Malformed (bad gzip)."),
		tooLarge:    m.Counter("too_large_total", "Batches refused with 413: over max_body_bytes or max_decompressed_bytes."),
		unavailable: m.Counter("unavailable_total", "Batches refused with 503: the queue stayed full (the proxy resends)."),
		parseErrors: m.Counter("parse_errors_total", "Malformed lines, counted and skipped."),
		tooLong:     m.Counter("lines_too_long_total", "Lines over max_line_length, counted and skipped."),
		bytesIn:     m.Counter("bytes_received_total", "Request body bytes as received."),
		bytesOut:    m.Counter("bytes_decompressed_total", "Batch bytes after decompression."),
	}
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
	var servers []*http.Server
	serveErr := make(chan error, 2)
	start := func(which, addr string, tc *tls.Config) error {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", which, addr, err)
		}
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
		}
		servers = append(servers, srv)
		if tc != nil {
			ln = tls.NewListener(ln, tc)
		}
		g.log.Info().Str("addr", ln.Addr().String()).Bool("tls", tc != nil).Msg("gateway listening")
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
				s.Close()
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
	for _, s := range servers {
		if e := s.Shutdown(sctx); e != nil {
			s.Close()
		}
	}
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
	bodyNotFound      = []byte("404 page not found\n")
	errBodyTooLarge   = errors.New("body too large")
	errNotGzip        = errors.New("not gzip")
	gzipMagic         = []byte{0x1f, 0x8b}
	headerContentType = "text/plain; charset=utf-8"
)

// ServeHTTP serves /ping and /ingest for any method, as the original does.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.g
	w.Header().Set("Content-Type", headerContentType)
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

// checkKey answers 401 (and closes the connection) unless the key is valid.
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
	data, err := h.readBody(w, r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		g.c.tooLarge.Add(1)
		g.warn.Warn().Str("remote", h.client(r)).Str("key", name).Msg("batch too large")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		w.Write(bodyTooLarge)
		return
	case err != nil:
		g.c.malformed.Add(1)
		g.warn.Warn().Err(err).Str("remote", h.client(r)).Str("key", name).Msg("batch malformed")
		w.WriteHeader(http.StatusBadRequest)
		w.Write(bodyMalformed)
		return
	}
	b, lines := h.parse(data, name)
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

// readBody reads the body within max_body_bytes and, if it is gzip (by
// Content-Encoding or by its magic bytes, since the original proxy sets no
// header), decompresses it within max_decompressed_bytes.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	g := h.g
	body := http.MaxBytesReader(w, r.Body, g.MaxBodyBytes)
	raw, err := readAllLimit(body, g.MaxBodyBytes, r.ContentLength)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, err
	}
	g.c.bytesIn.Add(uint64(len(raw)))
	ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	isGzip := bytes.HasPrefix(raw, gzipMagic)
	if ce == "gzip" && !isGzip {
		return nil, errNotGzip
	}
	if !isGzip {
		g.c.bytesOut.Add(uint64(len(raw)))
		return raw, nil
	}
	data, err := gunzip(raw, g.MaxDecompressedBytes)
	if err != nil {
		return nil, err
	}
	g.c.bytesOut.Add(uint64(len(data)))
	return data, nil
}

// gunzipper is a reusable gzip reader (its decompressor's tables and
// window are large to allocate and clear per request).
type gunzipper struct {
	src bytes.Reader
	zr  gzip.Reader
}

var gunzippers sync.Pool

// gunzip decompresses raw (one or more gzip members) within limit bytes.
// The buffer is sized from the gzip trailer's length field (the last
// member's uncompressed size modulo 2^32): for the usual one-member body
// that is exact, so the data is not copied while it grows; it is only a
// hint, never trusted as a bound.
func gunzip(raw []byte, limit int64) ([]byte, error) {
	z, _ := gunzippers.Get().(*gunzipper)
	if z == nil {
		z = new(gunzipper)
	}
	defer func() {
		z.src.Reset(nil)
		gunzippers.Put(z)
	}()
	z.src.Reset(raw)
	if err := z.zr.Reset(&z.src); err != nil {
		return nil, err
	}
	hint := int64(len(raw)) * 8
	if len(raw) >= 18 {
		if n := int64(binary.LittleEndian.Uint32(raw[len(raw)-4:])); n > 0 && n <= limit {
			hint = n
		}
	}
	return readAllLimit(&z.zr, limit, hint)
}

// readAllLimit reads r up to limit bytes (errBodyTooLarge beyond), growing
// from a size hint.
func readAllLimit(r io.Reader, limit, hint int64) ([]byte, error) {
	if hint <= 0 || hint > limit {
		hint = min(limit, 64<<10)
	}
	buf := make([]byte, 0, hint+1)
	for {
		if int64(len(buf)) > limit {
			return nil, errBodyTooLarge
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(buf)) > limit {
				return nil, errBodyTooLarge
			}
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parse splits data into lines (a last line without '\n' counts, as in the
// original) and parses them; with key_prefix every path gets "<name>.".
func (h *handler) parse(data []byte, name string) (metric.Batch, int) {
	g := h.g
	n := bytes.Count(data, []byte{'\n'}) + 1
	b := make(metric.Batch, 0, n)
	lines := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i:i], data[i+1:]
		}
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue
		}
		lines++
		if len(line) > g.MaxLineLength {
			g.c.tooLong.Add(1)
			continue
		}
		b = b[:len(b)+1] // within n; Parse sets every field of a metric it accepts
		if err := codec.Parse(line, &b[len(b)-1]); err != nil {
			b = b[:len(b)-1]
			g.c.parseErrors.Add(1)
			if len(line) > 200 {
				line = line[:200]
			}
			g.warn.Warn().Err(err).Bytes("line", line).Msg("bad line skipped")
		}
	}
	if g.KeyPrefix && len(b) > 0 {
		prefix := make([]byte, 0, len(name)+1)
		prefix = append(append(prefix, name...), '.')
		size := 0
		for i := range b {
			size += len(prefix) + len(b[i].Line()) + 8
		}
		arena := make([]byte, 0, size)
		for i := range b {
			arena = b[i].PrefixPath(arena, prefix)
		}
	}
	return b, lines
}

var (
	_ registry.Input       = (*Gateway)(nil)
	_ registry.Initializer = (*Gateway)(nil)
)
