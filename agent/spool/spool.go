package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrFull is returned by Append when the record would take the segment files
// beyond Options.MaxBytes. Nothing was written; Ack or DropOldest make room.
var ErrFull = errors.New("spool full")

// ErrClosed is returned by every method of a closed Spool, and by Reader.Next
// once the Spool or the Reader is closed.
var ErrClosed = errors.New("spool closed")

// ErrTooLarge is returned (wrapped) by Append for a record that could never be
// stored: data over 1 GiB, or a record that alone exceeds MaxBytes. Dropping
// older records does not help; the caller should drop this one.
var ErrTooLarge = errors.New("record too large for spool")

// ErrLocked is returned (wrapped) by Open when another process, or another
// Spool in this process, holds the directory.
var ErrLocked = errors.New("spool in use by another process")

const (
	defaultSegmentBytes  = 64 << 20
	defaultFsyncInterval = time.Second
	maxKeptWriteBuf      = 4 << 20 // Append keeps its write buffer up to this size
)

// Options configures a Spool. The zero value means: unlimited size, 64 MiB
// segments, fsync "interval" every second.
type Options struct {
	// MaxBytes bounds the size of all segment files together, headers
	// included. Append returns ErrFull rather than exceed it. 0 means
	// unlimited.
	MaxBytes int64
	// SegmentBytes is the size after which Append starts a new segment file
	// (default 64 MiB). A record larger than this gets a segment of its own.
	SegmentBytes int64
	// Fsync is the durability policy: "always" fsyncs on every Append and
	// Ack; "interval" (the default) fsyncs at most every FsyncInterval from a
	// background goroutine; "never" leaves it to the operating system. All
	// three survive a kill -9 of the process; only "always" survives power
	// loss without losing records whose Append returned.
	Fsync string
	// FsyncInterval is the period of the "interval" policy (default 1s).
	FsyncInterval time.Duration
}

type policy int

const (
	syncInterval policy = iota
	syncAlways
	syncNever
)

func (o Options) normalize() (Options, policy, error) {
	if o.MaxBytes < 0 {
		return o, 0, fmt.Errorf("max bytes %d is negative", o.MaxBytes)
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = defaultFsyncInterval
	}
	var p policy
	switch o.Fsync {
	case "", "interval":
		o.Fsync, p = "interval", syncInterval
	case "always":
		p = syncAlways
	case "never":
		p = syncNever
	default:
		return o, 0, fmt.Errorf("unknown fsync policy %q (want always, interval or never)", o.Fsync)
	}
	return o, p, nil
}

// Record is one appended record, as a Reader returns it.
type Record struct {
	Seq   uint64 // 1, 2, 3, ... in append order, never reused, continues across restarts
	Count int    // number of metrics in Data, as given to Append
	Data  []byte // the payload; valid until the next call of Reader.Next
}

// Stats is a snapshot of a Spool's state and counters.
type Stats struct {
	Segments int    // segment files, including the active one
	Bytes    int64  // their total size, which MaxBytes bounds
	FirstSeq uint64 // base of the oldest segment file, 0 if no record is stored
	LastSeq  uint64 // seq of the last record appended (or recovered at Open)
	AckedSeq uint64 // the acked position

	CorruptRecords  uint64 // records lost to corruption, as far as readers and Open have seen
	CorruptSegments uint64 // segment files whose header is bad or unreadable, counted at Open
	DroppedRecords  uint64 // unacked records deleted by DropOldest
	DroppedCount    uint64 // the sum of their Count
	TruncatedBytes  uint64 // bytes cut from the tail of the newest segment at Open (torn writes)
	Reclaimed       uint64 // delivered segments reclaimed after a failed write (disk full)
}

// segment is one segment file.
type segment struct {
	// set before the segment is published, then read-only
	base  uint64 // seq of its first record, from the file name
	prev  uint64 // from the header, if hdrOK
	path  string
	hdrOK bool

	// guarded by Spool.mu
	size      int64  // bytes readers may read: file size, or up to the last complete Append
	last      uint64 // seq of its last record; for segments not scanned since Open, an upper bound
	records   int64  // valid records, -1 if not known (not scanned since Open)
	count     int64  // sum of their Count
	countedTo int64  // corrupt regions that start below this offset have been counted
	finished  bool   // the loss at its end has been counted

	removed atomic.Bool // deleted by Ack or DropOldest
}

// Spool is an on-disk log of records. Its methods are safe for concurrent
// use; Readers run concurrently with Append and Ack.
type Spool struct {
	dir   string
	o     Options
	pol   policy
	lockf *os.File
	dirf  *os.File

	mu       sync.Mutex
	closed   bool
	segs     []*segment // by base; the last one is active, written through af
	af       *os.File
	wbuf     []byte
	bytes    int64
	lastSeq  uint64
	acked    uint64
	dirty    bool // af has unsynced writes
	ackDirty bool // ack file renamed but not synced
	dirDirty bool // directory entries changed but not synced
	syncErr  error
	notify   chan struct{} // closed by the next Append; nil until Notify asks
	st       Stats         // counters only

	isClosed atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Open opens the spool in dir, creating dir (mode 0700) if needed. It takes
// an exclusive lock on the directory (ErrLocked if held), recovers the last
// seq and the acked position, cuts off a torn tail and starts the fsync
// goroutine of the "interval" policy. Damaged files do not make it fail.
func Open(dir string, o Options) (*Spool, error) {
	o, pol, err := o.normalize()
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &Spool{dir: dir, o: o, pol: pol}
	if s.dirf, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if s.lockf, err = os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		s.dirf.Close()
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if err := lockFile(s.lockf); err != nil {
		s.lockf.Close()
		s.dirf.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := s.recover(); err != nil {
		if s.af != nil {
			s.af.Close()
		}
		s.lockf.Close()
		s.dirf.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if pol == syncInterval {
		s.stop = make(chan struct{})
		s.wg.Add(1)
		go s.flushLoop()
	}
	return s, nil
}

// recover rebuilds the state from the directory.
func (s *Spool) recover() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			os.Remove(filepath.Join(s.dir, name))
			continue
		}
		base, ok := parseSegName(name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		s.segs = append(s.segs, &segment{base: base, path: filepath.Join(s.dir, name), records: -1})
	}
	slices.SortFunc(s.segs, func(a, b *segment) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})
	for _, sg := range s.segs {
		s.readHeader(sg)
		if !sg.hdrOK {
			s.st.CorruptSegments++
		}
		s.bytes += sg.size
	}
	acked, ackOK := readAck(filepath.Join(s.dir, ackName))

	// The last seq on disk: scan from the newest file back to the newest one
	// with a valid header, whose base bounds every older record.
	var lastValid uint64
	var appendTo *os.File // the newest segment, open for writing, if it can take appends
	stop := -1
	for i := len(s.segs) - 1; i >= 0; i-- {
		sg := s.segs[i]
		f := s.scanAtOpen(sg, i == len(s.segs)-1)
		lastValid = max(lastValid, sg.last)
		if sg.hdrOK {
			appendTo, stop = f, i
			break
		}
	}
	if stop > 0 {
		bound := max(s.segs[stop].base, 1) - 1
		for i := stop - 1; i >= 0; i-- {
			sg := s.segs[i]
			sg.last = bound
			if sg.hdrOK && sg.base > 0 {
				bound = sg.base - 1
			}
		}
	}

	if !ackOK {
		// deliver everything on disk again rather than lose any of it
		acked = 0
		if len(s.segs) > 0 && s.segs[0].base > 0 {
			acked = s.segs[0].base - 1
		}
	}
	s.acked = acked
	s.lastSeq = max(lastValid, acked)
	for len(s.segs) > 1 && s.segs[0].last <= s.acked {
		if err := s.removeOldest(); err != nil {
			break
		}
	}

	if appendTo != nil && s.active().last == s.lastSeq {
		s.af = appendTo
		return nil
	}
	if appendTo != nil {
		appendTo.Close()
	}
	base := s.lastSeq + 1
	if n := len(s.segs); n > 0 && s.segs[n-1].base >= base {
		base = s.segs[n-1].base + 1
	}
	s.lastSeq = base - 1
	if err := s.createSegment(base, lastValid); err != nil {
		return err
	}
	s.deleteAcked() // the old newest segment, if the acked position passed it
	return nil
}

// readHeader sets size, hdrOK and prev of a segment found at Open.
func (s *Spool) readHeader(sg *segment) {
	f, err := os.Open(sg.path)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		sg.size = fi.Size()
	}
	var h [segHdrSize]byte
	if n, _ := f.ReadAt(h[:], 0); n == segHdrSize {
		sg.prev, sg.hdrOK = parseSegHeader(h[:], sg.base)
	}
}

// scanAtOpen reads a whole segment at Open: its record totals, its last seq,
// and its corrupt regions (counted). The newest segment, if its header is
// valid, loses its damaged tail and is returned open for appending.
func (s *Spool) scanAtOpen(sg *segment, newest bool) *os.File {
	writable := newest && sg.hdrOK
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	sg.records, sg.count, sg.last = 0, 0, 0
	if sg.hdrOK && sg.base > 0 {
		sg.last = sg.base - 1
	}
	f, err := os.OpenFile(sg.path, flag, 0)
	if err != nil {
		return nil
	}
	var sc scanner
	sc.reset(f, sg.base, sg.size)
	tail := int64(-1)
	for ev := sc.next(); ev != evEnd; ev = sc.next() {
		switch {
		case ev == evRecord:
			sg.records++
			sg.count += int64(sc.rec.Count)
		case sc.tail:
			tail = sc.cStart
		default:
			s.st.CorruptRecords += sc.lost
			sg.countedTo = sc.cEnd
		}
	}
	if sc.found {
		sg.last = sc.last
	}
	if !writable || sc.err != nil {
		f.Close()
		return nil
	}
	if tail >= 0 {
		if err := f.Truncate(tail); err != nil {
			f.Close()
			return nil
		}
		if s.pol != syncNever {
			f.Sync()
		}
		s.st.TruncatedBytes += uint64(sg.size - tail)
		s.bytes -= sg.size - tail
		sg.size = tail
	}
	return f
}

// createSegment makes base the active segment: the header goes to a
// temporary file that is renamed into place.
func (s *Spool) createSegment(base, prev uint64) error {
	path := filepath.Join(s.dir, segName(base))
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	var h [segHdrSize]byte
	putSegHeader(h[:], base, prev)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create segment: %w", err)
	}
	if s.pol == syncAlways {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("create segment: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("create segment: %w", err)
	}
	switch s.pol {
	case syncAlways:
		if err := s.dirf.Sync(); err != nil {
			s.syncErr = err
		}
	case syncInterval:
		s.dirty, s.dirDirty = true, true
	}
	s.af = f
	last := uint64(0)
	if base > 0 {
		last = base - 1
	}
	s.segs = append(s.segs, &segment{base: base, prev: prev, path: path, hdrOK: true, size: segHdrSize, last: last})
	s.bytes += segHdrSize
	return nil
}

// rotate seals the active segment and starts the next one.
func (s *Spool) rotate() error {
	if s.pol != syncNever {
		if err := s.af.Sync(); err != nil {
			return fmt.Errorf("sync segment: %w", err)
		}
	}
	old := s.af
	if err := s.createSegment(s.lastSeq+1, s.lastSeq); err != nil {
		return err
	}
	old.Close()
	return nil
}

// removeOldest deletes the oldest segment file.
func (s *Spool) removeOldest() error {
	sg := s.segs[0]
	if err := os.Remove(sg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove segment: %w", err)
	}
	sg.removed.Store(true)
	s.bytes -= sg.size
	s.segs[0] = nil
	s.segs = s.segs[1:]
	if s.pol == syncInterval {
		s.dirDirty = true
	}
	return nil
}

// deleteAcked deletes the sealed segments whose records are all acked.
func (s *Spool) deleteAcked() error {
	for len(s.segs) > 1 && s.segs[0].last <= s.acked {
		if err := s.removeOldest(); err != nil {
			return err
		}
	}
	return nil
}

// active returns the segment Append writes to; nil only after reclaim
// could not create one (the next Append tries again).
func (s *Spool) active() *segment {
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// reclaim gives the disk back when a write failed (the disk is full) and
// the only segment holds nothing but delivered records: Ack deletes only
// sealed segments, so without this a segment larger than the free space
// would fill the disk for good. The file is emptied first (a reader may
// hold it open, which would keep its blocks), then removed and replaced by
// a new segment.
func (s *Spool) reclaim() error {
	a := s.active()
	if err := s.af.Truncate(0); err != nil {
		return fmt.Errorf("reclaim segment: %w", err)
	}
	s.af.Close()
	s.af = nil
	a.removed.Store(true)
	if err := os.Remove(a.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.syncErr = err
	}
	s.bytes -= a.size
	s.segs = s.segs[:0]
	s.st.Reclaimed++
	if s.pol == syncInterval {
		s.dirDirty = true
	}
	return s.createSegment(s.lastSeq+1, s.lastSeq)
}

// Append stores one record of count metrics and returns its seq. It returns
// only after the record has been written to the file (and fsynced with
// policy "always"), so a record whose Append returned survives a kill -9.
// ErrFull means the record would exceed MaxBytes and nothing was written;
// ErrTooLarge (wrapped) means it never fits. The spool copies data.
func (s *Spool) Append(count int, data []byte) (uint64, error) {
	if count < 0 || count > math.MaxInt32 {
		return 0, fmt.Errorf("append: count %d out of range", count)
	}
	if len(data) > maxRecordData {
		return 0, fmt.Errorf("append %d bytes: %w", len(data), ErrTooLarge)
	}
	need := int64(recHdrSize + len(data))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if s.o.MaxBytes > 0 && segHdrSize+need > s.o.MaxBytes {
		return 0, fmt.Errorf("append %d bytes (max bytes %d): %w", len(data), s.o.MaxBytes, ErrTooLarge)
	}
	if len(s.segs) == 0 {
		// a reclaim could not create the next segment: try again
		if err := s.createSegment(s.lastSeq+1, s.lastSeq); err != nil {
			return 0, err
		}
	}
	return s.appendLocked(count, data, need, true)
}

// appendLocked is Append with s.mu held and a segment to write to; reclaim
// allows one reclaim and retry after a failed write.
func (s *Spool) appendLocked(count int, data []byte, need int64, reclaim bool) (uint64, error) {
	a := s.active()
	rot := a.records > 0 && a.size+need > s.o.SegmentBytes
	if s.o.MaxBytes > 0 {
		grow := need
		if rot {
			grow += segHdrSize
		}
		if s.bytes+grow > s.o.MaxBytes && a.records > 0 && a.last <= s.acked {
			// everything in the active segment was delivered: replace it
			if err := s.rotate(); err != nil {
				return 0, err
			}
			if err := s.deleteAcked(); err != nil {
				return 0, err
			}
			rot, grow = false, need
		}
		if s.bytes+grow > s.o.MaxBytes {
			return 0, ErrFull
		}
	}
	if rot {
		if err := s.rotate(); err != nil {
			return 0, err
		}
	}
	a = s.active()
	seq := s.lastSeq + 1
	s.wbuf = encodeRecord(s.wbuf, seq, uint32(count), data)
	_, err := s.af.WriteAt(s.wbuf, a.size)
	if err == nil && s.pol == syncAlways {
		err = s.af.Sync()
	}
	if cap(s.wbuf) > maxKeptWriteBuf {
		s.wbuf = nil
	}
	if err != nil {
		// a partial record must not stay in front of the next one
		s.af.Truncate(a.size)
		if reclaim && len(s.segs) == 1 && a.records > 0 && a.last <= s.acked {
			if rerr := s.reclaim(); rerr != nil {
				return 0, fmt.Errorf("append to spool: %w (reclaiming the delivered segment: %v)", err, rerr)
			}
			return s.appendLocked(count, data, need, false)
		}
		return 0, fmt.Errorf("append to spool: %w", err)
	}
	if s.pol == syncInterval {
		s.dirty = true
	}
	a.size += need
	a.last = seq
	a.records++
	a.count += int64(count)
	s.bytes += need
	s.lastSeq = seq
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	return seq, nil
}

// Notify returns a channel that is closed by the next Append, or by Close.
// A reader that wants to wait for data takes the channel before calling
// Next, and waits on it only if that Next returned io.EOF:
//
//	ch := s.Notify()
//	rec, err := r.Next()
//	if err == io.EOF {
//		select { case <-ch: case <-ctx.Done(): }
//	}
func (s *Spool) Notify() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
		if s.closed {
			close(s.notify)
		}
	}
	return s.notify
}

// Ack records that every record with a seq at or below seq was delivered. It
// persists the position (see the package doc) and deletes the sealed segments
// whose records are all acked. An ack at or below the current position does
// nothing; one beyond LastSeq is an error.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if seq <= s.acked {
		return nil
	}
	if seq > s.lastSeq {
		return fmt.Errorf("ack %d: beyond the last seq %d", seq, s.lastSeq)
	}
	s.acked = seq
	if err := s.writeAck(seq); err != nil {
		return err
	}
	return s.deleteAcked()
}

func (s *Spool) writeAck(seq uint64) error {
	var b [ackSize]byte
	encodeAck(&b, seq)
	path := filepath.Join(s.dir, ackName)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write ack: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil && s.pol == syncAlways {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write ack: %w", err)
	}
	switch s.pol {
	case syncAlways:
		if err := s.dirf.Sync(); err != nil {
			return fmt.Errorf("write ack: %w", err)
		}
	case syncInterval:
		s.ackDirty = true
	}
	return nil
}

// DropOldest deletes the oldest segment file even if its records are not
// acked (overflow "drop_oldest"), and returns how many unacked records it
// held and the sum of their Count. If only the active segment is left it is
// sealed first, so its records are the ones dropped. With nothing to drop it
// returns an error.
//
// Records a Reader has already returned but that are not acked are counted
// as dropped, even though the caller may still deliver them.
func (s *Spool) DropOldest() (records int, count int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	if len(s.segs) == 0 {
		return 0, 0, errors.New("drop oldest: spool holds no records")
	}
	if len(s.segs) == 1 {
		if s.active().records == 0 {
			return 0, 0, errors.New("drop oldest: spool holds no records")
		}
		if err := s.rotate(); err != nil {
			return 0, 0, err
		}
	}
	n, c := s.unacked(s.segs[0])
	if err := s.removeOldest(); err != nil {
		return 0, 0, err
	}
	s.st.DroppedRecords += uint64(n)
	s.st.DroppedCount += uint64(c)
	return int(n), int(c), nil
}

// unacked returns the records of a sealed segment above the acked position
// and the sum of their Count, reading the file when the totals do not tell.
func (s *Spool) unacked(sg *segment) (n, c int64) {
	if sg.records >= 0 && sg.base > s.acked {
		return sg.records, sg.count
	}
	if sg.last <= s.acked {
		return 0, 0
	}
	f, err := os.Open(sg.path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var sc scanner
	sc.reset(f, sg.base, sg.size)
	for ev := sc.next(); ev != evEnd; ev = sc.next() {
		if ev == evRecord && sc.rec.Seq > s.acked {
			n++
			c += int64(sc.rec.Count)
		}
	}
	return n, c
}

// Acked returns the acked position: after Open the persisted one, then the
// highest seq given to Ack.
func (s *Spool) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// LastSeq returns the seq of the last record appended, or recovered at Open.
func (s *Spool) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

// Stats returns the current state and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Segments = len(s.segs)
	st.Bytes = s.bytes
	st.LastSeq = s.lastSeq
	st.AckedSeq = s.acked
	if len(s.segs) > 0 && s.lastSeq >= s.segs[0].base {
		st.FirstSeq = s.segs[0].base
	}
	return st
}

// Close stops the fsync goroutine, fsyncs what is pending (unless the policy
// is "never"), closes the files and releases the lock. A second call does
// nothing. Readers return ErrClosed afterwards.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isClosed.Store(true)
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
	}
	// no other method touches the files once closed is set
	errs := []error{s.syncErr}
	if s.pol != syncNever {
		errs = append(errs, s.af.Sync())
		if s.ackDirty {
			errs = append(errs, syncFile(filepath.Join(s.dir, ackName)))
		}
		errs = append(errs, s.dirf.Sync())
	}
	errs = append(errs, s.af.Close(), s.dirf.Close(), s.lockf.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close spool %s: %w", s.dir, err)
	}
	return nil
}

// flushLoop is the "interval" policy's goroutine.
func (s *Spool) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.o.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.syncPending()
		}
	}
}

// syncPending fsyncs what changed since the last call, outside the lock so
// that Append does not wait for the disk.
func (s *Spool) syncPending() {
	s.mu.Lock()
	var f *os.File
	if s.dirty {
		f = s.af
	}
	ack, dir := s.ackDirty, s.dirDirty || s.ackDirty
	s.dirty, s.ackDirty, s.dirDirty = false, false, false
	s.mu.Unlock()
	var errs []error
	if f != nil {
		// a rotation may close f meanwhile; it synced f before
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if ack {
		errs = append(errs, syncFile(filepath.Join(s.dir, ackName)))
	}
	if dir {
		errs = append(errs, s.dirf.Sync())
	}
	if err := errors.Join(errs...); err != nil {
		s.mu.Lock()
		s.syncErr = err
		s.mu.Unlock()
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
