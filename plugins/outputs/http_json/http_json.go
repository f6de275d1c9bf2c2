// Package http_json is the HTTP JSON output: it POSTs batches as a JSON
// array in the format of inputs.http_json's POST /batch (statsd-http-proxy's
// objects {"type", "key", "value", "sampleRate", "tags", "shift", "time"}),
// so one router can feed another over HTTP(S).
//
// A batch is sent in requests of at most max_batch metrics. A request that
// fails (network error, timeout, 5xx, 429, 408) stops the write: the
// requests already answered 2xx count as written and the runner retries the
// rest with backoff. Any other 4xx drops that request's metrics (counted as
// rejected and logged) and the write goes on with the next request. A
// metric that /batch cannot carry, or that the input would refuse (one bad
// entry fails a whole /batch request there), is left out, counted and
// reported as rejected: see README.md for the mapping.
package http_json

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/internal/httpout"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

const defMaxBatch = 1000 // inputs.http_json's default max_batch

func init() {
	registry.AddOutput("http_json", func() registry.Output {
		return &HTTPJSON{Timeout: registry.Duration(10 * time.Second), MaxBatch: defMaxBatch}
	}, sample, registry.OutputSpec{BatchSize: defMaxBatch})
}

// BasicAuth is the basic_auth table.
type BasicAuth struct {
	Username string `toml:"username"`
	Password string `toml:"password"`
}

// HTTPJSON is the outputs.http_json plugin.
type HTTPJSON struct {
	URL             string            `toml:"url"`
	Gzip            bool              `toml:"gzip"`
	Headers         map[string]string `toml:"headers"`
	BearerToken     string            `toml:"bearer_token"`
	BearerTokenFile string            `toml:"bearer_token_file"`
	JWTToken        string            `toml:"jwt_token"`
	JWTTokenFile    string            `toml:"jwt_token_file"`
	Timeout         registry.Duration `toml:"timeout"`
	MaxBatch        int               `toml:"max_batch"`
	BasicAuth       BasicAuth         `toml:"basic_auth"`

	// TLS, mutual with tls_cert (registry.TLSClient)
	registry.TLSClient

	log      zerolog.Logger
	refused  *atomic.Uint64
	rejected *atomic.Uint64

	client  *http.Client
	tlsCfg  *tls.Config
	host    string
	headers http.Header

	body []byte // the JSON array of one request
	gz   *httpout.Encoder
}

// Init validates the configuration (files are read when sending).
func (h *HTTPJSON) Init(env registry.Env) error {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: want http(s)://host[:port]/path, e.g. http://127.0.0.1:8825/batch", h.URL)
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		if err := registry.CheckAddress("url", u.Host); err != nil {
			return err
		}
	}
	h.host = u.Host
	if u.Scheme == "https" && !h.TLSClient.Enabled() {
		h.TLSEnable = true // https: TLS with the system roots
	}
	if u.Scheme == "http" && h.TLSClient.Enabled() {
		return errors.New("url is http:// but TLS keys are set: use https://")
	}
	if err := h.TLSClient.Check(); err != nil {
		return err
	}
	if h.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	if h.MaxBatch < 1 {
		return fmt.Errorf("max_batch %d: must be at least 1", h.MaxBatch)
	}
	auths := 0
	for _, set := range []bool{h.BearerToken != "", h.BearerTokenFile != "", h.BasicAuth.Username != "" || h.BasicAuth.Password != ""} {
		if set {
			auths++
		}
	}
	if auths > 1 {
		return errors.New("bearer_token, bearer_token_file and basic_auth: set at most one")
	}
	if h.JWTToken != "" && h.JWTTokenFile != "" {
		return errors.New("jwt_token and jwt_token_file: set at most one")
	}
	for k, v := range map[string]string{"bearer_token": h.BearerToken, "jwt_token": h.JWTToken,
		"basic_auth.username": h.BasicAuth.Username, "basic_auth.password": h.BasicAuth.Password} {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%s: must be one line", k)
		}
	}
	if strings.Contains(h.BasicAuth.Username, ":") {
		return errors.New("basic_auth.username: must not contain ':'")
	}
	h.headers = http.Header{}
	for k, v := range h.Headers {
		if !validHeaderName(k) || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("headers: %q is not a valid header", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Content-Encoding", "Transfer-Encoding", "Content-Type", "Connection":
			return fmt.Errorf("headers: %q is set by the output", k)
		case "Authorization":
			if auths > 0 {
				return errors.New("headers: Authorization together with bearer_token, bearer_token_file or basic_auth")
			}
		case "X-Jwt-Token":
			if h.JWTToken != "" || h.JWTTokenFile != "" {
				return errors.New("headers: X-JWT-Token together with jwt_token or jwt_token_file")
			}
		}
		h.headers.Set(k, v)
	}
	h.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	if env.Metrics != nil {
		h.refused = env.Metrics.Counter("conversion_refused_total", "Metrics that /batch cannot carry (or that the receiving input would refuse), not sent (and counted as rejected).")
		h.rejected = env.Metrics.Counter("requests_rejected_total", "Requests answered with a 4xx other than 408 and 429: their metrics are dropped (and counted as rejected).")
	} else {
		h.refused, h.rejected = new(atomic.Uint64), new(atomic.Uint64)
	}
	if w := h.TLSClient.Warning(); w != "" {
		env.Log.Warn().Msg(w)
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Destination returns the receiver's host:port.
func (h *HTTPJSON) Destination() string { return registry.URLDestination(h.URL) }

// Connect prepares the HTTP client; connections are opened by the requests.
func (h *HTTPJSON) Connect(context.Context) error {
	if h.client != nil {
		return nil
	}
	tc, err := h.TLSClient.ClientConfig(h.host)
	if err != nil {
		return fmt.Errorf("tls: %w: %w", err, registry.ErrFatal)
	}
	h.tlsCfg = tc
	h.client = &http.Client{
		Timeout: h.Timeout.D(),
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: h.Timeout.D(), KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   h.Timeout.D(),
			ResponseHeaderTimeout: h.Timeout.D(),
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if h.Gzip && h.gz == nil {
		h.gz, _ = httpout.New(gzip.BestSpeed)
	}
	return nil
}

// Write sends b in requests of at most max_batch metrics.
func (h *HTTPJSON) Write(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	if h.client == nil {
		return fmt.Errorf("post %s: %w", h.URL, registry.ErrNotConnected)
	}
	// refused and rejected: metrics of b[:start] left out or dropped
	refused, rejected := 0, 0
	var why error
	for start := 0; start < len(b); {
		// encode up to max_batch metrics the format carries
		body := append(h.body[:0], '[')
		n, end, left := 0, start, 0
		var reason error
		for ; end < len(b) && n < h.MaxBatch; end++ {
			var err error
			if body, err = appendMetric(body, &b[end], n == 0); err != nil {
				if left++; reason == nil {
					reason = err
				}
				continue
			}
			n++
		}
		body = append(body, ']')
		h.body = body
		if n > 0 {
			err := h.post(ctx, body)
			switch {
			case errors.Is(err, registry.ErrRejected):
				rejected += n
				h.rejected.Add(1)
				h.log.Warn().Err(err).Int("count", n).Msg("request rejected: its metrics are dropped")
			case err != nil && start == 0:
				return err
			case err != nil:
				h.countRefused(refused, why)
				return &registry.PartialWriteError{Written: start, Refused: refused + rejected, Err: err}
			}
		}
		if refused += left; why == nil {
			why = reason
		}
		start = end
	}
	h.countRefused(refused, why)
	if refused+rejected > 0 {
		return &streamout.Refused{N: refused + rejected, Reason: why}
	}
	return nil
}

// countRefused counts and logs (sampled) n metrics left out.
func (h *HTTPJSON) countRefused(n int, why error) {
	if n > 0 {
		h.refused.Add(uint64(n))
		h.log.Warn().Int("count", n).Err(why).Msg("metrics /batch cannot carry were not sent (counted as rejected)")
	}
}

// post sends one request; the error wraps registry.ErrRejected for a 4xx
// that retrying cannot help.
func (h *HTTPJSON) post(ctx context.Context, body []byte) error {
	payload := body
	if h.gz != nil {
		var err error
		if payload, err = h.gz.Encode(body); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	for k, v := range h.headers {
		req.Header[k] = v
	}
	if host := h.headers.Get("Host"); host != "" {
		req.Host = host
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if h.gz != nil {
		req.Header["Content-Encoding"] = []string{"gzip"}
	}
	switch {
	case h.BearerToken != "":
		req.Header["Authorization"] = []string{"Bearer " + h.BearerToken}
	case h.BearerTokenFile != "":
		tok, err := readToken("bearer_token_file", h.BearerTokenFile)
		if err != nil {
			return err
		}
		req.Header["Authorization"] = []string{"Bearer " + tok}
	case h.BasicAuth.Username != "" || h.BasicAuth.Password != "":
		req.SetBasicAuth(h.BasicAuth.Username, h.BasicAuth.Password)
	}
	switch {
	case h.JWTToken != "":
		req.Header["X-Jwt-Token"] = []string{h.JWTToken}
	case h.JWTTokenFile != "":
		tok, err := readToken("jwt_token_file", h.JWTTokenFile)
		if err != nil {
			return err
		}
		req.Header["X-Jwt-Token"] = []string{tok}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", h.URL, err)
	}
	msg := httpout.ReadSome(resp.Body)
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return nil
	case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout:
		return fmt.Errorf("post %s: %s %s", h.URL, resp.Status, msg)
	case c/100 == 4:
		return fmt.Errorf("post %s: %s %s: %w", h.URL, resp.Status, msg, registry.ErrRejected)
	default:
		return fmt.Errorf("post %s: %s %s", h.URL, resp.Status, msg)
	}
}

// readToken reads a token file on every request, so that a rotated token is
// picked up.
func readToken(key, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("%s %s: want one line with the token", key, file)
	}
	return tok, nil
}

// Close releases idle connections and the TLS configuration.
func (h *HTTPJSON) Close() error {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	registry.ReleaseTLS(h.tlsCfg)
	h.client, h.tlsCfg = nil, nil
	return nil
}

var (
	_ registry.Output      = (*HTTPJSON)(nil)
	_ registry.Initializer = (*HTTPJSON)(nil)
	_ registry.Addresser   = (*HTTPJSON)(nil)
)
