// Package etsytest finds Etsy statsd (the npm package, whose proxy.js is the
// reference of the StatsD proxy's differential tests) for tests.
package etsytest

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// StatsdDir returns $STATSD_DIR, the directory of the npm package statsd
// (scripts/install-statsd.sh prints it), after checking that node runs.
// Without it the test is skipped, or fails under CI=true.
func StatsdDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STATSD_DIR")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("STATSD_DIR is not set: STATSD_DIR=$(scripts/install-statsd.sh) go test ...")
		}
		t.Skip("STATSD_DIR is not set: STATSD_DIR=$(scripts/install-statsd.sh) go test ...")
	}
	if _, err := os.Stat(dir + "/proxy.js"); err != nil {
		t.Fatalf("STATSD_DIR=%s: %v", dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("STATSD_DIR is set but node is not installed:", err)
	}
	return dir
}

// Daemon runs Etsy statsd's own daemon (node stats.js) on the
// configuration object conf (JavaScript text, without the braces' content
// checks) until the test ends; its output is logged if the test failed.
func Daemon(t testing.TB, dir, conf string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.js")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "stats.js", file)
	cmd.Dir = dir
	var out plugintest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node stats.js output:\n%s", out.String())
		}
	})
}

// FlushSink is a TCP server taking the flushes of Etsy statsd's graphite
// backend, which opens one connection per flush: each connection's bytes
// are one flush, on Flushes.
type FlushSink struct {
	Port    int
	Flushes chan []byte
}

// NewFlushSink listens on a free loopback port until the test ends.
func NewFlushSink(t testing.TB) *FlushSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &FlushSink{Port: ln.Addr().(*net.TCPAddr).Port, Flushes: make(chan []byte, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				b, _ := io.ReadAll(c)
				c.Close()
				s.Flushes <- b
			}()
		}
	}()
	return s
}
