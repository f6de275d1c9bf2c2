// Package picklein frames the pickle messages of a TCP connection for
// inputs.graphite format = "pickle" (a linein.StreamFramer over
// plugins/codec/pickle's decoder). It lives outside the codec so that the
// codecs depend on no network code.
package picklein

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/pickle"
	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/metric"
)

// DefaultMaxMessage is carbon's PICKLE_RECEIVER_MAX_LENGTH (1 MiB).
const DefaultMaxMessage = 1 << 20

// Framer frames the pickle messages of one TCP connection into batches
// (linein.StreamFramer): it reads each message's 4-byte big-endian length,
// decodes the complete messages (Decoder) and parses the lines they make
// with the Graphite codec. A message longer than maxMessage is counted as
// too long and its bytes are skipped by its length, without being held.
// It is used by one goroutine.
//
// Counting: a refused message is one parse error (pickle.ErrForbidden ones go to
// refused instead), each skipped entry one parse error; a message cut by
// the end of the stream is truncated. onError, if not nil, is called per
// refused message and per message with skipped entries, with the start of
// the message (the caller rate-limits its logging).
type Framer struct {
	max     int
	c       linein.Counters
	refused *atomic.Uint64
	onError func(line []byte, err error)

	dec   pickle.Decoder
	buf   []byte
	start int   // buf[start:end] is read but not framed
	end   int   //
	skip  int64 // bytes left to skip of a message too long
	lines []byte
}

var _ linein.StreamFramer = (*Framer)(nil)

// ErrEntries is what onError gets for a message with skipped entries.
var ErrEntries = errors.New("pickle: entries skipped (not (path, (timestamp, value)))")

// errTooLong is what onError gets for a message over the limit.
var errTooLong = errors.New("pickle: message too long")

// NewFramer returns a framer for one connection; maxMessage <= 0 means
// DefaultMaxMessage.
func NewFramer(maxMessage int, c linein.Counters, refused *atomic.Uint64, onError func(line []byte, err error)) *Framer {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	return &Framer{max: maxMessage, c: c, refused: refused, onError: onError}
}

// Space returns a slice to read into, with at least min free bytes. The
// buffer grows to hold one whole message (up to the limit).
func (f *Framer) Space(min int) []byte {
	if min <= 0 {
		min = 1
	}
	if f.start == f.end {
		f.start, f.end = 0, 0
	}
	need := min
	if f.skip == 0 && f.end-f.start >= 4 {
		// room for the rest of the message being read
		need = max(need, 4+int(binary.BigEndian.Uint32(f.buf[f.start:]))-(f.end-f.start))
	}
	if len(f.buf)-f.end >= need {
		return f.buf[f.end:]
	}
	pending := f.end - f.start
	if len(f.buf) >= pending+need && f.start > 0 {
		copy(f.buf, f.buf[f.start:f.end])
	} else {
		nb := make([]byte, max(pending+need, 2*len(f.buf), 4<<10))
		copy(nb, f.buf[f.start:f.end])
		f.buf = nb
	}
	f.start, f.end = 0, pending
	return f.buf[f.end:]
}

// Advance frames the n bytes just read into Space's slice.
func (f *Framer) Advance(n int) metric.Batch {
	if n <= 0 {
		return nil
	}
	f.end += n
	f.lines = f.lines[:0]
	for {
		if f.skip > 0 {
			k := min(f.skip, int64(f.end-f.start))
			f.skip -= k
			f.start += int(k)
			if f.skip > 0 {
				break
			}
		}
		if f.end-f.start < 4 {
			break
		}
		size := int64(binary.BigEndian.Uint32(f.buf[f.start:]))
		if size > int64(f.max) {
			f.count(f.c.TooLong)
			if f.onError != nil {
				f.onError(f.buf[f.start+4:min(f.end, f.start+4+64)], errTooLong)
			}
			f.start += 4
			f.skip = size
			continue
		}
		if int64(f.end-f.start-4) < size {
			break
		}
		msg := f.buf[f.start+4 : f.start+4+int(size)]
		f.start += 4 + int(size)
		f.decode(msg)
	}
	if f.start == f.end {
		f.start, f.end = 0, 0
	}
	return f.batch()
}

func (f *Framer) decode(msg []byte) {
	out, skipped, err := f.dec.Decode(f.lines, msg)
	f.lines = out
	switch {
	case errors.Is(err, pickle.ErrForbidden):
		f.count(f.refused)
	case err != nil:
		f.count(f.c.ParseErrors)
	case skipped > 0:
		if f.c.ParseErrors != nil {
			f.c.ParseErrors.Add(uint64(skipped))
		}
		err = ErrEntries
	}
	if err != nil && f.onError != nil {
		f.onError(msg[:min(len(msg), 64)], err)
	}
}

// batch parses the lines decoded by this Advance into a batch whose
// metrics point into a buffer of their own (the decoder's is reused).
func (f *Framer) batch() metric.Batch {
	if len(f.lines) == 0 {
		return nil
	}
	n := bytes.Count(f.lines, []byte{'\n'})
	buf := bytes.Clone(f.lines)
	b := make(metric.Batch, n)
	k := 0
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		line := buf[:i:i]
		buf = buf[i+1:]
		if err := graphite.Parse(line, &b[k]); err != nil {
			// Decode writes only lines that parse: kept as a safety net
			f.count(f.c.ParseErrors)
			if f.onError != nil {
				f.onError(line, err)
			}
			continue
		}
		k++
	}
	if k == 0 {
		return nil
	}
	return b[:k:k]
}

// Final frames what is left at the end of the stream: an incomplete
// message is counted as truncated.
func (f *Framer) Final() metric.Batch {
	f.DropPartial()
	return nil
}

// DropPartial discards an incomplete last message, counting it as
// truncated (a message being skipped was counted as too long already).
func (f *Framer) DropPartial() {
	if f.end > f.start && f.skip == 0 {
		f.count(f.c.Truncated)
	}
	f.start, f.end, f.skip = 0, 0, 0
}

// skipState is the state Pending passes on: bytes left to skip of a
// message too long (already counted).
type skipState struct{ skip int64 }

// Pending returns a copy of the bytes read but not framed (an incomplete
// message), and as state the bytes left to skip of a message too long.
func (f *Framer) Pending() (tail []byte, state any) {
	st := skipState{skip: f.skip}
	if f.end == f.start {
		return nil, st
	}
	return bytes.Clone(f.buf[f.start:f.end]), st
}

// Resume goes on from the state of a Framer's Pending. Any other state is
// ignored.
func (f *Framer) Resume(state any) {
	if st, ok := state.(skipState); ok {
		f.skip = st.skip
	}
}

func (f *Framer) count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}
