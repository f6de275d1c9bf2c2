package streamout

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// brackets frames each chunk as "<" + lines + ">\n".
var brackets = &Framing{
	Begin: func(dst []byte) []byte { return append(dst, '<') },
	End:   func(dst []byte, start int) []byte { return append(dst, ">\n"...) },
}

// upper is a stand-in compressor: it appends p upper-cased, so a test sees
// that every byte written went through it.
type upper struct{ resets int }

func (u *upper) Compress(dst, p []byte) ([]byte, error) {
	return append(dst, strings.ToUpper(string(p))...), nil
}
func (u *upper) Reset() { u.resets++ }

// messages returns the whole "<...>\n" messages at the start of got.
func messages(got string) []string {
	var out []string
	for {
		i := strings.Index(got, ">\n")
		if i < 0 {
			return out
		}
		out = append(out, got[:i+2])
		got = got[i+2:]
	}
}

// TestWholeChunksEveryCut: with messages (and a compressor), a write that
// stops after any byte counts as written exactly the metrics of the
// messages that went out whole, closes the connection (the peer drops a
// message cut short), and a Write of b[Written:] on a new connection sends
// the rest: every metric's lines arrive in exactly one whole message.
func TestWholeChunksEveryCut(t *testing.T) {
	const n = 60
	b := batch(t, n)
	for _, wbuf := range []int{1, 40, 100, 1 << 16} {
		// the messages of a write that goes through, and the metrics in each
		s := &Stream{Address: "fake", Timeout: wait, WriteBuffer: wbuf, Framing: brackets, Compressor: &upper{}}
		w := plug(s, -1)
		if err := s.Write(t.Context(), b, appendUnit); err == nil {
			t.Fatal("no metric refused")
		}
		all := string(w.got)
		_, lines := cum(n)
		if got := strings.NewReplacer("<", "", ">\n", "").Replace(all); got != strings.ToUpper(lines) {
			t.Fatalf("write_buffer %d: the messages carry %q, want %q", wbuf, got, strings.ToUpper(lines))
		}
		for k := range len(all) {
			name := fmt.Sprintf("write_buffer %d, cut after %d bytes", wbuf, k)
			s := &Stream{Address: "fake", Timeout: wait, WriteBuffer: wbuf, Framing: brackets, Compressor: &upper{}}
			w1 := plug(s, k)
			err := s.Write(t.Context(), b, appendUnit)
			if !errors.Is(err, registry.ErrNotConnected) || s.Connected() {
				t.Fatalf("%s: Write = %v (connected %v), want the connection closed", name, err, s.Connected())
			}
			written, refused := taken(t, err)
			whole := messages(string(w1.got))
			// the metrics whose units are in the whole messages
			var in strings.Builder
			for _, m := range whole {
				in.WriteString(strings.Trim(m, "<>\n"))
				in.WriteByte('\n')
			}
			_, upto := cum(written)
			if got := strings.ReplaceAll(in.String(), "\n\n", "\n"); strings.TrimSpace(got) != strings.TrimSpace(strings.ToUpper(upto)) {
				t.Fatalf("%s: Written %d, but the whole messages carry %q", name, written, got)
			}
			if refused != refusedIn(0, written) {
				t.Fatalf("%s: refused %d, want %d", name, refused, refusedIn(0, written))
			}
			w2 := plug(s, -1)
			_ = s.Write(t.Context(), b[written:], appendUnit)
			if got := strings.Join(whole, "") + string(w2.got); strings.NewReplacer("<", "", ">\n", "").Replace(got) != strings.ToUpper(lines) {
				t.Fatalf("%s: the peer got %q in whole messages", name, got)
			}
		}
	}
}

// TestTLSStream: lines over TLS arrive whole and in order; when the peer
// closes, the next Write says the connection is gone rather than writing
// into it.
func TestTLSStream(t *testing.T) {
	ca := plugintest.NewPKI(t, "streamout")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "sink").TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 50000
	got := make(chan []string, 1)
	peer := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		var lines []string
		sc := bufio.NewScanner(c)
		for len(lines) < n && sc.Scan() {
			lines = append(lines, sc.Text())
		}
		got <- lines
		peer <- c
	}()
	s := &Stream{Address: ln.Addr().String(), Timeout: wait, WriteBuffer: 4096, TLS: &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}}
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := batch(t, n)
	app := func(dst []byte, m *metric.Metric) []byte { return append(append(dst, m.Name()...), " 1 1\n"...) }
	if err := s.Write(t.Context(), b, app); err != nil {
		t.Fatal(err)
	}
	lines := <-got
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l != fmt.Sprintf("%d 1 1", i) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	(<-peer).Close()
	deadline := time.Now().Add(wait)
	for !s.PeerClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the peer's close was not noticed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Write(t.Context(), b[:10], app); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write after the peer closed = %v, want ErrNotConnected", err)
	}
}
