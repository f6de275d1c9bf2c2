package http_json

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	jsonin "github.com/metricsrouter/router/plugins/inputs/http_json"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// newOutput decodes cfg (TOML keys of the plugin) over the defaults, runs
// Init and Connect.
func newOutput(t *testing.T, cfg string) *HTTPJSON {
	t.Helper()
	h := &HTTPJSON{Timeout: registry.Duration(5 * time.Second), MaxBatch: defMaxBatch}
	if _, err := toml.Decode(cfg, h); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "outputs.http_json")
	if err := h.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// recorder is an httptest handler that records requests and answers with
// the statuses given, one per request (the last one repeats).
type recorder struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]map[string]any
	headers  []http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	raw, _ := io.ReadAll(body)
	var arr []map[string]any
	if err := json.Unmarshal(raw, &arr); err != nil {
		http.Error(w, "bad json: "+err.Error(), 400)
		return
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, arr)
	r.headers = append(r.headers, req.Header.Clone())
	status := 200
	if len(r.statuses) > 0 {
		status = r.statuses[0]
		if len(r.statuses) > 1 {
			r.statuses = r.statuses[1:]
		}
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *recorder) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func statsdBatch(t *testing.T, n int) metric.Batch {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = "statsd:m" + strings.Repeat("x", i%3) + ":1|c"
	}
	return plugintest.Batch(t, lines...)
}

// TestEncode: each metric's /batch object, or why it is refused.
func TestEncode(t *testing.T) {
	cases := []struct{ line, want, err string }{
		{"statsd:a.b:1|c", `{"type":"count","key":"a.b","value":1}`, ""},
		{"statsd:a.b:-2.5|c|@0.1|#env:prod,dc:x", `{"type":"count","key":"a.b","value":-2.5,"sampleRate":0.1,"tags":"env=prod,dc=x"}`, ""},
		{"statsd:g:42|g", `{"type":"gauge","key":"g","value":42}`, ""},
		{"statsd:g:+3|g", `{"type":"gauge","key":"g","shift":3}`, ""},
		{"statsd:g:-3.5|g|#a:b", `{"type":"gauge","key":"g","shift":-3.5,"tags":"a=b"}`, ""},
		{"statsd:t:320|ms|@0.5", `{"type":"timing","key":"t","time":320,"sampleRate":0.5}`, ""},
		{"statsd:s:user-7|s", `{"type":"set","key":"s","value":"user-7"}`, ""},
		{"statsd:s:12|s|#k:v", `{"type":"set","key":"s","value":"12","tags":"k=v"}`, ""},
		{"statsd:c:007|c", `{"type":"count","key":"c","value":"007"}`, ""},
		{"statsd:c:1e3|c", `{"type":"count","key":"c","value":1e3}`, ""},
		{"statsd:k\"q:1|c", `{"type":"count","key":"k\"q","value":1}`, ""},
		{"statsd:in,env=prod,dc=x:1|c", `{"type":"count","key":"in","value":1,"tags":"env=prod,dc=x"}`, ""},
		{"graphite:a.b.c 42 1700000000", `{"type":"gauge","key":"a.b.c","value":42}`, ""},
		{"graphite:a.b;env=prod;dc=x 1.5 1700000000", `{"type":"gauge","key":"a.b","value":1.5,"tags":"env=prod,dc=x"}`, ""},
		{"graphite:a.b -1 1700000000", "", "negative Graphite value"},
		{"statsd:h:1|h", "", "type that /batch cannot carry"},
		{"statsd:d:1|d", "", "type that /batch cannot carry"},
		{"statsd:t:-1|ms", "", "value /batch refuses"},
		{"statsd:a/b:1|c", "", "name /batch refuses"},
		{"statsd:g:1|g|@0.5", "", "sample rate"},
		{"statsd:c:1|c|#bare", "", "tags /batch cannot carry"},
		{"statsd:c:1|c|#url:http://x", "", "tags /batch cannot carry"},
		{"statsd:c:1|c|T1700000000", "", "timestamp"},
		{"statsd:c,a=b:1|c|#c:d", "", "tags in the name and DogStatsD tags together"},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			b := plugintest.Batch(t, c.line)
			got, err := appendMetric([]byte("X"), &b[0], true)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				if string(got) != "X" {
					t.Fatalf("refused metric left %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got[1:]) != c.want {
				t.Fatalf("got  %s\nwant %s", got[1:], c.want)
			}
			if !json.Valid(got[1:]) {
				t.Fatal("not valid JSON")
			}
		})
	}
}

// TestThroughInput: what the output sends, the router's own inputs.http_json
// turns back into the same StatsD lines.
func TestThroughInput(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Inputs, "http_json")
	if !ok {
		t.Fatal("inputs.http_json not registered")
	}
	in := p.New().(*jsonin.HTTPJSON)
	in.Listen = "127.0.0.1:0"
	env, _ := plugintest.Env(t, "inputs.http_json")
	if err := in.Init(env); err != nil {
		t.Fatal(err)
	}
	capt := plugintest.NewCapture()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, capt) }()
	t.Cleanup(func() { cancel(); <-done })
	for in.Addr() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	lines := []string{
		"a.c:1|c", "a.c:-2.5|c|@0.1|#env:prod,dc:x", "a.g:42|g", "a.g:+3|g", "a.g:-3.5|g|#a:b",
		"a.t:320|ms|@0.5", "a.t:0.25|ms|#k:v", "a.s:user-7|s", "a.s:12|s|#k:v", "a.c:12.75|c|#x:é",
	}
	in2 := make([]string, len(lines))
	for i, l := range lines {
		in2[i] = "statsd:" + l
	}
	b := plugintest.Batch(t, in2...)
	h := newOutput(t, `url = "http://`+in.Addr().String()+`/batch"`+"\nmax_batch = 3")
	if err := h.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if !capt.WaitFor(len(lines), 5*time.Second) {
		t.Fatalf("got %d metrics", capt.Len())
	}
	got := capt.Snapshot()
	for i := range lines {
		if string(got[i].Line()) != lines[i] {
			t.Errorf("line %d: got %q, want %q", i, got[i].Line(), lines[i])
		}
	}
	if capt.Batches != 4 {
		t.Errorf("%d requests, want 4 (max_batch 3)", capt.Batches)
	}
}

// TestStatuses: 2xx written; 5xx, 429, 408 and network errors retried;
// other 4xx rejected; split batches report partial writes.
func TestStatuses(t *testing.T) {
	cases := []struct {
		name     string
		statuses []int
		n        int
		check    func(t *testing.T, err error)
	}{
		{"ok", []int{204}, 5, func(t *testing.T, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"503", []int{503}, 5, func(t *testing.T, err error) {
			if err == nil || errors.Is(err, registry.ErrRejected) {
				t.Fatalf("err %v, want a retried error", err)
			}
		}},
		{"429", []int{429}, 5, func(t *testing.T, err error) {
			if err == nil || errors.Is(err, registry.ErrRejected) {
				t.Fatalf("err %v, want a retried error", err)
			}
		}},
		{"400", []int{400}, 5, func(t *testing.T, err error) {
			var pr registry.PartlyRejected
			if !errors.As(err, &pr) || pr.Rejected() != 5 || !errors.Is(err, registry.ErrRejected) {
				t.Fatalf("err %v, want 5 rejected", err)
			}
		}},
		{"second request 500", []int{200, 500}, 5, func(t *testing.T, err error) {
			var pw *registry.PartialWriteError
			if !errors.As(err, &pw) || pw.Written != 2 || errors.Is(err, registry.ErrRejected) {
				t.Fatalf("err %v, want 2 written then a retried error", err)
			}
		}},
		{"second request 400, third ok", []int{200, 400, 200}, 5, func(t *testing.T, err error) {
			var pr registry.PartlyRejected
			if !errors.As(err, &pr) || pr.Rejected() != 2 {
				t.Fatalf("err %v, want 2 rejected", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{statuses: c.statuses}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			h := newOutput(t, `url = "`+srv.URL+`/batch"`+"\nmax_batch = 2")
			c.check(t, h.Write(t.Context(), statsdBatch(t, c.n)))
		})
	}
	t.Run("network", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		h := newOutput(t, `url = "`+url+`/batch"`)
		err := h.Write(t.Context(), statsdBatch(t, 3))
		if err == nil || errors.Is(err, registry.ErrRejected) {
			t.Fatalf("err %v, want a retried error", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		rec := &recorder{}
		srv := httptest.NewServer(rec)
		defer srv.Close()
		h := newOutput(t, `url = "`+srv.URL+`/batch"`)
		b := plugintest.Batch(t, "statsd:a:1|h", "statsd:b:1|c", "statsd:c:1|d")
		err := h.Write(t.Context(), b)
		var r *streamout.Refused
		if !errors.As(err, &r) || r.N != 2 {
			t.Fatalf("err %v, want 2 refused", err)
		}
		if rec.requests() != 1 || len(rec.bodies[0]) != 1 || rec.bodies[0][0]["key"] != "b" {
			t.Fatalf("bodies %v", rec.bodies)
		}
		if h.refused.Load() != 2 {
			t.Fatalf("conversion_refused_total %d", h.refused.Load())
		}
		err = h.Write(t.Context(), plugintest.Batch(t, "statsd:a:1|h"))
		if !errors.As(err, &r) || r.N != 1 || rec.requests() != 1 {
			t.Fatalf("all refused: err %v, %d requests", err, rec.requests())
		}
	})
}

// TestHeaders: auth, extra headers, gzip.
func TestHeaders(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte("file-tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, cfg string
		want      map[string]string
	}{
		{"bearer", `bearer_token = "tok"`, map[string]string{"Authorization": "Bearer tok", "Content-Type": "application/json"}},
		{"bearer file", `bearer_token_file = "` + tokFile + `"`, map[string]string{"Authorization": "Bearer file-tok"}},
		{"basic", "[basic_auth]\nusername = \"u\"\npassword = \"p\"", map[string]string{"Authorization": "Basic dTpw"}},
		{"jwt", `jwt_token = "a.b.c"`, map[string]string{"X-Jwt-Token": "a.b.c", "Authorization": ""}},
		{"jwt file", `jwt_token_file = "` + tokFile + `"`, map[string]string{"X-Jwt-Token": "file-tok"}},
		{"headers", `headers = { "X-Router" = "edge-1" }`, map[string]string{"X-Router": "edge-1"}},
		{"gzip", `gzip = true`, map[string]string{"Content-Encoding": "gzip"}},
		{"no gzip", ``, map[string]string{"Content-Encoding": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			h := newOutput(t, `url = "`+srv.URL+`/batch"`+"\n"+c.cfg)
			if err := h.Write(t.Context(), statsdBatch(t, 3)); err != nil {
				t.Fatal(err)
			}
			if rec.requests() != 1 || len(rec.bodies[0]) != 3 {
				t.Fatalf("bodies %v", rec.bodies)
			}
			for k, v := range c.want {
				if got := rec.headers[0].Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestInitErrors(t *testing.T) {
	cases := []struct{ cfg, want string }{
		{`url = "ftp://x/batch"`, "url"},
		{`url = "http://127.0.0.1:8825/batch"` + "\nmax_batch = 0", "max_batch"},
		{`url = "http://127.0.0.1:8825/batch"` + "\nbearer_token = \"a\"\nbearer_token_file = \"b\"", "at most one"},
		{`url = "http://127.0.0.1:8825/batch"` + "\nheaders = { \"Content-Type\" = \"text/plain\" }", "set by the output"},
		{`url = "http://127.0.0.1:8825/batch"` + "\ntls_enable = true", "https"},
		{`url = "https://127.0.0.1:8825/batch"` + "\ntls_ca = \"/nonexistent\"", "tls_ca"},
	}
	for _, c := range cases {
		h := &HTTPJSON{Timeout: registry.Duration(time.Second), MaxBatch: defMaxBatch}
		if _, err := toml.Decode(c.cfg, h); err != nil {
			t.Fatal(err)
		}
		env, _ := plugintest.Env(t, "outputs.http_json")
		plugintest.WantErr(t, c.cfg, h.Init(env), c.want)
	}
}

// TestTLS: https with tls_ca, and a client certificate the server requires.
func TestTLS(t *testing.T) {
	files := plugintest.NewTLS(t)
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	cfg, err := (&registry.TLSServer{TLSCert: files.Cert, TLSKey: files.Key, TLSCA: files.CA}).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer registry.ReleaseTLS(cfg)
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	h := newOutput(t, `url = "`+srv.URL+`/batch"`+"\ntls_ca = \""+files.CA+"\"\ntls_cert = \""+files.ClientCert+"\"\ntls_key = \""+files.ClientKey+"\"")
	if err := h.Write(t.Context(), statsdBatch(t, 3)); err != nil {
		t.Fatal(err)
	}
	if rec.requests() != 1 {
		t.Fatalf("%d requests", rec.requests())
	}
	// without the CA: the system roots do not trust the test CA
	h2 := newOutput(t, `url = "`+srv.URL+`/batch"`)
	if err := h2.Write(t.Context(), statsdBatch(t, 3)); err == nil || errors.Is(err, registry.ErrRejected) {
		t.Fatalf("untrusted server: err %v", err)
	}
}

func TestSample(t *testing.T) {
	h := &HTTPJSON{}
	if err := plugintest.DecodeSample(sample, "outputs", "http_json", h); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "outputs.http_json")
	if err := h.Init(env); err != nil {
		t.Fatal(err)
	}
}
