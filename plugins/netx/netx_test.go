package netx

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fakeListener returns the queued errors, then the connection.
type fakeListener struct {
	errs   []error
	conn   net.Conn
	closed atomic.Bool
	block  chan struct{}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	if f.closed.Load() {
		return nil, net.ErrClosed
	}
	if len(f.errs) > 0 {
		e := f.errs[0]
		f.errs = f.errs[1:]
		return nil, e
	}
	if f.block != nil {
		<-f.block
		return nil, net.ErrClosed
	}
	return f.conn, nil
}
func (f *fakeListener) Close() error   { f.closed.Store(true); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func opErr(e syscall.Errno) error { return &net.OpError{Op: "accept", Net: "tcp", Err: e} }

// TestAcceptRetriesTemporaryErrors: EMFILE, ENFILE, ENOBUFS and
// ECONNABORTED never reach the server; each is counted, the log has one
// warning per interval with the exact count since the previous message,
// and a note once accepting works again.
func TestAcceptRetriesTemporaryErrors(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	var errs []error
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ECONNABORTED, syscall.ENOMEM} {
		for range 3 {
			errs = append(errs, opErr(e))
		}
	}
	fl := &fakeListener{errs: errs, conn: c1}
	var logs bytes.Buffer
	var count atomic.Uint64
	l := Wrap(fl, Config{Errors: &count, Log: zerolog.New(&logs), LogInterval: time.Hour})
	var slept []time.Duration
	l.sleep = func(d time.Duration, _ <-chan struct{}) bool { slept = append(slept, d); return true }
	c, err := l.Accept()
	if err != nil || c != c1 {
		t.Fatalf("Accept = %v, %v", c, err)
	}
	if count.Load() != 15 {
		t.Fatalf("accept_errors_total = %d, want 15", count.Load())
	}
	// backoff doubles to 1 s
	if slept[0] != minDelay || slept[len(slept)-1] != maxDelay {
		t.Fatalf("backoff %v", slept)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"count":1`) || !strings.Contains(lines[0], "too many open files") ||
		!strings.Contains(lines[1], "accepting again") || !strings.Contains(lines[1], `"count":14`) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// TestAcceptLogsOncePerInterval: with a zero-length interval every failure
// is its own message (count 1); the counter is exact either way.
func TestAcceptLogsOncePerInterval(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	fl := &fakeListener{errs: []error{opErr(syscall.EMFILE), opErr(syscall.EMFILE)}, conn: c1}
	var logs bytes.Buffer
	l := Wrap(fl, Config{Log: zerolog.New(&logs), LogInterval: time.Nanosecond})
	l.sleep = func(time.Duration, <-chan struct{}) bool { time.Sleep(time.Millisecond); return true }
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "accept failed"); n != 2 {
		t.Fatalf("%d warnings, want 2:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"count":0,"message":"accepting again`) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// TestCloseEndsBackoff: Close during a backoff makes Accept return
// net.ErrClosed at once, and a closed listener is not retried.
func TestCloseEndsBackoff(t *testing.T) {
	fl := &fakeListener{errs: []error{opErr(syscall.EMFILE)}, block: make(chan struct{})}
	l := Wrap(fl, Config{Log: zerolog.Nop()})
	started := make(chan struct{})
	l.sleep = func(d time.Duration, stop <-chan struct{}) bool {
		close(started)
		return sleep(time.Hour, stop)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	<-started
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still in its backoff after Close")
	}
}

// TestRealListener: a real socket on 127.0.0.1 goes through unchanged.
func TestRealListener(t *testing.T) {
	l, err := Listen("127.0.0.1:0", Config{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Close()
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
}

// TestBudget: Take refuses what would pass the bound and never waits;
// Release makes room again.
func TestBudget(t *testing.T) {
	b := NewBudget(100)
	if !b.Take(60) || b.Take(41) || !b.Take(40) || b.Used() != 100 || b.Take(1) {
		t.Fatalf("used %d", b.Used())
	}
	b.Release(60)
	if !b.Take(50) || b.Used() != 90 {
		t.Fatalf("used %d", b.Used())
	}
	u := NewBudget(0)
	if !u.Take(1<<40) || u.Used() != 1<<40 {
		t.Fatal("unbounded budget refused")
	}
}
