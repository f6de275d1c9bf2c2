// Package transport implements the compressed transports of carbon-c-relay
// 3.7 (`transport gzip | lz4 | snappy` on its listeners and cluster
// members), for inputs.graphite and outputs.graphite (`transport = "none" |
// "gzip" | "lz4" | "snappy"`). Compression sits above TLS: the compressed
// bytes travel inside the TLS stream, as carbon-c-relay stacks them.
//
// # The framing, as carbon-c-relay 3.7.3 writes and reads it
//
// The sender is server.c (the gzipwrite/gzipflush, lzwrite/lzflush and
// snappywrite/snappyflush wrappers around the socket, set up in server_new
// and server_queuereader); the receiver is dispatcher.c
// (dispatch_addconnection, gzipread/gzipreadbuf, lzread/lzreadbuf,
// snappyread). Lines are buffered in a METRIC_BUFSIZ (32768 bytes) buffer
// and flushed when it is full or when a batch has been written.
//
//   - gzip: one gzip stream per connection (deflateInit2 with windowBits
//     15+16, Z_DEFAULT_COMPRESSION). Each flush is deflate(Z_PARTIAL_FLUSH),
//     so everything written so far can be decoded; the stream is never
//     finished (no trailer: deflateEnd at close). The receiver runs one
//     inflate (windowBits 15+16, gzip only, Z_SYNC_FLUSH) per connection,
//     so one gzip member per connection. This package's sender ends each
//     Compress with a sync flush (an empty stored block), which zlib's
//     inflate decodes as well; its receiver accepts a stream without a
//     trailer (the peer closing after the last flush is a clean end) and
//     further gzip members after a trailer.
//   - lz4: each flush is one complete LZ4 frame (LZ4F_compressFrame with
//     default preferences: 64 KiB blocks, no checksums), written with one
//     write; the stream is a concatenation of frames. The receiver
//     (lzread/lzreadbuf) reads into a 32 KiB input buffer and hands all of
//     it to one LZ4F_decompress context, which starts a new frame after
//     each end mark. In 3.7.3, lzreadbuf moves its input position only
//     when a call produced output: bytes that LZ4F_decompress consumed
//     without producing any (a frame header, or part of a block, which it
//     keeps in its own buffer) are fed again on the next call, and the
//     stream is corrupt from there on ("input buffer overflow" once the
//     buffer fills). 3.8 moves the position by what was consumed. So 3.7.3
//     decodes every line only if each read() holds the end of a compressed
//     block or a byte of a stored one. A frame ends a call of
//     LZ4F_decompress, and the next call starts on the next frame's header,
//     so a read ending inside a frame's first block breaks it; that is
//     why this sender writes one frame per connection instead: the frame
//     header once, then for each Compress p but its last byte in blocks of
//     at most lz4WriteBlock bytes (compressed, or stored when that is not
//     smaller), then p's last byte in a block of its own, stored. The
//     stored block makes the receiver call LZ4F_decompress again after the
//     last compressed block, which flushes what it decoded but could not
//     yet hand over (its output buffer is the 32 KiB line buffer), and
//     any part of it yields output. The frame is never ended: the
//     connection's end ends it. This holds as long as TCP does not deliver
//     a compressed block in more than two pieces; it may (a loaded
//     receiver shrinks the window), so 3.7.3 can still lose a connection's
//     data. This receiver reads any sequence of frames (pierrec/lz4 reads
//     concatenated frames) and takes the end of the connection, inside a
//     frame too, as the end of the stream (a block cut short is lost, as
//     a gzip stream cut short is).
//   - snappy: each flush is one raw snappy block (snappy_compress: a varint
//     of the uncompressed length, then literals and copies), with neither
//     the snappy framing format nor a length prefix: blocks are simply
//     concatenated. carbon-c-relay's receiver (snappyread) passes what one
//     read() returned to snappy_uncompress, so it needs every read to hold
//     exactly one block, and after decoding it moves its input position
//     by the uncompressed length instead of the compressed one. This
//     receiver finds each block's end by walking the block's elements
//     (their tags give their sizes) until they account for the
//     uncompressed length, then decodes that block with klauspost's s2
//     (snappy-compatible) decoder. Blocks above 64 KiB uncompressed (twice
//     what carbon-c-relay sends) are refused, which bounds the memory. This
//     sender writes one block per Compress, splitting p in blocks of at
//     most 16 KiB uncompressed (carbon-c-relay decodes a block into what is
//     left of its 32 KiB line buffer).
//
// # Reading: Server
//
// Server wraps an accepted connection: a goroutine pumps it through the
// decompressor into a bounded buffer (64 KiB) and the returned conn reads
// from that buffer. Read deadlines apply to the buffer, so one that expires
// does not touch the stream: the same conn can be handed, open, to another
// reader which reads on. When the buffer is full the pump waits, so a
// decompression bomb costs CPU, not memory. Close closes the connection and
// waits for the pump to end.
//
// # Writing: Compressor
//
// A Compressor per connection appends the compressed form of p to dst,
// flushed so that the peer can decode all of p from what was appended; the
// caller writes dst with one write, and calls Reset for a new connection.
// gzip uses klauspost/compress at level GzipLevel (1, its fastest
// Lempel-Ziv level): metric lines compress well at any level, and level 1
// is what keeps a gzip link at several times carbon-c-relay's lines per
// CPU-second (carbon-c-relay uses zlib's default, 6).
package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/pierrec/lz4/v4"
)

// The transport names, as in carbon-c-relay's configuration.
const (
	None   = "none"
	Gzip   = "gzip"
	LZ4    = "lz4"
	Snappy = "snappy"
)

// GzipLevel is the gzip compression level of Compressor.
const GzipLevel = 1

const (
	// bufSize is the buffer between the pump and Read.
	bufSize = 64 << 10
	// snappyMaxBlock bounds the uncompressed size of a snappy block read.
	snappyMaxBlock = 64 << 10
	// snappyWriteBlock is the most a written snappy block holds.
	snappyWriteBlock = 16 << 10
)

// Check returns an error unless name is a transport: "" and "none" (no
// compression), "gzip", "lz4" or "snappy".
func Check(name string) error {
	switch name {
	case "", None, Gzip, LZ4, Snappy:
		return nil
	}
	return fmt.Errorf("unknown transport %q: want \"none\", \"gzip\", \"lz4\" or \"snappy\"", name)
}

// Compressed reports whether name is a compressed transport.
func Compressed(name string) bool { return name != "" && name != None }

// Server returns c itself for "" and "none", else a conn whose Read
// returns the decompressed stream of c (see the package doc). Its Write,
// addresses and write deadline are c's. A kind Check refuses makes every
// Read fail.
func Server(kind string, c net.Conn) net.Conn {
	if !Compressed(kind) {
		return c
	}
	z := &conn{Conn: c, kind: kind, buf: make([]byte, bufSize),
		data: make(chan struct{}, 1), spaceFreed: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{})}
	z.rd.init()
	go z.pump()
	return z
}

// conn is a connection read through a decompressor.
type conn struct {
	net.Conn
	kind string

	mu     sync.Mutex
	buf    []byte // ring of decompressed bytes
	r, n   int    // start and length of the unread bytes in buf
	err    error  // the pump's final error, once it stopped
	closed bool

	data       chan struct{} // the pump added bytes or stopped
	spaceFreed chan struct{} // Read freed space
	closing    chan struct{} // closed by Close
	done       chan struct{} // closed when the pump ends
	rd         deadline
	once       sync.Once
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pump decompresses c into buf until an error or Close.
func (z *conn) pump() {
	defer close(z.done)
	src := &srcReader{r: z.Conn}
	dec, err := newDecompressor(z.kind, src)
	if wt, ok := dec.(io.WriterTo); ok && err == nil {
		// lz4: its Read fills the whole buffer it is given, waiting for
		// the next frame; WriteTo hands over each block once decoded
		_, err = wt.WriteTo(ringWriter{z})
		if err == nil {
			err = io.EOF
		}
	}
	for err == nil {
		w, end, ok := z.space()
		if !ok {
			return
		}
		// Read fills buf[w:end], which Read does not touch: it reads
		// only the n bytes from r, published under mu.
		var k int
		k, err = dec.Read(z.buf[w:end])
		z.mu.Lock()
		z.n += k
		z.mu.Unlock()
		if k > 0 {
			signal(z.data)
		}
	}
	if errors.Is(err, net.ErrClosed) && z.isClosed() {
		return
	}
	switch {
	case errors.Is(err, io.EOF):
		err = io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF) && src.err == io.EOF && (z.kind == Gzip || z.kind == LZ4):
		// carbon-c-relay never ends its gzip stream, nor Compressor its
		// LZ4 frame: the peer closing after a flush is the normal end
		err = io.EOF
	case src.err != nil && errors.Is(err, src.err):
		// the connection's own error (reset, closed): as is
	default:
		err = fmt.Errorf("%s transport: %w", z.kind, err)
	}
	z.mu.Lock()
	z.err = err
	z.mu.Unlock()
	signal(z.data)
}

// space waits until buf has free space and returns the first contiguous
// free part, buf[w:end]; false after Close.
func (z *conn) space() (w, end int, ok bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for z.n == len(z.buf) && !z.closed {
		z.mu.Unlock()
		select {
		case <-z.spaceFreed:
		case <-z.closing:
		}
		z.mu.Lock()
	}
	if z.closed {
		return 0, 0, false
	}
	w = (z.r + z.n) % len(z.buf)
	end = len(z.buf)
	if w < z.r {
		end = z.r
	}
	return w, end, true
}

func (z *conn) isClosed() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.closed
}

// ringWriter copies what it is given into buf, waiting for space.
type ringWriter struct{ z *conn }

func (rw ringWriter) Write(p []byte) (int, error) {
	z, n := rw.z, 0
	for len(p) > 0 {
		w, end, ok := z.space()
		if !ok {
			return n, net.ErrClosed
		}
		k := copy(z.buf[w:end], p)
		z.mu.Lock()
		z.n += k
		z.mu.Unlock()
		signal(z.data)
		p, n = p[k:], n+k
	}
	return n, nil
}

// srcReader remembers the error of the connection, to tell it from the
// decompressor's.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func newDecompressor(kind string, r io.Reader) (io.Reader, error) {
	switch kind {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case LZ4:
		return lz4.NewReader(r), nil
	case Snappy:
		return &snappyReader{src: r}, nil
	}
	return nil, Check(kind)
}

// Read reads decompressed bytes. After the read deadline it returns an
// error whose Timeout() is true (os.ErrDeadlineExceeded) and leaves the
// stream as it is.
func (z *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		z.mu.Lock()
		if z.closed {
			z.mu.Unlock()
			return 0, z.opErr(net.ErrClosed)
		}
		if z.n > 0 {
			k := 0
			for len(p) > 0 && z.n > 0 {
				end := min(z.r+z.n, len(z.buf))
				m := copy(p, z.buf[z.r:end])
				p = p[m:]
				k += m
				z.r = (z.r + m) % len(z.buf)
				z.n -= m
			}
			// r never moves back: the pump may be filling buf from the
			// position it computed from r and n
			z.mu.Unlock()
			signal(z.spaceFreed)
			return k, nil
		}
		if err := z.err; err != nil {
			z.mu.Unlock()
			return 0, err
		}
		z.mu.Unlock()
		select {
		case <-z.data:
		case <-z.closing:
		case <-z.rd.wait():
			if z.rd.expired() {
				return 0, z.opErr(os.ErrDeadlineExceeded)
			}
		}
	}
}

func (z *conn) opErr(err error) error {
	return &net.OpError{Op: "read", Net: z.LocalAddr().Network(), Source: z.LocalAddr(), Addr: z.RemoteAddr(), Err: err}
}

// Close closes the connection and waits for the pump to end.
func (z *conn) Close() error {
	err := net.ErrClosed
	z.once.Do(func() {
		z.mu.Lock()
		z.closed = true
		z.mu.Unlock()
		close(z.closing)
		err = z.Conn.Close()
		<-z.done
		z.rd.set(time.Time{})
	})
	return err
}

// SetReadDeadline sets the deadline of Read; the connection itself is read
// without one.
func (z *conn) SetReadDeadline(t time.Time) error {
	z.rd.set(t)
	return nil
}

// SetDeadline sets the read deadline and the connection's write deadline.
func (z *conn) SetDeadline(t time.Time) error {
	z.rd.set(t)
	return z.Conn.SetWriteDeadline(t)
}

// deadline is a settable deadline whose wait channel is closed when it
// passes (net.Pipe's design).
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func (d *deadline) init() { d.cancel = make(chan struct{}) }

// set arms the deadline at t; the zero time disarms it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for its close
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func (d *deadline) expired() bool { return isClosed(d.wait()) }

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// snappyReader decodes concatenated raw snappy blocks.
type snappyReader struct {
	src      io.Reader
	in       []byte // compressed bytes read, not yet decoded
	out      []byte // the decoded block
	outPos   int
	dec      []byte // decode buffer
	err      error
	inBuffer [s2MaxEncodedLen + 4096]byte
}

// s2MaxEncodedLen is s2.MaxEncodedLen(snappyMaxBlock), as a constant.
const s2MaxEncodedLen = 32 + snappyMaxBlock + snappyMaxBlock/6

func (s *snappyReader) Read(p []byte) (int, error) {
	for s.outPos == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		if s.in == nil {
			s.in = s.inBuffer[:0]
		}
		n, err := snappyBlockLen(s.in)
		if err != nil {
			s.err = err
			return 0, err
		}
		if n > 0 {
			if s.dec == nil {
				s.dec = make([]byte, snappyMaxBlock)
			}
			out, err := s2.Decode(s.dec, s.in[:n])
			if err != nil {
				s.err = err
				return 0, err
			}
			s.out, s.outPos = out, 0
			s.in = s.in[:copy(s.in, s.in[n:])]
			continue
		}
		if len(s.in) == cap(s.in) {
			s.err = errors.New("snappy block larger than its length says")
			return 0, s.err
		}
		k, err := s.src.Read(s.in[len(s.in):cap(s.in)])
		s.in = s.in[:len(s.in)+k]
		if err != nil && k == 0 {
			if err == io.EOF && len(s.in) > 0 {
				err = io.ErrUnexpectedEOF
			}
			s.err = err
			return 0, err
		}
	}
	k := copy(p, s.out[s.outPos:])
	s.outPos += k
	return k, nil
}

// snappyBlockLen returns the length of the raw snappy block at the start
// of b, or 0 when b holds only part of it. It walks the elements by their
// tags (the snappy format description: literal, copy with a 1-, 2- or
// 4-byte offset) until they add up to the block's uncompressed length,
// without decoding anything.
func snappyBlockLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	want, i := binary.Uvarint(b)
	switch {
	case i == 0:
		return 0, nil
	case i < 0:
		return 0, errors.New("corrupt snappy block length")
	case want > snappyMaxBlock:
		return 0, fmt.Errorf("snappy block of %d bytes, more than %d", want, snappyMaxBlock)
	}
	var got uint64
	for got < want {
		if i >= len(b) {
			return 0, nil
		}
		tag := b[i]
		var extra, length int
		switch tag & 3 {
		case 0: // literal
			l := int(tag >> 2)
			if l >= 60 {
				extra = l - 59
				if i+1+extra > len(b) {
					return 0, nil
				}
				var v [4]byte
				copy(v[:], b[i+1:i+1+extra])
				l = int(binary.LittleEndian.Uint32(v[:]))
			}
			length = l + 1
			extra += length
		case 1:
			extra, length = 1, 4+int(tag>>2)&7
		case 2:
			extra, length = 2, 1+int(tag>>2)
		case 3:
			extra, length = 4, 1+int(tag>>2)
		}
		i += 1 + extra
		got += uint64(length)
	}
	if got != want {
		return 0, fmt.Errorf("corrupt snappy block: elements of %d bytes for a length of %d", got, want)
	}
	if i > len(b) {
		return 0, nil
	}
	return i, nil
}

// Compressor compresses the stream of one connection; it is not safe for
// concurrent use.
type Compressor struct {
	kind string
	out  appender
	gz   *gzip.Writer
	lz   lz4.Compressor
	// lzFrame: the LZ4 frame header of this connection is written
	lzFrame bool
}

// appender is an io.Writer appending to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// NewCompressor returns a Compressor for kind; "" and "none" append p as
// it is.
func NewCompressor(kind string) (*Compressor, error) {
	if err := Check(kind); err != nil {
		return nil, err
	}
	c := &Compressor{kind: kind}
	switch kind {
	case Gzip:
		w, err := gzip.NewWriterLevel(&c.out, GzipLevel)
		if err != nil {
			return nil, err
		}
		c.gz = w
	}
	return c, nil
}

// Kind returns the transport name.
func (c *Compressor) Kind() string { return c.kind }

// Compress appends the compressed form of p to dst and returns it: the
// peer can decode all of p from the bytes appended so far on this
// connection. dst must not overlap p.
func (c *Compressor) Compress(dst, p []byte) ([]byte, error) {
	switch c.kind {
	case Gzip:
		c.out.b = dst
		if _, err := c.gz.Write(p); err != nil {
			return dst, fmt.Errorf("gzip transport: %w", err)
		}
		if err := c.gz.Flush(); err != nil {
			return dst, fmt.Errorf("gzip transport: %w", err)
		}
		dst, c.out.b = c.out.b, nil
		return dst, nil
	case LZ4:
		return c.compressLZ4(dst, p)
	case Snappy:
		for len(p) > 0 {
			chunk := p[:min(len(p), snappyWriteBlock)]
			p = p[len(chunk):]
			l := len(dst)
			dst = grow(dst, s2.MaxEncodedLen(len(chunk)))
			enc := s2.EncodeSnappy(dst[l:cap(dst)], chunk)
			dst = dst[:l+len(enc)]
		}
		return dst, nil
	}
	return append(dst, p...), nil
}

// Reset makes c start a new stream, for a new connection.
func (c *Compressor) Reset() {
	switch c.kind {
	case Gzip:
		c.gz.Reset(&c.out)
	case LZ4:
		c.lzFrame = false
	}
}

// lz4FrameHeader opens an LZ4 frame: the magic number, FLG (version 1,
// independent blocks, no checksums, no content size), BD (64 KiB blocks)
// and the header checksum of those two bytes.
var lz4FrameHeader = [...]byte{0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82}

const (
	// lz4Uncompressed flags a block stored as it is.
	lz4Uncompressed = 1 << 31
	// lz4WriteBlock is the most a written LZ4 block holds.
	lz4WriteBlock = 16<<10 - 64
)

// compressLZ4 appends p to the connection's one LZ4 frame (see the
// package doc): the frame header first on a connection, then p but its
// last byte in compressed blocks of at most lz4WriteBlock bytes, then that
// last byte in a block of its own stored as it is. The frame is never
// ended: the connection's end ends it.
func (c *Compressor) compressLZ4(dst, p []byte) ([]byte, error) {
	if len(p) == 0 {
		return dst, nil
	}
	if !c.lzFrame {
		dst = append(dst, lz4FrameHeader[:]...)
		c.lzFrame = true
	}
	body, last := p[:len(p)-1], p[len(p)-1]
	for len(body) > 0 {
		chunk := body[:min(len(body), lz4WriteBlock)]
		body = body[len(chunk):]
		l := len(dst)
		bound := lz4.CompressBlockBound(len(chunk))
		dst = grow(dst, 4+bound)
		out := dst[l+4 : l+4+bound]
		n, err := c.lz.CompressBlock(chunk, out)
		if err != nil {
			return dst[:l], fmt.Errorf("lz4 transport: %w", err)
		}
		size := uint32(n)
		if n == 0 || n >= len(chunk) {
			n = copy(out, chunk)
			size = uint32(n) | lz4Uncompressed
		}
		binary.LittleEndian.PutUint32(dst[l:l+4], size)
		dst = dst[:l+4+n]
	}
	dst = binary.LittleEndian.AppendUint32(dst, 1|lz4Uncompressed)
	return append(dst, last), nil
}

// grow returns b with room for n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b[:cap(b)], make([]byte, n)...)[:len(b)]
}
