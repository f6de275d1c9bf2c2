// Package streamout writes metrics as newline-terminated lines over a TCP
// connection, for the line-protocol outputs (Graphite, StatsD over TCP).
//
// Lines are appended into a buffer handed to the kernel WriteBuffer bytes at
// a time, never one write(2) per line. Before each write the socket is
// peeked without blocking: Graphite and StatsD servers never talk back on
// their data port, so end-of-stream means the peer closed the connection and
// the writer reports registry.ErrNotConnected instead of writing into a dead
// socket.
//
// A write that fails after the kernel took the lines of some metrics whole
// returns a *registry.PartialWriteError: Written is how many metrics at the
// head of the batch had all their lines taken (with the metrics left out
// among them, Refused), so the runner writes b[Written:] next and a
// reconnect does not resend what already left on the old connection. A
// failure before any metric was taken returns the plain error. The stream
// keeps nothing about batches.
//
// What it keeps is the state of the wire. A write that times out on a
// connection the peer has not closed (a slow reader is not a dead one) can
// leave a line cut: the kernel took only its first bytes, and the metric is
// not counted in Written. The connection is kept, so that the peer never
// sees a cut line, and the next Write first ends that line: with the lines
// of its own first metric if they begin with the bytes already out (the
// retry of b[Written:] starts with the cut metric, which is then finished
// rather than sent twice, and counts as written by that Write), and
// otherwise with the rest of the cut line as it was (that metric then
// arrives twice if it is sent again: only when the runner does not retry
// b[Written:], or when the metric's lines now render differently within the
// bytes already out). Only the bytes on the wire are compared, never which
// batch or metric they came from. A connection that dies with a cut line is
// closed and the unterminated line left to the peer to drop (carbon does);
// the retry sends the metric whole on the next connection.
//
// A metric the destination's format cannot carry (the line appender writes
// nothing for it) is left out, and Write then returns a *Refused error
// saying how many, once everything else is written.
package streamout

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Refused is the error of a write that left out N metrics of its batch,
// which the destination's format or transport cannot carry (see the
// codecs' package docs), and wrote all the others. Nothing is retried: the
// N are rejected for good. It wraps registry.ErrRejected; its Rejected
// method tells how many of the batch that is, so that the runner counts
// those N as rejected and the rest as sent.
type Refused struct {
	N      int
	Reason error // why the first was refused; nil if not known
}

func (e *Refused) Error() string {
	if e.Reason == nil {
		return fmt.Sprintf("%d metrics refused: %v", e.N, registry.ErrRejected)
	}
	return fmt.Sprintf("%d metrics refused (%v): %v", e.N, e.Reason, registry.ErrRejected)
}

// Unwrap returns registry.ErrRejected and the reason.
func (e *Refused) Unwrap() []error {
	if e.Reason == nil {
		return []error{registry.ErrRejected}
	}
	return []error{registry.ErrRejected, e.Reason}
}

// Rejected returns how many metrics of the batch were refused.
func (e *Refused) Rejected() int { return e.N }

// Partial returns err for a write that took none of its batch, or a
// *registry.PartialWriteError saying that the first written metrics were
// taken, refused of them left out, before err stopped the write.
func Partial(written, refused int, err error) error {
	if written == 0 {
		return err
	}
	return &registry.PartialWriteError{Written: written, Refused: refused, Err: err}
}

// AppendFunc appends one metric as a line ending in '\n' (or as several
// lines that belong together: they are written as one), or nothing if the
// destination's format cannot carry it.
type AppendFunc func(dst []byte, m *metric.Metric) []byte

// Stream is one TCP connection to a line-protocol server. It is used by one
// goroutine (the output runner's worker).
type Stream struct {
	Address     string
	Timeout     time.Duration // dial and per-write timeout
	WriteBuffer int           // bytes per write(2)

	// TLS, if set, speaks TLS on the connection (the handshake is part of
	// Connect).
	TLS *tls.Config
	// TLSClient, if enabled and TLS is nil, is what Connect builds TLS from
	// (registry.ReloadTLS keeps it up to date; Close releases it, so that
	// each connection reads the files as they are).
	TLSClient *registry.TLSClient
	ownTLS    bool // TLS was built from TLSClient
	// Compressor, if set, compresses each chunk (a compressed transport:
	// plugins/internal/transport), after framing and before TLS.
	Compressor Compressor
	// Framing, if set, wraps each chunk's lines in one message (pickle).
	Framing *Framing

	conn    net.Conn
	raw     syscall.RawConn
	peekFn  func(fd uintptr)
	peekBuf [1]byte
	peeked  bool
	buf     []byte
	scratch []byte // for measuring lines after a failed write

	// the lines of one metric that a timed-out write cut: the wire ends
	// with cut[:cutSent]; empty when the wire ends with a whole line
	cut     []byte
	cutSent int

	zbuf   []byte       // the compressed chunk
	closed *atomic.Bool // TLS: the peer closed (set by the connection's reader)
}

// Compressor compresses a connection's stream (see package transport).
type Compressor interface {
	// Compress appends the compressed form of p to dst, flushed so that the
	// peer can decode all of p from what was appended so far.
	Compress(dst, p []byte) ([]byte, error)
	// Reset starts the stream of a new connection.
	Reset()
}

// Framing wraps the lines of a chunk into one message.
type Framing struct {
	// Begin appends a message's header to dst.
	Begin func(dst []byte) []byte
	// End appends the message's trailer and completes the header that
	// begins at dst[start:].
	End func(dst []byte, start int) []byte
}

// whole reports whether a chunk goes out whole or not at all (TLS, a
// compressed transport, messages): a failed write then closes the
// connection, and only the chunks written completely count as written (the
// peer drops a message cut short; TLS delivers only whole records, so the
// lines of a plaintext stream within them are counted). A compressed chunk
// cut short may have delivered some of its lines, which the retry sends
// again.
func (s *Stream) whole() bool {
	return s.TLS != nil || s.Compressor != nil || s.Framing != nil
}

// Connect dials the server (closing any previous connection).
func (s *Stream) Connect(ctx context.Context) error {
	s.Close()
	d := net.Dialer{Timeout: s.Timeout, KeepAlive: 30 * time.Second}
	if s.TLS == nil && s.TLSClient != nil && s.TLSClient.Enabled() {
		cfg, err := s.TLSClient.ClientConfig(s.Address)
		if err != nil {
			return err
		}
		s.TLS, s.ownTLS = cfg, true
	}
	c, err := d.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return err
	}
	if s.TLS != nil {
		tlc := tls.Client(c, s.TLS)
		hctx, cancel := context.WithTimeout(ctx, s.Timeout)
		err := tlc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return fmt.Errorf("TLS handshake with %s: %w", s.Address, err)
		}
		// Graphite and StatsD servers send nothing on their data port: a
		// reader takes TLS's own records (session tickets) and notes when
		// the peer closes, which a peek at the socket cannot tell.
		closed := new(atomic.Bool)
		go func() {
			var buf [512]byte
			for {
				if _, err := tlc.Read(buf[:]); err != nil {
					closed.Store(true)
					return
				}
			}
		}()
		s.conn, s.closed = tlc, closed
		if s.Compressor != nil {
			s.Compressor.Reset()
		}
		return nil
	}
	s.conn, s.closed = c, nil
	if tc, ok := c.(*net.TCPConn); ok {
		s.raw, _ = tc.SyscallConn()
		if s.peekFn == nil {
			s.peekFn = s.peek // bound once, so that peeking allocates nothing
		}
	}
	if s.Compressor != nil {
		s.Compressor.Reset()
	}
	return nil
}

// Connected reports whether there is a connection.
func (s *Stream) Connected() bool { return s.conn != nil }

// Write writes b with appendLine; see the package doc for failures, cut
// lines and refused metrics.
func (s *Stream) Write(ctx context.Context, b metric.Batch, appendLine AppendFunc) error {
	if s.conn == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	if ctx.Done() != nil {
		defer s.cutOnCancel(ctx)()
	}
	start := 0
	if len(s.cut) > 0 {
		own, err := s.endCut(ctx, &b[0], appendLine)
		if err != nil {
			return err // nothing of b was taken
		}
		if own {
			start = 1
		}
	}
	if s.whole() {
		return s.writeWhole(ctx, b, appendLine)
	}
	buf := s.buf[:0]
	flushed, refused := start, 0 // b[:flushed] are in the kernel whole
	flushedRefused := 0          // metrics of b[:flushed] left out
	for i := start; i < len(b); i++ {
		n := len(buf)
		buf = appendLine(buf, &b[i])
		if len(buf) == n {
			refused++
		}
		if len(buf) < s.WriteBuffer && i < len(b)-1 {
			continue
		}
		if len(buf) == 0 {
			break // the rest were all refused
		}
		if s.PeerClosed() {
			s.buf = buf[:0]
			s.Close()
			return Partial(flushed, flushedRefused, fmt.Errorf("%s: connection closed by peer: %w", s.Address, registry.ErrNotConnected))
		}
		if wrote, err := s.write(ctx, buf); err != nil {
			// the metrics of the chunk whose lines went out whole
			whole, wholeRefused, end := s.measure(b[flushed:i+1], wrote, appendLine)
			if s.conn != nil && wrote > end {
				// the connection is kept with the next metric's lines cut:
				// the next Write ends them first
				s.cut = append(s.cut[:0], s.scratch...)
				s.cutSent = wrote - end
			}
			s.buf = buf[:0]
			return Partial(flushed+whole, flushedRefused+wholeRefused, err)
		}
		flushed, flushedRefused = i+1, refused
		buf = buf[:0]
	}
	s.buf = buf[:0]
	if refused > 0 {
		return &Refused{N: refused}
	}
	return nil
}

// writeWhole is Write for chunks that go out whole or not at all (see
// whole).
func (s *Stream) writeWhole(ctx context.Context, b metric.Batch, appendLine AppendFunc) error {
	buf := s.buf[:0]
	flushed, refused := 0, 0 // b[:flushed] are written
	flushedRefused := 0      // metrics of b[:flushed] left out
	first := 0               // the first metric of the chunk in buf
	msg, lines := 0, 0       // where the message and its lines begin in buf
	for i := 0; i < len(b); i++ {
		if i == first && s.Framing != nil {
			buf = s.Framing.Begin(buf[:0])
			lines = len(buf)
		} else if i == first {
			buf = buf[:0]
		}
		n := len(buf)
		buf = appendLine(buf, &b[i])
		if len(buf) == n {
			refused++
		}
		if len(buf) < s.WriteBuffer && i < len(b)-1 {
			continue
		}
		next := i + 1
		if len(buf) == lines {
			// every metric of the chunk was refused: nothing to send
			flushed, flushedRefused, first = next, refused, next
			continue
		}
		if s.Framing != nil {
			buf = s.Framing.End(buf, msg)
		}
		if s.PeerClosed() {
			s.buf = buf[:0]
			s.Close()
			return Partial(flushed, flushedRefused, fmt.Errorf("%s: connection closed by peer: %w", s.Address, registry.ErrNotConnected))
		}
		out := buf
		if s.Compressor != nil {
			z, err := s.Compressor.Compress(s.zbuf[:0], buf)
			s.zbuf = z[:0]
			if err != nil {
				s.buf = buf[:0]
				s.Close()
				return Partial(flushed, flushedRefused, fmt.Errorf("%s: compress: %w: %w", s.Address, err, registry.ErrNotConnected))
			}
			out = z
		}
		if wrote, err := s.write(ctx, out); err != nil {
			// the connection's stream state is lost with a part of the
			// chunk: it goes
			s.Close()
			if s.Framing == nil && s.Compressor == nil {
				// TLS delivered the lines of whole records
				whole, wholeRefused, _ := s.measure(b[flushed:next], wrote, appendLine)
				flushed, flushedRefused = flushed+whole, flushedRefused+wholeRefused
			}
			s.buf = buf[:0]
			if !errors.Is(err, registry.ErrNotConnected) {
				err = fmt.Errorf("%w: %w", err, registry.ErrNotConnected)
			}
			return Partial(flushed, flushedRefused, err)
		}
		flushed, flushedRefused, first = next, refused, next
	}
	s.buf = buf[:0]
	if refused > 0 {
		return &Refused{N: refused}
	}
	return nil
}

// cutOnCancel makes a cancelled ctx (the router's hard deadline) cut the
// write in progress short like a timeout: what went out is counted,
// nothing twice. The returned func ends the watch; if the cut ran, it
// waits for it, so that the next write's deadline comes after it.
func (s *Stream) cutOnCancel(ctx context.Context) func() {
	conn, cut := s.conn, make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetWriteDeadline(time.Now())
		close(cut)
	})
	return func() {
		if !stop() {
			<-cut
		}
	}
}

// endCut ends the line a timed-out write cut, on the connection that has
// its first bytes: with m's lines if they begin with those bytes (own: m is
// then written), or else with the rest of the cut lines as they were. On
// failure nothing of m was taken, and the line is still cut unless the
// connection was closed.
func (s *Stream) endCut(ctx context.Context, m *metric.Metric, appendLine AppendFunc) (own bool, err error) {
	if s.PeerClosed() {
		s.Close()
		return false, fmt.Errorf("%s: connection closed by peer: %w", s.Address, registry.ErrNotConnected)
	}
	s.scratch = appendLine(s.scratch[:0], m)
	if len(s.scratch) > s.cutSent && bytes.Equal(s.scratch[:s.cutSent], s.cut[:s.cutSent]) {
		s.cut, own = append(s.cut[:0], s.scratch...), true
	}
	wrote, err := s.write(ctx, s.cut[s.cutSent:])
	if err != nil {
		if s.conn != nil {
			s.cutSent += wrote // still cut, further on
		}
		return false, err
	}
	s.cut, s.cutSent = s.cut[:0], 0
	return own, nil
}

// measure returns how many metrics at the start of chunk had their lines go
// out whole in the first wrote bytes of the chunk's write, how many of those
// were refused (written as nothing), and where in the chunk's bytes the
// lines of the next metric begin. When that metric's lines did not go out
// whole, s.scratch holds them. It renders the lines again into s.scratch:
// only a failed write pays for it.
func (s *Stream) measure(chunk metric.Batch, wrote int, appendLine AppendFunc) (whole, refused, end int) {
	for i := range chunk {
		s.scratch = appendLine(s.scratch[:0], &chunk[i])
		n := len(s.scratch)
		if end+n > wrote {
			break
		}
		end += n
		whole++
		if n == 0 {
			refused++
		}
	}
	return whole, refused, end
}

// write writes p and returns how much of it went out. A timeout on a
// connection the peer has not closed keeps the connection (a slow reader is
// not a dead one: reconnecting would cut a line); any other error closes
// it.
func (s *Stream) write(ctx context.Context, p []byte) (int, error) {
	d := time.Now().Add(s.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	_ = s.conn.SetWriteDeadline(d)
	if ctx.Err() != nil {
		_ = s.conn.SetWriteDeadline(time.Now()) // cancelled (see cutOnCancel)
	}
	n, err := s.conn.Write(p)
	if err == nil {
		return n, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !s.PeerClosed() {
		return n, fmt.Errorf("write %s: destination not reading: %w", s.Address, err)
	}
	s.Close()
	return n, fmt.Errorf("write %s: %w: %w", s.Address, err, registry.ErrNotConnected)
}

// PeerClosed peeks at the socket without blocking: true when the peer has
// closed or reset the connection.
func (s *Stream) PeerClosed() bool {
	if s.closed != nil {
		return s.closed.Load()
	}
	if s.raw == nil {
		return false
	}
	s.peeked = false
	_ = s.raw.Control(s.peekFn)
	return s.peeked
}

// peek is the RawConn.Control callback of PeerClosed.
func (s *Stream) peek(fd uintptr) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), s.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
		case err != nil || n == 0:
			s.peeked = true
		}
		return
	}
}

// Close closes the connection. A line it leaves cut is the peer's to drop:
// the metric was not counted as written.
func (s *Stream) Close() error {
	if s.ownTLS {
		registry.ReleaseTLS(s.TLS)
		s.TLS, s.ownTLS = nil, false
	}
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.raw, s.closed = nil, nil, nil
	s.cut, s.cutSent = s.cut[:0], 0
	return err
}

// Conn returns the connection (nil when not connected), for tuning and tests.
func (s *Stream) Conn() net.Conn { return s.conn }

var _ registry.PartlyRejected = (*Refused)(nil)
