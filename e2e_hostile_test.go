package main

// Issue #16: the promises hold when someone pushes. Each test reproduces an
// attack against the built binary on 127.0.0.1 and checks the symptom the
// old code showed is gone.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestJunkFloodMemoryBound (item 2): the destination is down and clients
// send as fast as they can, every 8 valid lines followed by a junk line
// (too long, or malformed). With max_buffered_bytes = 16 MiB the queue fills
// and drops (counted), and the router's peak RSS stays within the
// documented bound, 1.5 x max_buffered_bytes + 64 MiB (the soft memory
// limit the router sets) + 64 MiB (runtime, binary, read buffers), and
// every line is accounted for. Before, every queued line kept its whole
// read buffer (up to 256 KiB) alive while the budget counted ~80 bytes:
// 8,000 queued lines took 2 GB. The senders stop early if RSS passes the
// bound, so the old code fails the test without eating the machine.
func TestJunkFloodMemoryBound(t *testing.T) {
	skipShort(t)
	for _, tc := range []struct {
		name     string
		junk     []byte
		junkKind string
	}{
		{"250 KB lines over max_line_length", bytes.Repeat([]byte("J"), 250_000), "lines_too_long_total"},
		{"60 KB malformed lines", bytes.Repeat([]byte("J"), 60_000), "parse_errors_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxBuffered = 16 << 20
			const bound = maxBuffered*3/2 + 64<<20 + 64<<20
			p, in, stats := startFlooded(t, maxBuffered)
			var chunk []byte
			for i := 0; i < 64; i++ {
				chunk = fmt.Appendf(chunk, "flood.metric.path.number.%d %d 1700000000\n", i, i)
				if i%8 == 7 {
					chunk = append(append(chunk, tc.junk...), '\n')
				}
			}
			var sent atomic.Int64
			var over, enough atomic.Bool
			// 8 s, and on until the queue has dropped (a slow, loaded
			// machine fills it later), 40 s at most
			begin := time.Now()
			stop := begin.Add(40 * time.Second)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if err := eachConn(in, 4, func(_ int, conn net.Conn) error {
					for time.Now().Before(stop) && !over.Load() && !enough.Load() {
						if _, err := conn.Write(chunk); err != nil {
							return nil
						}
						sent.Add(64)
					}
					return nil
				}); err != nil {
					t.Error(err)
				}
			}()
			var peakSeen int64
			tick := time.NewTicker(50 * time.Millisecond)
			for running := true; running; {
				select {
				case <-done:
					running = false
				case <-tick.C:
					peakSeen = max(peakSeen, currentRSS(p.cmd.Process.Pid))
					if peakSeen > bound {
						over.Store(true)
					}
					if !enough.Load() && time.Since(begin) > 8*time.Second &&
						scrape(t, stats)[series("dropped_total", "outputs.graphite", "cache")] > 0 {
						enough.Store(true)
					}
				}
			}
			tick.Stop()
			if over.Load() {
				t.Fatalf("RSS reached %d MiB (bound %d MiB) after %d valid lines", peakSeen>>20, bound>>20, sent.Load())
			}
			m, received, dropped, queued := waitAccounted(t, stats)
			junk := m[series(tc.junkKind, "inputs.graphite", "graphite-1")]
			peak := peakRSS(t, p.cmd.Process.Pid)
			t.Logf("destination down, %d valid lines sent (every 8 + %d junk bytes): %.0f received, %.0f dropped (counted), %.0f queued, %.0f junk lines counted, peak RSS %d MiB",
				sent.Load(), len(tc.junk), received, dropped, queued, junk, peak>>20)
			if received != dropped+queued {
				t.Errorf("received %v != dropped %v + queued %v", received, dropped, queued)
			}
			// a connection may have been cut inside its last junk line
			if dropped == 0 {
				t.Errorf("nothing dropped: the queue never reached max_buffered_bytes")
			}
			if received == 0 || junk < received/8-4 {
				t.Errorf("received %v valid lines but counted %v junk lines", received, junk)
			}
			if peak > bound {
				t.Fatalf("peak RSS %d MiB over %d MiB", peak>>20, bound>>20)
			}
		})
	}
}

// TestIdleConnectionsCannotLockOut (item 7): 10,000 idle connections from
// one address, the default max_connections, used to refuse every other
// sender for the 10 minutes of idle_timeout. Now a new sender sheds the
// connection idle longest (and one address may hold at most
// max_connections_per_ip, 1000 by default).
func TestIdleConnectionsCannotLockOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		perIP  string // max_connections_per_ip line, "" = the default
		from   string // the new sender's source address
		opened int    // idle connections open at the end
	}{
		{"per-address limit, another address", "", "127.0.0.2", 1000},
		{"no per-address limit, same address", "max_connections_per_ip = 0", "127.0.0.1", 10_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := plugintest.NewLineSink(t)
			in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  %s
[[outputs.graphite]]
  id = "sink"
  address = %q
`, stats, in, tc.perIP, sink.Addr))
			startBinary(t, cfg)
			waitListen(t, in)
			plugintest.OpenConns(t, func() (net.Conn, error) { return net.Dial("tcp", in) }, 10_000, "") // idle
			// every connection was accepted (and maybe shed later) or refused;
			// waitListen's probe was one more
			var got float64
			if !waitFor(30*time.Second, func() bool {
				m := scrape(t, stats)
				got = m[series("connections_total", "inputs.graphite", "graphite-1")] + m[series("connections_rejected_total", "inputs.graphite", "graphite-1")]
				return got == 10_001
			}) {
				t.Fatalf("accepted + refused = %v, want 10001", got)
			}
			if a := scrape(t, stats)[series("connections_active", "inputs.graphite", "graphite-1")]; a > float64(tc.opened) {
				t.Fatalf("connections_active = %v, over %d", a, tc.opened)
			}
			time.Sleep(1100 * time.Millisecond) // idle for the 1 s a connection must be idle to be shed
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", in)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "new.sender 1 1700000000\n")
			c.Close()
			if !sink.WaitLen(1, 10*time.Second) {
				m := scrape(t, stats)
				t.Fatalf("the new sender was locked out: sink got %d, rejected %v", sink.Len(),
					m[series("connections_rejected_total", "inputs.graphite", "graphite-1")])
			}
			m := scrape(t, stats)
			shed := m[series("connections_shed_total", "inputs.graphite", "graphite-1")]
			t.Logf("10,000 idle connections (%s): new sender from %s served; shed %v, rejected %v", tc.name, tc.from, shed,
				m[series("connections_rejected_total", "inputs.graphite", "graphite-1")])
			if tc.from == "127.0.0.1" && shed < 1 {
				t.Errorf("connections_shed_total = %v", shed)
			}
		})
	}
}

// TestDescriptorExhaustion (item 1): under prlimit --nofile=256, idle
// connections to inputs.http_json (or to inputs.graphite) take every file
// descriptor. accept then fails with EMFILE; that used to end the input's
// Run, and the agent shut every input down (exit 1). Now accepts are retried
// with backoff and counted (accept_errors_total), the process stays up, a
// request that arrives meanwhile is served once descriptors free up, and
// afterwards every input serves again.
func TestDescriptorExhaustion(t *testing.T) {
	skipShort(t)
	for _, via := range []string{"http_json", "graphite"} {
		t.Run("idle connections to "+via, func(t *testing.T) {
			sink := plugintest.NewLineSink(t)
			gIn, sIn, hIn, bIn, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  max_connections_per_ip = 0
[[inputs.statsd]]
  listen = %q
[[inputs.http_json]]
  listen = %q
[[inputs.https_batch]]
  listen = %q
  [inputs.https_batch.keystore]
    type = "static"
    keys = { team = "0123456789abcdef0123456789abcdef" }
[[outputs.graphite]]
  id = "sink"
  address = %q
`, stats, gIn, sIn, hIn, bIn, sink.Addr))
			p := startUnder(t, []string{"prlimit", "--nofile=256:256", "--"}, cfg)
			waitListen(t, gIn)
			waitListen(t, hIn)
			waitListen(t, bIn)
			target := hIn
			if via == "graphite" {
				target = gIn
			}
			var hog []net.Conn
			closeHog := func() {
				for _, c := range hog {
					c.Close()
				}
				hog = nil
			}
			defer closeHog()
			for i := 0; i < 400; i++ {
				c, err := net.DialTimeout("tcp", target, 2*time.Second)
				if err != nil {
					break // the listen backlog is full too
				}
				hog = append(hog, c)
			}
			// an ordinary request while no descriptor is left
			posted := make(chan error, 1)
			go func() {
				cl := &http.Client{Timeout: 30 * time.Second}
				resp, err := cl.Post("http://"+hIn+"/count/during.exhaustion", "application/x-www-form-urlencoded", strings.NewReader("value=1"))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				posted <- err
			}()
			// the router sees EMFILE for a while and must stay up
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				if !p.alive() {
					t.Fatalf("the router exited while out of descriptors")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if p.count("accept failed") == 0 {
				t.Fatalf("no accept failure logged: the descriptors were not exhausted (%d connections)", len(hog))
			}
			hogged := len(hog)
			closeHog()
			if err := <-posted; err != nil {
				t.Fatalf("a request made during the exhaustion: %v", err)
			}
			// every input serves
			c, err := net.Dial("tcp", gIn)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "after.graphite 1 1700000000\n")
			c.Close()
			u, err := net.Dial("udp", sIn)
			if err != nil {
				t.Fatal(err)
			}
			u.Write([]byte("after.statsd:1|c"))
			u.Close()
			resp, err := http.Post("http://"+hIn+"/count/after.http_json", "application/x-www-form-urlencoded", strings.NewReader("value=1"))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("http_json after: %v %v", resp, err)
			}
			resp.Body.Close()
			req, _ := http.NewRequest("POST", "http://"+bIn+"/ingest", strings.NewReader("after.https_batch 1 1700000000\n"))
			req.Header.Set("X-Polymur-Key", "0123456789abcdef0123456789abcdef")
			resp, err = http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("https_batch after: %v %v", resp, err)
			}
			resp.Body.Close()
			if !sink.WaitLen(5, 20*time.Second) {
				t.Fatalf("sink got %q", sink.Lines())
			}
			names := map[string]bool{}
			for _, l := range sink.Lines() {
				names[strings.Fields(l)[0]] = true
			}
			for _, n := range []string{"during.exhaustion", "after.graphite", "after.statsd", "after.http_json", "after.https_batch"} {
				if !names[n] {
					t.Errorf("%s missing: sink got %q", n, sink.Lines())
				}
			}
			m := scrape(t, stats)
			errs := m[series("accept_errors_total", "inputs."+via, via+"-1")]
			t.Logf("nofile 256, %d idle connections to %s: accept_errors_total %v, process up, every input served after", hogged, via, errs)
			if errs == 0 {
				t.Errorf("accept_errors_total of inputs.%s = 0", via)
			}
		})
	}
}

// httpDo sends one request with the given headers and returns its status.
func httpDo(t *testing.T, method, url string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestStatsAddrCannotReroute (item 3): with the packaged router.toml
// (stats_addr on, api_addr off), an attacker who can reach stats_addr used
// to add a destination of theirs and delete both caches (204 each), after
// which every metric went to them. stats_addr now only reads: the changes
// are refused, whatever the Host or Origin, and every metric still reaches
// the caches.
func TestStatsAddrCannotReroute(t *testing.T) {
	cacheA, cacheB, evil := plugintest.NewLineSink(t), plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	t.Setenv("CARBON_A", cacheA.Addr+":a")
	t.Setenv("CARBON_B", cacheB.Addr+":b")
	t.Setenv("GRAPHITE_LISTEN", in)
	t.Setenv("ROUTER_STATS_ADDR", stats)
	startBinary(t, "packaging/router.toml")
	waitListen(t, in)
	base := "http://" + stats + "/api/destinations/"
	for _, hdr := range []map[string]string{
		nil,
		{"Host": "attacker.example:8080", "Origin": "http://attacker.example:8080"},
	} {
		for _, req := range []struct{ method, dest string }{
			{"PUT", evil.Addr + ":evil"},
			{"DELETE", cacheA.Addr + ":a"},
			{"DELETE", cacheB.Addr + ":b"},
		} {
			if code := httpDo(t, req.method, base+req.dest, hdr); code != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s on stats_addr: %d, want 405", req.method, req.dest, code)
			}
		}
	}
	lines := graphiteLines("reroute.attempt", 0, 100_000)
	sendLines(t, in, lines, 4)
	waitFor(30*time.Second, func() bool { return cacheA.Len()+cacheB.Len() >= len(lines) })
	if got := cacheA.Len() + cacheB.Len(); got != len(lines) || evil.Len() != 0 {
		t.Fatalf("caches got %d of %d, the attacker %d", got, len(lines), evil.Len())
	}
	t.Logf("PUT/DELETE on stats_addr refused (405); %d of %d metrics reached the caches, 0 the attacker", cacheA.Len()+cacheB.Len(), len(lines))
}

// TestControlEndpointsNeedToken (item 3): on api_addr with an api_token,
// a change needs the token (HTTP Bearer, or "auth TOKEN" before a line
// command), names this host in Host (DNS rebinding) and is not cross-site;
// management_addr's "health down" needs the token too. Every refusal is
// counted.
func TestControlEndpointsNeedToken(t *testing.T) {
	a, b, evil := plugintest.NewLineSink(t), plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, stats, api, mgmt := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  api_addr = %q
  management_addr = %q
  api_token_file = %q
  api_allowed_hosts = ["router.internal"]
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "caches"
  hash = "carbon_ch"
  protocol = "graphite"
  destinations = ["%s:a", "%s:b"]
`, stats, api, mgmt, tokenFile, in, a.Addr, b.Addr))
	waitListen(t, in)
	waitListen(t, api)
	url := "http://" + api + "/api/destinations/" + evil.Addr + ":evil"
	good := "Bearer s3cret-token"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, 401},
		{"wrong token", map[string]string{"Authorization": "Bearer guess"}, 401},
		{"token of another scheme", map[string]string{"Authorization": "Basic czNjcmV0LXRva2Vu"}, 401},
		{"foreign Host (DNS rebinding)", map[string]string{"Authorization": good, "Host": "attacker.example"}, 403},
		{"cross-site Origin", map[string]string{"Authorization": good, "Origin": "http://attacker.example"}, 403},
		{"Sec-Fetch-Site cross-site", map[string]string{"Authorization": good, "Sec-Fetch-Site": "cross-site"}, 403},
	} {
		if code := httpDo(t, "PUT", url, tc.hdr); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	if got := lineCommand(t, api, "putdest "+evil.Addr+":evil"); !strings.HasPrefix(got, "error: a token is required") {
		t.Errorf("line command without auth: %q", got)
	}
	if got := lineCommand(t, api, "auth guess", "putdest "+evil.Addr+":evil"); !strings.HasPrefix(got, "error: bad token") {
		t.Errorf("line command with a bad token: %q", got)
	}
	if got := lineCommand(t, mgmt, "health down", "health"); !strings.Contains(got, "ERROR a token is required") || !strings.Contains(got, "health: up") {
		t.Errorf("management health down without auth: %q", got)
	}
	// nothing changed: all to a and b
	lines := graphiteLines("token.before", 0, 2000)
	sendLines(t, in, lines, 1)
	if !waitSinks(func() int { return a.Len() + b.Len() }, len(lines)) || evil.Len() != 0 {
		t.Fatalf("caches %d, attacker %d", a.Len()+b.Len(), evil.Len())
	}
	m := scrape(t, stats)
	if refused := m[series("control_refused_total", "agent", "agent")]; refused != 9 {
		t.Errorf("control_refused_total = %v, want 9", refused)
	}
	// with the token, from an allowed name, the operator's changes work
	if code := httpDo(t, "PUT", url, map[string]string{"Authorization": good, "Host": "router.internal"}); code != 204 {
		t.Fatalf("PUT with the token: %d", code)
	}
	if got := lineCommand(t, api, "auth s3cret-token", "deldest "+evil.Addr+":evil"); !strings.HasPrefix(got, "Unregistered destination") {
		t.Fatalf("deldest with the token: %q", got)
	}
	if got := lineCommand(t, mgmt, "auth s3cret-token", "health down", "health"); !strings.Contains(got, "health: down") {
		t.Fatalf("health down with the token: %q", got)
	}
	if code := httpDo(t, "GET", "http://"+stats+"/healthz", nil); code != 503 {
		t.Fatalf("/healthz after health down: %d", code)
	}
}

// TestAPIAddrWithoutTokenStillChecksHost: without a token api_addr serves
// changes (as Polymur's did), but not to a page of another site.
func TestAPIAddrWithoutTokenStillChecksHost(t *testing.T) {
	a, evil := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, api := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  api_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.broadcast]]
  protocol = "graphite"
  destinations = [%q]
`, api, in, a.Addr))
	waitListen(t, api)
	url := "http://" + api + "/api/destinations/" + evil.Addr
	if code := httpDo(t, "PUT", url, map[string]string{"Host": "rebind.attacker.example:80"}); code != 403 {
		t.Fatalf("foreign Host: %d, want 403", code)
	}
	if code := httpDo(t, "PUT", url, map[string]string{"Origin": "https://attacker.example"}); code != 403 {
		t.Fatalf("cross-site: %d, want 403", code)
	}
	if code := httpDo(t, "PUT", url, nil); code != 204 {
		t.Fatalf("same host: %d, want 204", code)
	}
}
