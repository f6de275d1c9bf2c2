package file_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"

	_ "github.com/metricsrouter/router/plugins/inputs/graphite"
	_ "github.com/metricsrouter/router/plugins/outputs/file"
)

// TestThroughTheRouter: lines sent to a running router reach both files
// of an [[outputs.file]], byte for byte, and the router stops cleanly.
func TestThroughTheRouter(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	listen := plugintest.FreeAddr(t)
	cfg := "[[inputs.graphite]]\n  listen = " + strconv.Quote(listen) + "\n" +
		"[[outputs.file]]\n  files = [" + strconv.Quote(a) + ", " + strconv.Quote(b) + "]\n  flush_interval = \"20ms\"\n"
	file := filepath.Join(dir, "router.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &plugintest.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- agent.Run(ctx, []string{"-config", file}, log, log) }()

	var c net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if c, err = net.DialTimeout("tcp", listen, time.Second); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("router exited with %d:\n%s", code, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("router does not listen on %s:\n%s", listen, log.String())
		}
	}
	want := "a.b;dc=eu  1.50\t1700000000\nc.d 2 1700000001\ne.f 3 1700000002\n"
	if _, err := c.Write([]byte(want)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ga, _ := os.ReadFile(a)
		gb, _ := os.ReadFile(b)
		if string(ga) == want && string(gb) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a.log = %q, b.log = %q, want %q\n%s", ga, gb, want, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("router exited with %d:\n%s", code, log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("router did not stop")
	}
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s after stop = %q, want %q", filepath.Base(p), got, want)
		}
	}
}
