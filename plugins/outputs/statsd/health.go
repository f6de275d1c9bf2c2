package statsd

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// checker runs Etsy proxy.js's health check against a backend's admin port:
// every interval, "health\r\n" on a new TCP connection; a reply containing
// "up" means healthy; anything else, an error or no reply within timeout
// means down. The first failure marks the backend down, the first success
// marks it up again. Healthy is read concurrently; start and stop are called
// from the output's runner goroutine.
type checker struct {
	admin, addr       string
	interval, timeout time.Duration
	log               zerolog.Logger
	changes           *atomic.Uint64
	up                atomic.Bool

	cancel context.CancelFunc
	done   chan struct{}
}

const maxCheckTimeout = 5 * time.Second

func newChecker(admin, addr string, interval time.Duration, log zerolog.Logger, changes *atomic.Uint64) *checker {
	h := &checker{admin: admin, addr: addr, interval: interval, timeout: min(interval, maxCheckTimeout), log: log, changes: changes}
	h.up.Store(true) // a node is in the ring until a check fails, as in proxy.js
	return h
}

// start runs the checks in a goroutine, unless they already run.
func (h *checker) start() {
	if h.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx, h.done)
}

// stop ends the goroutine and waits for it.
func (h *checker) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel, h.done = nil, nil
}

func (h *checker) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		ok, reply, err := h.check(ctx)
		if ctx.Err() != nil {
			return
		}
		h.set(ok, reply, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// set records the result of a check and logs and counts a change.
func (h *checker) set(ok bool, reply []byte, err error) {
	if h.up.Swap(ok) == ok {
		return
	}
	h.changes.Add(1)
	if ok {
		h.log.Info().Str("addr", h.addr).Str("admin", h.admin).Msg("backend healthy: back in the ring")
		return
	}
	ev := h.log.Warn().Str("addr", h.addr).Str("admin", h.admin)
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Bytes("reply", bytes.TrimSpace(reply)).Msg("backend unhealthy: out of the ring")
}

// check sends one health command and reads the reply up to its first '\n'.
func (h *checker) check(ctx context.Context) (ok bool, reply []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", h.admin)
	if err != nil {
		return false, nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("health\r\n")); err != nil {
		return false, nil, err
	}
	var buf [256]byte
	n := 0
	for n < len(buf) {
		k, rerr := c.Read(buf[n:])
		n += k
		if bytes.IndexByte(buf[:n], '\n') >= 0 {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	reply = buf[:n]
	if bytes.Contains(reply, []byte("up")) {
		return true, reply, nil
	}
	return false, reply, err
}
