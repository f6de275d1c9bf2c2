package spool

import (
	"io"
	"os"
)

// Reader returns the records of a Spool in seq order. A Reader is used by one
// goroutine at a time; several Readers may read one Spool. It holds one file
// open: call Close when done.
type Reader struct {
	s    *Spool
	next uint64 // lowest seq still to return
	seg  *segment
	f    *os.File
	sc   scanner
	tail bool // the current segment had a corrupt region running to its end
	// the highest seq decoded so far, in any segment; valid if seen
	maxSeen uint64
	seen    bool
	done    bool
}

// NewReader returns a Reader of the records with Seq >= from. To replay what
// was not delivered, use NewReader(s.Acked()+1).
func (s *Spool) NewReader(from uint64) *Reader {
	return &Reader{s: s, next: from}
}

// Next returns the next record. It returns io.EOF when it has returned
// everything appended so far; after a later Append, Next returns more,
// including records in segments created after the Reader. Corrupt records
// are skipped and counted in Stats, and when the segment being read is
// deleted (DropOldest, or Ack of records it had not reached), Next continues
// with the oldest remaining segment. After Close of the Spool or the Reader
// it returns ErrClosed.
func (r *Reader) Next() (Record, error) {
	if r.done {
		return Record{}, ErrClosed
	}
	for {
		if r.s.isClosed.Load() {
			r.Close()
			return Record{}, ErrClosed
		}
		if r.seg == nil || r.seg.removed.Load() {
			if !r.move() {
				return Record{}, io.EOF
			}
			continue
		}
		if r.sc.off >= r.sc.limit {
			size, sealed := r.s.segState(r.seg)
			r.sc.limit = size
			if r.sc.off >= size {
				if !sealed {
					return Record{}, io.EOF
				}
				r.finish()
				if !r.move() {
					return Record{}, io.EOF
				}
				continue
			}
		}
		switch r.sc.next() {
		case evRecord:
			r.maxSeen, r.seen = r.sc.rec.Seq, true
			if r.sc.rec.Seq < r.next {
				continue
			}
			r.next = r.sc.rec.Seq + 1
			return r.sc.rec, nil
		case evCorrupt:
			if r.sc.tail {
				r.tail = true
			} else {
				r.s.countCorrupt(r.seg, r.sc.cStart, r.sc.cEnd, r.sc.lost)
			}
		}
	}
}

// finish counts the records lost at the end of the sealed segment just read.
// The next segment's prev says which seq should come before it; what was
// decoded (or the segment's own base) says how far the data went. A file
// whose header is bad and that held no valid record tells nothing, unless a
// previous segment did (it was counted as a corrupt segment at Open).
func (r *Reader) finish() {
	baseline, known := r.maxSeen, r.seen
	if r.seg.hdrOK {
		known = true
		if r.seg.base > 0 {
			baseline = max(baseline, r.seg.base-1)
		}
	}
	r.s.finishSeg(r.seg, baseline, known, r.tail && (r.seg.hdrOK || r.sc.found))
}

// move opens the segment to read next: after r.seg, or for a new Reader the
// one holding r.next. Segments that cannot be opened are skipped.
func (r *Reader) move() bool {
	cur := r.seg
	for {
		sg, size := r.s.nextSeg(cur, r.next)
		if sg == nil {
			return false
		}
		f, err := os.Open(sg.path)
		if err != nil {
			cur = sg
			continue
		}
		if r.f != nil {
			r.f.Close()
		}
		r.seg, r.f, r.tail = sg, f, false
		r.sc.reset(f, sg.base, size)
		return true
	}
}

// Close releases the Reader's file. Next returns ErrClosed afterwards.
func (r *Reader) Close() error {
	r.done = true
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// nextSeg returns the segment after cur and its readable size. For cur nil it
// returns the newest segment with a valid header whose base is at most from
// (the oldest segment if there is none): the one that holds from.
func (s *Spool) nextSeg(cur *segment, from uint64) (*segment, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.segs) == 0 {
		return nil, 0
	}
	if cur == nil {
		pick := s.segs[0]
		for _, sg := range s.segs {
			if sg.base > from {
				break
			}
			if sg.hdrOK {
				pick = sg
			}
		}
		return pick, pick.size
	}
	for _, sg := range s.segs {
		if sg.base > cur.base {
			return sg, sg.size
		}
	}
	return nil, 0
}

// segState returns the readable size of sg and whether it is sealed.
func (s *Spool) segState(sg *segment) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sg.size, s.closed || sg.removed.Load() || sg != s.active()
}

// countCorrupt counts a corrupt region found by a reader, once.
func (s *Spool) countCorrupt(sg *segment, start, end int64, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start >= sg.countedTo {
		s.st.CorruptRecords += lost
		sg.countedTo = end
	}
}

// finishSeg counts, once, the records lost at the end of a sealed segment:
// the next segment's prev tells which seq should be the last before it.
func (s *Spool) finishSeg(sg *segment, last uint64, known, tail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sg.finished {
		return
	}
	sg.finished = true
	var lost uint64
	for _, next := range s.segs {
		if next.base > sg.base {
			if known && next.hdrOK && next.prev > last {
				lost = next.prev - last
			}
			break
		}
	}
	if lost == 0 && tail {
		lost = 1
	}
	s.st.CorruptRecords += lost
}
