// Package streamout writes metrics as newline-terminated lines over a TCP
// connection, for the line-protocol outputs (Graphite, StatsD over TCP).
//
// Lines are appended into a buffer handed to the kernel WriteBuffer bytes at
// a time, never one write(2) per line. Before each write the socket is
// peeked without blocking: Graphite and StatsD servers never talk back on
// their data port, so end-of-stream means the peer closed the connection and
// the writer reports registry.ErrNotConnected instead of writing into a dead
// socket. A batch that fails part way is resumed, when the runner retries
// it, after the last complete line the kernel accepted, so a reconnect does
// not resend what already left on the old connection.
//
// A metric the destination's format cannot carry (the line appender writes
// nothing for it) is left out, and Write then returns a *Refused error
// saying how many, once everything else is written.
package streamout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

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

// Resume remembers how far a batch got before a write failed, so that a
// retry of the same batch starts after what was written. The zero value is
// ready to use.
type Resume struct {
	key     [3]uintptr
	done    int
	refused int // metrics of b[:done] left out as refused
}

// Start returns the index to start writing b at (0 unless b is the batch
// that failed last time) and how many of the metrics before it were
// refused.
func (r *Resume) Start(b metric.Batch) (start, refused int) {
	if len(b) > 0 && batchKey(b) == r.key {
		return r.done, r.refused
	}
	return 0, 0
}

// Failed records that b[:done] were written, refused of them left out as
// refused, before a failure.
func (r *Resume) Failed(b metric.Batch, done, refused int) {
	r.key, r.done, r.refused = batchKey(b), done, refused
}

// Succeeded forgets the failed batch.
func (r *Resume) Succeeded() { r.key = [3]uintptr{} }

// batchKey identifies a batch across retries without hashing its contents:
// the runner retries the very same slice.
func batchKey(b metric.Batch) [3]uintptr {
	first, last := b[0].Path(), b[len(b)-1].Path()
	return [3]uintptr{uintptr(unsafe.Pointer(unsafe.SliceData(first))), uintptr(unsafe.Pointer(unsafe.SliceData(last))), uintptr(len(b))}
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

	conn    net.Conn
	raw     syscall.RawConn
	peekFn  func(fd uintptr)
	peekBuf [1]byte
	peeked  bool
	buf     []byte
	scratch []byte // for measuring lines after a failed write
	resume  Resume
	pending []byte // the rest of a chunk a timed-out write left unwritten

	wrote           int // bytes of the failed chunk that went out
	fallback        int // resume point if the connection dies with pending bytes
	fallbackRefused int // refused metrics before fallback
}

// Connect dials the server (closing any previous connection).
func (s *Stream) Connect(ctx context.Context) error {
	s.Close()
	d := net.Dialer{Timeout: s.Timeout, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return err
	}
	s.conn = c
	if tc, ok := c.(*net.TCPConn); ok {
		s.raw, _ = tc.SyscallConn()
		if s.peekFn == nil {
			s.peekFn = s.peek // bound once, so that peeking allocates nothing
		}
	}
	return nil
}

// Connected reports whether there is a connection.
func (s *Stream) Connected() bool { return s.conn != nil }

// Write writes b with appendLine; see the package doc for failures and
// refused metrics.
func (s *Stream) Write(ctx context.Context, b metric.Batch, appendLine AppendFunc) error {
	if s.conn == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	start, refused := s.resume.Start(b)
	if len(s.pending) > 0 {
		// A write timed out on a live but slow connection: finish its chunk
		// first, so that no line is ever cut on the stream.
		if err := s.write(ctx, s.pending); err != nil {
			return err
		}
		s.pending = s.pending[:0]
	}
	buf := s.buf[:0]
	flushed := start // b[:flushed] are fully in the kernel
	flushedRefused := refused
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
			s.resume.Failed(b, flushed, flushedRefused)
			s.buf = buf[:0]
			s.Close()
			return fmt.Errorf("%s: connection closed by peer: %w", s.Address, registry.ErrNotConnected)
		}
		if err := s.write(ctx, buf); err != nil {
			// the metrics of the chunk whose lines went out whole
			whole, wholeRefused := s.measure(b[flushed:i+1], appendLine)
			// with s.pending set, the chunk counts as written: it will be
			// finished on this connection before anything else
			if len(s.pending) > 0 {
				// done once pending is out; if the connection dies first,
				// the lines pending belongs to are resent
				s.resume.Failed(b, i+1, refused)
				s.fallback, s.fallbackRefused = flushed+whole, flushedRefused+wholeRefused
			} else {
				s.resume.Failed(b, flushed+whole, flushedRefused+wholeRefused)
			}
			s.buf = buf[:0]
			return err
		}
		flushed, flushedRefused = i+1, refused
		buf = buf[:0]
	}
	s.buf = buf[:0]
	s.resume.Succeeded()
	if refused > 0 {
		return &Refused{N: refused}
	}
	return nil
}

// measure returns how many metrics at the start of chunk had their lines go
// out whole in the first s.wrote bytes of the chunk's write, and how many
// of those were refused (written as nothing). It renders the lines again
// into a scratch buffer: only a failed write pays for it.
func (s *Stream) measure(chunk metric.Batch, appendLine AppendFunc) (whole, refused int) {
	end := 0
	for i := range chunk {
		s.scratch = appendLine(s.scratch[:0], &chunk[i])
		n := len(s.scratch)
		if end+n > s.wrote {
			break
		}
		end += n
		whole++
		if n == 0 {
			refused++
		}
	}
	return whole, refused
}

// write writes p. A timeout on a connection the peer has not closed keeps
// the connection and the unwritten rest in s.pending (a slow reader is not
// a dead one: reconnecting would cut a line and resend); any other error
// closes the connection. Either way s.wrote is how much of p went out.
func (s *Stream) write(ctx context.Context, p []byte) error {
	d := time.Now().Add(s.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	_ = s.conn.SetWriteDeadline(d)
	n, err := s.conn.Write(p)
	if err == nil {
		return nil
	}
	s.wrote = n
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !s.PeerClosed() {
		s.pending = append(s.pending[:0], p[n:]...)
		return fmt.Errorf("write %s: destination not reading: %w", s.Address, err)
	}
	s.Close()
	return fmt.Errorf("write %s: %w: %w", s.Address, err, registry.ErrNotConnected)
}

// PeerClosed peeks at the socket without blocking: true when the peer has
// closed or reset the connection.
func (s *Stream) PeerClosed() bool {
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

// Close closes the connection.
func (s *Stream) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.raw = nil, nil
	if len(s.pending) > 0 {
		// a cut line: the lines the pending chunk holds are resent whole
		s.resume.done, s.resume.refused = s.fallback, s.fallbackRefused
		s.pending = s.pending[:0]
	}
	return err
}

// Conn returns the connection (nil when not connected), for tuning and tests.
func (s *Stream) Conn() net.Conn { return s.conn }

// ResumeAt returns where a retry of the last failed batch would start.
func (s *Stream) ResumeAt() int { return s.resume.done }

var _ registry.PartlyRejected = (*Refused)(nil)
