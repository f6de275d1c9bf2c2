package graphite_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/inputs/graphite"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestUnixSocket: with protocol = "unix" the input listens on a stream
// socket at the listen path, as carbon-c-relay's "listen ... /path proto
// unix": a socket file left by a process that ended is replaced, lines
// from several connections arrive as on TCP (max_connections_per_ip, which
// has no source address to go by, does not limit them), cleansing applies,
// and the file is removed at stop.
func TestUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carbon.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	r := start(t, func(g *graphite.Graphite) {
		g.Protocol, g.Listen, g.MaxPerIP, g.Cleanse = "unix", path, 1, true
	})
	if r.addr != path {
		t.Fatalf("Addr = %q, want %q", r.addr, path)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket at %s: %v", path, err)
	}
	c1, c2 := dial(t, "unix", path), dial(t, "unix", path)
	write(t, c1, "a.b 1 1700000000\nc..d\t2 1700000000\n")
	write(t, c2, "e.f 3 1700000000\nbad\n")
	if v := r.metrics.WaitGauge("connections_active", 2, wait); v != 2 {
		t.Fatalf("connections_active = %v, want 2", v)
	}
	c1.Close()
	c2.Close()
	r.idle(t, 2)
	want := []string{"a.b 1 1700000000", "c.d 2 1700000000", "e.f 3 1700000000"}
	if got := sorted(r.capture.Raw()); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := r.metrics.Get("parse_errors_total"); n != 1 {
		t.Fatalf("parse_errors_total = %d, want 1", n)
	}
	if n := r.metrics.Get("connections_rejected_total"); n != 0 {
		t.Fatalf("connections_rejected_total = %d, want 0", n)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after stop: %v, want it removed", err)
	}
}

// TestUnixSocketOccupied: a path where something else listens, or that is
// not a socket, makes Run fail naming it, and stays as it was.
func TestUnixSocketOccupied(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	other, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{live, file} {
		runFails(t, "unix", path)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Fatalf("the file became %q, %v", b, err)
	}
	c := dial(t, "unix", live) // the other listener still has its socket
	c.Close()
}

func TestInitUnix(t *testing.T) {
	for _, tc := range []struct {
		name, listen, wantErr string
	}{
		{"path", "/run/router/carbon.sock", ""},
		{"relative path", "carbon.sock", ""},
		{"empty", "", "socket path"},
		{"too long", "/" + strings.Repeat("x", 107), "socket path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraphite(t, func(g *graphite.Graphite) { g.Protocol, g.Listen = "unix", tc.listen })
			env, _ := plugintest.Env(t, "inputs.graphite")
			plugintest.WantErr(t, "Init", g.Init(env), tc.wantErr)
		})
	}
}
