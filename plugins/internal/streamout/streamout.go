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
package streamout

import (
	"bytes"
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

// Resume remembers how far a batch got before a write failed, so that a
// retry of the same batch starts after what was written. The zero value is
// ready to use.
type Resume struct {
	key  [3]uintptr
	done int
}

// Start returns the index to start writing b at (0 unless b is the batch
// that failed last time).
func (r *Resume) Start(b metric.Batch) int {
	if len(b) > 0 && batchKey(b) == r.key {
		return r.done
	}
	return 0
}

// Failed records that b[:done] were written before a failure.
func (r *Resume) Failed(b metric.Batch, done int) { r.key, r.done = batchKey(b), done }

// Succeeded forgets the failed batch.
func (r *Resume) Succeeded() { r.key = [3]uintptr{} }

// batchKey identifies a batch across retries without hashing its contents:
// the runner retries the very same slice.
func batchKey(b metric.Batch) [3]uintptr {
	first, last := b[0].Path(), b[len(b)-1].Path()
	return [3]uintptr{uintptr(unsafe.Pointer(unsafe.SliceData(first))), uintptr(unsafe.Pointer(unsafe.SliceData(last))), uintptr(len(b))}
}

// AppendFunc appends one metric as a line ending in '\n'.
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
	resume  Resume
	pending []byte // the rest of a chunk a timed-out write left unwritten

	wroteLines int // whole lines of the failed chunk that went out
	fallback   int // resume point if the connection dies with pending bytes
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

// Write writes b with appendLine; see the package doc for failures.
func (s *Stream) Write(ctx context.Context, b metric.Batch, appendLine AppendFunc) error {
	if s.conn == nil {
		return registry.ErrNotConnected
	}
	if len(b) == 0 {
		return nil
	}
	start := s.resume.Start(b)
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
	for i := start; i < len(b); i++ {
		buf = appendLine(buf, &b[i])
		if len(buf) < s.WriteBuffer && i < len(b)-1 {
			continue
		}
		if s.PeerClosed() {
			s.resume.Failed(b, flushed)
			s.buf = buf[:0]
			s.Close()
			return fmt.Errorf("%s: connection closed by peer: %w", s.Address, registry.ErrNotConnected)
		}
		if err := s.write(ctx, buf); err != nil {
			// with s.pending set, the chunk counts as written: it will be
			// finished on this connection before anything else
			if len(s.pending) > 0 {
				// done once pending is out; if the connection dies first,
				// the lines pending belongs to are resent
				s.resume.Failed(b, i+1)
				s.fallback = flushed + s.wroteLines
			} else {
				s.resume.Failed(b, flushed+s.wroteLines)
			}
			s.buf = buf[:0]
			return err
		}
		flushed = i + 1
		buf = buf[:0]
	}
	s.buf = buf[:0]
	s.resume.Succeeded()
	return nil
}

// write writes p. A timeout on a connection the peer has not closed keeps
// the connection and the unwritten rest in s.pending (a slow reader is not
// a dead one: reconnecting would cut a line and resend); any other error
// closes the connection and leaves in s.wroteLines the whole lines of p
// that went out.
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
	s.wroteLines = bytes.Count(p[:n], []byte{'\n'})
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
		s.resume.done = s.fallback
		s.pending = s.pending[:0]
	}
	return err
}

// Conn returns the connection (nil when not connected), for tuning and tests.
func (s *Stream) Conn() net.Conn { return s.conn }

// ResumeAt returns where a retry of the last failed batch would start.
func (s *Stream) ResumeAt() int { return s.resume.done }
