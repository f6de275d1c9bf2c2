package linein_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// peerSink records each emitted metric as "<peer> <line>", the way the
// agent writes it for an output with ip = true.
type peerSink struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func newPeerSink() *peerSink { return &peerSink{more: make(chan struct{}, 1)} }

func (s *peerSink) Emit(ctx context.Context, b metric.Batch) error {
	peer := registry.PeerFrom(ctx)
	s.mu.Lock()
	for i := range b {
		s.lines = append(s.lines, peer+" "+string(b[i].Line()))
	}
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the lines once there are n, sorted.
func (s *peerSink) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		got := slices.Clone(s.lines)
		s.mu.Unlock()
		if len(got) >= n {
			slices.Sort(got)
			return got
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("%d lines after %v, want %d: %q", len(got), wait, n, got)
		}
	}
}

// peerListeners are the four listeners senders reach.
type peerListeners struct{ tcp4, udp4, tcp6, udp6 string }

// sendFromPeers sends one line per (transport, source address) pair, each
// on a connection or datagram of its own, and returns how many.
func sendFromPeers(t *testing.T, l peerListeners) int {
	t.Helper()
	n := 0
	for _, tc := range []struct {
		net, src, dst string
	}{
		{"tcp", "127.0.0.1", l.tcp4},
		{"tcp", "127.0.0.2", l.tcp4},
		{"udp", "127.0.0.1", l.udp4},
		{"udp", "127.0.0.2", l.udp4},
		{"udp", "127.0.0.1", l.udp4},
		{"tcp", "::1", l.tcp6},
		{"udp", "::1", l.udp6},
	} {
		n++
		line := "peer." + tc.net + "." + strconv.Itoa(n) + " " + strconv.Itoa(n) + " 1700000000\n"
		var local net.Addr = &net.TCPAddr{IP: net.ParseIP(tc.src)}
		if tc.net == "udp" {
			local = &net.UDPAddr{IP: net.ParseIP(tc.src)}
		}
		d := net.Dialer{LocalAddr: local, Timeout: wait}
		c, err := d.Dial(tc.net, tc.dst)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetWriteDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	return n
}

func serveLines(t *testing.T, listen string, udp bool, out registry.Emitter) string {
	t.Helper()
	env, _ := plugintest.Env(t, "inputs.graphite")
	in := startInstance(linein.Config{Listen: listen, MaxLine: 1 << 16}, env, out, udp)
	t.Cleanup(func() { in.stop(t) })
	return in.srv.Addr().String()
}

// TestPeerInContext: every batch is emitted with its sender's address:
// per TCP connection, and per datagram over UDP (one sender per batch).
func TestPeerInContext(t *testing.T) {
	sink := newPeerSink()
	l := peerListeners{
		tcp4: serveLines(t, "127.0.0.1:0", false, sink),
		udp4: serveLines(t, "127.0.0.1:0", true, sink),
		tcp6: serveLines(t, "[::1]:0", false, sink),
		udp6: serveLines(t, "[::1]:0", true, sink),
	}
	n := sendFromPeers(t, l)
	want := []string{
		"127.0.0.1 peer.tcp.1 1 1700000000",
		"127.0.0.2 peer.tcp.2 2 1700000000",
		"127.0.0.1 peer.udp.3 3 1700000000",
		"127.0.0.2 peer.udp.4 4 1700000000",
		"127.0.0.1 peer.udp.5 5 1700000000",
		"::1 peer.tcp.6 6 1700000000",
		"::1 peer.udp.7 7 1700000000",
	}
	slices.Sort(want)
	if got := sink.wait(t, n); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPeerMatchesCarbonCRelay: the same senders through carbon-c-relay's
// `file ip` cluster and through the line servers give the same
// "<address> <line>" lines.
func TestPeerMatchesCarbonCRelay(t *testing.T) {
	bin, err := exec.LookPath("carbon-c-relay")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("carbon-c-relay is not installed (scripts/test.sh installs it)")
		}
		t.Skip("carbon-c-relay is not installed (apt-get install carbon-c-relay)")
	}
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(plugintest.FreeAddr(t))
	out := filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, "relay.conf")
	cfg := "cluster f\n    file ip " + out + "\n    ;\n" +
		"match ^peer\\. send to f stop;\n" +
		"listen\n    type linemode\n" +
		"        127.0.0.1:" + port + " proto tcp\n" +
		"        127.0.0.1:" + port + " proto udp\n" +
		"        [::1]:" + port + " proto tcp\n" +
		"        [::1]:" + port + " proto udp\n    ;\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &plugintest.SyncBuffer{}
	cmd := exec.Command(bin, "-f", conf, "-w", "1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	// connections during its start-up can crash or stall it: wait for the end
	for deadline := time.Now().Add(wait); !strings.Contains(log.String(), "startup sequence complete"); {
		select {
		case err := <-exited:
			exited <- err // for the deferred wait
			t.Fatalf("carbon-c-relay exited: %v\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-c-relay did not start:\n%s", log.String())
		}
	}
	tcp4, tcp6 := net.JoinHostPort("127.0.0.1", port), net.JoinHostPort("::1", port)
	n := sendFromPeers(t, peerListeners{tcp4: tcp4, udp4: tcp4, tcp6: tcp6, udp6: tcp6})
	var want []string
	for deadline := time.Now().Add(wait); ; {
		want = want[:0]
		if f, err := os.Open(out); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				want = append(want, sc.Text())
			}
			f.Close()
		}
		if len(want) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-c-relay wrote %d lines, want %d: %q\n%s", len(want), n, want, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(want)

	sink := newPeerSink()
	ours := peerListeners{
		tcp4: serveLines(t, "127.0.0.1:0", false, sink),
		udp4: serveLines(t, "127.0.0.1:0", true, sink),
		tcp6: serveLines(t, "[::1]:0", false, sink),
		udp6: serveLines(t, "[::1]:0", true, sink),
	}
	sendFromPeers(t, ours)
	if got := sink.wait(t, n); !slices.Equal(got, want) {
		t.Fatalf("line servers:\n%s\ncarbon-c-relay:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
