package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestHTTPJSONBodiesMemoryBound: issue #16's memory attacks on
// inputs.http_json against the built binary. 3,000 connections announcing
// a 1 MiB body without a token are answered 401 before any body is sent
// (the fast path used to allocate the announced MiB first: 1.44 GB heap);
// 5,000 slow bodies announcing 1 MiB without authentication hold what
// arrived, within max_inflight_bytes (64 MiB), and the ones beyond it get
// 503. Peak RSS stays below 200 MiB in both.
func TestHTTPJSONBodiesMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of connections")
	}
	head := "POST /count/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\nvalue=1&pad="
	cases := []struct {
		name   string
		secret string
		conns  int
		send   string
	}{
		{"unauthenticated", "e2e-secret", 3000, head},
		{"slow bodies", "", 5000, head + strings.Repeat("x", 9000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := plugintest.NewUDPSink(t)
			in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf(`[agent]
  stats_addr = %q
[[inputs.http_json]]
  listen = %q
  jwt_secret = %q
  read_timeout = "120s"
[[outputs.statsd]]
  address = %q
`, stats, in, c.secret, sink.Addr))
			p := startBinary(t, cfg)
			waitListen(t, in)
			conns := plugintest.OpenConns(t, func() (net.Conn, error) { return net.Dial("tcp", in) }, c.conns, c.send)
			metric := func(name string) float64 {
				return scrape(t, stats)[series(name, "inputs.http_json", "http_json-1")]
			}
			if c.secret != "" {
				for i, conn := range conns {
					conn.SetReadDeadline(time.Now().Add(30 * time.Second))
					res, err := http.ReadResponse(bufio.NewReader(conn), nil)
					if err != nil || res.StatusCode != 401 {
						t.Fatalf("connection %d: %v %v, want 401 before the body", i, res, err)
					}
				}
				if got := metric("auth_failures_total"); got != float64(c.conns) {
					t.Errorf("auth_failures_total = %v, want %d", got, c.conns)
				}
			} else {
				// every connection ends up holding its 9,012 bytes in a
				// 16 KiB buffer, or refused with 503
				deadline := time.Now().Add(60 * time.Second)
				var held, full float64
				for {
					held, full = metric("inflight_bytes"), metric("inflight_full_total")
					if held > 64<<20 {
						t.Fatalf("inflight_bytes %v over max_inflight_bytes", held)
					}
					if held/(16<<10)+full == float64(c.conns) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("inflight_bytes %v, inflight_full_total %v: not settled", held, full)
					}
					time.Sleep(100 * time.Millisecond)
				}
				t.Logf("%d slow bodies: %v held (%v bytes), %v refused with 503", c.conns, held/(16<<10), held, full)
				if full == 0 {
					t.Errorf("no request refused: max_inflight_bytes not reached")
				}
			}
			peak := peakRSS(t, p.cmd.Process.Pid)
			t.Logf("%s: %d connections announcing 1 MiB: router peak RSS %d MiB", c.name, c.conns, peak>>20)
			if peak > 200<<20 {
				t.Errorf("peak RSS %d MiB over 200 MiB", peak>>20)
			}
		})
	}
}
