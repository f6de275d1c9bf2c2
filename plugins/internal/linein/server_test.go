package linein_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/plugintest"
)

const wait = 10 * time.Second

// serveTCP runs a TCP line server with cfg until the test ends.
func serveTCP(t *testing.T, cfg linein.Config) (string, *plugintest.Capture, *plugintest.Metrics) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	env, m := plugintest.Env(t, "inputs.graphite")
	s := linein.NewServer(cfg, graphite.Parse, env)
	ctx, cancel := context.WithCancel(context.Background())
	capture := plugintest.NewCapture()
	done := make(chan error, 1)
	go func() { done <- s.ServeTCP(ctx, capture) }()
	addr := s.Addr()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeTCP: %v", err)
			}
		case <-time.After(wait):
			t.Error("ServeTCP did not return")
		}
	})
	return addr.String(), capture, m
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitCount(t *testing.T, m *plugintest.Metrics, name string, n uint64) {
	t.Helper()
	if got := m.WaitCounter(name, n, wait); got != n {
		t.Fatalf("%s = %d, want %d", name, got, n)
	}
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// closedByServer reports whether the server closed c (EOF or reset) within wait.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestShedIdleForNewSender: at max_connections, a new sender is admitted by
// closing the connection idle longest (its cut line counted as truncated),
// so idle connections cannot lock senders out (issue #16, item 7).
func TestShedIdleForNewSender(t *testing.T) {
	addr, capture, m := serveTCP(t, linein.Config{MaxConnections: 3, ShedMinIdle: 50 * time.Millisecond})
	oldest := dialFrom(t, "127.0.0.1", addr)
	send(t, oldest, "half.a.li") // an incomplete line, then silence
	waitCount(t, m, "connections_total", 1)
	// the server reads the partial line at once; idleness is the subject
	// here, so time itself orders the connections
	time.Sleep(20 * time.Millisecond)
	idle := []net.Conn{dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)}
	waitCount(t, m, "connections_total", 3)
	time.Sleep(60 * time.Millisecond) // all three idle past ShedMinIdle
	fresh := dialFrom(t, "127.0.0.1", addr)
	send(t, fresh, "fresh.sender 1 1\n")
	if !capture.WaitFor(1, wait) {
		t.Fatal("the new sender was not served")
	}
	if !closedByServer(oldest) {
		t.Fatal("the oldest idle connection was not shed")
	}
	if got := m.Get("connections_shed_total"); got != 1 {
		t.Fatalf("connections_shed_total = %d, want 1", got)
	}
	waitCount(t, m, "truncated_total", 1)
	for _, c := range idle { // the others are still open
		send(t, c, "still.open 1 1\n")
	}
	if !capture.WaitFor(3, wait) {
		t.Fatalf("got %q", capture.Raw())
	}
	if got := m.Get("connections_rejected_total"); got != 0 {
		t.Fatalf("connections_rejected_total = %d", got)
	}
}

// TestNothingIdleRefuses: when every connection sent something recently,
// a new connection is closed at once and counted, not an active sender.
func TestNothingIdleRefuses(t *testing.T) {
	addr, _, m := serveTCP(t, linein.Config{MaxConnections: 2, ShedMinIdle: time.Hour})
	a, b := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	send(t, a, "a 1 1\n")
	send(t, b, "b 1 1\n")
	waitCount(t, m, "connections_total", 2)
	c := dialFrom(t, "127.0.0.1", addr)
	if !closedByServer(c) {
		t.Fatal("the connection over max_connections was not closed")
	}
	if m.Get("connections_rejected_total") != 1 || m.Get("connections_shed_total") != 0 {
		t.Fatalf("rejected %d, shed %d", m.Get("connections_rejected_total"), m.Get("connections_shed_total"))
	}
}

// TestPerIPLimit: one source address at max_connections_per_ip sheds its
// own idle connections, never another address's; another address is served
// as usual.
func TestPerIPLimit(t *testing.T) {
	addr, capture, m := serveTCP(t, linein.Config{MaxConnections: 100, MaxPerIP: 2, ShedMinIdle: 50 * time.Millisecond})
	other := dialFrom(t, "127.0.0.2", addr)
	first := dialFrom(t, "127.0.0.1", addr)
	second := dialFrom(t, "127.0.0.1", addr)
	waitCount(t, m, "connections_total", 3)
	time.Sleep(60 * time.Millisecond)
	third := dialFrom(t, "127.0.0.1", addr) // sheds first, not other (older)
	if !closedByServer(first) {
		t.Fatal("the address's oldest idle connection was not shed")
	}
	for i, c := range []net.Conn{other, second, third} {
		send(t, c, []string{"other 1 1\n", "second 1 1\n", "third 1 1\n"}[i])
	}
	if !capture.WaitFor(3, wait) {
		t.Fatalf("got %q", capture.Raw())
	}
	got := capture.Raw()
	slices.Sort(got)
	if want := []string{"other 1 1", "second 1 1", "third 1 1"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if m.Get("connections_shed_total") != 1 {
		t.Fatalf("connections_shed_total = %d", m.Get("connections_shed_total"))
	}
}
