// Package linein frames newline-delimited metrics from streams and datagrams
// into batches, and serves TCP and UDP listeners for the line-protocol inputs
// (Graphite, StatsD).
//
// Memory: what a queued batch keeps alive is what the agent charges for it
// (metric.RetainedBytes), whatever arrived around its lines. Bytes are read
// into chunks. A batch whose lines fill at least 16/17 of its chunk is handed
// over in place (no copy): the chunk then belongs to it and is never written
// again below what was read. Any other batch (a read that did not fill its
// chunk, or lines among junk) is detached: its lines are copied into a buffer
// of their size (metric.Detach), and the chunk is reused for the next reads.
// A batch's metrics are one allocation of the batch's size (copied to an
// exact one when bad lines left it sparse). So there are one or two
// allocations per batch and none per line, and a line followed by 250 KB of
// junk keeps its own bytes alive, not the 256 KiB read.
package linein

import (
	"bytes"
	"sync/atomic"

	"github.com/metricsrouter/router/plugins/metric"
)

// ParseFunc parses one line (without '\n') into m. m may hold an earlier
// metric (slots are reused without clearing): on success the function must
// set all of *m, as the codecs do (field by field: TestParseOverwritesAll).
type ParseFunc func(line []byte, m *metric.Metric) error

// Counters are the per-input counters the framer increments (any may be nil).
type Counters struct {
	ParseErrors *atomic.Uint64 // malformed lines (skipped)
	TooLong     *atomic.Uint64 // lines longer than the limit (skipped)
	Truncated   *atomic.Uint64 // partial lines cut by shutdown or error (skipped)
}

// Framer cuts a byte stream into lines and parses them into batches.
// It is used by one goroutine.
type Framer struct {
	parse   ParseFunc
	maxLine int
	c       Counters
	onError func(line []byte, err error)

	chunk      []byte
	start, end int // chunk[start:end] is read but not yet framed into lines
	scan       int // chunk[start:scan] has no '\n'
	next       int // size of the next chunk
	minChunk   int
	maxChunk   int
	discarding bool // inside a line that is too long: skip to the next '\n'
	// pinned: a batch handed over in place points into chunk[:start], so
	// those bytes are never written again (the chunk is not rewound).
	pinned  bool
	cleanse CleanseFunc // see SetCleanse
}

// NewFramer returns a framer. maxLine bounds a line's length (longer lines are
// counted and skipped); onError, if not nil, is called for each bad line (the
// caller rate-limits its logging).
func NewFramer(parse ParseFunc, maxLine int, c Counters, onError func(line []byte, err error)) *Framer {
	if maxLine <= 0 {
		maxLine = 64 << 10
	}
	return &Framer{parse: parse, maxLine: maxLine, c: c, onError: onError, minChunk: 4 << 10, maxChunk: 256 << 10, next: 4 << 10}
}

// SetChunkSizes overrides the initial and maximum chunk sizes (datagram
// readers start large).
func (f *Framer) SetChunkSizes(initial, max int) {
	f.next, f.minChunk, f.maxChunk = initial, initial, max
}

// Space returns a slice to read into, with at least min free bytes.
func (f *Framer) Space(min int) []byte {
	if min <= 0 {
		min = 1
	}
	if !f.pinned && f.start == f.end {
		// nothing pending and nothing handed over points here: start over
		f.start, f.end, f.scan = 0, 0, 0
	}
	if len(f.chunk)-f.end >= min && len(f.chunk)-f.end >= len(f.chunk)/16 {
		return f.chunk[f.end:]
	}
	partial := f.end - f.start
	size := f.next
	if size < 2*partial {
		size = 2 * partial
	}
	if size < partial+min {
		size = partial + min
	}
	if !f.pinned && len(f.chunk) >= size {
		// every batch read from this chunk was detached: reuse it, the
		// incomplete line moved to the front
		copy(f.chunk, f.chunk[f.start:f.end])
	} else {
		nc := make([]byte, size)
		copy(nc, f.chunk[f.start:f.end])
		f.chunk, f.pinned = nc, false
	}
	f.scan -= f.start
	f.start, f.end = 0, partial
	return f.chunk[f.end:]
}

// Advance frames the n bytes just read into Space's slice and returns the
// batch of complete, well-formed lines (possibly empty).
func (f *Framer) Advance(n int) metric.Batch {
	if n <= 0 {
		return nil
	}
	free := len(f.chunk) - f.end
	f.end += n
	if n == free && f.next < f.maxChunk {
		f.next *= 2 // reads fill the chunk: use bigger ones
	}
	return f.frame(false)
}

// Datagram frames the n bytes just read as one whole datagram: every line,
// the last one with or without its '\n'.
func (f *Framer) Datagram(n int) metric.Batch {
	if n <= 0 {
		return nil
	}
	f.end += n
	return f.frame(true)
}

// Final frames the rest as a last line (end of stream or of a datagram).
func (f *Framer) Final() metric.Batch {
	return f.frame(true)
}

// DropPartial discards an incomplete last line, counting it as truncated.
func (f *Framer) DropPartial() {
	if f.end > f.start && !f.discarding {
		if f.c.Truncated != nil {
			f.c.Truncated.Add(1)
		}
	}
	f.start, f.scan, f.discarding = f.end, f.end, false
}

// Pending returns a copy of the bytes read but not yet framed (an
// incomplete last line), and as state whether the framer is skipping the
// rest of a line too long (already counted, a lineState): what a server that
// hands the stream over passes on, for the next framer to go on with
// (Resume).
func (f *Framer) Pending() (tail []byte, state any) {
	st := lineState{skipping: f.discarding}
	if f.end == f.start {
		return nil, st
	}
	return bytes.Clone(f.chunk[f.start:f.end]), st
}

// lineState is the state Framer.Pending passes on.
type lineState struct {
	skipping bool // inside a line already counted as too long
}

// Resume goes on from the state of a Framer's Pending: skipping the rest of
// a line too long if it was. Any other state is ignored.
func (f *Framer) Resume(state any) {
	if st, ok := state.(lineState); ok && st.skipping {
		f.SkipLine()
	}
}

// SkipLine makes the framer skip what comes up to the next '\n': the stream
// starts inside a line that was already counted as too long.
func (f *Framer) SkipLine() { f.discarding = true }

func (f *Framer) frame(final bool) metric.Batch {
	data := f.chunk[f.start:f.end]
	if len(data) == 0 {
		return nil
	}
	if f.discarding {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			f.start, f.scan = f.end, f.end
			if final {
				f.discarding = false
			}
			return nil
		}
		f.discarding = false
		f.start += i + 1
		f.scan = f.start
		data = f.chunk[f.start:f.end]
	}
	lines := bytes.Count(data[f.scan-f.start:], []byte{'\n'})
	if final {
		lines++
	}
	s := newBatch(lines, len(data))
	pos := f.start
	for {
		i := bytes.IndexByte(f.chunk[max(pos, f.scan):f.end], '\n')
		var line []byte
		if i < 0 {
			if !final || pos == f.end {
				break
			}
			line = f.chunk[pos:f.end:f.end]
			pos = f.end
		} else {
			e := max(pos, f.scan) + i
			line = f.chunk[pos:e:e]
			pos = e + 1
		}
		f.scan = pos
		if len(line) > f.maxLine {
			f.count(f.c.TooLong)
			if f.onError != nil {
				f.onError(line[:min(len(line), 64)], errTooLong)
			}
			continue
		}
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue // empty lines are not metrics and not errors
		}
		if f.cleanse != nil {
			s = f.cleanseLine(s, line, lines)
			continue
		}
		s = addSlot(s, lines) // parse sets every field of a metric it accepts
		if err := f.parse(line, &s[len(s)-1]); err != nil {
			s = s[:len(s)-1]
			f.count(f.c.ParseErrors)
			if f.onError != nil {
				f.onError(line, err)
			}
		}
	}
	f.start = pos
	if f.scan < f.start {
		f.scan = f.start
	}
	if !final && f.end-f.start > f.maxLine {
		// no '\n' within the limit: skip the rest of this line
		f.count(f.c.TooLong)
		if f.onError != nil {
			f.onError(f.chunk[f.start:min(f.end, f.start+64)], errTooLong)
		}
		f.discarding = true
		f.start, f.scan = f.end, f.end
	}
	if len(s) == 0 {
		return nil
	}
	return f.handOver(s)
}

// minSlots is the smallest room a batch starts with.
const minSlots = 4096

// newBatch returns room for lines metrics framed from size bytes, unless
// the lines are many and short: junk does not buy memory, the batch grows
// (addSlot) with the lines that parse.
func newBatch(lines, size int) metric.Batch {
	return make(metric.Batch, 0, min(lines, max(minSlots, size/16)))
}

// addSlot returns s with one more metric, growing it towards lines.
func addSlot(s metric.Batch, lines int) metric.Batch {
	if len(s) == cap(s) {
		ns := make(metric.Batch, len(s), max(min(lines, 2*cap(s)), len(s)+1))
		copy(ns, s)
		s = ns
	}
	return s[:len(s)+1]
}

// exact returns s in an allocation of about its size (metric.Dense): a
// batch left sparse by bad lines is copied.
func exact(s metric.Batch) metric.Batch {
	if !metric.Dense(len(s), cap(s)) {
		s = append(make(metric.Batch, 0, len(s)), s...)
	}
	return s[:len(s):len(s)]
}

// handOver makes b what it keeps alive: its own size, and its lines in
// place only if they fill most of the chunk (then the chunk is pinned),
// else copied out of it.
func (f *Framer) handOver(b metric.Batch) metric.Batch {
	b = exact(b)
	if metric.Dense(metric.Backing(b, f.chunk), len(f.chunk)) {
		f.pinned = true
	} else {
		metric.Detach(b, f.chunk)
	}
	return b
}

func (f *Framer) count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}

type lineErr string

func (e lineErr) Error() string { return string(e) }

const errTooLong = lineErr("line too long")
