package https_batch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// failEmitter refuses every batch, as a full queue with overflow = "block" does.
type failEmitter struct{}

func (failEmitter) Emit(ctx context.Context, _ metric.Batch) error {
	<-ctx.Done()
	return ctx.Err()
}

type gw struct {
	g    *Gateway
	addr string
	m    *plugintest.Metrics
	cap  *plugintest.Capture
}

func startGateway(t *testing.T, mod func(*Gateway), out registry.Emitter) *gw {
	t.Helper()
	g := registryNew()
	g.Listen = "127.0.0.1:0"
	g.Keystore.Type = "static"
	g.Keystore.Keys = map[string]string{"team-a": "0123456789abcdef0123456789abcdef", "dev": "123"}
	if mod != nil {
		mod(g)
	}
	env, m := plugintest.Env(t, "inputs.https_batch")
	if err := g.Init(env); err != nil {
		t.Fatal(err)
	}
	c := plugintest.NewCapture()
	if out == nil {
		out = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	which := "listen"
	if g.Listen == "" {
		which = "tls_listen"
	}
	a := g.Addr(which)
	if a == nil {
		t.Fatal("gateway did not start")
	}
	return &gw{g: g, addr: a.String(), m: m, cap: c}
}

// registryNew returns the plugin with its registered defaults.
// quietHandler is the handler of a gateway on 127.0.0.1:0 taking the dev
// key, changed by mod if not nil, initialised with a logger that drops
// everything (a fuzz target or benchmark must not log through the test);
// it returns the gateway's counters too.
func quietHandler(tb testing.TB, mod func(g *Gateway)) (*handler, *plugintest.Metrics) {
	tb.Helper()
	g := registryNew()
	g.Listen = "127.0.0.1:0"
	g.Keystore.Type = "static"
	g.Keystore.DevMode = true
	if mod != nil {
		mod(g)
	}
	m := plugintest.NewMetrics()
	if err := g.Init(registry.Env{ID: "test", Plugin: "inputs.https_batch", Log: zerolog.Nop(), Metrics: m}); err != nil {
		tb.Fatal(err)
	}
	return &handler{g: g}, m
}

func registryNew() *Gateway {
	p, _ := registry.Default.Lookup(registry.Inputs, "https_batch")
	return p.New().(*Gateway)
}

func gz(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	io.WriteString(w, s)
	w.Close()
	return b.Bytes()
}

// rawRequest sends bytes exactly as given and returns status, headers, body.
func rawRequest(t *testing.T, addr, req string) (int, bool, string) {
	t.Helper()
	c := plugintest.Dial(t, addr, 10*time.Second)
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Close, string(body)
}

// originalRequest is what jamiealquiza/polymur's proxy puts on the wire: Go's
// client with X-polymur-key (canonicalised), a raw gzip body, no
// Content-Encoding and no Content-Type.
func originalRequest(addr, path, key string, body []byte) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: %d\r\nX-Polymur-Key: %s\r\nAccept-Encoding: gzip\r\n\r\n%s",
		path, addr, len(body), key, body)
}

func TestWireCompatibility(t *testing.T) {
	g := startGateway(t, nil, nil)
	cases := []struct {
		name, path, key string
		body            []byte
		status          int
		respBody        string
		close           bool
	}{
		{"ping ok", "/ping", "123", nil, 200, "key is valid\n", false},
		{"ping bad key", "/ping", "nope", nil, 401, "invalid key", true},
		{"ping no key", "/ping", "", nil, 401, "invalid key", true},
		{"ingest ok", "/ingest", "0123456789abcdef0123456789abcdef", gz(t, "a.b.c 1 1700000000\nd.e.f 2 1700000000\n"), 200, "Batch Received\n", false},
		{"ingest bad key", "/ingest", "0123456789abcdef0123456789abcdeX", gz(t, "a 1 1\n"), 401, "invalid key", true},
		{"ingest corrupt gzip", "/ingest", "123", append(gz(t, "a 1 1\n")[:12], "garbage"...), 400, "Batch Malformed\n", false},
		{"ingest last line without newline", "/ingest", "123", gz(t, "x.y 3 1700000000"), 200, "Batch Received\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, closed, body := rawRequest(t, g.addr, originalRequest(g.addr, c.path, c.key, c.body))
			if status != c.status || body != c.respBody {
				t.Fatalf("got %d %q, want %d %q", status, body, c.status, c.respBody)
			}
			if c.close && !closed {
				t.Errorf("401 without Connection: close")
			}
		})
	}
	if !g.cap.WaitFor(3, 5*time.Second) {
		t.Fatalf("captured %d metrics, want 3", g.cap.Len())
	}
	got := strings.Join(g.cap.Raw(), "|")
	if got != "a.b.c 1 1700000000|d.e.f 2 1700000000|x.y 3 1700000000" {
		t.Fatalf("emitted %q", got)
	}
	if g.m.Get("invalid_key_total") != 3 || g.m.Get("malformed_total") != 1 || g.m.Get("batches_total") != 2 {
		t.Fatalf("counters: invalid %d malformed %d batches %d", g.m.Get("invalid_key_total"), g.m.Get("malformed_total"), g.m.Get("batches_total"))
	}
}

func post(t *testing.T, url, key string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("X-Polymur-Key", key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPlainBodiesPrefixAndBadLines(t *testing.T) {
	g := startGateway(t, func(g *Gateway) { g.KeyPrefix = true }, nil)
	url := "http://" + g.addr + "/ingest"
	// plain text, with a malformed line in the middle
	if st, body := post(t, url, "0123456789abcdef0123456789abcdef", []byte("a.b 1 1700000000\nnot a metric line\nc.d;dc=x 2 1700000000\n"), nil); st != 200 {
		t.Fatalf("plain body: %d %q", st, body)
	}
	// Content-Encoding: gzip
	if st, _ := post(t, url, "123", gz(t, "e.f 3 1700000000\n"), map[string]string{"Content-Encoding": "gzip"}); st != 200 {
		t.Fatalf("gzip with header: %d", st)
	}
	// Content-Encoding: gzip but not gzip
	if st, body := post(t, url, "123", []byte("e.f 3 1\n"), map[string]string{"Content-Encoding": "gzip"}); st != 400 || body != "Batch Malformed\n" {
		t.Fatalf("lying Content-Encoding: %d %q", st, body)
	}
	if !g.cap.WaitFor(3, 5*time.Second) {
		t.Fatalf("captured %d", g.cap.Len())
	}
	var lines []string
	for _, m := range g.cap.Metrics {
		lines = append(lines, string(m.Path()))
	}
	if strings.Join(lines, " ") != "team-a.a.b team-a.c.d;dc=x dev.e.f" {
		t.Fatalf("prefixed paths: %q", lines)
	}
	if g.m.Get("parse_errors_total") != 1 {
		t.Fatalf("parse_errors_total = %d", g.m.Get("parse_errors_total"))
	}
}

func TestBounds(t *testing.T) {
	g := startGateway(t, func(g *Gateway) {
		g.MaxBodyBytes = 1 << 20
		g.MaxDecompressedBytes = 4 << 20
	}, nil)
	url := "http://" + g.addr + "/ingest"
	// gzip bomb: 1 GiB of zeros is about 1 MiB compressed; stop at 4 MiB
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for i := 0; i < 64; i++ { // 64 MiB is plenty over the limit
		zw.Write(zero)
	}
	zw.Close()
	if st, body := post(t, url, "123", bomb.Bytes(), nil); st != 413 {
		t.Fatalf("gzip bomb: %d %q", st, body)
	}
	// body over max_body_bytes
	if st, _ := post(t, url, "123", bytes.Repeat([]byte("a 1 1\n"), 400000), nil); st != 413 {
		t.Fatalf("big body: %d", st)
	}
	if g.m.Get("too_large_total") != 2 || g.cap.Len() != 0 {
		t.Fatalf("too_large_total %d, emitted %d", g.m.Get("too_large_total"), g.cap.Len())
	}
}

func TestQueueFullIs503(t *testing.T) {
	g := startGateway(t, func(g *Gateway) { g.EnqueueTimeout = registry.Duration(50 * time.Millisecond) }, failEmitter{})
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/ingest", bytes.NewReader(gz(t, "a 1 1\n")))
	req.Header.Set("X-Polymur-Key", "123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full queue: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if g.m.Get("unavailable_total") != 1 || g.m.Get("batches_total") != 0 {
		t.Fatal("counters")
	}
}

func TestHTTPS(t *testing.T) {
	pki := plugintest.NewTLS(t)
	g := startGateway(t, func(g *Gateway) {
		g.Listen = ""
		g.TLSListen = "127.0.0.1:0"
		g.TLSCert, g.TLSKey = pki.Cert, pki.Key
	}, nil)
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(pki.CA)
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", "https://"+g.addr+"/ping", nil)
	req.Header.Set("X-Polymur-Key", "123")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("https ping: %d %+v", resp.StatusCode, resp.TLS)
	}
	// TLS 1.1 is refused
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Post("https://"+g.addr+"/ping", "", nil); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

func TestClientAddress(t *testing.T) {
	g := registryNew()
	g.Listen = "127.0.0.1:0"
	g.TrustedProxies = []string{"10.0.0.0/8", "127.0.0.1"}
	g.Keystore.Type = "static"
	g.Keystore.DevMode = true
	env, _ := plugintest.Env(t, "x")
	if err := g.Init(env); err != nil {
		t.Fatal(err)
	}
	h := &handler{g: g}
	for _, c := range []struct{ remote, xff, want string }{
		{"127.0.0.1:5000", "", "127.0.0.1:5000"},
		{"127.0.0.1:5000", "203.0.113.7", "203.0.113.7"},
		{"127.0.0.1:5000", "203.0.113.7, 10.1.2.3", "203.0.113.7"},
		{"192.0.2.1:5000", "203.0.113.7", "192.0.2.1:5000"}, // untrusted peer: header ignored
		{"127.0.0.1:5000", "6.6.6.6, 203.0.113.7", "203.0.113.7"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := h.client(r); got != c.want {
			t.Errorf("%s + %q: %q, want %q", c.remote, c.xff, got, c.want)
		}
	}
}

func TestInitErrors(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Gateway)
		want string
	}{
		{func(g *Gateway) { g.Listen = "" }, "listen"},
		{func(g *Gateway) { g.TLSListen = ":0" }, "tls_cert"},
		{func(g *Gateway) { g.TrustedProxies = []string{"nope"} }, "trusted_proxies"},
		{func(g *Gateway) { g.Keystore.Type = "ldap" }, "keystore"},
		{func(g *Gateway) { g.MaxBodyBytes = 0 }, "max_body_bytes"},
		{func(g *Gateway) { g.MaxInflightBytes = 0 }, "max_inflight_bytes"},
		{func(g *Gateway) { g.MaxInflightBytes = 512 << 10 }, "max_inflight_bytes: at least 1048576"},
		{func(g *Gateway) { g.MaxLineLength = 1 << 20; g.MaxInflightBytes = 4 << 20 }, "max_inflight_bytes: at least 8716296"},
		{func(g *Gateway) { g.MaxLineLength = 32 << 20 }, "max_line_length: at most"},
	} {
		g := registryNew()
		g.Listen = ":0"
		g.Keystore.Type = "static"
		g.Keystore.DevMode = true
		c.mod(g)
		env, _ := plugintest.Env(t, "x")
		if err := g.Init(env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v, want %q", err, c.want)
		}
	}
}

// zeroReader is an endless body.
type zeroReader struct{ n *atomic.Int64 }

func (z zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	z.n.Add(int64(len(p)))
	return len(p), nil
}

// TestHostileBodies: a 1 GiB body is cut off at max_body_bytes without the
// gateway reading it all; slowloris headers are dropped after
// read_header_timeout; neither stops another client.
func TestHostileBodies(t *testing.T) {
	g := startGateway(t, func(g *Gateway) {
		g.MaxBodyBytes = 1 << 20
		g.ReadHeaderTimeout = registry.Duration(500 * time.Millisecond)
	}, nil)
	// 1 GiB announced and streamed
	var sentN atomic.Int64
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/ingest", io.LimitReader(zeroReader{&sentN}, 1<<30))
	req.ContentLength = 1 << 30
	req.Header.Set("X-Polymur-Key", "123")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("1 GiB body: %d", resp.StatusCode)
		}
	}
	sent := sentN.Load() // the transport may still be writing: an atomic
	if sent > 64<<20 {
		t.Fatalf("the gateway let the client send %d MiB before refusing", sent>>20)
	}
	t.Logf("1 GiB body refused after %d KiB in %v", sent>>10, time.Since(start).Round(time.Millisecond))
	// slowloris: headers one byte at a time, never finished
	c, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan time.Duration, 1)
	go func() {
		t0 := time.Now()
		for _, b := range []byte("POST /ingest HTTP/1.1\r\nHost: x\r\nX-Polymur-Key: 1") {
			if _, err := c.Write([]byte{b}); err != nil {
				closed <- time.Since(t0)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
		closed <- time.Since(t0)
	}()
	// meanwhile another client is served
	if st, _ := post(t, "http://"+g.addr+"/ingest", "123", gz(t, "ok.metric 1 1700000000\n"), nil); st != 200 {
		t.Fatalf("a good client during slowloris: %d", st)
	}
	select {
	case d := <-closed:
		if d > 5*time.Second {
			t.Fatalf("slowloris connection lived %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slowloris connection was never closed")
	}
}

// FuzzIngest: any body, gzip or not, either is refused (400/413) or parsed;
// never a panic, never a metric with a line break in it (key_prefix
// included), and the metrics are those that framing the whole
// (decompressed) body at once gives.
func FuzzIngest(f *testing.F) {
	f.Add(gz(f, "a.b 1 1700000000\nc.d 2 1700000000"))
	f.Add([]byte("plain 1 1\n\n\r\nbad line\n"))
	f.Add(append(gz(f, "x 1 1\n")[:10], 0xff, 0x00))
	f.Add([]byte{0x1f, 0x8b})
	f.Add(append(gz(f, "one 1 1\ntw"), gz(f, "o 2 2\n"+strings.Repeat("z", 70)+" 3 3\n")...))
	const maxLine = 64
	h, _ := quietHandler(f, func(g *Gateway) {
		g.MaxBodyBytes = 1 << 20
		g.MaxDecompressedBytes = 4 << 20
		g.MaxLineLength = maxLine
	})
	g := h.g
	f.Fuzz(func(t *testing.T, body []byte) {
		r, _ := http.NewRequest("POST", "/ingest", bytes.NewReader(body))
		res := reservation{b: g.budget}
		defer res.release()
		b, lines, err := h.readBatch(r, &res)
		if err != nil {
			return
		}
		for i := range b {
			if bytes.ContainsAny(b[i].Line(), "\n") {
				t.Fatalf("metric with a line break: %q", b[i].Line())
			}
		}
		data := body
		if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return
			}
			if data, err = io.ReadAll(io.LimitReader(zr, 4<<20)); err != nil {
				return // the standard library disagrees on what is valid gzip
			}
		}
		want, wantLines, _, _ := reference(data, maxLine)
		if len(b) != len(want) || lines != wantLines {
			t.Fatalf("%d metrics of %d lines, want %d of %d", len(b), lines, len(want), wantLines)
		}
		for i := range b {
			if string(b[i].Raw()) != want[i] {
				t.Fatalf("metric %d: %q, want %q", i, b[i].Raw(), want[i])
			}
		}
		// key_prefix
		if err := h.prefix(b, "dev", &res); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			if !bytes.HasPrefix(b[i].Path(), []byte("dev.")) || bytes.ContainsAny(b[i].Line(), "\n") {
				t.Fatalf("prefixed metric %q", b[i].Line())
			}
		}
	})
}

// BenchmarkIngestBody: what the gateway does with one Polymur batch of 5000
// gzipped lines before it emits: read, gunzip, frame, copy into the batch's
// arena and parse (ns per line in "ns/line").
func BenchmarkIngestBody(b *testing.B) {
	benchIngest(b, true)
}

// BenchmarkIngestBodyPlain: the same batch sent without compression
// (compression = "none" in outputs.https_batch).
func BenchmarkIngestBodyPlain(b *testing.B) {
	benchIngest(b, false)
}

func benchIngest(b *testing.B, gzipped bool) {
	h, _ := quietHandler(b, nil)
	g := h.g
	var plain bytes.Buffer
	const lines = 5000
	for i := range lines {
		fmt.Fprintf(&plain, "bench.metric.path.%d %d.5 1700000000\n", i*7, i)
	}
	body := plain.Bytes()
	if gzipped {
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, 1)
		zw.Write(plain.Bytes())
		zw.Close()
		body = zb.Bytes()
	}
	b.SetBytes(int64(plain.Len()))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest("POST", "/ingest", bytes.NewReader(body))
		if gzipped {
			r.Header.Set("Content-Encoding", "gzip")
		}
		res := reservation{b: g.budget}
		m, _, err := h.readBatch(r, &res)
		res.release()
		if err != nil {
			b.Fatal(err)
		}
		if len(m) != lines {
			b.Fatalf("%d metrics", len(m))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
