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
// Memory: the receive slots (64 KiB each, so no datagram is ever cut) are
// one area allocated once and reused by every call; of it only the pages
// that datagrams reached are resident (a slot's first page for the usual
// small datagram). The lines of a call are parsed where they were received,
// then copied out of the slots into one buffer of their size
// (metric.Detach: lines that follow one another are copied at once), and
// the call's metrics are one allocation of their number. So a queued batch
// holds what it carries (metric.RetainedBytes), not 64 KiB per datagram nor
// the junk lines around its own, and a call allocates the batch, its bytes
// and what x/net allocates for each source address.
type BatchReader struct {
	pc      *ipv4.PacketConn
	msgs    []ipv4.Message
	bufs    [][]byte // backing of each message's Buffers (one buffer each)
	grams   [][]byte // the datagrams of the last call
	parse   ParseFunc
	maxLine int
	c       Counters
	onError func(line []byte, err error)

	recv []byte // the receive slots, reused
	free func() // releases recv

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
		datagrams: datagrams,
		calls:     calls,
	}
	if conn != nil {
		r.pc = ipv4.NewPacketConn(conn)
	}
	for i := range r.msgs {
		r.msgs[i].Buffers = r.bufs[i : i+1 : i+1]
	}
	if conn != nil {
		r.recv, r.free = recvArea(batch * slotSize)
		for i := range r.bufs {
			s := i * slotSize
			r.bufs[i] = r.recv[s : s+slotSize : s+slotSize]
		}
	}
	return r
}

// Read waits for datagrams, reads as many as are queued (up to the batch
// size) with one call, and returns their well-formed lines as one batch
// (possibly empty) and the number of datagrams read.
func (r *BatchReader) Read() (metric.Batch, int, error) {
	n, err := r.pc.ReadBatch(r.msgs, 0)
	if n <= 0 {
		return nil, 0, err
	}
	if r.calls != nil {
		r.calls.Add(1)
	}
	return r.received(n), n, err
}

// Close releases the receive slots. The batches Read returned stay valid
// (their bytes were copied out); Read must not be called after.
func (r *BatchReader) Close() {
	if r.free != nil {
		r.free()
		r.free, r.recv = nil, nil
		for i := range r.bufs {
			r.bufs[i] = nil
		}
	}
}

// received frames the n datagrams just read, in their slots.
func (r *BatchReader) received(n int) metric.Batch {
	lines := 0
	r.grams = r.grams[:0]
	for i := range n {
		m := &r.msgs[i]
		m.Addr = nil // let the source address go
		if m.Flags&syscall.MSG_TRUNC != 0 {
			// cannot happen with 64 KiB slots; never frame a cut datagram
			r.count(r.c.TooLong)
			continue
		}
		g := r.bufs[i][:m.N:m.N]
		r.grams = append(r.grams, g)
		lines += bytes.Count(g, newline) + 1
	}
	if r.datagrams != nil {
		r.datagrams.Add(uint64(n))
	}
	return r.frame(r.grams, lines, r.recv)
}

var newline = []byte{'\n'}

// frame parses the lines of each datagram (the last line of a datagram needs
// no '\n') into one batch, then copies the lines out of from (the area the
// datagrams are in). lines bounds the number of lines.
func (r *BatchReader) frame(grams [][]byte, lines int, from []byte) metric.Batch {
	total := 0
	for _, g := range grams {
		total += len(g)
	}
	s := newBatch(lines, total)
	for _, data := range grams {
		s = r.frameDatagram(s, data, lines)
	}
	if len(s) == 0 {
		return nil
	}
	s = exact(s)
	metric.Detach(s, from)
	return s
}

// frameDatagram appends the metrics of one datagram to s (lines bounds the
// metrics of the call: s grows towards it).
func (r *BatchReader) frameDatagram(s metric.Batch, data []byte, lines int) metric.Batch {
	first := len(s)
	defer func() {
		if len(s) > first {
			s[first].MarkPacketStart()
		}
	}()
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
		s = addSlot(s, lines)
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
// benchmarks and tests of the parse path): it returns one batch, whose lines
// are copied out of from if they lie there (the datagrams' receive area;
// nil: they stay where they are).
func (r *BatchReader) FrameDatagrams(grams [][]byte, from []byte) metric.Batch {
	lines := 0
	for _, g := range grams {
		lines += bytes.Count(g, newline) + 1
	}
	return r.frame(grams, lines, from)
}

func (r *BatchReader) count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}
