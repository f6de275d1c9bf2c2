package streamout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
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

// stallWrite connects s to srv with a small send buffer and writes b while
// the peer reads nothing, so that the write times out part way. It returns
// the peer's end of the connection and how many metrics the write took,
// refused ones among them.
func stallWrite(t *testing.T, s *Stream, srv *plugintest.StallServer, b metric.Batch) (peer net.Conn, written, refused int) {
	t.Helper()
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Conn().(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	peer = srv.Accept(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	err := s.Write(ctx, b, appendUnit)
	cancel()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a stalled peer = %v, want a deadline error", err)
	}
	written, refused = taken(t, err)
	return peer, written, refused
}

// reconnect connects s to srv again; what the peer then reads, at full
// speed, until s closes the connection comes on the channel.
func reconnect(t *testing.T, s *Stream, srv *plugintest.StallServer) chan string {
	t.Helper()
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	return readAll(t, srv.AcceptFast(t))
}

// cum returns where the lines of metric i start in the rendering of a
// batch of n metrics (unit 0, 1, ...), and that rendering.
func cum(n int) (starts []int, all string) {
	var sb strings.Builder
	starts = make([]int, n+1)
	for i := range n {
		starts[i] = sb.Len()
		sb.WriteString(unit(i))
	}
	starts[n] = sb.Len()
	return starts, sb.String()
}

// wholeUnits returns how many metrics at the head of a batch of n have all
// their lines in the first k bytes of its rendering (metrics written as
// nothing count once the ones before them do), and how many of those are
// written as nothing.
func wholeUnits(n, k int) (whole, refused int) {
	starts, _ := cum(n)
	for whole < n && starts[whole+1] <= k {
		if unit(whole) == "" {
			refused++
		}
		whole++
	}
	return whole, refused
}

// refusedIn counts the metrics written as nothing among metrics [from, to).
func refusedIn(from, to int) int {
	n := 0
	for i := from; i < to; i++ {
		if unit(i) == "" {
			n++
		}
	}
	return n
}

// taken returns what a Write took of its batch: Written and Refused of a
// *registry.PartialWriteError, or 0, 0 for any other error. It fails the
// test on a PartialWriteError that claims nothing.
func taken(t *testing.T, err error) (written, refused int) {
	t.Helper()
	var p *registry.PartialWriteError
	if !errors.As(err, &p) {
		return 0, 0
	}
	if p.Written <= 0 || p.Refused < 0 || p.Refused > p.Written || p.Err == nil {
		t.Fatalf("bad partial write %+v", p)
	}
	return p.Written, p.Refused
}

// wire is a fake connection that keeps what is written to it. It takes
// budget more bytes (all if budget < 0), then fails each write: with a
// timeout (a peer that stopped reading), or with a reset if reset is set.
// Closed, it takes nothing.
type wire struct {
	net.Conn // nil; only the methods below are called
	got      []byte
	budget   int
	reset    bool
	closed   bool
}

func (w *wire) Write(p []byte) (int, error) {
	if w.closed {
		return 0, net.ErrClosed
	}
	n := len(p)
	if w.budget >= 0 {
		n = min(n, w.budget)
		w.budget -= n
	}
	w.got = append(w.got, p[:n]...)
	switch {
	case n == len(p):
		return n, nil
	case w.reset:
		return n, syscall.ECONNRESET
	}
	return n, os.ErrDeadlineExceeded
}

func (w *wire) SetWriteDeadline(time.Time) error { return nil }
func (w *wire) Close() error                     { w.closed = true; return nil }

// plug gives s a new fake connection.
func plug(s *Stream, budget int) *wire {
	w := &wire{budget: budget}
	s.conn = w
	return w
}

// TestPartialWriteEveryCut: a write that stops after every possible byte of
// the batch says exactly how many metrics the wire got whole (Written) and
// how many of those were written as nothing (Refused); then, whether the
// slow peer reads again or the connection dies, a Write of b[Written:]
// completes the batch with every line once and whole, and the refused
// metrics are reported exactly once in all.
func TestPartialWriteEveryCut(t *testing.T) {
	const n = 60
	b := batch(t, n)
	starts, all := cum(n)
	allRefused := refusedIn(0, n)
	for _, wbuf := range []int{1, 40, 100, 1 << 16} {
		for k := range len(all) {
			name := fmt.Sprintf("write_buffer %d, cut after %d bytes", wbuf, k)
			wantW, wantR := wholeUnits(n, k)
			cutLine := k > starts[wantW]

			for _, peer := range []string{"reads again", "dies"} {
				s := &Stream{Address: "fake", Timeout: wait, WriteBuffer: wbuf}
				w1 := plug(s, k)
				err := s.Write(t.Context(), b, appendUnit)
				if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, registry.ErrNotConnected) {
					t.Fatalf("%s: Write = %v, want a deadline error, connection kept", name, err)
				}
				w, r := taken(t, err)
				if w != wantW || r != wantR {
					t.Fatalf("%s: took %d metrics (%d refused), want %d (%d refused)", name, w, r, wantW, wantR)
				}
				if cutLine != (len(s.cut) > 0) || !s.Connected() {
					t.Fatalf("%s: cut line %q (connected %v), want one: %v", name, s.cut, s.Connected(), cutLine)
				}
				w2 := w1
				if peer == "dies" {
					s.Close()
					if len(s.cut) > 0 {
						t.Fatalf("%s: Close kept the cut line", name)
					}
					w2 = plug(s, -1)
				} else {
					w1.budget = -1
				}
				err = s.Write(t.Context(), b[w:], appendUnit)
				if rest := allRefused - r; rest == 0 && err != nil {
					t.Fatalf("%s, peer %s: Write of the rest = %v", name, peer, err)
				} else if rf := (*Refused)(nil); rest > 0 && (!errors.As(err, &rf) || rf.N != rest) {
					t.Fatalf("%s, peer %s: Write of the rest = %v, want %d refused", name, peer, err, rest)
				}
				if peer == "dies" {
					if string(w1.got) != all[:k] || string(w2.got) != all[starts[w]:] {
						t.Fatalf("%s, peer dies: old connection got %q, new one %q; want everything from metric %d on the new one", name, w1.got, w2.got, w)
					}
				} else if string(w1.got) != all {
					t.Fatalf("%s, peer reads again: the connection got %q, want every line once, whole and in order", name, w1.got)
				}
			}
		}
	}
}

// appendOther renders metrics as lines whose first byte no unit's has.
// (A line that begins with the bytes of the cut line already out would end
// it: it is then its own metric's line, whole and once.)
func appendOther(dst []byte, m *metric.Metric) []byte {
	return append(append(append(dst, "x."...), m.Name()...), " 1\n"...)
}

// TestCutLineEndedForAnyWrite: a Write that does not start with the cut
// metric (the runner gave the batch up, or the current runner retries the
// whole batch) first ends the cut line as it was: the peer never gets a cut
// or spliced line, and the Write takes its own batch whole.
func TestCutLineEndedForAnyWrite(t *testing.T) {
	const n = 30
	b := batch(t, n)
	starts, all := cum(n)
	lines := map[string]bool{}
	for _, l := range strings.Split(all, "\n") {
		lines[l] = true
	}
	for k := range len(all) {
		wantW, _ := wholeUnits(n, k)
		end := k // the end of the line that is cut
		if k > starts[wantW] {
			end = starts[wantW] + len(unit(wantW))
		}

		// another batch
		s := &Stream{Address: "fake", Timeout: wait, WriteBuffer: 64}
		w := plug(s, k)
		if err := s.Write(t.Context(), b, appendUnit); err == nil {
			t.Fatalf("cut after %d bytes: Write succeeded", k)
		}
		w.budget = -1
		other := batch(t, 3)
		if err := s.Write(t.Context(), other, appendOther); err != nil {
			t.Fatalf("cut after %d bytes: Write of another batch = %v", k, err)
		}
		if want := all[:end] + "x.0 1\nx.1 1\nx.2 1\n"; string(w.got) != want {
			t.Fatalf("cut after %d bytes: the connection got %q, want %q", k, w.got, want)
		}

		// the whole batch again
		s = &Stream{Address: "fake", Timeout: wait, WriteBuffer: 64}
		w = plug(s, k)
		if err := s.Write(t.Context(), b, appendUnit); err == nil {
			t.Fatalf("cut after %d bytes: Write succeeded", k)
		}
		w.budget = -1
		var rf *Refused
		if err := s.Write(t.Context(), b, appendUnit); !errors.As(err, &rf) || rf.N != refusedIn(0, n) {
			t.Fatalf("cut after %d bytes: Write of the batch again = %v", k, err)
		}
		got := string(w.got)
		if !strings.HasSuffix(got, all[len(unit(0)):]) || !strings.HasSuffix(got, "\n") {
			t.Fatalf("cut after %d bytes: the batch written again did not arrive whole: %q", k, got)
		}
		for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			if !lines[l] {
				t.Fatalf("cut after %d bytes: the connection got the line %q, which is no metric's", k, l)
			}
		}
	}
}

// TestPartialWriteRandomFailures: writes that stall, time out, reset or get
// closed at random points, each followed by what the runner does (count
// what Written says, write b[Written:] again, reconnecting when the stream
// closed); every metric is counted once, Written is exactly what the wire
// has whole, and what the peers got whole, connection after connection, is
// the batch once and in order.
func TestPartialWriteRandomFailures(t *testing.T) {
	const n = 80
	b := batch(t, n)
	starts, all := cum(n)
	r := rand.New(rand.NewPCG(7, 17))
	budget := func() int {
		switch r.IntN(6) {
		case 0:
			return 0
		case 1, 2:
			return r.IntN(20)
		case 3, 4:
			return r.IntN(400)
		}
		return -1
	}
	for run := range 3000 {
		s := &Stream{Address: "fake", Timeout: wait, WriteBuffer: 1 + r.IntN(200)}
		var wires []*wire
		reconnect := func() {
			wires = append(wires, plug(s, budget()))
			wires[len(wires)-1].reset = r.IntN(3) == 0
		}
		reconnect()
		done, refused := 0, 0 // metrics taken, and refused of those
		pos := 0              // where in all the current connection started
		for attempt := 0; done < n; attempt++ {
			if attempt > 1000 {
				t.Fatalf("run %d: no progress", run)
			}
			cur := wires[len(wires)-1]
			err := s.Write(t.Context(), b[done:], appendUnit)
			if err == nil || errors.Is(err, registry.ErrRejected) {
				var rf *Refused
				if errors.As(err, &rf) {
					refused += rf.N
				}
				done = n
				break
			}
			w, rr := taken(t, err)
			done += w
			refused += rr
			// Written is what the wire has whole: no more (lost), no
			// less (sent twice)
			have := pos + len(cur.got)
			if starts[done] > have {
				t.Fatalf("run %d: %d metrics taken, but the wire has only %d bytes of the %d they need", run, done, have, starts[done])
			}
			next := done
			for next < n && unit(next) == "" {
				next++
			}
			if next < n && starts[next+1] <= have {
				t.Fatalf("run %d: %d metrics taken, but the wire has metric %d whole too", run, done, next)
			}
			switch {
			case !s.Connected() || r.IntN(4) == 0:
				// reset by the stream, or closed (a reload, the runner)
				s.Close()
				pos = starts[wholeAt(starts, have)]
				reconnect()
			default:
				cur.budget = budget()
			}
		}
		if refused != refusedIn(0, n) {
			t.Fatalf("run %d: %d refused reported, want %d", run, refused, refusedIn(0, n))
		}
		// each connection got the batch from where the last whole metric
		// of the one before ended
		at := 0
		for i, w := range wires {
			if !strings.HasPrefix(all[at:], string(w.got)) {
				t.Fatalf("run %d: connection %d got %q, want a prefix of the batch from byte %d", run, i, w.got, at)
			}
			at = starts[wholeAt(starts, at+len(w.got))]
		}
		if last := wires[len(wires)-1]; at != len(all) || !s.Connected() || last.closed {
			t.Fatalf("run %d: the connections ended at byte %d of %d", run, at, len(all))
		}
	}
}

// wholeAt returns how many metrics have their lines within the first k
// bytes (starts as cum returns).
func wholeAt(starts []int, k int) int {
	i := 0
	for i+1 < len(starts) && starts[i+1] <= k {
		i++
	}
	return i
}

// TestPartialWriteRealPeer: over a real socket, a batch whose metrics write
// as nothing, one line or two lines stops part way when the peer stops
// reading; Written is the first metric whose lines did not all reach the
// peer (never inside a metric), and after the connection dies a Write of
// b[Written:] on a new one sends exactly the rest, then reports the metrics
// written as nothing in it as refused, wrapping registry.ErrRejected.
func TestPartialWriteRealPeer(t *testing.T) {
	const n = 20000
	srv := plugintest.NewStallServer(t)
	s := &Stream{Address: srv.Addr, Timeout: wait, WriteBuffer: 512}
	b := batch(t, n)

	// 1. The peer reads nothing: the write times out part way; the
	// connection then dies, with a line cut or not.
	c1, written, refusedBefore := stallWrite(t, s, srv, b)
	s.Close()
	got1 := <-readAll(t, c1)

	starts, all := cum(n)
	if !strings.HasPrefix(all, got1) {
		t.Fatal("the first connection did not get the start of the batch")
	}
	wantW, wantR := wholeUnits(n, len(got1))
	if wantW <= 0 || wantW >= n-1 {
		t.Fatalf("the cut is at metric %d of %d; the test needs it inside the batch", wantW, n)
	}
	if written != wantW || refusedBefore != wantR {
		t.Fatalf("Written %d with %d refused, want %d and %d (cut after %d bytes)", written, refusedBefore, wantW, wantR, len(got1))
	}

	// 2. A peer that reads: the rest from the cut metric on, then the
	// refused count of the rest.
	got2 := reconnect(t, s, srv)
	err := s.Write(t.Context(), b[written:], appendUnit)
	var r *Refused
	if want := refusedIn(written, n); !errors.As(err, &r) || r.Rejected() != want || !errors.Is(err, registry.ErrRejected) {
		t.Fatalf("Write = %v, want %d refused, rejected", err, want)
	}
	s.Close()
	if g := <-got2; g != all[starts[written]:] {
		t.Fatalf("the second connection got %d bytes, want the %d of metrics %d.. whole", len(g), len(all)-starts[written], written)
	}

	// 3. A batch of only refused metrics writes nothing and reports them all.
	got3 := reconnect(t, s, srv)
	only := metric.Batch{b[3], b[10], b[17]}
	if err := s.Write(t.Context(), only, appendUnit); !errors.As(err, &r) || r.Rejected() != 3 {
		t.Fatalf("Write of refused metrics only = %v, want 3 refused", err)
	}
	s.Close()
	if g := <-got3; g != "" {
		t.Fatalf("a batch of refused metrics wrote %q", g)
	}
}

// TestSlowPeerFinishesCutLine: over a real socket, a peer that stops
// reading and then reads again gets every line once and whole: the Write of
// b[Written:] ends a cut line on the same connection. (With a write_buffer
// of 64 KiB the kernel takes part of a write(2), so a line is likely cut.)
func TestSlowPeerFinishesCutLine(t *testing.T) {
	const n = 20000
	b := batch(t, n)
	for _, wbuf := range []int{512, 1 << 16} {
		t.Run(fmt.Sprint(wbuf), func(t *testing.T) {
			srv := plugintest.NewStallServer(t)
			s := &Stream{Address: srv.Addr, Timeout: wait, WriteBuffer: wbuf}
			c, written, refused := stallWrite(t, s, srv, b)
			if !s.Connected() {
				t.Fatal("Write to a stalled peer closed the connection, want it kept")
			}
			t.Logf("%d metrics taken, line cut: %v", written, len(s.cut) > 0)
			got := readAll(t, c)
			err := s.Write(t.Context(), b[written:], appendUnit)
			var r *Refused
			if want := refusedIn(0, n) - refused; !errors.As(err, &r) || r.N != want {
				t.Fatalf("Write of the rest = %v, want %d refused", err, want)
			}
			s.Close()
			if _, all := cum(n); <-got != all {
				t.Fatal("the peer did not get every line once, whole and in order")
			}
		})
	}
}

// TestPeerClosesAfterPartialWrite: over a real socket, a peer that stopped
// reading and then closes: the Write of b[Written:] sees the close before
// writing (ending a cut line into a dead socket would lose the metric),
// takes nothing and asks for a reconnect; on the new connection it sends
// everything from metric Written on.
func TestPeerClosesAfterPartialWrite(t *testing.T) {
	const n = 20000
	srv := plugintest.NewStallServer(t)
	s := &Stream{Address: srv.Addr, Timeout: wait, WriteBuffer: 1 << 16}
	b := batch(t, n)
	c1, written, _ := stallWrite(t, s, srv, b)
	t.Logf("%d metrics taken, line cut: %v", written, len(s.cut) > 0)
	c1.Close() // unread data: the peer resets the connection
	deadline := time.Now().Add(wait)
	for !s.PeerClosed() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // until the reset is in
	}
	err := s.Write(t.Context(), b[written:], appendUnit)
	if w, _ := taken(t, err); w != 0 || !errors.Is(err, registry.ErrNotConnected) || s.Connected() {
		t.Fatalf("Write after the peer closed = %v (connected %v), want ErrNotConnected, nothing taken", err, s.Connected())
	}

	got := reconnect(t, s, srv)
	var r *Refused
	if err := s.Write(t.Context(), b[written:], appendUnit); !errors.As(err, &r) || r.N != refusedIn(written, n) {
		t.Fatalf("Write on the new connection = %v, want %d refused", err, refusedIn(written, n))
	}
	s.Close()
	if starts, all := cum(n); <-got != all[starts[written]:] {
		t.Fatalf("the new connection did not get exactly metrics %d.. whole", written)
	}
}
