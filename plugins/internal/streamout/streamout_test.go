package streamout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

const wait = 10 * time.Second

// unit is what appendUnit writes for metric i: nothing (a metric the
// format cannot carry) for every 7th, two lines that belong together for
// every 5th, one line otherwise.
func unit(i int) string {
	switch {
	case i%7 == 3:
		return ""
	case i%5 == 1:
		return fmt.Sprintf("pair.%d.zero 0\npair.%d.value %d\n", i, i, i)
	}
	return fmt.Sprintf("one.%d %d\n", i, i)
}

func appendUnit(dst []byte, m *metric.Metric) []byte {
	i, _ := strconv.Atoi(string(m.Name()))
	return append(dst, unit(i)...)
}

func batch(t *testing.T, n int) metric.Batch {
	t.Helper()
	b := make(metric.Batch, n)
	for i := range b {
		if err := graphite.Parse(fmt.Appendf(nil, "%d 1 1700000000", i), &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// listen accepts connections on 127.0.0.1 with a tiny receive buffer, so a
// writer can be blocked mid-batch.
func listen(t *testing.T) (net.Listener, chan net.Conn) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 4)
	go func() {
		defer close(conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	})
	return ln, conns
}

func accept(t *testing.T, conns chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(wait):
		t.Fatal("no connection")
		return nil
	}
}

func readAll(t *testing.T, c net.Conn) chan string {
	got := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		data, _ := io.ReadAll(c)
		c.Close()
		got <- string(data)
	}()
	return got
}

// TestResumeRefusedAndMultiLine: a batch whose metrics write as nothing, one
// line or two lines fails part way; the retry on a new connection starts at
// the first metric whose lines did not all go out (never inside a metric),
// and the batch then reports exactly the metrics written as nothing as
// refused, wrapping registry.ErrRejected.
func TestResumeRefusedAndMultiLine(t *testing.T) {
	const n = 20000
	ln, conns := listen(t)
	s := &Stream{Address: ln.Addr().String(), Timeout: wait, WriteBuffer: 512}
	b := batch(t, n)

	// 1. The peer reads nothing: the write times out part way; the
	// connection then dies with the rest of the chunk pending.
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Conn().(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	c1 := accept(t, conns)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := s.Write(ctx, b, appendUnit)
	cancel()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a stalled peer = %v, want a deadline error", err)
	}
	s.Close()
	got1 := <-readAll(t, c1)

	// the first metric not wholly in got1, and the refused ones before it
	var all strings.Builder
	resume, refusedBefore, refused := -1, 0, 0
	for i := range n {
		u := unit(i)
		all.WriteString(u)
		if u == "" {
			refused++
		}
		if resume < 0 && all.Len() > len(got1) {
			resume = i
		}
		if resume < 0 && u == "" {
			refusedBefore++
		}
	}
	if !strings.HasPrefix(all.String(), got1) {
		t.Fatal("the first connection did not get the start of the batch")
	}
	if resume <= 0 || resume >= n-1 {
		t.Fatalf("the cut is at metric %d of %d; the test needs it inside the batch", resume, n)
	}
	if s.ResumeAt() != resume || s.resume.refused != refusedBefore {
		t.Fatalf("resume at %d with %d refused before, want %d and %d (cut after %d bytes)", s.ResumeAt(), s.resume.refused, resume, refusedBefore, len(got1))
	}

	// 2. A peer that reads: the rest from the cut metric on, then the
	// refused count of the whole batch.
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	c2 := accept(t, conns)
	if err := c2.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	got2 := readAll(t, c2)
	err = s.Write(t.Context(), b, appendUnit)
	var r *Refused
	if !errors.As(err, &r) || r.Rejected() != refused || !errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write = %v, want %d refused, rejected", err, refused)
	}
	s.Close()
	var rest strings.Builder
	for i := resume; i < n; i++ {
		rest.WriteString(unit(i))
	}
	if g := <-got2; g != rest.String() {
		t.Fatalf("the second connection got %d bytes, want the %d of metrics %d.. whole", len(g), rest.Len(), resume)
	}

	// 3. A batch of only refused metrics writes nothing and reports them all.
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	c3 := accept(t, conns)
	got3 := readAll(t, c3)
	only := metric.Batch{b[3], b[10], b[17]}
	if err := s.Write(t.Context(), only, appendUnit); !errors.As(err, &r) || r.Rejected() != 3 {
		t.Fatalf("Write of refused metrics only = %v, want 3 refused", err)
	}
	s.Close()
	if g := <-got3; g != "" {
		t.Fatalf("a batch of refused metrics wrote %q", g)
	}
}
