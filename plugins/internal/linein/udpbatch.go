package linein

import (
	"bytes"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"

	"github.com/metricsrouter/router/plugins/metric"
)

// slotSize is the receive slot of one datagram: the largest UDP payload
// (65507 bytes over IPv4, 65527 over IPv6) fits, so nothing is truncated.
const slotSize = 64 << 10

// BatchReader reads many datagrams per recvmmsg(2) (golang.org/x/net/ipv4
// ReadBatch; one datagram per call where the platform has no recvmmsg) and
// frames their lines into one batch per call. It is used by one goroutine.
//
// Memory: the receive slots are carved from large chunks that are never
// reused, as the Framer does for streams. Before a call, k slots of 64 KiB
// are laid out back to back in the chunk's free space; after it, the n
// datagrams received are moved down so that they sit back to back (the first
// does not move), and the chunk's free space starts right after the last. So
// the bytes a batch points into are compact, nothing is copied twice, and a
// call allocates nothing but the batch (plus what x/net allocates for each
// source address) and, now and then, a new chunk.
type BatchReader struct {
	pc      *ipv4.PacketConn
	msgs    []ipv4.Message
	bufs    [][]byte // backing of each message's Buffers (one buffer each)
	grams   [][]byte // the datagrams of the last call
	parse   ParseFunc
	maxLine int
	c       Counters
	onError func(line []byte, err error)

	chunk     []byte
	off       int // chunk[off:] is free
	chunkSize int
	slab      metric.Batch

	datagrams, calls *atomic.Uint64 // may be nil
}

// NewBatchReader returns a reader of up to batch datagrams per call on conn.
// datagrams and calls, if not nil, count datagrams received and read calls.
func NewBatchReader(conn *net.UDPConn, batch int, parse ParseFunc, maxLine int, c Counters, onError func([]byte, error), datagrams, calls *atomic.Uint64) *BatchReader {
	if batch < 1 {
		batch = 1
	}
	if maxLine <= 0 {
		maxLine = 64 << 10
	}
	r := &BatchReader{
		msgs:      make([]ipv4.Message, batch),
		bufs:      make([][]byte, batch),
		grams:     make([][]byte, 0, batch),
		parse:     parse,
		maxLine:   maxLine,
		c:         c,
		onError:   onError,
		chunkSize: 2 * batch * slotSize,
		datagrams: datagrams,
		calls:     calls,
	}
	if conn != nil {
		r.pc = ipv4.NewPacketConn(conn)
	}
	for i := range r.msgs {
		r.msgs[i].Buffers = r.bufs[i : i+1 : i+1]
	}
	return r
}

// Read waits for datagrams, reads as many as are queued (up to the batch
// size) with one call, and returns their well-formed lines as one batch
// (possibly empty) and the number of datagrams read.
func (r *BatchReader) Read() (metric.Batch, int, error) {
	k := r.layout()
	n, err := r.pc.ReadBatch(r.msgs[:k], 0)
	if n <= 0 {
		return nil, 0, err
	}
	if r.calls != nil {
		r.calls.Add(1)
	}
	return r.received(n), n, err
}

// layout carves up to len(msgs) receive slots from the chunk's free space,
// taking a new chunk when fewer than a quarter of them fit, and returns how
// many it laid out.
func (r *BatchReader) layout() int {
	want := len(r.msgs)
	if (len(r.chunk)-r.off)/slotSize < max(want/4, 1) {
		r.chunk = make([]byte, r.chunkSize)
		r.off = 0
	}
	k := min(want, (len(r.chunk)-r.off)/slotSize)
	for i := range k {
		s := r.off + i*slotSize
		r.bufs[i] = r.chunk[s : s+slotSize : s+slotSize]
	}
	return k
}

// received compacts the n datagrams just read into their slots and frames
// them.
func (r *BatchReader) received(n int) metric.Batch {
	dst := r.off
	lines := 0
	r.grams = r.grams[:0]
	for i := range n {
		m := &r.msgs[i]
		src := r.off + i*slotSize
		size := m.N
		if m.Flags&syscall.MSG_TRUNC != 0 {
			// cannot happen with 64 KiB slots; never frame a cut datagram
			r.count(r.c.TooLong)
			continue
		}
		if src != dst {
			copy(r.chunk[dst:dst+size], r.chunk[src:src+size])
		}
		g := r.chunk[dst : dst+size : dst+size]
		r.grams = append(r.grams, g)
		lines += bytes.Count(g, newline) + 1
		dst += size
		m.Addr = nil // let the source address go
	}
	r.off = dst
	if r.datagrams != nil {
		r.datagrams.Add(uint64(n))
	}
	return r.frame(r.grams, lines)
}

var newline = []byte{'\n'}

// frame parses the lines of each datagram (the last line of a datagram needs
// no '\n') into one batch. lines bounds the number of lines.
func (r *BatchReader) frame(grams [][]byte, lines int) metric.Batch {
	base := len(r.slab)
	if cap(r.slab)-base < lines {
		r.slab = make(metric.Batch, 0, max(lines, 1024))
		base = 0
	}
	s := r.slab
	for _, data := range grams {
		s = r.frameDatagram(s, data)
	}
	r.slab = s
	b := s[base:len(s):len(s)]
	if len(b) == 0 {
		return nil
	}
	return b
}

// frameDatagram appends the metrics of one datagram to s, which has room
// for all of its lines.
func (r *BatchReader) frameDatagram(s metric.Batch, data []byte) metric.Batch {
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(line) > r.maxLine {
			r.count(r.c.TooLong)
			if r.onError != nil {
				r.onError(line[:min(len(line), 64)], errTooLong)
			}
			continue
		}
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue // empty lines are not metrics and not errors
		}
		s = s[:len(s)+1]
		if err := r.parse(line, &s[len(s)-1]); err != nil {
			s = s[:len(s)-1]
			r.count(r.c.ParseErrors)
			if r.onError != nil {
				r.onError(line, err)
			}
		}
	}
	return s
}

// FrameDatagrams frames datagrams as Read does, without a socket (for
// benchmarks and tests of the parse path): it returns one batch.
func (r *BatchReader) FrameDatagrams(grams [][]byte) metric.Batch {
	lines := 0
	for _, g := range grams {
		lines += bytes.Count(g, newline) + 1
	}
	return r.frame(grams, lines)
}

func (r *BatchReader) count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}
