package http_json

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// rawExchange writes raw bytes on a new connection, half-closes it, and
// reads every answer until the server closes.
func rawExchange(t *testing.T, addr, send string) []*http.Response {
	t.Helper()
	c := plugintest.Dial(t, addr, 5*time.Second)
	defer c.Close()
	if _, err := io.WriteString(c, send); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		body, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, res)
	}
}

func statuses(rs []*http.Response) []int {
	var s []int
	for _, r := range rs {
		s = append(s, r.StatusCode)
	}
	return s
}

// TestFastPath: what the fast path serves itself, pipelining included, and
// what it hands to net/http, which must answer exactly as it would alone.
func TestFastPath(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.MaxBodyBytes = 100 })
	addr := strings.TrimPrefix(s.base, "http://")
	post := func(path, extra, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	cases := []struct {
		name  string
		send  string
		want  []int
		lines []string
	}{
		{"pipelined", post("/count/a", "Content-Type: application/x-www-form-urlencoded\r\n", "value=2") +
			"GET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n" +
			post("/gauge/b", "content-type: application/json\r\norigin: http://o.example\r\n", `{"shift":-1}`), []int{200, 200, 200}, []string{"a:2|c", "b:-1|g"}},
		{"query token ignored without jwt", post("/count/q?token=x", "", ""), []int{200}, []string{"q:1|c"}},
		{"escaped key", post("/count/caf%C3%A9", "", ""), []int{200}, []string{"café:1|c"}},
		{"connection close", post("/count/c", "Connection: close\r\n", "") + post("/count/never", "", ""), []int{200}, []string{"c:1|c"}},
		{"bad value then more", post("/count/d", "Content-Type: application/x-www-form-urlencoded\r\n", "value=x") + post("/count/e", "", ""), []int{400, 200}, []string{"e:1|c"}},
		// handed off to net/http
		{"PUT", "PUT /count/f HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", []int{405}, nil},
		// Transfer-Encoding: refused, connection closed (framing_refused_total)
		{"chunked", "POST /count/g HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n7\r\nvalue=3\r\n0\r\n\r\n" + post("/count/after", "", ""), []int{400}, nil},
		{"chunked and length", "POST /count/h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", []int{400}, nil},
		{"HTTP/1.0", "POST /count/i HTTP/1.0\r\nContent-Length: 0\r\n\r\n", []int{200}, []string{"i:1|c"}},
		{"expect continue", "POST /count/j HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=4", []int{100, 200}, []string{"j:4|c"}},
		{"bare LF", "POST /count/k HTTP/1.1\nHost: x\nContent-Length: 0\n\n", []int{200}, []string{"k:1|c"}},
		{"no host", "POST /count/l HTTP/1.1\r\nContent-Length: 0\r\n\r\n", []int{400}, nil},
		{"two hosts", "POST /count/m HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n", []int{400}, nil},
		{"two lengths", "POST /count/n HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", []int{400}, nil},
		{"body too large", post("/count/o", "", strings.Repeat("a", 101)), []int{413}, nil},
		{"obs-fold", "POST /count/p HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n", []int{200}, []string{"p:1|c"}},
		{"absolute form", "POST http://x/count/r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", []int{200}, []string{"r:1|c"}},
		{"bad escape", "POST /count/%zz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", []int{400}, nil},
		{"handoff keeps pipelined rest", "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + post("/count/s", "", ""), []int{404, 200}, []string{"s:1|c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.cap.Len()
			rs := rawExchange(t, addr, c.send)
			if got := statuses(rs); !slices.Equal(got, c.want) {
				t.Fatalf("statuses %v, want %v", got, c.want)
			}
			if got := s.cap.Raw()[before:]; !slices.Equal(got, c.lines) {
				t.Errorf("emitted %q, want %q", got, c.lines)
			}
		})
	}
	if got := s.m.Get("handoffs_total"); got != 14 {
		t.Errorf("handoffs_total = %d, want 14", got)
	}
	t.Run("answers", func(t *testing.T) {
		rs := rawExchange(t, addr, "GET /heartbeat HTTP/1.1\r\nHost: x\r\nOrigin: http://o.example\r\n\r\n"+
			"OPTIONS /count/x HTTP/1.1\r\nHost: x\r\nOrigin: http://o.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n")
		if len(rs) != 2 {
			t.Fatalf("%d answers", len(rs))
		}
		body, _ := io.ReadAll(rs[0].Body)
		if string(body) != "OK" || rs[0].ContentLength != 2 || rs[0].Header.Get("Date") == "" ||
			rs[0].Header.Get("Access-Control-Allow-Origin") != "http://o.example" || rs[0].Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("heartbeat: %q %v", body, rs[0].Header)
		}
		if rs[1].StatusCode != 204 || rs[1].Header.Get("Content-Length") != "" || !rs[1].Close ||
			rs[1].Header.Get("Access-Control-Allow-Methods") != corsMethods {
			t.Errorf("preflight: %d %v close=%v", rs[1].StatusCode, rs[1].Header, rs[1].Close)
		}
		// HEAD: the length of what GET would send, no body
		c := plugintest.Dial(t, addr, 5*time.Second)
		defer c.Close()
		io.WriteString(c, "HEAD /heartbeat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		raw, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(raw), "HTTP/1.1 200 OK\r\n") || !strings.Contains(string(raw), "Content-Length: 2\r\n") || !strings.HasSuffix(string(raw), "\r\n\r\n") {
			t.Errorf("HEAD answer %q", raw)
		}
	})
}

// TestFastIdleTimeout: an idle keep-alive connection is closed after
// idle_timeout.
func TestFastIdleTimeout(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.IdleTimeout = registry.Duration(200 * time.Millisecond) })
	c, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", res, err)
	}
	io.ReadAll(res.Body)
	t0 := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read %v, want EOF", err)
	}
	if el := time.Since(t0); el < 150*time.Millisecond || el > 2*time.Second {
		t.Errorf("closed after %v, want about 200ms", el)
	}
}

// FuzzFastRequest: whatever the fast path accepts, net/http reads the same
// way (method, target, host, headers, body, close); everything else the
// fast path hands off untouched.
func FuzzFastRequest(f *testing.F) {
	for _, s := range []string{
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nvalue=1",
		"GET /heartbeat HTTP/1.1\r\nHost: 127.0.0.1:8825\r\nuser-agent: x\r\naccept: */*\r\n\r\n",
		"POST /count/a%20b?token=x HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\nX-A:  v \r\nX-A: w\r\n\r\n",
		"OPTIONS /batch HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nOrigin: http://a\r\n\r\n",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 00\r\n\r\n",
		"POST /count/a HTTP/1.1\r\nHost: x\r\ncontent-LENGTH: 1\r\n\r\nab",
		"POST /count/a HTTP/1.1\r\nhost: x\r\nX-JWT-Token: a.b.c\r\nx-jwt-token: d\r\ncontent-type: application/json\r\nX-CUSTOM: 1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p fastRequest
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		ok, err := p.read(br, 1<<20)
		if err != nil {
			return // incomplete: the connection would wait for more
		}
		if !ok {
			// handed off: net/http must get every byte
			if rest, _ := io.ReadAll(br); !bytes.Equal(rest, data) {
				t.Fatalf("handed off %q after consuming input", data)
			}
			return
		}
		var req http.Request
		body := bodyReader{fc: &fastConn{}, br: br, clock: new(atomic.Int64)}
		p.fill(&req, &body)
		got, err := io.ReadAll(req.Body)
		if err != nil {
			return // body incomplete: the connection would wait for more
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http: %v", data, err)
		}
		wantBody, err := io.ReadAll(want.Body)
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http body: %v", data, err)
		}
		if req.Method != want.Method || req.RequestURI != want.RequestURI || req.Host != want.Host ||
			req.URL.String() != want.URL.String() || req.URL.Path != want.URL.Path || req.URL.RawQuery != want.URL.RawQuery ||
			req.ContentLength != want.ContentLength || req.Close != want.Close || !bytes.Equal(got, wantBody) ||
			!reflect.DeepEqual(req.Header, want.Header) {
			t.Fatalf("%q:\nfast     %s %s host=%q len=%d close=%v %v %q\nnet/http %s %s host=%q len=%d close=%v %v %q",
				data, req.Method, req.URL, req.Host, req.ContentLength, req.Close, req.Header, got,
				want.Method, want.URL, want.Host, want.ContentLength, want.Close, want.Header, wantBody)
		}
	})
}

// TestStopWithIdleConnections: idle keep-alive connections, on the fast
// path and handed to net/http, do not hold up Run's return.
func TestStopWithIdleConnections(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.IdleTimeout = registry.Duration(time.Minute) })
	addr := strings.TrimPrefix(s.base, "http://")
	for _, send := range []string{
		"POST /count/fast HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"POST /count/slow HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, send)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%v %v", res, err)
		}
	}
	if s.m.Get("handoffs_total") != 1 {
		t.Fatalf("handoffs_total = %d", s.m.Get("handoffs_total"))
	}
	t0 := time.Now()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("Run took %v to return", el)
	}
}
