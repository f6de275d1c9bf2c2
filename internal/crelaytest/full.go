package crelaytest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// FullBuildScript builds the carbon-c-relay that FullBin looks for (from
// the module root; scripts/test.sh runs it and sets CRELAY_FULL).
const FullBuildScript = "scripts/install-crelay-full.sh"

// FullBin returns a carbon-c-relay 3.7.3 built with its gzip, lz4, snappy
// and ssl transports (Debian's binary has none of them): $CRELAY_FULL, else
// the one FullBuildScript caches in the user cache directory
// (router-test/carbon-c-relay-full/relay, or carbon-c-relay-full/relay). Without one it skips the test, or fails it
// under CI.
func FullBin(t testing.TB) string {
	t.Helper()
	cands := []string{os.Getenv("CRELAY_FULL")}
	if d, err := os.UserCacheDir(); err == nil {
		cands = append(cands, filepath.Join(d, "router-test", "carbon-c-relay-full", "relay"),
			filepath.Join(d, "carbon-c-relay-full", "relay"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "-v").CombinedOutput(); err == nil && strings.Contains(string(out), "gzip") {
			return c
		}
	}
	msg := "no carbon-c-relay with transports: set CRELAY_FULL, or run " + FullBuildScript
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreeAddr returns a "127.0.0.1:port" that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// Full is a carbon-c-relay process started by StartFull.
type Full struct {
	cmd    *exec.Cmd
	log    *plugintest.SyncBuffer
	exited chan struct{}
	err    error
}

// StartFull writes conf to a temporary directory and runs bin on it in
// submission mode (-s: no statistics of its own in the stream), with args
// added (e.g. "-C", caFile), until the test ends. It returns once each of
// the TCP addresses in listen accepts a connection, and fails the test
// with carbon-c-relay's output if it exits first or does not listen
// within 10 seconds.
func StartFull(t testing.TB, bin, conf string, listen []string, args ...string) *Full {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &Full{log: &plugintest.SyncBuffer{}, exited: make(chan struct{})}
	f.cmd = exec.Command(bin, append([]string{"-f", path, "-s", "-H", "crelaytest"}, args...)...)
	f.cmd.Dir = dir
	f.cmd.Stdout, f.cmd.Stderr = f.log, f.log
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		f.err = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range listen {
		for {
			select {
			case <-f.exited:
				t.Fatalf("carbon-c-relay exited before listening on %s (%v):\n%s", a, f.err, f.log.String())
			default:
			}
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("carbon-c-relay does not listen on %s: %v\n%s", a, err, f.log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return f
}

// Log returns what carbon-c-relay printed so far.
func (f *Full) Log() string { return f.log.String() }

// Exited reports whether the process has ended, and how.
func (f *Full) Exited() (bool, error) {
	select {
	case <-f.exited:
		return true, f.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM (carbon-c-relay then flushes its queues) and waits up
// to 20 seconds for the process to end; it returns Wait's error.
func (f *Full) Stop(t testing.TB) error {
	t.Helper()
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("carbon-c-relay still runs 20s after SIGTERM:\n%s", f.log.String())
	}
	return f.err
}
