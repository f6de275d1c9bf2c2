package netx

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func listenUnix(t *testing.T, path, owner string) *Listener {
	t.Helper()
	l, err := ListenContext(t.Context(), "unix", path, Config{Log: zerolog.Nop(), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dialUnix(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return c
}

// isSocket reports whether path is a socket file.
func isSocket(t *testing.T, path string) bool {
	t.Helper()
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()&os.ModeSocket != 0
}

// staleSocket leaves a socket file at path that nothing listens on, as a
// process that ended without removing it does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if !isSocket(t, path) {
		t.Fatal("no stale socket file")
	}
	if c, err := net.Dial("unix", path); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial the stale socket: %v, want connection refused", err)
	}
}

// TestUnixListenShares: a unix socket is pooled by path as a TCP one is:
// Listens of one owner share it, another owner's Listen fails, the
// connections of a stopping handle are handed over with their pending
// bytes, and the file goes with the last handle.
func TestUnixListenShares(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.sock")
	old, next := listenUnix(t, path, "in a"), listenUnix(t, path, "in a")
	if got := old.Addr().String(); got != path {
		t.Fatalf("Addr = %q, want %q", got, path)
	}
	if l, err := ListenContext(t.Context(), "unix", path, Config{Owner: "in b"}); !errors.Is(err, syscall.EADDRINUSE) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("another owner: err = %v, want address in use", err)
	}
	if !isSocket(t, path) {
		t.Fatal("a Listen of another owner removed the live socket file")
	}
	c := dialUnix(t, path)
	s := accept(t, old)
	write(t, c, "abc")
	if got := readN(t, s, 3); got != "abc" {
		t.Fatalf("read %q", got)
	}
	if !old.CanHandOver() {
		t.Fatal("CanHandOver false with a successor open")
	}
	old.Close()
	if !old.HandOver(s, []byte("c"), "st") {
		t.Fatal("HandOver refused")
	}
	hc := accept(t, next)
	if h, ok := hc.(*HandedConn); !ok || h.State != "st" {
		t.Fatalf("accepted %T", hc)
	}
	write(t, c, "de")
	if got := readN(t, hc, 3); got != "cde" {
		t.Fatalf("read %q, want the pending byte then the rest", got)
	}
	if !isSocket(t, path) {
		t.Fatal("socket file gone with a handle open")
	}
	c2 := dialUnix(t, path)
	write(t, c2, "n")
	if got := readN(t, accept(t, next), 1); got != "n" {
		t.Fatalf("read %q", got)
	}
	next.Close()
	if pooled("unix", path) || isSocket(t, path) {
		t.Fatal("socket or its file left after the last handle closed")
	}
}

// TestUnixListenStale: a socket file nothing listens on is removed and
// bound again; a live socket of another process's listener, a file that
// is not a socket and a directory are left alone, and the Listen fails.
func TestUnixListenStale(t *testing.T) {
	dir := t.TempDir()
	t.Run("stale", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		staleSocket(t, path)
		l := listenUnix(t, path, "in")
		c := dialUnix(t, path)
		write(t, c, "x")
		if got := readN(t, accept(t, l), 1); got != "x" {
			t.Fatalf("read %q", got)
		}
		l.Close()
		if isSocket(t, path) {
			t.Fatal("socket file left after Close")
		}
	})
	t.Run("live", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		other, err := net.Listen("unix", path) // not through the pool: another process
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if l, err := ListenContext(t.Context(), "unix", path, Config{Owner: "in"}); !errors.Is(err, syscall.EADDRINUSE) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("err = %v, want address in use", err)
		}
		// the probe's connection reaches the live listener, which keeps serving
		probe := accept(t, other)
		if n, err := probe.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("the probe sent %d bytes, %v", n, err)
		}
		c := dialUnix(t, path)
		write(t, c, "y")
		if got := readN(t, accept(t, other), 1); got != "y" {
			t.Fatalf("read %q", got)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := ListenContext(t.Context(), "unix", path, Config{Owner: "in"}); !errors.Is(err, syscall.EADDRINUSE) {
			if l != nil {
				l.Close()
			}
			t.Fatalf("err = %v, want address in use", err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "keep" {
			t.Fatalf("the file became %q, %v", b, err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		path := filepath.Join(dir, "d")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if l, err := ListenContext(t.Context(), "unix", path, Config{Owner: "in"}); err == nil {
			l.Close()
			t.Fatal("listened on a directory")
		}
		if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
			t.Fatalf("the directory is gone: %v", err)
		}
	})
}

// TestUnixHoldKeepsSocket: during a hold the socket and its file stay
// after the last handle closes, the next Listen takes them over with the
// connections waiting, and after the grace a socket nobody took is closed
// and its file removed.
func TestUnixHoldKeepsSocket(t *testing.T) {
	shortGrace(t, 20*time.Millisecond)
	path := filepath.Join(t.TempDir(), "held.sock")
	h := Hold()
	old := listenUnix(t, path, "in old")
	old.Close()
	if !isSocket(t, path) {
		t.Fatal("socket file removed during a hold")
	}
	c := dialUnix(t, path) // waits in the kernel's queue
	write(t, c, "q")
	next := listenUnix(t, path, "in new")
	if got := readN(t, accept(t, next), 1); got != "q" {
		t.Fatalf("read %q", got)
	}
	next.Close()
	h.Release()
	waitFor(t, "the socket closed after the grace", func() bool { return !pooled("unix", path) })
	if isSocket(t, path) {
		t.Fatal("socket file left after the grace")
	}
}
