package http_json

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// server is one running plugin instance on 127.0.0.1:0.
type server struct {
	h    *HTTPJSON
	base string // "http://127.0.0.1:port"
	cap  *plugintest.Capture
	m    *plugintest.Metrics
	stop func() error // cancels Run and waits for it
}

func newPlugin(t testing.TB, configure func(h *HTTPJSON)) (*HTTPJSON, *plugintest.Metrics) {
	t.Helper()
	env, m := plugintest.Env(t, "inputs.http_json")
	return newPluginEnv(t, configure, env), m
}

func newPluginEnv(t testing.TB, configure func(h *HTTPJSON), env registry.Env) *HTTPJSON {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Inputs, "http_json")
	if !ok {
		t.Fatal("http_json is not registered")
	}
	h := p.New().(*HTTPJSON)
	h.Listen = "127.0.0.1:0"
	if configure != nil {
		configure(h)
	}
	if err := h.Init(env); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return h
}

// start runs the plugin with a Capture (or out, if not nil) as its emitter.
func start(t testing.TB, configure func(h *HTTPJSON)) *server {
	return startWith(t, configure, nil)
}

func startWith(t testing.TB, configure func(h *HTTPJSON), out registry.Emitter) *server {
	t.Helper()
	env, m := plugintest.Env(t, "inputs.http_json")
	return startEnv(t, configure, out, env, m)
}

// startEnv runs the plugin with env (m: env's Metrics).
func startEnv(t testing.TB, configure func(h *HTTPJSON), out registry.Emitter, env registry.Env, m *plugintest.Metrics) *server {
	t.Helper()
	h := newPluginEnv(t, configure, env)
	c := plugintest.NewCapture()
	if out == nil {
		out = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, out) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for h.Addr() == nil {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("plugin did not listen within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	scheme := "http://"
	if h.TLSCert != "" {
		scheme = "https://"
	}
	return &server{h: h, base: scheme + h.Addr().String(), cap: c, m: m, stop: stop}
}

type req struct {
	method, path, ctype, body string
	header                    map[string]string
}

type resp struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, client *http.Client, base string, r req) resp {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	res, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, r.path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

const (
	form  = "application/x-www-form-urlencoded"
	jsonT = "application/json"
)

// lines returns the captured metrics as the lines an output writes.
func lines(c *plugintest.Capture) []string {
	return c.Raw()
}

// errField decodes a JSON error body and returns its field (and index, -1 if none).
func errField(t testing.TB, body string) (string, int) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
		Index *int   `json:"index"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\":...}: %v", body, err)
	}
	if e.Index == nil {
		return e.Field, -1
	}
	return e.Field, *e.Index
}

type routeCase struct {
	name      string
	r         req
	status    int
	want      []string // lines emitted (nil: nothing)
	wantField string   // for 4xx JSON errors
	wantBody  string   // exact body, if set
}

func runCases(t *testing.T, s *server, cases []routeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.cap.Len()
			got := do(t, nil, s.base, c.r)
			if got.status != c.status {
				t.Fatalf("status %d, want %d (body %q)", got.status, c.status, got.body)
			}
			if c.wantBody != "" && got.body != c.wantBody {
				t.Errorf("body %q, want %q", got.body, c.wantBody)
			}
			if c.wantField != "" {
				if f, _ := errField(t, got.body); f != c.wantField {
					t.Errorf("error field %q, want %q (body %s)", f, c.wantField, got.body)
				}
			}
			all := lines(s.cap)
			if emitted := all[before:]; !slices.Equal(emitted, c.want) {
				t.Errorf("emitted %q, want %q", emitted, c.want)
			}
		})
	}
}

// TestRoutes: every route, parameter and error of the single-metric routes,
// form and JSON, with exact statuses; invalid input emits nothing.
func TestRoutes(t *testing.T) {
	s := start(t, nil)
	cases := []routeCase{
		{"heartbeat", req{method: "GET", path: "/heartbeat"}, 200, nil, "", "OK"},
		{"heartbeat HEAD", req{method: "HEAD", path: "/heartbeat"}, 200, nil, "", ""},
		{"heartbeat POST", req{path: "/heartbeat"}, 405, nil, "method", ""},
		{"count no body", req{path: "/count/k"}, 200, []string{"k:1|c"}, "", ""},
		{"count value", req{path: "/count/k", ctype: form, body: "value=5"}, 200, []string{"k:5|c"}, "", ""},
		{"count rate", req{path: "/count/k", ctype: form, body: "value=5&sampleRate=0.1"}, 200, []string{"k:5|c|@0.1"}, "", ""},
		{"count rate 1 has no suffix", req{path: "/count/k", ctype: form, body: "value=5&sampleRate=1"}, 200, []string{"k:5|c"}, "", ""},
		{"count rate exponent", req{path: "/count/k", ctype: form, body: "sampleRate=1e-3"}, 200, []string{"k:1|c|@0.001"}, "", ""},
		{"count negative", req{path: "/count/k", ctype: form, body: "value=-3"}, 200, []string{"k:-3|c"}, "", ""},
		{"count exponent expanded", req{path: "/count/k", ctype: form, body: "value=1e3"}, 200, []string{"k:1000|c"}, "", ""},
		{"count plus sign dropped", req{path: "/count/k", ctype: form, body: "value=%2B4"}, 200, []string{"k:4|c"}, "", ""},
		{"count float", req{path: "/count/k", ctype: form, body: "value=2.5"}, 200, []string{"k:2.5|c"}, "", ""},
		{"count empty value is default", req{path: "/count/k", ctype: form, body: "value="}, 200, []string{"k:1|c"}, "", ""},
		{"count first value wins", req{path: "/count/k", ctype: form, body: "value=2&value=3"}, 200, []string{"k:2|c"}, "", ""},
		{"count unknown form field ignored", req{path: "/count/k", ctype: form, body: "foo=bar&value=2"}, 200, []string{"k:2|c"}, "", ""},
		{"count form charset param", req{path: "/count/k", ctype: form + "; charset=UTF-8", body: "value=2"}, 200, []string{"k:2|c"}, "", ""},
		{"count bad value", req{path: "/count/k", ctype: form, body: "value=abc"}, 400, nil, "value", ""},
		{"count NaN", req{path: "/count/k", ctype: form, body: "value=NaN"}, 400, nil, "value", ""},
		{"count Inf", req{path: "/count/k", ctype: form, body: "value=Inf"}, 400, nil, "value", ""},
		{"count hex", req{path: "/count/k", ctype: form, body: "value=0x10"}, 400, nil, "value", ""},
		{"count overflow", req{path: "/count/k", ctype: form, body: "value=1e400"}, 400, nil, "value", ""},
		{"count newline in value", req{path: "/count/k", ctype: form, body: "value=1%0Ax:1|c"}, 400, nil, "value", ""},
		{"count bad rate", req{path: "/count/k", ctype: form, body: "sampleRate=x"}, 400, nil, "sampleRate", ""},
		{"count rate above 1", req{path: "/count/k", ctype: form, body: "sampleRate=2"}, 400, nil, "sampleRate", ""},
		{"count rate 0", req{path: "/count/k", ctype: form, body: "sampleRate=0"}, 400, nil, "sampleRate", ""},
		{"count bad form escape", req{path: "/count/k", ctype: form, body: "value=%zz"}, 400, nil, "value", ""},
		{"gauge value", req{path: "/gauge/k", ctype: form, body: "value=7"}, 200, []string{"k:7|g"}, "", ""},
		{"gauge default", req{path: "/gauge/k"}, 200, []string{"k:1|g"}, "", ""},
		{"gauge plus value is not a delta", req{path: "/gauge/k", ctype: form, body: "value=%2B7"}, 200, []string{"k:7|g"}, "", ""},
		{"gauge shift up", req{path: "/gauge/k", ctype: form, body: "shift=5"}, 200, []string{"k:+5|g"}, "", ""},
		{"gauge shift down", req{path: "/gauge/k", ctype: form, body: "shift=-5"}, 200, []string{"k:-5|g"}, "", ""},
		{"gauge shift zero", req{path: "/gauge/k", ctype: form, body: "shift=0"}, 200, []string{"k:+0|g"}, "", ""},
		{"gauge shift wins over value", req{path: "/gauge/k", ctype: form, body: "value=9&shift=2"}, 200, []string{"k:+2|g"}, "", ""},
		{"gauge bad shift", req{path: "/gauge/k", ctype: form, body: "shift=up"}, 400, nil, "shift", ""},
		{"gauge bad value", req{path: "/gauge/k", ctype: form, body: "value=x"}, 400, nil, "value", ""},
		{"gauge rate ignored", req{path: "/gauge/k", ctype: form, body: "value=3&sampleRate=0.5"}, 200, []string{"k:3|g"}, "", ""},
		{"timing", req{path: "/timing/k", ctype: form, body: "time=120"}, 200, []string{"k:120|ms"}, "", ""},
		{"timing rate", req{path: "/timing/k", ctype: form, body: "time=120&sampleRate=0.5"}, 200, []string{"k:120|ms|@0.5"}, "", ""},
		{"timing float", req{path: "/timing/k", ctype: form, body: "time=1.5"}, 200, []string{"k:1.5|ms"}, "", ""},
		{"timing value alias", req{path: "/timing/k", ctype: form, body: "value=8"}, 200, []string{"k:8|ms"}, "", ""},
		{"timing missing", req{path: "/timing/k"}, 400, nil, "time", ""},
		{"timing negative", req{path: "/timing/k", ctype: form, body: "time=-1"}, 400, nil, "time", ""},
		{"timing bad", req{path: "/timing/k", ctype: form, body: "time=soon"}, 400, nil, "time", ""},
		{"set", req{path: "/set/k", ctype: form, body: "value=user42"}, 200, []string{"k:user42|s"}, "", ""},
		{"set default", req{path: "/set/k"}, 200, []string{"k:1|s"}, "", ""},
		{"set member with space", req{path: "/set/k", ctype: form, body: "value=a+b"}, 400, nil, "value", ""},
		{"set member with bar", req{path: "/set/k", ctype: form, body: "value=a%7Cb"}, 400, nil, "value", ""},
		{"set member with colon", req{path: "/set/k", ctype: form, body: "value=a:b"}, 400, nil, "value", ""},
		{"tags dogstatsd", req{path: "/count/k", ctype: form, body: "value=2&tags=env%3Dprod%2Clocale%3Den-us"}, 200, []string{"k:2|c|#env:prod,locale:en-us"}, "", ""},
		{"tags after rate", req{path: "/timing/k", ctype: form, body: "time=3&sampleRate=0.5&tags=a%3Db"}, 200, []string{"k:3|ms|@0.5|#a:b"}, "", ""},
		{"tags bare", req{path: "/count/k", ctype: form, body: "tags=env"}, 400, nil, "tags", ""},
		{"tags empty pair", req{path: "/count/k", ctype: form, body: "tags=a%3Db%2C%2Cc%3Dd"}, 400, nil, "tags", ""},
		{"tags trailing comma", req{path: "/count/k", ctype: form, body: "tags=a%3Db%2C"}, 400, nil, "tags", ""},
		{"tags colon", req{path: "/count/k", ctype: form, body: "tags=a%3Db:c"}, 400, nil, "tags", ""},
		{"tags bar", req{path: "/count/k", ctype: form, body: "tags=a%3Db%7Cc"}, 400, nil, "tags", ""},
		{"tags newline", req{path: "/count/k", ctype: form, body: "tags=a%3Db%0Ac"}, 400, nil, "tags", ""},
		{"tags double equals", req{path: "/count/k", ctype: form, body: "tags=a%3Db%3Dc"}, 400, nil, "tags", ""},
		{"json count", req{path: "/count/k", ctype: jsonT, body: `{"value":3}`}, 200, []string{"k:3|c"}, "", ""},
		{"json charset", req{path: "/count/k", ctype: "Application/JSON; charset=utf-8", body: `{"value":3}`}, 200, []string{"k:3|c"}, "", ""},
		{"json string value", req{path: "/count/k", ctype: jsonT, body: `{"value":"3"}`}, 200, []string{"k:3|c"}, "", ""},
		{"json null value is default", req{path: "/count/k", ctype: jsonT, body: `{"value":null}`}, 200, []string{"k:1|c"}, "", ""},
		{"json empty object", req{path: "/count/k", ctype: jsonT, body: `{}`}, 200, []string{"k:1|c"}, "", ""},
		{"json exponent", req{path: "/count/k", ctype: jsonT, body: `{"value":2.5e2}`}, 200, []string{"k:250|c"}, "", ""},
		{"json rate and tags", req{path: "/count/k", ctype: jsonT, body: `{"value":2,"sampleRate":0.25,"tags":"env=prod,locale=en-us"}`}, 200, []string{"k:2|c|@0.25|#env:prod,locale:en-us"}, "", ""},
		{"json gauge shift", req{path: "/gauge/k", ctype: jsonT, body: `{"shift":-2}`}, 200, []string{"k:-2|g"}, "", ""},
		{"json timing time", req{path: "/timing/k", ctype: jsonT, body: `{"time":5}`}, 200, []string{"k:5|ms"}, "", ""},
		{"json timing value", req{path: "/timing/k", ctype: jsonT, body: `{"value":6}`}, 200, []string{"k:6|ms"}, "", ""},
		{"json set string", req{path: "/set/k", ctype: jsonT, body: `{"value":"u1"}`}, 200, []string{"k:u1|s"}, "", ""},
		{"json bool value", req{path: "/count/k", ctype: jsonT, body: `{"value":true}`}, 400, nil, "value", ""},
		{"json object value", req{path: "/count/k", ctype: jsonT, body: `{"value":{}}`}, 400, nil, "value", ""},
		{"json number tags", req{path: "/count/k", ctype: jsonT, body: `{"tags":5}`}, 400, nil, "tags", ""},
		{"json unknown field", req{path: "/count/k", ctype: jsonT, body: `{"value":1,"bogus":2}`}, 400, nil, "bogus", ""},
		{"json key in body", req{path: "/count/k", ctype: jsonT, body: `{"key":"other"}`}, 400, nil, "key", ""},
		{"json invalid", req{path: "/count/k", ctype: jsonT, body: `{"value":`}, 400, nil, "body", ""},
		{"json trailing data", req{path: "/count/k", ctype: jsonT, body: `{"value":1} {"value":2}`}, 400, nil, "body", ""},
		{"json array", req{path: "/count/k", ctype: jsonT, body: `[{"value":1}]`}, 400, nil, "body", ""},
		{"json newline in string value", req{path: "/set/k", ctype: jsonT, body: `{"value":"a\nb:1|c"}`}, 400, nil, "value", ""},
		{"text/plain body", req{path: "/count/k", ctype: "text/plain", body: "value=1"}, 415, nil, "Content-Type", ""},
		{"empty key", req{path: "/count/"}, 400, nil, "key", ""},
		{"key with colon", req{path: "/count/a:b"}, 400, nil, "key", ""},
		{"key with bar", req{path: "/count/a%7Cb"}, 400, nil, "key", ""},
		{"key with slash", req{path: "/count/a%2Fb"}, 400, nil, "key", ""},
		{"key with two segments", req{path: "/count/a/b"}, 400, nil, "key", ""},
		{"key with space", req{path: "/count/a%20b"}, 400, nil, "key", ""},
		{"key with newline", req{path: "/count/a%0Ab:1%7Cc"}, 400, nil, "key", ""},
		{"key with comma", req{path: "/count/a,b=c"}, 400, nil, "key", ""},
		{"key bad utf8", req{path: "/count/a%FF"}, 400, nil, "key", ""},
		{"key utf8", req{path: "/count/caf%C3%A9.v%C3%A4lue"}, 200, []string{"café.välue:1|c"}, "", ""},
		{"key with dashes and dots", req{path: "/count/web.page-load_ms"}, 200, []string{"web.page-load_ms:1|c"}, "", ""},
		{"unknown type", req{path: "/histogram/k"}, 404, nil, "type", ""},
		{"type without key", req{path: "/count"}, 404, nil, "type", ""},
		{"root", req{method: "GET", path: "/"}, 404, nil, "type", ""},
		{"GET count", req{method: "GET", path: "/count/k"}, 405, nil, "method", ""},
		{"PUT count", req{method: "PUT", path: "/count/k"}, 405, nil, "method", ""},
		{"GET batch", req{method: "GET", path: "/batch"}, 405, nil, "method", ""},
	}
	runCases(t, s, cases)
	if got := s.m.Get("requests_count_total"); got == 0 {
		t.Error("requests_count_total not counted")
	}
	if got, want := s.m.Get("errors_timing_total"), uint64(3); got != want {
		t.Errorf("errors_timing_total = %d, want %d", got, want)
	}
	if got := s.m.Get("requests_other_total"); got != 3 {
		t.Errorf("requests_other_total = %d, want 3", got)
	}
	if got := s.m.Get("requests_heartbeat_total"); got != 3 {
		t.Errorf("requests_heartbeat_total = %d, want 3", got)
	}
}

// TestMethodNotAllowedHeader: 405 says what is allowed.
func TestMethodNotAllowedHeader(t *testing.T) {
	s := start(t, nil)
	if got := do(t, nil, s.base, req{method: "GET", path: "/count/k"}); got.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("Allow = %q", got.header.Get("Allow"))
	}
	if got := do(t, nil, s.base, req{method: "DELETE", path: "/heartbeat"}); got.header.Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("Allow = %q", got.header.Get("Allow"))
	}
}

// TestMultipart: multipart/form-data bodies are read like the original's
// PostFormValue.
func TestMultipart(t *testing.T) {
	s := start(t, nil)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("time", "42")
	mw.WriteField("sampleRate", "0.5")
	mw.Close()
	got := do(t, nil, s.base, req{path: "/timing/k", ctype: mw.FormDataContentType(), body: body.String()})
	if got.status != 200 {
		t.Fatalf("status %d: %s", got.status, got.body)
	}
	if l := lines(s.cap); !slices.Equal(l, []string{"k:42|ms|@0.5"}) {
		t.Errorf("emitted %q", l)
	}
	got = do(t, nil, s.base, req{path: "/timing/k", ctype: "multipart/form-data; boundary=x", body: "garbage"})
	if got.status != 400 {
		t.Errorf("bad multipart: status %d", got.status)
	}
}

// TestPrefixAndInflux: metric_prefix gets its '.', and tag_format = "influx"
// puts tags in the key.
func TestPrefixAndInflux(t *testing.T) {
	for _, prefix := range []string{"app", "app."} {
		s := start(t, func(h *HTTPJSON) { h.MetricPrefix = prefix; h.TagFormat = "influx" })
		runCases(t, s, []routeCase{
			{"prefix " + prefix, req{path: "/count/k"}, 200, []string{"app.k:1|c"}, "", ""},
			{"influx tags " + prefix, req{path: "/timing/k", ctype: jsonT, body: `{"time":3,"sampleRate":0.5,"tags":"env=prod,dc=ams"}`}, 200,
				[]string{"app.k,env=prod,dc=ams:3|ms|@0.5"}, "", ""},
			{"influx bad tags " + prefix, req{path: "/count/k", ctype: jsonT, body: `{"tags":"env=prod,dc"}`}, 400, nil, "tags", ""},
		})
		// the emitted metric keeps Influx tags in its path, as the codec parses them
		m := s.cap.Metrics[1]
		if string(m.Name()) != "app.k" || string(m.PathTags()) != ",env=prod,dc=ams" {
			t.Errorf("name %q path tags %q", m.Name(), m.PathTags())
		}
	}
}

// TestBatch: one request, many metrics, one Emit; one bad entry rejects the
// whole request.
func TestBatch(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.MaxBatch = 3; h.MetricPrefix = "p" })
	body := `[
		{"type":"count","key":"a","value":2,"sampleRate":0.5,"tags":"x=1"},
		{"type":"gauge","key":"b","shift":-3},
		{"type":"timing","key":"c","time":12.5}
	]`
	got := do(t, nil, s.base, req{path: "/batch", ctype: jsonT, body: body})
	if got.status != 200 || got.body != "" {
		t.Fatalf("status %d body %q", got.status, got.body)
	}
	want := []string{"p.a:2|c|@0.5|#x:1", "p.b:-3|g", "p.c:12.5|ms"}
	if l := lines(s.cap); !slices.Equal(l, want) {
		t.Fatalf("emitted %q, want %q", l, want)
	}
	if s.cap.Batches != 1 {
		t.Fatalf("%d Emit calls, want 1", s.cap.Batches)
	}
	bad := []struct {
		name, body string
		status     int
		field      string
		index      int
	}{
		{"bad value in the middle", `[{"type":"count","key":"a"},{"type":"count","key":"b","value":"x"},{"type":"set","key":"c","value":"u"}]`, 400, "value", 1},
		{"unknown type", `[{"type":"count","key":"a"},{"type":"histogram","key":"b"}]`, 400, "type", 1},
		{"missing type", `[{"key":"a"}]`, 400, "type", 0},
		{"missing key", `[{"type":"count"}]`, 400, "key", 0},
		{"bad key", `[{"type":"count","key":"a\nb"}]`, 400, "key", 0},
		{"numeric key", `[{"type":"count","key":5}]`, 400, "key", 0},
		{"unknown field", `[{"type":"count","key":"a","vaule":1}]`, 400, "vaule", 0},
		{"not an object", `[{"type":"count","key":"a"},3]`, 400, "body", 1},
		{"object instead of array", `{"type":"count","key":"a"}`, 400, "body", -1},
		{"invalid JSON", `[{"type":"count",`, 400, "body", -1},
		{"too many", `[{"type":"count","key":"a"},{"type":"count","key":"a"},{"type":"count","key":"a"},{"type":"count","key":"a"}]`, 413, "body", -1},
		{"bad tags", `[{"type":"count","key":"a","tags":"a=b|c"}]`, 400, "tags", 0},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			before := s.cap.Len()
			got := do(t, nil, s.base, req{path: "/batch", ctype: jsonT, body: c.body})
			if got.status != c.status {
				t.Fatalf("status %d, want %d: %s", got.status, c.status, got.body)
			}
			f, i := errField(t, got.body)
			if f != c.field || i != c.index {
				t.Errorf("field %q index %d, want %q %d (%s)", f, i, c.field, c.index, got.body)
			}
			if s.cap.Len() != before {
				t.Errorf("emitted %d metrics for a bad batch", s.cap.Len()-before)
			}
		})
	}
	t.Run("form body", func(t *testing.T) {
		if got := do(t, nil, s.base, req{path: "/batch", ctype: form, body: "value=1"}); got.status != 415 {
			t.Errorf("status %d, want 415", got.status)
		}
	})
	t.Run("empty array", func(t *testing.T) {
		before := s.cap.Batches
		if got := do(t, nil, s.base, req{path: "/batch", ctype: jsonT, body: "[]"}); got.status != 200 {
			t.Errorf("status %d, want 200", got.status)
		}
		if s.cap.Batches != before {
			t.Error("an empty batch was emitted")
		}
	})
}

// TestBodyLimit: bodies over max_body_bytes get 413 whether or not they
// announce their length (HTTP/2 need not); a chunked body (HTTP/1.1
// without Content-Length) is refused whatever its size.
func TestBodyLimit(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.MaxBodyBytes = 64 })
	big := `{"value":1,"tags":"` + strings.Repeat("a=b,", 20) + `c=d"}`
	if got := do(t, nil, s.base, req{path: "/count/k", ctype: jsonT, body: big}); got.status != 413 {
		t.Fatalf("with Content-Length: status %d, want 413", got.status)
	}
	// chunked: no Content-Length
	hr, _ := http.NewRequest("POST", s.base+"/count/k", io.MultiReader(strings.NewReader(big)))
	hr.Header.Set("Content-Type", jsonT)
	hr.ContentLength = -1
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 || s.m.Get("framing_refused_total") != 1 {
		t.Fatalf("chunked: status %d, want 400; framing_refused_total %d", res.StatusCode, s.m.Get("framing_refused_total"))
	}
	// HTTP/2 without Content-Length: read up to the limit, then 413
	certPath, keyPath, pool := tlsFiles(t)
	h2 := start(t, func(h *HTTPJSON) { h.MaxBodyBytes = 64; h.TLSCert, h.TLSKey = certPath, keyPath })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	for _, c := range []struct {
		body string
		want int
	}{{big, 413}, {`{"value":2}`, 200}} {
		hr, _ = http.NewRequest("POST", h2.base+"/count/k", io.MultiReader(strings.NewReader(c.body)))
		hr.Header.Set("Content-Type", jsonT)
		hr.ContentLength = -1
		res, err = (&http.Client{Transport: tr}).Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != c.want {
			t.Fatalf("HTTP/2 without length, %d bytes: %s %d, want %d", len(c.body), res.Proto, res.StatusCode, c.want)
		}
	}
	if h2.m.Get("body_too_large_total") != 1 || !slices.Equal(h2.cap.Raw(), []string{"k:2|c"}) {
		t.Errorf("HTTP/2: body_too_large_total %d, emitted %q", h2.m.Get("body_too_large_total"), h2.cap.Raw())
	}
	// exactly at the limit passes
	ok := `{"value":1,"tags":"` + strings.Repeat("a", 64-len(`{"value":1,"tags":"=b"}`)) + `=b"}`
	if len(ok) != 64 {
		t.Fatalf("test body is %d bytes", len(ok))
	}
	if got := do(t, nil, s.base, req{path: "/count/k", ctype: jsonT, body: ok}); got.status != 200 {
		t.Fatalf("body at the limit: status %d %s", got.status, got.body)
	}
	if s.cap.Len() != 1 || s.m.Get("body_too_large_total") != 1 {
		t.Errorf("emitted %d, body_too_large_total %d", s.cap.Len(), s.m.Get("body_too_large_total"))
	}
}

// TestCORS: Origin echoed (+ Vary) on answers and errors; preflight 204
// with the original's headers; allowed_origins restricts.
func TestCORS(t *testing.T) {
	t.Run("echo any origin", func(t *testing.T) {
		s := start(t, nil)
		got := do(t, nil, s.base, req{path: "/count/k", header: map[string]string{"Origin": "http://app.example"}})
		if got.status != 200 || got.header.Get("Access-Control-Allow-Origin") != "http://app.example" || got.header.Get("Vary") != "Origin" {
			t.Fatalf("status %d headers %v", got.status, got.header)
		}
		got = do(t, nil, s.base, req{method: "OPTIONS", path: "/count/k", header: map[string]string{
			"Origin": "http://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-jwt-token, content-type"}})
		want := map[string]string{
			"Access-Control-Allow-Origin":  "http://app.example",
			"Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
			"Access-Control-Allow-Headers": "X-JWT-Token, X-Requested-With, Origin, Accept, Content-Type, Authentication",
			"Vary":                         "Origin",
		}
		if got.status != 204 {
			t.Fatalf("preflight status %d", got.status)
		}
		for k, v := range want {
			if got.header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, got.header.Get(k), v)
			}
		}
		got = do(t, nil, s.base, req{path: "/count/k", ctype: form, body: "value=x", header: map[string]string{"Origin": "http://app.example"}})
		if got.status != 400 || got.header.Get("Access-Control-Allow-Origin") != "http://app.example" {
			t.Errorf("error answer lacks CORS: %d %v", got.status, got.header)
		}
		got = do(t, nil, s.base, req{path: "/count/k"})
		if got.header.Get("Access-Control-Allow-Origin") != "" {
			t.Error("CORS header without an Origin")
		}
		if s.cap.Len() != 2 {
			t.Errorf("emitted %d, want 2", s.cap.Len())
		}
	})
	t.Run("allowed_origins", func(t *testing.T) {
		s := start(t, func(h *HTTPJSON) { h.AllowedOrigins = []string{"https://App.example", "http://127.0.0.1:3000/"} })
		for _, o := range []string{"https://app.example", "http://127.0.0.1:3000"} {
			got := do(t, nil, s.base, req{path: "/count/k", header: map[string]string{"Origin": o}})
			if got.status != 200 || got.header.Get("Access-Control-Allow-Origin") != o {
				t.Errorf("origin %s: %d %v", o, got.status, got.header)
			}
		}
		for _, method := range []string{"POST", "OPTIONS"} {
			got := do(t, nil, s.base, req{method: method, path: "/count/k", header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}})
			if got.status != 403 || got.header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s from a foreign origin: %d %v", method, got.status, got.header)
			}
		}
		if s.cap.Len() != 2 {
			t.Errorf("emitted %d, want 2", s.cap.Len())
		}
	})
}

// failEmitter fails every Emit, or blocks until ctx ends when block is set.
type failEmitter struct{ block bool }

func (f failEmitter) Emit(ctx context.Context, _ metric.Batch) error {
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return registry.ErrStopped
}

// TestEmitFailure: a full (blocking) or stopping pipeline answers 503 with
// Retry-After, in time.
func TestEmitFailure(t *testing.T) {
	for _, block := range []bool{false, true} {
		s := startWith(t, func(h *HTTPJSON) { h.WriteTimeout = registry.Duration(300 * time.Millisecond) }, failEmitter{block: block})
		t0 := time.Now()
		got := do(t, nil, s.base, req{path: "/count/k", header: map[string]string{"Origin": "http://a.example"}})
		if got.status != 503 || got.header.Get("Retry-After") != "1" || got.header.Get("Access-Control-Expose-Headers") != "Retry-After" {
			t.Fatalf("block=%v: status %d headers %v", block, got.status, got.header)
		}
		if el := time.Since(t0); el > 2*time.Second {
			t.Errorf("503 took %v", el)
		}
		if s.m.Get("emit_failures_total") != 1 || s.m.Get("errors_count_total") != 1 {
			t.Errorf("emit_failures_total %d errors_count_total %d", s.m.Get("emit_failures_total"), s.m.Get("errors_count_total"))
		}
	}
}

// blockEmitter blocks every Emit until release is closed.
type blockEmitter struct {
	entered chan struct{}
	release chan struct{}
	c       *plugintest.Capture
}

func (b *blockEmitter) Emit(ctx context.Context, m metric.Batch) error {
	b.entered <- struct{}{}
	<-b.release
	return b.c.Emit(ctx, m)
}

// TestGracefulShutdown: cancelling Run lets an in-flight request finish
// (200, emitted) before Run returns; nothing is emitted after.
func TestGracefulShutdown(t *testing.T) {
	be := &blockEmitter{entered: make(chan struct{}, 1), release: make(chan struct{}), c: plugintest.NewCapture()}
	s := startWith(t, func(h *HTTPJSON) { h.WriteTimeout = registry.Duration(10 * time.Second) }, be)
	status := make(chan int, 1)
	go func() {
		res, err := http.Post(s.base+"/count/inflight", "", nil)
		if err != nil {
			status <- -1
			return
		}
		res.Body.Close()
		status <- res.StatusCode
	}()
	<-be.entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a request was emitting")
	case <-time.After(200 * time.Millisecond):
	}
	close(be.release)
	if code := <-status; code != 200 {
		t.Fatalf("in-flight request got %d", code)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if l := be.c.Raw(); !slices.Equal(l, []string{"inflight:1|c"}) {
		t.Errorf("emitted %q", l)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), time.Second); err == nil {
		t.Error("still listening after Run returned")
	}
}

// TestKeepAlive: many requests reuse one HTTP/1.1 connection.
func TestKeepAlive(t *testing.T) {
	s := start(t, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	reused := 0
	for i := 0; i < 20; i++ {
		hr, _ := http.NewRequest("POST", s.base+"/count/k", strings.NewReader("value=1"))
		hr.Header.Set("Content-Type", form)
		hr = hr.WithContext(httptrace.WithClientTrace(hr.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			},
		}))
		res, err := client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.ProtoMajor != 1 || res.ProtoMinor != 1 {
			t.Fatalf("status %d proto %s", res.StatusCode, res.Proto)
		}
	}
	if reused != 19 {
		t.Errorf("%d of 19 requests reused the connection", reused)
	}
}

// TestSlowloris: a client that never finishes its headers is cut after
// read_timeout (ReadHeaderTimeout), and a body that never arrives too.
func TestSlowloris(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.ReadTimeout = registry.Duration(300 * time.Millisecond) })
	addr := strings.TrimPrefix(s.base, "http://")
	for _, c := range []struct{ name, send string }{
		{"headers", "POST /count/k HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"body", "POST /count/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nvalue="},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t0 := time.Now()
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(conn) // until the server closes
			el := time.Since(t0)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("server kept the connection open for 5s")
				}
			}
			if el < 250*time.Millisecond || el > 3*time.Second {
				t.Errorf("connection closed after %v, want about 300ms", el)
			}
			if strings.HasPrefix(string(rest), "HTTP/1.1 200") {
				t.Errorf("answered %q", rest)
			}
		})
	}
	if s.cap.Len() != 0 {
		t.Errorf("emitted %d metrics", s.cap.Len())
	}
}

// TestHeaderLimit: oversized request headers are refused (431).
func TestHeaderLimit(t *testing.T) {
	s := start(t, nil)
	got := do(t, nil, s.base, req{path: "/count/k", header: map[string]string{"X-Big": strings.Repeat("a", 20<<10)}})
	if got.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", got.status)
	}
}

// TestInitErrors: bad configurations fail Init with the key named.
func TestInitErrors(t *testing.T) {
	cases := []struct {
		name string
		set  func(h *HTTPJSON)
		want string
	}{
		{"listen", func(h *HTTPJSON) { h.Listen = "8825" }, "listen"},
		{"tag_format", func(h *HTTPJSON) { h.TagFormat = "graphite" }, "tag_format"},
		{"metric_prefix", func(h *HTTPJSON) { h.MetricPrefix = "a b" }, "metric_prefix"},
		{"tls half", func(h *HTTPJSON) { h.TLSCert = "cert.pem" }, "tls_cert"},
		{"aud without key", func(h *HTTPJSON) { h.JWTAudience = "x" }, "jwt_audience"},
		{"body", func(h *HTTPJSON) { h.MaxBodyBytes = 0 }, "max_body_bytes"},
		{"inflight below body", func(h *HTTPJSON) { h.MaxInflightBytes = h.MaxBodyBytes - 1 }, "max_inflight_bytes"},
		{"inflight zero", func(h *HTTPJSON) { h.MaxInflightBytes = 0 }, "max_inflight_bytes"},
		{"batch", func(h *HTTPJSON) { h.MaxBatch = 0 }, "max_batch"},
		{"timeout", func(h *HTTPJSON) { h.ReadTimeout = -1 }, "read_timeout"},
		{"origin path", func(h *HTTPJSON) { h.AllowedOrigins = []string{"https://a.example/app"} }, "allowed_origins"},
		{"origin scheme", func(h *HTTPJSON) { h.AllowedOrigins = []string{"a.example"} }, "allowed_origins"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := registry.Default.Lookup(registry.Inputs, "http_json")
			h := p.New().(*HTTPJSON)
			c.set(h)
			env, _ := plugintest.Env(t, "inputs.http_json")
			err := h.Init(env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Init error %v, want one naming %s", err, c.want)
			}
		})
	}
}

// TestRunErrors: files named in the config are read when Run starts.
func TestRunErrors(t *testing.T) {
	cases := []struct {
		name string
		set  func(h *HTTPJSON)
		want string
	}{
		{"public key missing", func(h *HTTPJSON) { h.JWTPublicKey = "/nonexistent/key.pem" }, "jwt_public_key"},
		{"cert missing", func(h *HTTPJSON) { h.TLSCert, h.TLSKey = "/nonexistent/c.pem", "/nonexistent/k.pem" }, "tls_cert"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, _ := newPlugin(t, c.set)
			err := h.Run(t.Context(), plugintest.NewCapture())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run error %v, want one naming %s", err, c.want)
			}
		})
	}
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		h, _ := newPlugin(t, func(h *HTTPJSON) { h.Listen = ln.Addr().String() })
		if err := h.Run(t.Context(), plugintest.NewCapture()); err == nil {
			t.Fatal("Run on a used address returned nil")
		}
	})
}

// TestSample: sample.toml decodes strictly and its values are the defaults.
func TestSample(t *testing.T) {
	var h HTTPJSON
	if err := plugintest.DecodeSample(sample, "inputs", "http_json", &h); err != nil {
		t.Fatal(err)
	}
	p, _ := registry.Default.Lookup(registry.Inputs, "http_json")
	def := p.New().(*HTTPJSON)
	if h.Listen != def.Listen || h.TagFormat != def.TagFormat || h.ReadTimeout != def.ReadTimeout ||
		h.WriteTimeout != def.WriteTimeout || h.IdleTimeout != def.IdleTimeout ||
		h.MaxBodyBytes != def.MaxBodyBytes || h.MaxInflightBytes != def.MaxInflightBytes || h.MaxBatch != def.MaxBatch || h.AllowedOrigins != nil {
		t.Errorf("sample differs from the defaults")
	}
}

// TestParseOrigins: unset and "*" echo any origin; [] refuses every one.
func TestParseOrigins(t *testing.T) {
	if m, err := parseOrigins(nil); m != nil || err != nil {
		t.Errorf("nil: %v %v", m, err)
	}
	if m, err := parseOrigins([]string{"https://a.example", "*"}); m != nil || err != nil {
		t.Errorf("*: %v %v", m, err)
	}
	m, err := parseOrigins([]string{})
	if m == nil || len(m) != 0 || err != nil {
		t.Errorf("[]: %v %v", m, err)
	}
	m, err = parseOrigins([]string{"null", "HTTPS://A.example:8443"})
	if err != nil || !m["null"] || !m["https://a.example:8443"] {
		t.Errorf("list: %v %v", m, err)
	}
}

// TestRestartSharesSocket: a new instance on the same address starts while
// the old one runs (it shares the socket instead of failing to bind), and
// the old one stops, five times, under clients sending requests: plain
// HTTP, one opening a connection per request and one keeping its
// connection alive (the old instance hands it over between two requests);
// HTTPS, one connection per request over HTTP/1.1 and one HTTP/2
// connection. No connection is refused or reset, every request is answered
// 200 and emitted once.
func TestRestartSharesSocket(t *testing.T) {
	certPath, keyPath, pool := tlsFiles(t)
	tlsConf := func() *tls.Config { return &tls.Config{RootCAs: pool} } // one each: h2 adds to NextProtos
	for _, tc := range []struct {
		name    string
		tls     bool
		clients []*http.Transport
	}{
		{"http", false, []*http.Transport{{DisableKeepAlives: true}, {MaxIdleConnsPerHost: 1}}},
		{"https", true, []*http.Transport{
			{DisableKeepAlives: true, TLSClientConfig: tlsConf()},
			{ForceAttemptHTTP2: true, TLSClientConfig: tlsConf()},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := plugintest.FreeAddr(t)
			env, m := plugintest.Env(t, "inputs.http_json")
			out := plugintest.NewCapture()
			set := func(h *HTTPJSON) {
				h.Listen = addr
				if tc.tls {
					h.TLSCert, h.TLSKey = certPath, keyPath
				}
			}
			cur := startEnv(t, set, out, env, m)
			var clients []*http.Client
			for _, tr := range tc.clients {
				clients = append(clients, &http.Client{Transport: tr, Timeout: 10 * time.Second})
			}
			base := cur.base // the same address after each restart
			newReq := func() *http.Request {
				req, _ := http.NewRequest("POST", base+"/count/restart", strings.NewReader("value=1"))
				req.Header.Set("Content-Type", form)
				return req
			}
			h2 := plugintest.RestartUnderLoad(t, clients, newReq, out, func() {
				next := startEnv(t, set, out, env, m)
				if err := cur.stop(); err != nil {
					t.Fatal(err)
				}
				cur = next
			})
			if h2 != tc.tls {
				t.Fatalf("HTTP/2 used: %v", h2)
			}
		})
	}
}
