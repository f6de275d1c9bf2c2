// Package http_json is the HTTP input that replaces statsd-http-proxy: browsers
// and other HTTP clients POST counters, gauges, timings and set members, and
// the router forwards them as StatsD lines (usually to outputs.statsd).
//
// Routes: GET /heartbeat; POST /count|gauge|timing|set/{key} with the
// original's form fields or a JSON object; POST /batch with a JSON array.
// Requests may be authenticated with JWT (HMAC secret and/or a public key),
// CORS is answered for browsers, and TLS enables HTTP/2.
//
// A request is validated as a whole before anything is emitted: one bad field
// (or one bad entry of a batch) answers 400 and emits nothing. A request's
// metrics are emitted as one batch before the answer, so 200 means queued in
// every output, and 503 means nothing was queued (retry).
package http_json

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

// Defaults.
const (
	defListen       = "127.0.0.1:8825"
	defReadTimeout  = 5 * time.Second
	defWriteTimeout = 5 * time.Second
	defIdleTimeout  = 60 * time.Second
	defMaxBody      = 1 << 20
	defMaxBatch     = 1000
	// defMaxInflight bounds the body memory of all requests in flight: 64
	// bodies of the largest size at once, or thousands of ordinary ones.
	defMaxInflight = 64 << 20
	// h2Window is the HTTP/2 flow-control window per connection and per
	// stream: what a client may send before a handler reads (and before
	// its token is checked).
	h2Window = 64 << 10
	// maxHeaderBytes bounds request headers (the original allowed 2 KiB; a
	// browser's headers plus a JWT need more).
	maxHeaderBytes = 8 << 10
	// shutdownGrace is how long in-flight requests may take to finish at
	// shutdown before their connections are closed (the original's 5 s).
	shutdownGrace = 5 * time.Second
	// jwtLeeway is the clock skew allowed on exp, nbf and iat.
	jwtLeeway = 30 * time.Second
)

func init() {
	registry.AddInput("http_json", func() registry.Input {
		return &HTTPJSON{
			Listen:           defListen,
			TagFormat:        "dogstatsd",
			ReadTimeout:      registry.Duration(defReadTimeout),
			WriteTimeout:     registry.Duration(defWriteTimeout),
			IdleTimeout:      registry.Duration(defIdleTimeout),
			MaxBodyBytes:     defMaxBody,
			MaxInflightBytes: defMaxInflight,
			MaxBatch:         defMaxBatch,
		}
	}, sample)
}

// HTTPJSON is the inputs.http_json plugin.
type HTTPJSON struct {
	// Listen is the TCP address of the HTTP(S) server.
	Listen string `toml:"listen"`
	// JWTSecret enables HS256/384/512 tokens signed with this secret.
	JWTSecret string `toml:"jwt_secret"`
	// JWTPublicKey is a PEM file (public key or certificate) enabling
	// RS*/PS* (RSA key), ES* (ECDSA key) or EdDSA (Ed25519 key) tokens.
	JWTPublicKey string `toml:"jwt_public_key"`
	// JWTAudience, if set, must be one of the token's aud values.
	JWTAudience string `toml:"jwt_audience"`
	// JWTIssuer, if set, must equal the token's iss.
	JWTIssuer string `toml:"jwt_issuer"`
	// JWTPrefixClaim names a string claim; keys a token writes must start
	// with its value.
	JWTPrefixClaim string `toml:"jwt_prefix_claim"`
	// MetricPrefix is prepended to every key ('.' appended if missing).
	MetricPrefix string `toml:"metric_prefix"`
	// TagFormat is "dogstatsd" (key:1|c|#k:v) or "influx" (key,k=v:1|c).
	TagFormat string `toml:"tag_format"`
	// AllowedOrigins restricts CORS; nil (unset) echoes any Origin.
	AllowedOrigins []string `toml:"allowed_origins"`
	// TLSCert and TLSKey enable HTTPS (TLS 1.2+, HTTP/2) when both are set.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// ReadTimeout bounds reading a request's headers and body.
	ReadTimeout registry.Duration `toml:"read_timeout"`
	// WriteTimeout bounds handling a request and writing its answer.
	WriteTimeout registry.Duration `toml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout registry.Duration `toml:"idle_timeout"`
	// MaxBodyBytes is the largest request body accepted (413 above).
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxInflightBytes bounds the body bytes of all requests in flight
	// together (503 + Retry-After above); -1 = no bound.
	MaxInflightBytes int64 `toml:"max_inflight_bytes"`
	// MaxBatch is the largest number of metrics in one /batch request.
	MaxBatch int `toml:"max_batch"`

	log          zerolog.Logger
	handler      *handler
	handoffs     *atomic.Uint64
	acceptErrors *atomic.Uint64
	addr         atomic.Pointer[net.Addr]
	owner        string // netx.Config.Owner: instances of this input share the socket
}

// Init validates the configuration. It reads no file: the public key and
// the TLS certificate are loaded when Run starts.
func (h *HTTPJSON) Init(env registry.Env) error {
	if err := registry.CheckHostPort("listen", h.Listen); err != nil {
		return err
	}
	var influx bool
	switch h.TagFormat {
	case "dogstatsd", "":
	case "influx":
		influx = true
	default:
		return fmt.Errorf("tag_format %q: want \"dogstatsd\" or \"influx\"", h.TagFormat)
	}
	prefix := h.MetricPrefix
	if prefix != "" {
		if !strings.HasSuffix(prefix, ".") {
			prefix += "."
		}
		if !validKey(prefix) {
			return fmt.Errorf("metric_prefix %q: must not contain spaces, control characters, ':', '|', '/' or ','", h.MetricPrefix)
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		return fmt.Errorf("tls_cert and tls_key: set both or neither")
	}
	if h.JWTSecret == "" && h.JWTPublicKey == "" && (h.JWTAudience != "" || h.JWTIssuer != "" || h.JWTPrefixClaim != "") {
		return fmt.Errorf("jwt_audience, jwt_issuer and jwt_prefix_claim need jwt_secret or jwt_public_key")
	}
	if h.ReadTimeout < 0 || h.WriteTimeout < 0 || h.IdleTimeout < 0 {
		return fmt.Errorf("read_timeout, write_timeout and idle_timeout must not be negative")
	}
	if h.MaxBodyBytes <= 0 {
		return fmt.Errorf("max_body_bytes: must be positive")
	}
	if h.MaxInflightBytes != -1 && h.MaxInflightBytes < h.MaxBodyBytes {
		return fmt.Errorf("max_inflight_bytes: at least max_body_bytes (%d), or -1 for no bound", h.MaxBodyBytes)
	}
	if h.MaxBatch <= 0 {
		return fmt.Errorf("max_batch: must be positive")
	}
	origins, err := parseOrigins(h.AllowedOrigins)
	if err != nil {
		return err
	}
	h.log = env.Log
	if env.ID != "" {
		h.owner = env.Plugin + " " + env.ID
	}
	h.handoffs = env.Metrics.Counter("handoffs_total", "Plain-HTTP connections the fast path handed to net/http at an unusual request.")
	h.acceptErrors = env.Metrics.Counter("accept_errors_total", "Failed accepts (out of file descriptors, buffers...), retried with backoff.")
	h.handler = newHandler(handlerConfig{
		prefix:      prefix,
		influx:      influx,
		origins:     origins,
		maxBody:     h.MaxBodyBytes,
		maxInflight: h.MaxInflightBytes,
		maxBatch:    h.MaxBatch,
		emitTimeout: emitTimeout(h.WriteTimeout.D()),
		prefixClaim: h.JWTPrefixClaim,
	}, env)
	return nil
}

// emitTimeout is how long a request waits for room in the pipeline: half the
// write timeout, so that the 503 still reaches the client in time.
func emitTimeout(write time.Duration) time.Duration {
	if write <= 0 {
		return shutdownGrace
	}
	return max(write/2, 10*time.Millisecond)
}

// parseOrigins returns nil for "echo any origin" (unset, or a "*" entry),
// else the set of allowed origins, lower-cased.
func parseOrigins(list []string) (map[string]bool, error) {
	if list == nil {
		return nil, nil
	}
	set := make(map[string]bool, len(list))
	for _, o := range list {
		if o == "*" {
			return nil, nil
		}
		if o != "null" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
				return nil, fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port], \"null\" or \"*\")", o)
			}
			o = strings.TrimSuffix(o, "/")
		}
		set[strings.ToLower(o)] = true
	}
	return set, nil
}

// Run serves until ctx is cancelled, then stops accepting, lets in-flight
// requests finish (up to 5 s) and returns once none can emit any more.
func (h *HTTPJSON) Run(ctx context.Context, out registry.Emitter) error {
	auth, err := newAuthenticator(authConfig{
		secret:      h.JWTSecret,
		publicKey:   h.JWTPublicKey,
		audience:    h.JWTAudience,
		issuer:      h.JWTIssuer,
		prefixClaim: h.JWTPrefixClaim,
	})
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if h.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey)
		if err != nil {
			return fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	// A temporary accept error (no file descriptor left...) is retried,
	// counted and logged, never returned: no client can stop the input. The
	// socket is shared with the next instance of this input (netx): a
	// reload binds nothing new, and the connections waiting to be accepted
	// when this one stops are the next one's.
	ln, err := netx.ListenContext(ctx, "tcp", h.Listen, netx.Config{Errors: h.acceptErrors, Log: h.log, Owner: h.owner})
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.Listen, err)
	}
	a := ln.Addr()
	h.addr.Store(&a)
	hd := h.handler
	hd.start(out, auth)

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // used over TLS only (ALPN "h2")
	errLog := h.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	srv := &http.Server{
		Handler:           hd,
		ReadHeaderTimeout: h.ReadTimeout.D(),
		ReadTimeout:       h.ReadTimeout.D(),
		WriteTimeout:      h.WriteTimeout.D(),
		IdleTimeout:       h.IdleTimeout.D(),
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsCfg,
		Protocols:         &protocols,
		HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerConnection: h2Window, MaxReceiveBufferPerStream: h2Window},
		ErrorLog:          log.New(logWriter{errLog}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	h.log.Info().Str("addr", a.String()).Bool("tls", tlsCfg != nil).Bool("jwt", auth != nil).Msg("listening")
	if auth == nil {
		h.log.Warn().Str("addr", a.String()).Msg("authentication off (no jwt_secret or jwt_public_key): whoever reaches this address can send metrics")
	}
	var conns netx.ConnCount // net/http's: see netx.DrainHTTP
	srv.ConnState = conns.State
	served := make(chan error, 2)
	srvDone := make(chan struct{}) // net/http's Serve returned
	var serving sync.WaitGroup
	var fast *fastServer
	if tlsCfg != nil {
		serving.Go(func() {
			defer close(srvDone)
			served <- srv.ServeTLS(ln, "", "")
		})
	} else {
		// plain HTTP: the fast path serves what it can, net/http the rest
		fast = newFastServer(fastConfig{
			handler:  hd,
			log:      errLog,
			base:     context.WithoutCancel(ctx),
			read:     h.ReadTimeout.D(),
			write:    h.WriteTimeout.D(),
			idle:     h.IdleTimeout.D(),
			maxHead:  maxHeaderBytes,
			maxBody:  h.MaxBodyBytes,
			addr:     a,
			handoffs: h.handoffs,
		})
		serving.Go(func() {
			defer close(srvDone)
			served <- srv.Serve(fast.handoff)
		})
		serving.Go(func() {
			if err := fast.serve(ln); err != nil {
				served <- err
			}
		})
	}
	var failed error
	select {
	case failed = <-served:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	// With a successor sharing the socket (the next instance, at a reload),
	// connections are handed over or drained without net/http's Shutdown,
	// which drops requests it finishes reading after it began.
	handOver := ln.CanHandOver() // asked before Close
	var fastDone sync.WaitGroup
	switch {
	case fast == nil && handOver:
		netx.DrainHTTP(sctx, srv, ln, srvDone, &conns) // closes ln
	case fast != nil:
		_ = ln.Close()
		if handOver {
			fast.handOverTo(ln)
		}
		fastDone.Add(1)
		go func() {
			defer fastDone.Done()
			fast.shutdown(sctx)
		}()
		if handOver {
			fastDone.Wait() // nothing more is handed to net/http
			netx.DrainHTTP(sctx, srv, fast.handoff, srvDone, &conns)
		}
	default:
		_ = ln.Close()
	}
	if err := srv.Shutdown(sctx); err != nil {
		h.log.Warn().Err(err).Msg("shutdown grace over: closing connections")
		_ = srv.Close()
	}
	fastDone.Wait()
	serving.Wait()
	hd.stop() // waits for handlers still emitting; later ones answer 503
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", a, failed)
	}
	return nil
}

// Addr returns the bound address once listening, else nil (tests use port 0).
func (h *HTTPJSON) Addr() net.Addr {
	if a := h.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// logWriter sends net/http's server errors (TLS handshakes, bad requests) to
// the plugin's sampled logger at debug level.
type logWriter struct{ l zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Debug().Str("error", strings.TrimSpace(string(p))).Msg("http server")
	return len(p), nil
}

// gate lets handlers emit until stop, then waits for those still emitting.
type gate struct{ mu sync.RWMutex }

func (g *gate) enter() bool { return g.mu.TryRLock() }
func (g *gate) leave()      { g.mu.RUnlock() }
func (g *gate) close()      { g.mu.Lock() } // never unlocked: the gate stays shut

var (
	_ registry.Input       = (*HTTPJSON)(nil)
	_ registry.Initializer = (*HTTPJSON)(nil)
)
