package netx

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"
)

// staleProbe bounds the connect that tells a stale socket file from a live one.
const staleProbe = time.Second

// removeStale removes the socket file at path when nothing listens on it
// any more (a process that ended without removing it: a connect is
// refused), so that a unix Listen can bind there. A socket something
// accepts on, a file that is not a socket and a path that cannot be probed
// are left alone: the bind then fails ("address already in use"), as it
// should. An abstract address ("@name") has no file.
func removeStale(ctx context.Context, path string) {
	if path == "" || path[0] == '@' {
		return
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, staleProbe)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		_ = c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(path)
	}
}
