package https_batch

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// originalGateway behaves like jamiealquiza/polymur's gateway (PROTOCOLS.md
// A1.3): key checked on /ping and /ingest, body gunzipped unconditionally,
// 200 "Batch Received\n", 400 "Batch Malformed\n", 401 "invalid key".
type originalGateway struct {
	mu     sync.Mutex
	key    string
	lines  []string
	status int // forced status for /ingest, 0 = normal
	hdrs   []http.Header
}

func (g *originalGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hdrs = append(g.hdrs, r.Header.Clone())
	if r.Header.Get("X-Polymur-Key") != g.key {
		w.Header().Set("Connection", "close")
		w.WriteHeader(401)
		io.WriteString(w, "invalid key")
		return
	}
	switch r.URL.Path {
	case "/ping":
		io.WriteString(w, "key is valid\n")
	case "/ingest":
		if g.status != 0 {
			w.WriteHeader(g.status)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(400)
			io.WriteString(w, "Batch Malformed\n")
			return
		}
		b, _ := io.ReadAll(zr)
		g.lines = append(g.lines, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
		io.WriteString(w, "Batch Received\n")
	}
}

func newOutput(t *testing.T, url, key string, mod func(*HTTPSBatch)) *HTTPSBatch {
	t.Helper()
	h := &HTTPSBatch{URL: url, APIKey: key, Timeout: registry.Duration(5 * time.Second), Compression: "gzip", GzipLevel: 1}
	if mod != nil {
		mod(h)
	}
	env, _ := plugintest.Env(t, "outputs.https_batch")
	if err := h.Init(env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func batch(t *testing.T, n int) metric.Batch {
	b := make(metric.Batch, n)
	for i := range b {
		if err := graphite.Parse([]byte(fmt.Sprintf("proxy.test.%d %d 1700000000", i, i)), &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// TestAgainstOriginalGateway: what an original polymur-gateway needs.
func TestAgainstOriginalGateway(t *testing.T) {
	g := &originalGateway{key: "k1"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	h := newOutput(t, srv.URL, "k1", nil)
	if err := h.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.Write(t.Context(), batch(t, 5000)); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.lines) != 5000 || g.lines[0] != "proxy.test.0 0 1700000000" || g.lines[4999] != "proxy.test.4999 4999 1700000000" {
		t.Fatalf("gateway got %d lines: %q ... ", len(g.lines), g.lines[:min(2, len(g.lines))])
	}
	if g.hdrs[1].Get("X-Polymur-Key") != "k1" {
		t.Fatal("no X-Polymur-Key on /ingest")
	}
}

func TestStatusHandling(t *testing.T) {
	g := &originalGateway{key: "k1"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	// wrong key: /ping 401 is fatal
	bad := newOutput(t, srv.URL, "wrong", nil)
	if err := bad.Connect(t.Context()); !errors.Is(err, registry.ErrFatal) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("ping with a bad key: %v, want a fatal 401 error", err)
	}
	h := newOutput(t, srv.URL, "k1", nil)
	for status, want := range map[int]error{500: nil, 503: nil, 429: nil, 400: registry.ErrRejected, 413: registry.ErrRejected} {
		g.mu.Lock()
		g.status = status
		g.mu.Unlock()
		err := h.Write(t.Context(), batch(t, 3))
		if err == nil {
			t.Fatalf("%d: no error", status)
		}
		if (want == nil) == errors.Is(err, registry.ErrRejected) {
			t.Errorf("%d: %v; rejected should be %v", status, err, want != nil)
		}
	}
	// gateway gone: a retryable error
	srv.Close()
	if err := h.Write(t.Context(), batch(t, 3)); err == nil || errors.Is(err, registry.ErrRejected) {
		t.Fatalf("gateway down: %v", err)
	}
}

func TestTLS(t *testing.T) {
	pki := plugintest.NewTLS(t)
	other := plugintest.NewTLS(t)
	g := &originalGateway{key: "k"}
	srv := httptest.NewUnstartedServer(g)
	cert, err := tlsPair(pki.Cert, pki.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = cert
	srv.StartTLS()
	defer srv.Close()
	ok := newOutput(t, srv.URL, "k", func(h *HTTPSBatch) { h.CACert = pki.CA })
	if err := ok.Connect(t.Context()); err != nil {
		t.Fatalf("with the right CA: %v", err)
	}
	if err := ok.Write(t.Context(), batch(t, 10)); err != nil {
		t.Fatal(err)
	}
	wrong := newOutput(t, srv.URL, "k", func(h *HTTPSBatch) { h.CACert = other.CA })
	err = wrong.Connect(t.Context())
	if !errors.Is(err, registry.ErrFatal) || !strings.Contains(err.Error(), "ca_cert") {
		t.Fatalf("with a wrong CA: %v, want a fatal error naming ca_cert", err)
	}
}

func TestInitErrors(t *testing.T) {
	for _, c := range []struct {
		h    HTTPSBatch
		want string
	}{
		{HTTPSBatch{URL: "ftp://x", APIKey: "k", Compression: "gzip", GzipLevel: 1, Timeout: 1}, "url"},
		{HTTPSBatch{URL: "https://x", Compression: "gzip", GzipLevel: 1, Timeout: 1}, "api_key"},
		{HTTPSBatch{URL: "https://x", APIKey: "k", Compression: "zstd", Timeout: 1}, "compression"},
		{HTTPSBatch{URL: "https://x", APIKey: "k", Compression: "gzip", GzipLevel: 12, Timeout: 1}, "gzip_level"},
		{HTTPSBatch{URL: "https://x", APIKey: "k", Compression: "gzip", GzipLevel: 1, Timeout: 1, CACert: "/nonexistent"}, "ca_cert"},
		{HTTPSBatch{URL: "https://x", APIKey: "k", Compression: "gzip", GzipLevel: 1, Timeout: 1, TLSCert: "a"}, "tls_cert"},
	} {
		env, _ := plugintest.Env(t, "x")
		if err := c.h.Init(env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.h, err, c.want)
		}
	}
}

// BenchmarkCompress: gzip of a 5000-line batch with the library the output
// uses (klauspost/compress) against the standard library, per level.
func BenchmarkCompress(b *testing.B) {
	var raw []byte
	for i := 0; i < 5000; i++ {
		raw = fmt.Appendf(raw, "bench.metric.path.%d %d.5 1700000000\n", i*7919%100000, i)
	}
	for _, lvl := range []int{1, 6} {
		b.Run(fmt.Sprintf("klauspost/level=%d", lvl), func(b *testing.B) {
			h := &HTTPSBatch{URL: "http://x", APIKey: "k", Compression: "gzip", GzipLevel: lvl, Timeout: 1}
			env, _ := plugintest.Env(b, "x")
			if err := h.Init(env); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			var z []byte
			for b.Loop() {
				z, _ = h.gz.Encode(raw)
			}
			b.ReportMetric(float64(len(raw))/float64(len(z)), "ratio")
		})
		b.Run(fmt.Sprintf("stdlib/level=%d", lvl), func(b *testing.B) {
			var body bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&body, lvl)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				body.Reset()
				zw.Reset(&body)
				zw.Write(raw)
				zw.Close()
			}
			b.ReportMetric(float64(len(raw))/float64(body.Len()), "ratio")
		})
	}
}

// BenchmarkWrite: one 5000-line batch, rendered, gzipped and POSTed to a
// loopback server that reads and discards it.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "Batch Received\n")
	}))
	defer srv.Close()
	h := &HTTPSBatch{URL: srv.URL, APIKey: "k", Compression: "gzip", GzipLevel: 1, Timeout: registry.Duration(5 * time.Second)}
	env, _ := plugintest.Env(b, "x")
	if err := h.Init(env); err != nil {
		b.Fatal(err)
	}
	bt := make(metric.Batch, 5000)
	for i := range bt {
		graphite.Parse([]byte(fmt.Sprintf("bench.metric.path.%d %d.5 1700000000", i, i)), &bt[i])
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Write(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(bt)), "ns/line")
}

func tlsPair(cert, key string) (*tls.Config, error) {
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}, nil
}

func TestDefaultWorkers(t *testing.T) {
	for procs, want := range map[int]int{1: 4, 2: 8, 3: 12, 4: 16, 64: 16} {
		if got := defaultWorkers(procs); got != want {
			t.Errorf("GOMAXPROCS %d: %d workers, want %d", procs, got, want)
		}
	}
	p, _ := registry.Default.Lookup(registry.Outputs, "https_batch")
	if p.Output.Workers != defaultWorkers(runtime.GOMAXPROCS(0)) || p.Output.BatchSize != 5000 {
		t.Errorf("registered spec %+v", p.Output)
	}
}
