package admin

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/etsytest"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestManagementLikeProxyJS puts management_addr beside Etsy statsd's own
// proxy.js: each command written in one piece, without closing, gets the
// same answer from both, newline or not. STATSD_DIR names the npm package
// statsd (npm install statsd@0.9.0; STATSD_DIR=<dir>/node_modules/statsd),
// as for e2e_etsy_flap_test.go: without it the test skips, or fails under
// CI=true.
func TestManagementLikeProxyJS(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("STATSD_DIR is set but node is not installed:", err)
	}
	mgmt := plugintest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(mgmt)
	cfg := filepath.Join(t.TempDir(), "proxy.js.conf")
	// one node that is down: health checks fail, which changes no answer
	// compared here
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{ nodes: [ {host: '127.0.0.1', port: 9, adminport: 9} ],
  server: './servers/udp', host: '127.0.0.1', port: %d, mgmt_address: %q, mgmt_port: %s,
  forkCount: 0, checkInterval: 1000 }`, freeUDPPort(t), host, port)), 0o600)
	cmd := exec.Command(node, "proxy.js", cfg)
	cmd.Dir = dir
	out := &plugintest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("proxy.js:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", mgmt)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy.js does not listen on %s", mgmt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ours := startMgmt(t, false)
	ask := func(addr, send, want string) string {
		c := dial(t, addr)
		io.WriteString(c, send)
		return readUntil(c, want)
	}
	for _, tc := range []struct{ send, want string }{
		{"health", "health: up\n"},
		{"health\n", "health: up\n"},
		{"health\r\n", "health: up\n"},
		{"frobnicate", "ERROR\n"},
		{"health down", "health: down\n"},
		{"health", "health: down\n"},
		{"health UP", "health: up\n"},
	} {
		theirs := ask(mgmt, tc.send, tc.want)
		got := ask(ours, tc.send, tc.want)
		if got != theirs || got != tc.want {
			t.Errorf("%q: router %q, proxy.js %q", tc.send, got, theirs)
		}
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return int(c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
}
