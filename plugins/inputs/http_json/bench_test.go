package http_json

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
)

// nopEmitter accepts every batch.
type nopEmitter struct{}

func (nopEmitter) Emit(context.Context, metric.Batch) error { return nil }

// discardWriter is a ResponseWriter that keeps nothing but its header map.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchHandler(b *testing.B, configure func(h *HTTPJSON), path, ctype, body string, header map[string]string) {
	h, _ := newPlugin(b, configure)
	hd := h.handler
	var auth *authenticator
	if h.JWTSecret != "" {
		var err error
		if auth, err = newAuthenticator(authConfig{secret: h.JWTSecret}); err != nil {
			b.Fatal(err)
		}
	}
	hd.start(nopEmitter{}, auth)
	defer hd.stop()
	r := httptest.NewRequest("POST", path, nil)
	r.Header.Set("Content-Type", ctype)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := &discardWriter{h: http.Header{}}
	rd := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rewind(r, rd, body)
		clear(w.h)
		hd.ServeHTTP(w, r)
	}
}

// rewind gives r the body body again, read from rd (without allocating).
func rewind(r *http.Request, rd *strings.Reader, body string) {
	rd.Reset(body)
	r.Body = readCloser2{rd}
	r.ContentLength = int64(len(body))
}

type readCloser2 struct{ *strings.Reader }

func (readCloser2) Close() error { return nil }

// BenchmarkHandlerCountForm is W4's request: POST /count/<key>, value=1.
func BenchmarkHandlerCountForm(b *testing.B) {
	benchHandler(b, nil, "/count/bench.http.1", form, "value=1", nil)
}

// BenchmarkHandlerCountJWT: the same with an HS256 token (cached after the first).
func BenchmarkHandlerCountJWT(b *testing.B) {
	tok := sign(b, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": in(3600e9)})
	benchHandler(b, func(h *HTTPJSON) { h.JWTSecret = secret }, "/count/bench.http.1", form, "value=1", map[string]string{"X-JWT-Token": tok})
}

// BenchmarkHandlerCountJSONCORS: a browser's request: JSON body, Origin, tags.
func BenchmarkHandlerCountJSONCORS(b *testing.B) {
	benchHandler(b, nil, "/count/web.clicks", jsonT, `{"value":3,"tags":"page=home"}`, map[string]string{"Origin": "https://app.example"})
}

// BenchmarkHandlerBatch100: POST /batch with 100 metrics.
func BenchmarkHandlerBatch100(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[")
	for i := range 100 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"type":"count","key":"web.k","value":1,"sampleRate":0.5,"tags":"a=b"}`)
	}
	sb.WriteString("]")
	benchHandler(b, nil, "/batch", jsonT, sb.String(), nil)
}

// BenchmarkFastPath: the plain-HTTP path's own work for W4's request
// (parse the head, read the body in place, run the handler, render the
// answer), 64 pipelined requests per connection, without the socket.
func BenchmarkFastPath(b *testing.B) {
	const perConn = 64
	d := newDiffServers(b)
	defer d.stop()
	s := d.fast
	s.h = d.fastRec.h // the handler alone, no recorder
	one := "POST /count/bench.http.1 HTTP/1.1\r\nHost: 127.0.0.1:8825\r\nUser-Agent: wrk\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1"
	data := []byte(strings.Repeat(one, perConn))
	b.ReportAllocs()
	for b.Loop() {
		c := &fastConn{c: newMemConn(data)}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.serveConn(c)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perConn), "ns/request")
}

// BenchmarkReadBody: a 64 KiB body read as it arrives, in buffers taken
// from the budget (TLS and handed-off connections; the fast path reads
// bodies that fit its 8 KiB buffer in place).
func BenchmarkReadBody(b *testing.B) {
	body := strings.Repeat("x", 64<<10)
	budget := netx.NewBudget(1 << 30)
	r := httptest.NewRequest("POST", "/count/k", nil)
	rd := strings.NewReader(body)
	b.ReportAllocs()
	for b.Loop() {
		rewind(r, rd, body)
		got, held, status := readBody(r, 1<<20, budget)
		if status != 0 || len(got) != len(body) {
			b.Fatal(status, len(got))
		}
		budget.Release(held)
	}
}
