// Package https_batch is the Polymur-proxy output: it sends batches of
// Graphite lines, gzipped, to a Polymur gateway (`POST <url>/ingest` with
// header X-Polymur-Key), the wire format of jamiealquiza/polymur, so it works
// against an original polymur-gateway as well as this router's
// inputs.https_batch.
//
// Unlike the original, a batch that fails (network error, timeout, 5xx, 429)
// stays queued and is retried with backoff by the runner; 4xx answers are
// counted as rejected and logged. At start (Connect) it POSTs <url>/ping; a
// 401 there stops the router with a clear error, as the original exits.
package https_batch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/internal/httpout"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	// Polymur-sized batches, flushed within a second. Without `workers`,
	// 4 writers per CPU the Go runtime uses (GOMAXPROCS), at least 4 and at
	// most 16: a writer waits for the gateway's answer (which comes once the
	// gateway has queued the batch) before it takes the next batch, so a
	// few per CPU keep compressing while others wait (PERFORMANCE.md: 8
	// writers beat the original's 3 on 2 CPUs; 16 were no better).
	registry.AddOutput("https_batch", func() registry.Output {
		return &HTTPSBatch{Timeout: registry.Duration(30 * time.Second), Compression: "gzip", GzipLevel: 1}
	}, sample, registry.OutputSpec{BatchSize: 5000, FlushInterval: registry.Duration(time.Second), Workers: defaultWorkers(runtime.GOMAXPROCS(0))})
}

// defaultWorkers is the default of `workers` for procs CPUs.
func defaultWorkers(procs int) int { return min(max(4*procs, 4), 16) }

// HTTPSBatch is the outputs.https_batch plugin.
type HTTPSBatch struct {
	URL         string            `toml:"url"`
	APIKey      string            `toml:"api_key"`
	CACert      string            `toml:"ca_cert"`
	TLSCert     string            `toml:"tls_cert"`
	TLSKey      string            `toml:"tls_key"`
	Timeout     registry.Duration `toml:"timeout"`
	Compression string            `toml:"compression"`
	GzipLevel   int               `toml:"gzip_level"`

	client *http.Client
	ping   string
	ingest string
	host   string

	gz  *httpout.Encoder
	raw []byte
}

// Init validates the configuration and prepares the HTTP client (no connection).
func (h *HTTPSBatch) Init(env registry.Env) error {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: want http(s)://host[:port][/path]", h.URL)
	}
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		if err := registry.CheckAddress("url", u.Host); err != nil {
			return err
		}
	}
	if h.APIKey == "" {
		return errors.New("api_key: required")
	}
	if strings.ContainsAny(h.APIKey, "\r\n") {
		return errors.New("api_key: must be one line")
	}
	switch h.Compression {
	case "gzip":
		if h.GzipLevel < 1 || h.GzipLevel > 9 {
			return fmt.Errorf("gzip_level %d: want 1..9", h.GzipLevel)
		}
	case "none":
	default:
		return fmt.Errorf("compression %q: want \"gzip\" or \"none\"", h.Compression)
	}
	if h.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.CACert != "" {
		pem, err := os.ReadFile(h.CACert)
		if err != nil {
			return fmt.Errorf("ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca_cert %s: no PEM certificate in it", h.CACert)
		}
		tc.RootCAs = pool
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		return errors.New("tls_cert and tls_key: give both or neither")
	}
	if h.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey)
		if err != nil {
			return fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	base := strings.TrimRight(h.URL, "/")
	h.ping, h.ingest, h.host = base+"/ping", base+"/ingest", u.Host
	h.client = &http.Client{
		Timeout: h.Timeout.D(),
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: h.Timeout.D(),
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if h.Compression == "gzip" {
		h.gz, err = httpout.New(h.GzipLevel)
		if err != nil {
			return err
		}
	}
	return nil
}

// Destination returns the gateway's host:port.
func (h *HTTPSBatch) Destination() string { return registry.URLDestination(h.URL) }

// Connect checks the API key with POST /ping. 401 is fatal.
func (h *HTTPSBatch) Connect(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.ping, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Polymur-Key", h.APIKey)
	resp, err := h.client.Do(req)
	if err != nil {
		var ua x509.UnknownAuthorityError
		var hn x509.HostnameError
		var ci x509.CertificateInvalidError
		if errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
			// a configuration error: retrying will not help
			return fmt.Errorf("ping %s: the gateway's TLS certificate is not trusted (check ca_cert): %w: %w", h.ping, err, registry.ErrFatal)
		}
		return fmt.Errorf("ping %s: %w", h.ping, err)
	}
	msg := httpout.ReadSome(resp.Body)
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("ping %s: gateway refused the API key (401 %s): %w", h.ping, msg, registry.ErrFatal)
	default:
		return fmt.Errorf("ping %s: %s %s", h.ping, resp.Status, msg)
	}
}

// Write POSTs the batch as one gzipped body.
func (h *HTTPSBatch) Write(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	now := time.Now().Unix()
	raw := h.raw[:0]
	refused := 0
	var why error
	for i := range b {
		n := len(raw)
		raw = codec.Append(raw, &b[i], now)
		if len(raw) == n { // a metric Graphite cannot carry (codec.Refused says why)
			if refused++; why == nil {
				why = codec.Refused(&b[i])
			}
		}
	}
	h.raw = raw[:0]
	if refused == len(b) {
		return &streamout.Refused{N: refused, Reason: why}
	}
	payload := raw
	if h.gz != nil {
		var err error
		if payload, err = h.gz.Encode(raw); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.ingest, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("X-Polymur-Key", h.APIKey)
	req.Header.Set("Content-Type", "text/plain")
	if h.gz != nil {
		// The original gateway gunzips whatever it gets and ignores this
		// header; this router's gateway uses it (and sniffs the magic too).
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", h.ingest, err)
	}
	msg := httpout.ReadSome(resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		if refused > 0 {
			return &streamout.Refused{N: refused, Reason: why}
		}
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("post %s: %s %s", h.ingest, resp.Status, msg)
	case resp.StatusCode/100 == 4:
		return fmt.Errorf("post %s: %s %s: %w", h.ingest, resp.Status, msg, registry.ErrRejected)
	default:
		return fmt.Errorf("post %s: %s %s", h.ingest, resp.Status, msg)
	}
}

// Close releases idle connections.
func (h *HTTPSBatch) Close() error {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	return nil
}

var (
	_ registry.Output      = (*HTTPSBatch)(nil)
	_ registry.Initializer = (*HTTPSBatch)(nil)
	_ registry.Addresser   = (*HTTPSBatch)(nil)
)
