package http_json

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

// route is what a request path names; it indexes the per-route counters.
type route uint8

const (
	routeHeartbeat route = iota
	routeCount
	routeGauge
	routeTiming
	routeSet
	routeBatch
	routeOther // unknown paths
	nRoutes
)

var routeNames = [nRoutes]string{"heartbeat", "count", "gauge", "timing", "set", "batch", "other"}

// CORS answers, as statsd-http-proxy sends them.
const (
	corsMethods = "GET, POST, HEAD, OPTIONS"
	corsHeaders = "X-JWT-Token, X-Requested-With, Origin, Accept, Content-Type, Authentication"
	corsMaxAge  = "600"
)

type handlerConfig struct {
	prefix      string          // metric_prefix, with its '.'
	influx      bool            // tag_format = "influx"
	origins     map[string]bool // nil = echo any Origin
	maxBody     int64
	maxInflight int64 // max_inflight_bytes; -1 = no bound
	maxBatch    int
	emitTimeout time.Duration
	prefixClaim string
}

// handler is the http.Handler of one plugin instance.
type handler struct {
	cfg       handlerConfig
	out       registry.Emitter
	auth      *authenticator // nil = no authentication
	gate      gate
	deadlines *deadlines
	budget    *netx.Budget   // max_inflight_bytes: body bytes of the requests in flight
	log       zerolog.Logger // sampled

	requests [nRoutes]*atomic.Uint64
	errors   [nRoutes]*atomic.Uint64
	authFail *atomic.Uint64
	tooLarge *atomic.Uint64
	emitFail *atomic.Uint64
	busy     *atomic.Uint64 // 503: max_inflight_bytes reached
	framing  *atomic.Uint64 // 400: Transfer-Encoding
}

func newHandler(cfg handlerConfig, env registry.Env) *handler {
	h := &handler{
		cfg:       cfg,
		deadlines: newDeadlines(cfg.emitTimeout),
		budget:    netx.NewBudget(cfg.maxInflight),
		log:       env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
	}
	for r := range nRoutes {
		n := routeNames[r]
		h.requests[r] = env.Metrics.Counter("requests_"+n+"_total", "HTTP requests to /"+n+" (other: unknown paths).")
		h.errors[r] = env.Metrics.Counter("errors_"+n+"_total", "HTTP requests to /"+n+" answered with a 4xx or 5xx status.")
	}
	h.authFail = env.Metrics.Counter("auth_failures_total", "Requests refused for a missing (401) or invalid (403) token.")
	h.tooLarge = env.Metrics.Counter("body_too_large_total", "Requests whose body exceeded max_body_bytes (413).")
	h.emitFail = env.Metrics.Counter("emit_failures_total", "Requests answered 503 because the pipeline was full or stopping.")
	h.busy = env.Metrics.Counter("inflight_full_total", "Requests answered 503 because the bodies of the requests in flight held max_inflight_bytes.")
	h.framing = env.Metrics.Counter("framing_refused_total", "Requests refused with 400 and their connection closed for carrying Transfer-Encoding (bodies need Content-Length).")
	env.Metrics.Gauge("inflight_bytes", "Body bytes held by the requests in flight (bounded by max_inflight_bytes).",
		func() float64 { return float64(h.budget.Used()) })
	return h
}

// start sets what Run creates: the pipeline and the authenticator.
func (h *handler) start(out registry.Emitter, auth *authenticator) {
	h.out = out
	h.auth = auth
	h.deadlines.start()
}

// stop waits for handlers that are emitting; later ones answer 503.
func (h *handler) stop() {
	h.gate.close()
	h.deadlines.stop()
}

// ServeHTTP routes: GET|HEAD /heartbeat, POST /batch, POST /<type>/<key>,
// OPTIONS (CORS preflight) on each of them.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, typ, key := parsePath(r.URL.Path)
	h.requests[rt].Add(1)
	status := h.serve(w, r, rt, typ, key)
	if status >= 400 {
		h.errors[rt].Add(1)
	}
}

// parsePath splits "/count/some.key" into its route and key.
func parsePath(p string) (rt route, typ metric.Type, key string) {
	switch p {
	case "/heartbeat":
		return routeHeartbeat, 0, ""
	case "/batch":
		return routeBatch, 0, ""
	}
	if len(p) < 2 || p[0] != '/' {
		return routeOther, 0, ""
	}
	name, key, ok := strings.Cut(p[1:], "/")
	if !ok {
		return routeOther, 0, ""
	}
	switch name {
	case "count":
		return routeCount, metric.Counter, key
	case "gauge":
		return routeGauge, metric.Gauge, key
	case "timing":
		return routeTiming, metric.Timer, key
	case "set":
		return routeSet, metric.Set, key
	}
	return routeOther, 0, ""
}

// serve answers one request and returns its status.
func (h *handler) serve(w http.ResponseWriter, r *http.Request, rt route, typ metric.Type, key string) int {
	if len(r.TransferEncoding) > 0 {
		// RFC 9112 6.1: Content-Length and Transfer-Encoding together
		// mean a smuggling attempt or a broken intermediary. net/http drops
		// Content-Length when both are present, so every request with a
		// Transfer-Encoding is refused and its connection closed: nothing
		// sent after its body is ever served. (net/http moves the field
		// to r.TransferEncoding; the fast path hands every request that
		// has one to net/http; HTTP/2 refuses the field.)
		h.framing.Add(1)
		h.log.Warn().Str("remote", r.RemoteAddr).Msg("transfer-encoding refused: 400, connection closed")
		w.Header()["Connection"] = []string{"close"}
		return writeError(w, http.StatusBadRequest, &fieldError{msg: "Transfer-Encoding is not accepted: send the body with Content-Length", field: "Transfer-Encoding", index: -1})
	}
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		// net/http ignores (and hides) Transfer-Encoding on HTTP/1.0
		// requests, which RFC 9112 6.1 says to treat as faulty framing:
		// their connections are closed after the answer.
		w.Header()["Connection"] = []string{"close"}
	}
	if rt == routeOther {
		return writeError(w, http.StatusNotFound, &fieldError{msg: "unknown route: use /heartbeat, /batch or /count|gauge|timing|set/<key>", field: "type", index: -1})
	}
	// CORS applies to every answer of a known route, errors included, so
	// that a browser script can read them.
	if origin := r.Header.Get("Origin"); origin != "" {
		if !h.originAllowed(origin) {
			return writeError(w, http.StatusForbidden, &fieldError{msg: "origin not allowed", field: "Origin", index: -1})
		}
		hd := w.Header()
		hd["Access-Control-Allow-Origin"] = []string{origin}
		hd["Vary"] = []string{"Origin"}
	}
	if r.Method == http.MethodOptions {
		hd := w.Header()
		hd["Access-Control-Allow-Methods"] = []string{corsMethods}
		hd["Access-Control-Allow-Headers"] = []string{corsHeaders}
		hd["Access-Control-Max-Age"] = []string{corsMaxAge}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	if rt == routeHeartbeat {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = []string{"GET, HEAD, OPTIONS"}
			return writeError(w, http.StatusMethodNotAllowed, &fieldError{msg: "method not allowed", field: "method", index: -1})
		}
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		_, _ = io.WriteString(w, "OK")
		return http.StatusOK
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = []string{"POST, OPTIONS"}
		return writeError(w, http.StatusMethodNotAllowed, &fieldError{msg: "method not allowed", field: "method", index: -1})
	}
	var grant string // the token's key prefix, if jwt_prefix_claim is set
	if h.auth != nil {
		g, status := h.auth.check(r)
		if status != 0 {
			h.authFail.Add(1)
			return writeAuthError(w, status, h.cfg.prefixClaim)
		}
		grant = g
	}
	body, held, status := readBody(r, h.cfg.maxBody, h.budget)
	defer func() { h.budget.Release(held) }()
	switch status {
	case 0:
	case http.StatusRequestEntityTooLarge:
		h.tooLarge.Add(1)
		return writeError(w, status, &fieldError{msg: "body larger than max_body_bytes", field: "body", index: -1})
	case http.StatusServiceUnavailable:
		h.busy.Add(1)
		h.log.Warn().Str("remote", r.RemoteAddr).Int64("bytes", h.budget.Used()).Msg("max_inflight_bytes reached: answered 503")
		return writeRetry(w, &fieldError{msg: "too many request bodies in flight (max_inflight_bytes): retry later", index: -1})
	default:
		return writeError(w, status, &fieldError{msg: "cannot read body", field: "body", index: -1})
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		if !strings.EqualFold(enc, "gzip") {
			return writeError(w, http.StatusUnsupportedMediaType, &fieldError{msg: "Content-Encoding: only gzip", field: "Content-Encoding", index: -1})
		}
		plain, held2, status := gunzipBody(body, h.cfg.maxBody, h.budget)
		defer func() { h.budget.Release(held2) }()
		switch status {
		case 0:
			body = plain
		case http.StatusRequestEntityTooLarge:
			h.tooLarge.Add(1)
			return writeError(w, status, &fieldError{msg: "body larger than max_body_bytes once decompressed", field: "body", index: -1})
		case http.StatusServiceUnavailable:
			h.busy.Add(1)
			return writeRetry(w, &fieldError{msg: "too many request bodies in flight (max_inflight_bytes): retry later", index: -1})
		default:
			return writeError(w, status, &fieldError{msg: "body is not valid gzip", field: "body", index: -1})
		}
	}
	ct := mediaType(r.Header.Get("Content-Type"))
	var b builder
	b.cfg = &h.cfg
	b.grant = grant
	b.useGrant = h.auth != nil && h.cfg.prefixClaim != ""
	var ferr *fieldError
	switch {
	case rt == routeBatch:
		if ct != ctJSON {
			return writeError(w, http.StatusUnsupportedMediaType, &fieldError{msg: "/batch takes a JSON array (Content-Type: application/json)", field: "Content-Type", index: -1})
		}
		ferr = b.batchJSON(body)
	case ct == ctForm:
		ferr = b.oneForm(typ, key, body)
	case ct == ctJSON:
		ferr = b.oneJSON(typ, key, body)
	case ct == ctMultipart:
		ferr = b.oneMultipart(typ, key, r, body)
	case len(body) == 0:
		ferr = b.one(typ, key, &fields{}) // no body: every field has its default
	default:
		return writeError(w, http.StatusUnsupportedMediaType, &fieldError{msg: "unsupported Content-Type: use application/x-www-form-urlencoded, multipart/form-data or application/json", field: "Content-Type", index: -1})
	}
	if ferr != nil {
		return writeError(w, ferr.status(), ferr)
	}
	batch, ferr := b.finish()
	if ferr != nil {
		return writeError(w, ferr.status(), ferr)
	}
	// the batch has its own buffer: the body is not needed while emitting
	h.budget.Release(held)
	held = 0
	if len(batch) > 0 {
		if err := h.emit(batch); err != nil {
			h.emitFail.Add(1)
			h.log.Warn().Err(err).Int("count", len(batch)).Msg("emit failed: answered 503")
			return writeRetry(w, &fieldError{msg: "pipeline full or stopping: retry later", index: -1})
		}
	}
	// 200 with an empty body, as statsd-http-proxy answers.
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

var errStopping = errors.New("input stopping")

// emit hands the batch to the pipeline. It waits at most about emitTimeout
// for room (overflow = "block"); a client that goes away meanwhile does not
// cut the wait short, so what was accepted is never half emitted.
func (h *handler) emit(b metric.Batch) error {
	if !h.gate.enter() {
		return errStopping
	}
	defer h.gate.leave()
	return h.out.Emit(h.deadlines.get(), b)
}

// deadlines hands out contexts that end between d and d+tick from now: one
// context per tick, shared by every request of that tick, instead of a
// timer per request (a timer is a large part of the CPU of a small
// request: BenchmarkHandlerCountForm).
type deadlines struct {
	cur  atomic.Pointer[context.Context]
	d    time.Duration
	tick time.Duration
	done chan struct{}
	wg   sync.WaitGroup
}

func newDeadlines(d time.Duration) *deadlines {
	return &deadlines{d: d, tick: max(d/8, time.Millisecond), done: make(chan struct{})}
}

func (dl *deadlines) get() context.Context { return *dl.cur.Load() }

// start makes the first context and renews it every tick until stop.
func (dl *deadlines) start() {
	type pending struct {
		end    time.Time
		cancel context.CancelFunc
	}
	next := func() pending {
		ctx, cancel := context.WithTimeout(context.Background(), dl.d+dl.tick)
		dl.cur.Store(&ctx)
		return pending{time.Now().Add(dl.d + dl.tick), cancel}
	}
	live := []pending{next()}
	dl.wg.Add(1)
	go func() {
		defer dl.wg.Done()
		t := time.NewTicker(dl.tick)
		defer t.Stop()
		for {
			select {
			case <-dl.done:
				for _, p := range live {
					p.cancel()
				}
				return
			case now := <-t.C:
				// release the contexts that have ended (their timers fired)
				for len(live) > 0 && now.After(live[0].end) {
					live[0].cancel()
					live = live[1:]
				}
				live = append(live, next())
			}
		}
	}()
}

func (dl *deadlines) stop() {
	close(dl.done)
	dl.wg.Wait()
}

func (h *handler) originAllowed(origin string) bool {
	if h.cfg.origins == nil {
		return true
	}
	return h.cfg.origins[strings.ToLower(origin)]
}

// firstChunk is the most a body buffer starts with; it doubles as bytes
// arrive.
const firstChunk = 4 << 10

// readBody reads the whole body, at most maxBody bytes, allocating as bytes
// arrive (never from Content-Length up front): each buffer is taken from
// budget before it is allocated. held is what the caller gives back to the
// budget once done with the body. status is 0, or 413 (too large), 503
// (budget exhausted) or 400 (the body could not be read).
func readBody(r *http.Request, maxBody int64, budget *netx.Budget) (body []byte, held int64, status int) {
	if r.ContentLength > maxBody {
		return nil, 0, http.StatusRequestEntityTooLarge
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, 0, 0
	}
	if b, ok := r.Body.(*bodyReader); ok {
		if in, ok := b.inPlace(); ok {
			return in, 0, 0 // in the connection's read buffer
		}
	}
	limit := maxBody + 1 // no Content-Length (HTTP/2): one byte more means too large
	if r.ContentLength > 0 {
		limit = r.ContentLength
	}
	var buf []byte
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			n := min(max(2*int64(cap(buf)), firstChunk), limit)
			if !budget.Take(n) {
				budget.Release(held)
				return nil, 0, http.StatusServiceUnavailable
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			budget.Release(held)
			buf, held = nb, n
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			budget.Release(held)
			return nil, 0, http.StatusBadRequest
		}
	}
	switch {
	case int64(len(buf)) > maxBody:
		budget.Release(held)
		return nil, 0, http.StatusRequestEntityTooLarge
	case r.ContentLength > 0 && int64(len(buf)) < r.ContentLength:
		budget.Release(held)
		return nil, 0, http.StatusBadRequest
	}
	return buf, held, 0
}

// gzipReaders are the decompressors of gzipped bodies, reused.
var gzipReaders sync.Pool

// gunzipBody decompresses a gzipped body (Content-Encoding: gzip) into a
// buffer taken from budget as it grows, at most maxBody bytes: the limit
// holds for what the body becomes, so a gzip bomb is refused (413) after
// maxBody bytes of output. held and status are as readBody's.
func gunzipBody(body []byte, maxBody int64, budget *netx.Budget) (plain []byte, held int64, status int) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(body))
	} else {
		err = zr.Reset(bytes.NewReader(body))
	}
	if err != nil {
		return nil, 0, http.StatusBadRequest
	}
	defer gzipReaders.Put(zr)
	limit := maxBody + 1 // one byte more means too large
	var buf []byte
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			n := min(max(2*int64(cap(buf)), firstChunk), limit)
			if !budget.Take(n) {
				budget.Release(held)
				return nil, 0, http.StatusServiceUnavailable
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			budget.Release(held)
			buf, held = nb, n
		}
		n, err := zr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			budget.Release(held)
			return nil, 0, http.StatusBadRequest
		}
	}
	if int64(len(buf)) > maxBody {
		budget.Release(held)
		return nil, 0, http.StatusRequestEntityTooLarge
	}
	return buf, held, 0
}

// Media types the handler reads.
const (
	ctOther = iota
	ctForm
	ctJSON
	ctMultipart
)

// mediaType classifies a Content-Type header without allocating.
func mediaType(ct string) int {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch {
	case strings.EqualFold(ct, "application/x-www-form-urlencoded"):
		return ctForm
	case strings.EqualFold(ct, "application/json"):
		return ctJSON
	case strings.EqualFold(ct, "multipart/form-data"):
		return ctMultipart
	}
	return ctOther
}

// fieldError is a client error naming the field at fault; index is the
// position in a /batch array (-1 otherwise).
type fieldError struct {
	msg   string
	field string
	index int
	code  int // HTTP status; 0 = 400
}

func (e *fieldError) status() int {
	if e.code != 0 {
		return e.code
	}
	return http.StatusBadRequest
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Index *int   `json:"index,omitempty"`
}

// writeRetry answers 503 with Retry-After (exposed to browser scripts).
func writeRetry(w http.ResponseWriter, e *fieldError) int {
	hd := w.Header()
	hd["Retry-After"] = []string{"1"}
	if _, ok := hd["Access-Control-Allow-Origin"]; ok {
		hd["Access-Control-Expose-Headers"] = []string{"Retry-After"}
	}
	return writeError(w, http.StatusServiceUnavailable, e)
}

// writeError answers with {"error": ..., "field": ..., "index": ...}.
func writeError(w http.ResponseWriter, status int, e *fieldError) int {
	body := errorBody{Error: e.msg, Field: e.field}
	if e.index >= 0 {
		body.Index = &e.index
	}
	out, _ := json.Marshal(body)
	out = append(out, '\n')
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(out))}
	hd["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	_, _ = w.Write(out)
	return status
}

// writeAuthError answers 401/403 with statsd-http-proxy's plain-text bodies;
// a key outside the token's prefix gets a JSON error naming the key.
func writeAuthError(w http.ResponseWriter, status int, claim string) int {
	switch status {
	case authMissing:
		http.Error(w, "Token not specified", http.StatusUnauthorized)
		return http.StatusUnauthorized
	case authNoGrant:
		return writeError(w, http.StatusForbidden, &fieldError{msg: "token has no string claim " + strconv.Quote(claim), field: "token", index: -1})
	}
	http.Error(w, "Error parsing token", http.StatusForbidden)
	return http.StatusForbidden
}
