package http_json

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// paths are the two ways a client reaches the handler: plain HTTP (the fast
// path, handing unusual requests to net/http) and TLS (net/http).
var paths = []string{"plain", "tls"}

// startPath starts the plugin on one of paths and returns a dialer of raw
// connections to it.
func startPath(t *testing.T, path string, configure func(h *HTTPJSON)) (*server, func() net.Conn) {
	t.Helper()
	env, m := plugintest.Env(t, "inputs.http_json")
	return startEnvPath(t, path, env, m, configure)
}

// startEnvPath is startPath with an Env of the test's own (m: its Metrics).
func startEnvPath(t *testing.T, path string, env registry.Env, m *plugintest.Metrics, configure func(h *HTTPJSON)) (*server, func() net.Conn) {
	t.Helper()
	var pool *x509.CertPool
	cfg := configure
	if path == "tls" {
		certPath, keyPath, p := tlsFiles(t)
		pool = p
		cfg = func(h *HTTPJSON) {
			h.TLSCert, h.TLSKey = certPath, keyPath
			if configure != nil {
				configure(h)
			}
		}
	}
	s := startEnv(t, cfg, nil, env, m)
	addr := s.h.Addr().String()
	dial := func() net.Conn {
		t.Helper()
		var c net.Conn
		var err error
		if pool == nil {
			c, err = net.Dial("tcp", addr)
		} else {
			c, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return s, dial
}

// exchange writes raw bytes on a new connection and reads every answer
// until the server closes it; closed reports that it did (within 5 s).
func exchange(t *testing.T, dial func() net.Conn, send string) (rs []*http.Response, closed bool) {
	t.Helper()
	c := dial()
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// the server may answer and close before all is sent (a refused body)
	_, _ = io.WriteString(c, send)
	br := bufio.NewReader(c)
	for {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return rs, err == io.EOF || err == io.ErrUnexpectedEOF
		}
		io.Copy(io.Discard, res.Body)
		rs = append(rs, res)
	}
}

// TestFraming: a request with Transfer-Encoding, alone or with
// Content-Length, is answered 400 and its connection closed, on every path,
// so a request hidden after its body is never served; an HTTP/1.0 request
// (whose Transfer-Encoding net/http hides) has its connection closed after
// the answer.
func TestFraming(t *testing.T) {
	hidden := "POST /count/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	cases := []struct {
		name    string
		send    string
		want    []int
		lines   []string
		refused uint64 // framing_refused_total
	}{
		{"CL+TE, request hidden in the chunked body",
			"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
			[]int{400}, nil, 1},
		{"TE+CL, request hidden after the length",
			"POST /count/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + hidden,
			[]int{400}, nil, 1},
		{"chunked alone", "POST /count/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, []int{400}, nil, 1},
		{"chunked lower case", "POST /count/a HTTP/1.1\r\nHost: x\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n" + hidden, []int{400}, nil, 1},
		{"chunked on a kept-alive connection", "GET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n" +
			"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
			[]int{200, 400}, nil, 1},
		{"after a handoff", "PUT /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
			"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
			[]int{405, 400}, nil, 1},
		// net/http: unsupported codings are its own 501, connection closed
		{"identity and length", "POST /count/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 0\r\n\r\n" + hidden, []int{501}, nil, 0},
		{"two codings", "POST /count/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, []int{501}, nil, 0},
		// HTTP/1.0 knows no Transfer-Encoding: framed by Content-Length,
		// answered, connection closed (RFC 9112 6.1)
		{"HTTP/1.0 CL+TE keep-alive", "POST /count/old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden,
			[]int{200}, []string{"old:1|c"}, 0},
		{"HTTP/1.0 keep-alive", "POST /count/old HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n" + hidden,
			[]int{200}, []string{"old:1|c"}, 0},
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			s, dial := startPath(t, path, nil)
			var refused uint64
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					before := s.cap.Len()
					rs, closed := exchange(t, dial, c.send)
					if got := statuses(rs); !equalInts(got, c.want) {
						t.Fatalf("statuses %v, want %v", got, c.want)
					}
					if !closed {
						t.Fatal("connection left open")
					}
					if last := rs[len(rs)-1]; !last.Close {
						t.Errorf("last answer lacks Connection: close: %v", last.Header)
					}
					if got := s.cap.Raw()[before:]; !equalStrings(got, c.lines) {
						t.Errorf("emitted %q, want %q", got, c.lines)
					}
					refused += c.refused
					if got := s.m.Get("framing_refused_total"); got != refused {
						t.Errorf("framing_refused_total = %d, want %d", got, refused)
					}
				})
			}
		})
	}
}

func equalInts(a, b []int) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func equalStrings(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || strings.Join(a, "\n") == strings.Join(b, "\n"))
}

// heapInUse returns the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestUnauthenticatedBodies: connections that announce a 1 MiB body without
// a token get 401 at once, before any of the body is sent, and cost no
// memory for it (the fast path used to allocate the Content-Length before
// checking the token: 300 connections, 300 MiB).
func TestUnauthenticatedBodies(t *testing.T) {
	const n = 300
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			s, dial := startPath(t, path, func(h *HTTPJSON) {
				h.JWTSecret = secret
				h.ReadTimeout = registry.Duration(30 * time.Second)
			})
			head := "POST /count/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\nvalue=1&pad="
			before := heapInUse()
			conns := plugintest.OpenConns(t, func() (net.Conn, error) { return dial(), nil }, n, head)
			for i, c := range conns {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("connection %d: no answer before its body: %v", i, err)
				}
				res.Body.Close()
				if res.StatusCode != 401 {
					t.Fatalf("connection %d: status %d, want 401", i, res.StatusCode)
				}
			}
			grown := heapInUse() - before
			t.Logf("%s: %d connections announcing 1 MiB without a token: heap +%d KiB", path, n, grown>>10)
			if grown > 32<<20 {
				t.Errorf("heap grew by %d MiB", grown>>20)
			}
			if got := s.m.Get("auth_failures_total"); got != n {
				t.Errorf("auth_failures_total = %d, want %d", got, n)
			}
		})
	}
}

// TestSlowBodies: without authentication, connections that announce 1 MiB
// and send a few bytes hold what arrived (in 4 KiB buffers taken from
// max_inflight_bytes), not what they announced (the fast path used to
// allocate 1 MiB each: 300 connections, 300 MiB).
func TestSlowBodies(t *testing.T) {
	const n = 300
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			s, dial := startPath(t, path, func(h *HTTPJSON) { h.ReadTimeout = registry.Duration(30 * time.Second) })
			head := "POST /count/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\nvalue=1&pad=" + strings.Repeat("x", 9000)
			before := heapInUse()
			conns := plugintest.OpenConns(t, func() (net.Conn, error) { return dial(), nil }, n, head)
			// each holds a 16 KiB buffer (4, 8, then 16 KiB for 9,012 bytes)
			want := float64(n * 16 << 10)
			if got := s.m.WaitGauge("inflight_bytes", want, 10*time.Second); got != want {
				t.Errorf("inflight_bytes = %v, want %v", got, want)
			}
			grown := heapInUse() - before
			t.Logf("%s: %d slow bodies announcing 1 MiB: heap +%d KiB, inflight_bytes %v", path, n, grown>>10, want)
			if grown > 48<<20 {
				t.Fatalf("heap grew by %d MiB", grown>>20)
			}
			for _, c := range conns {
				c.Close()
			}
			if got := s.m.WaitGauge("inflight_bytes", 0, 10*time.Second); got != 0 {
				t.Errorf("inflight_bytes = %v after the clients left, want 0", got)
			}
		})
	}
}

// TestInflightBudget: bodies beyond max_inflight_bytes are refused with 503
// and Retry-After (counted, logged), the others complete, and the budget is
// given back.
func TestInflightBudget(t *testing.T) {
	// A 60 KiB body is read into buffers of 4, 8, 16, 32 and 60 KiB, each
	// taken before the previous one is given back: it needs 92 KiB at
	// its peak and holds 60 KiB. In a budget of 160 KiB two such bodies
	// fit; a third is refused when it grows to 32 KiB.
	const body = 60 << 10
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			var logs plugintest.SyncBuffer
			env, m := plugintest.Env(t, "inputs.http_json")
			env.Log = zerolog.New(io.MultiWriter(&logs, zerolog.NewTestWriter(t)))
			s, dial := startEnvPath(t, path, env, m, func(h *HTTPJSON) {
				h.MaxBodyBytes = 64 << 10
				h.MaxInflightBytes = 160 << 10
			})
			head := "POST /count/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(body) + "\r\n\r\n"
			payload := "value=2&pad=" + strings.Repeat("x", body-len("value=2&pad="))
			// two requests hold 60 KiB each, one byte short of their body
			var held []net.Conn
			for i := range 2 {
				c := dial()
				defer c.Close()
				io.WriteString(c, head+payload[:body-1])
				held = append(held, c)
				want := float64((i + 1) * body)
				if got := m.WaitGauge("inflight_bytes", want, 10*time.Second); got != want {
					t.Fatalf("inflight_bytes = %v, want %v", got, want)
				}
			}
			rs, _ := exchange(t, dial, strings.Replace(head, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)+payload)
			if len(rs) == 0 || rs[0].StatusCode != 503 || rs[0].Header.Get("Retry-After") != "1" {
				t.Fatalf("third request: %v", statuses(rs))
			}
			if m.Get("inflight_full_total") != 1 || !strings.Contains(logs.String(), "max_inflight_bytes reached") {
				t.Errorf("inflight_full_total = %d; log:\n%s", m.Get("inflight_full_total"), logs.String())
			}
			// the two complete and are served
			for _, c := range held {
				io.WriteString(c, payload[body-1:])
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || res.StatusCode != 200 {
					t.Fatalf("held request: %v %v", res, err)
				}
			}
			if got := m.WaitGauge("inflight_bytes", 0, 5*time.Second); got != 0 {
				t.Errorf("inflight_bytes = %v when idle", got)
			}
			if got := s.cap.Raw(); !equalStrings(got, []string{"k:2|c", "k:2|c"}) {
				t.Errorf("emitted %q", got)
			}
		})
	}
}

// TestAuthOffWarning: an input without jwt_secret or jwt_public_key warns
// at start that it takes metrics from anyone; with a secret it does not.
func TestAuthOffWarning(t *testing.T) {
	for _, c := range []struct {
		name   string
		secret string
		warn   bool
	}{{"no secret", "", true}, {"secret", secret, false}} {
		t.Run(c.name, func(t *testing.T) {
			var logs plugintest.SyncBuffer
			env, m := plugintest.Env(t, "inputs.http_json")
			env.Log = zerolog.New(io.MultiWriter(&logs, zerolog.NewTestWriter(t)))
			s := startEnv(t, func(h *HTTPJSON) { h.JWTSecret = c.secret }, nil, env, m)
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(logs.String(), `"level":"warn"`) && strings.Contains(logs.String(), "authentication off")
			if got != c.warn {
				t.Errorf("warning logged: %v, want %v; log:\n%s", got, c.warn, logs.String())
			}
		})
	}
}

// openFiles returns how many file descriptors this process has open.
func openFiles(t *testing.T) uint64 {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return uint64(len(ents))
}

// TestAcceptErrorsKeepServing: when the process runs out of file
// descriptors, accept fails (EMFILE); the input counts and retries, and
// serves again once descriptors are free (it used to return the error,
// which stopped the whole router).
func TestAcceptErrorsKeepServing(t *testing.T) {
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			s, dial := startPath(t, path, nil)
			addr := s.h.Addr().String()
			var old syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
			restore := func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }
			defer restore()
			low := syscall.Rlimit{Cur: openFiles(t) + 8, Max: old.Max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
				t.Fatal(err)
			}
			// Fill the descriptor table with client connections; then
			// keep trading one client descriptor for a new connection, so
			// the kernel has connections waiting that accept has no
			// descriptor for.
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for s.m.Get("accept_errors_total") == 0 {
				if time.Now().After(deadline) {
					restore()
					t.Fatalf("no accept error within 10s (%d connections)", len(conns))
				}
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					if len(conns) > 0 {
						conns[0].Close()
						conns = conns[1:]
					}
					continue
				}
				conns = append(conns, c)
			}
			restore()
			for _, c := range conns {
				c.Close()
			}
			conns = nil
			// still serving, on a fresh connection
			rs, _ := exchange(t, dial, "POST /count/after HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			if got := statuses(rs); !equalInts(got, []int{200}) {
				t.Fatalf("after the descriptor storm: %v", got)
			}
			if err := s.stop(); err != nil {
				t.Fatalf("Run returned %v", err)
			}
			if got := s.cap.Raw(); !equalStrings(got, []string{"after:1|c"}) {
				t.Errorf("emitted %q", got)
			}
		})
	}
}
