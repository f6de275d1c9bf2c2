package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// hjToken signs claims (a JSON object) as an HS256 JWT, by hand: golang-jwt
// belongs to the plugin alone.
func hjToken(secret, claims string) string {
	enc := base64.RawURLEncoding
	msg := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

func hjPost(t *testing.T, url, ctype, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("X-JWT-Token", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestHTTPStatsdProxyConfig: etc/statsd-http-proxy.toml with its jwt_secret
// line uncommented, as its header says to do, and its ${VAR}s set: form,
// JSON and batch requests with a JWT reach a UDP StatsD sink as packed
// lines; refused requests send nothing; /metrics counts them.
func TestHTTPStatsdProxyConfig(t *testing.T) {
	cfg, err := os.ReadFile("etc/statsd-http-proxy.toml")
	if err != nil {
		t.Fatal(err)
	}
	sink := plugintest.NewUDPSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	t.Setenv("HTTP_LISTEN", in)
	t.Setenv("STATS_ADDR", stats)
	t.Setenv("STATSD_ADDR", sink.Addr)
	t.Setenv("JWT_SECRET", "e2e-secret")
	t.Setenv("METRIC_PREFIX", "fe")
	on := strings.Replace(string(cfg), `# jwt_secret = "${JWT_SECRET}"`, `jwt_secret = "${JWT_SECRET}"`, 1)
	if on == string(cfg) {
		t.Fatal(`etc/statsd-http-proxy.toml has no commented jwt_secret = "${JWT_SECRET}" line`)
	}
	p := startRouter(t, on)
	waitListen(t, in)
	base := "http://" + in
	tok := hjToken("e2e-secret", fmt.Sprintf(`{"sub":"e2e","exp":%d}`, time.Now().Add(time.Hour).Unix()))

	steps := []struct {
		path, ctype, body, token string
		status                   int
	}{
		{"/count/web.clicks", "application/x-www-form-urlencoded", "value=3&sampleRate=0.5", tok, 200},
		{"/gauge/web.users", "application/json", `{"value":42,"tags":"page=home,env=e2e"}`, tok, 200},
		{"/batch", "application/json", `[{"type":"timing","key":"web.load","time":120},{"type":"set","key":"web.visitors","value":"u17"},{"type":"gauge","key":"web.queue","shift":-2}]`, tok, 200},
		{"/count/web.clicks", "application/x-www-form-urlencoded", "value=1", "", 401},
		{"/count/web.clicks", "application/x-www-form-urlencoded", "value=1", hjToken("wrong", `{}`), 403},
		{"/count/web.clicks", "application/x-www-form-urlencoded", "value=oops", tok, 400},
		{"/batch", "application/json", `[{"type":"count","key":"ok"},{"type":"count","key":"bad key"}]`, tok, 400},
		{"/histogram/web.x", "", "", tok, 404},
	}
	for _, s := range steps {
		if code, body := hjPost(t, base+s.path, s.ctype, s.body, s.token); code != s.status {
			t.Fatalf("POST %s %q: %d %q, want %d", s.path, s.body, code, body, s.status)
		}
	}
	want := []string{
		"fe.web.clicks:3|c|@0.5",
		"fe.web.users:42|g|#page:home,env:e2e",
		"fe.web.load:120|ms",
		"fe.web.visitors:u17|s",
		"fe.web.queue:-2|g",
	}
	if !sink.WaitLines(len(want), 10*time.Second) {
		t.Fatalf("sink got %q, want %q", sink.Lines(), want)
	}
	if got := sink.Lines(); !slices.Equal(got, want) {
		t.Fatalf("sink got %q, want %q", got, want)
	}
	// the batch's three metrics travel in one datagram
	grams := sink.Datagrams()
	if !slices.ContainsFunc(grams, func(g string) bool {
		return strings.Contains(g, "fe.web.load:120|ms\nfe.web.visitors:u17|s\nfe.web.queue:-2|g")
	}) {
		t.Errorf("batch not packed into one datagram: %q", grams)
	}
	m := scrape(t, stats)
	for name, want := range map[string]float64{
		"requests_count_total":   4,
		"errors_count_total":     3,
		"requests_batch_total":   2,
		"errors_batch_total":     1,
		"requests_other_total":   1,
		"auth_failures_total":    2,
		"emit_failures_total":    0,
		"received_total":         5,
		"body_too_large_total":   0,
		"requests_gauge_total":   1,
		"errors_heartbeat_total": 0,
		"handoffs_total":         0, // Go's client: every request on the fast path
	} {
		if got, ok := m[series(name, "inputs.http_json", "http_json-1")]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// chromiumPath finds headless Chromium, or fails (CI=true) or skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "Chromium is not installed (Debian: apt-get install -y chromium); the real-browser CORS test needs it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// hjBrowserPage is a page whose script POSTs a JSON counter with a JWT to
// the router on another origin (so the browser sends a CORS preflight) and
// writes the answer's status, or the error, into the DOM.
const hjBrowserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>router e2e</title></head><body>
<div id="result">pending</div>
<script>
fetch(%q, {method: "POST", headers: {"X-JWT-Token": %q, "Content-Type": "application/json"}, body: JSON.stringify({value: 3})})
  .then(function (r) { document.getElementById("result").textContent = "status=" + r.status; })
  .catch(function (e) { document.getElementById("result").textContent = "error=" + e; });
</script>
</body></html>
`

// runChromium loads url in headless Chromium and returns the DOM after the
// page's script ran.
func runChromium(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=10000", "--dump-dom", url)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish within 60s; stderr:\n%s", tail(stderr.String(), 3000))
	}
	if err != nil {
		t.Fatalf("chromium: %v; stderr:\n%s", err, tail(stderr.String(), 3000))
	}
	return string(out)
}

// TestHTTPBrowserFetch: a real browser (headless Chromium) on one loopback
// origin POSTs with fetch() and an X-JWT-Token to the router on another
// origin; the preflight passes, the DOM shows 200 and the UDP sink gets the
// counter. A page from an origin outside allowed_origins is refused by the
// browser and sends nothing.
func TestHTTPBrowserFetch(t *testing.T) {
	chromium := chromiumPath(t)
	sink := plugintest.NewUDPSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	token := hjToken("browser-secret", fmt.Sprintf(`{"exp":%d}`, time.Now().Add(time.Hour).Unix()))
	page := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, hjBrowserPage, "http://"+in+"/count/browser.clicks", token)
	}
	allowed := httptest.NewServer(http.HandlerFunc(page))
	defer allowed.Close()
	foreign := httptest.NewServer(http.HandlerFunc(page))
	defer foreign.Close()

	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.http_json]]
  listen = %q
  jwt_secret = "browser-secret"
  allowed_origins = [%q]
[[outputs.statsd]]
  address = %q
`, stats, in, allowed.URL, sink.Addr))
	waitListen(t, in)

	dom := runChromium(t, chromium, allowed.URL+"/")
	if !strings.Contains(dom, `<div id="result">status=200</div>`) {
		t.Fatalf("page from the allowed origin: DOM does not show status=200:\n%s", dom)
	}
	if !sink.WaitLines(1, 10*time.Second) {
		t.Fatal("the UDP sink got nothing")
	}
	if got := sink.Lines(); !slices.Equal(got, []string{"browser.clicks:3|c"}) {
		t.Fatalf("sink got %q", got)
	}
	m := scrape(t, stats)
	// the preflight (OPTIONS) and the POST both went to /count
	if got := m[series("requests_count_total", "inputs.http_json", "http_json-1")]; got != 2 {
		t.Errorf("requests_count_total = %v, want 2 (preflight + POST)", got)
	}

	t.Logf("connections handed from the fast path to net/http: %v", m[series("handoffs_total", "inputs.http_json", "http_json-1")])

	dom = runChromium(t, chromium, foreign.URL+"/")
	if !strings.Contains(dom, `<div id="result">error=`) {
		t.Fatalf("page from a foreign origin: DOM does not show a fetch error:\n%s", dom)
	}
	m = scrape(t, stats)
	if got := m[series("errors_count_total", "inputs.http_json", "http_json-1")]; got < 1 {
		t.Errorf("errors_count_total = %v, want the refused preflight counted", got)
	}
	if got := sink.Lines(); len(got) != 1 {
		t.Errorf("sink got %q after the refused page, want only the first counter", got)
	}
}
