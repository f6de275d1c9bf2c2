package spool

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
)

const (
	segMagic      = "MRSPSG"
	segVersion    = 1
	segHdrSize    = 24
	recHdrSize    = 20
	ackMagic      = "MRSPAK"
	ackVersion    = 1
	ackSize       = 20
	maxRecordData = 1 << 30 // largest payload, so that a length field alone never asks for more

	segSuffix = ".seg"
	tmpSuffix = ".tmp"
	ackName   = "ack"
	lockName  = "lock"

	readChunk = 256 << 10 // bytes a reader asks the file for at once
)

var (
	le         = binary.LittleEndian
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// segName is the file name of the segment whose first record is base.
func segName(base uint64) string {
	s := strconv.FormatUint(base, 10)
	return strings.Repeat("0", 20-len(s)) + s + segSuffix
}

// parseSegName returns the base of a segment file name: 20 digits and ".seg".
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	return base, err == nil
}

func putSegHeader(b []byte, base, prev uint64) {
	copy(b, segMagic)
	le.PutUint16(b[6:], segVersion)
	le.PutUint64(b[8:], base)
	le.PutUint64(b[16:], prev)
}

// parseSegHeader checks a segment header against the base from the file name
// and returns its prev field.
func parseSegHeader(b []byte, base uint64) (prev uint64, ok bool) {
	if len(b) < segHdrSize || string(b[:6]) != segMagic || le.Uint16(b[6:]) != segVersion || le.Uint64(b[8:]) != base {
		return 0, false
	}
	return le.Uint64(b[16:]), true
}

// encodeRecord writes one record into buf, reusing its storage.
func encodeRecord(buf []byte, seq uint64, count uint32, data []byte) []byte {
	n := recHdrSize + len(data)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	le.PutUint32(buf[4:], uint32(len(data)))
	le.PutUint64(buf[8:], seq)
	le.PutUint32(buf[16:], count)
	copy(buf[recHdrSize:], data)
	le.PutUint32(buf, crc32.Checksum(buf[4:], castagnoli))
	return buf
}

func encodeAck(b *[ackSize]byte, seq uint64) {
	copy(b[:], ackMagic)
	le.PutUint16(b[6:], ackVersion)
	le.PutUint64(b[8:], seq)
	le.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
}

// readAck returns the acked seq stored at path, ok=false if the file is
// missing, unreadable or corrupt.
func readAck(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [ackSize + 1]byte
	n, _ := io.ReadFull(f, b[:])
	if n != ackSize || string(b[:6]) != ackMagic || le.Uint16(b[6:]) != ackVersion ||
		le.Uint32(b[16:]) != crc32.Checksum(b[:16], castagnoli) {
		return 0, false
	}
	return le.Uint64(b[8:]), true
}

// event is what scanner.next found.
type event int

const (
	evEnd     event = iota // nothing more below limit
	evRecord               // scanner.rec holds a valid record
	evCorrupt              // scanner.cStart..cEnd is a corrupt region
)

// scanner decodes the records of one segment file below limit, skipping
// corrupt regions. It reads through its own buffer, which it reuses.
type scanner struct {
	r       io.ReaderAt
	off     int64  // next offset to decode
	limit   int64  // bytes of the file that may be read
	last    uint64 // seq of the last valid record; base-1 before the first
	lastEnd int64  // offset after the last valid record
	found   bool   // a valid record has been seen
	err     error  // read error that ended the scan, if any

	buf    []byte // buf holds the file's bytes from bufOff
	bufOff int64

	rec Record // set by evRecord

	// set by evCorrupt
	cStart, cEnd int64
	lost         uint64 // records lost in the region, from the seq gap (at least 1); 0 if tail
	tail         bool   // the region runs to limit: no valid record after it
}

func (sc *scanner) reset(r io.ReaderAt, base uint64, limit int64) {
	sc.r = r
	sc.off = segHdrSize
	sc.limit = limit
	sc.last = 0
	if base > 0 {
		sc.last = base - 1
	}
	sc.lastEnd = segHdrSize
	sc.found = false
	sc.err = nil
	sc.buf = sc.buf[:0]
	sc.bufOff = 0
	sc.rec = Record{}
}

// peek returns the n bytes at offset o; o+n must not exceed limit.
func (sc *scanner) peek(o int64, n int) ([]byte, error) {
	if o >= sc.bufOff && o+int64(n) <= sc.bufOff+int64(len(sc.buf)) {
		i := o - sc.bufOff
		return sc.buf[i : i+int64(n)], nil
	}
	want := max(n, readChunk)
	if rem := sc.limit - o; int64(want) > rem {
		want = int(rem)
	}
	if cap(sc.buf) < want {
		sc.buf = make([]byte, want)
	}
	b := sc.buf[:want]
	got, err := sc.r.ReadAt(b, o)
	if got < n {
		sc.buf = sc.buf[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	sc.buf, sc.bufOff = b[:got], o
	return sc.buf[:n], nil
}

// validAt reports whether a valid record starts at o and, if so, sets rec.
// While resyncing, a candidate's seq must also be one that could follow the
// last valid record across the bytes skipped so far (a record takes at least
// recHdrSize bytes), which rejects almost all garbage before the CRC.
func (sc *scanner) validAt(o int64, resync bool) (bool, error) {
	if sc.limit-o < recHdrSize {
		return false, nil
	}
	h, err := sc.peek(o, recHdrSize)
	if err != nil {
		return false, err
	}
	n := int64(le.Uint32(h[4:]))
	seq := le.Uint64(h[8:])
	if n > maxRecordData || n > sc.limit-o-recHdrSize || seq <= sc.last {
		return false, nil
	}
	if resync && seq-sc.last > 1+uint64((o-sc.lastEnd)/recHdrSize) {
		return false, nil
	}
	full, err := sc.peek(o, recHdrSize+int(n))
	if err != nil {
		return false, err
	}
	if crc32.Checksum(full[4:], castagnoli) != le.Uint32(full) {
		return false, nil
	}
	sc.rec = Record{Seq: seq, Count: int(le.Uint32(full[16:]) & 0x7fffffff), Data: full[recHdrSize:len(full):len(full)]}
	return true, nil
}

// next decodes what is at off.
func (sc *scanner) next() event {
	if sc.off >= sc.limit {
		return evEnd
	}
	ok, err := sc.validAt(sc.off, false)
	if err != nil {
		return sc.fail(err)
	}
	if ok {
		sc.off += recHdrSize + int64(len(sc.rec.Data))
		sc.last, sc.lastEnd, sc.found = sc.rec.Seq, sc.off, true
		return evRecord
	}
	start := sc.off
	for q := start + 1; q+recHdrSize <= sc.limit; q++ {
		ok, err := sc.validAt(q, true)
		if err != nil {
			return sc.fail(err)
		}
		if ok {
			// leave the record for the next call, which validates it again
			sc.cStart, sc.cEnd, sc.tail = start, q, false
			sc.lost = max(1, sc.rec.Seq-sc.last-1)
			sc.off = q
			return evCorrupt
		}
	}
	sc.cStart, sc.cEnd, sc.tail, sc.lost = start, sc.limit, true, 0
	sc.off = sc.limit
	return evCorrupt
}

// fail ends the scan at limit after a read error.
func (sc *scanner) fail(err error) event {
	sc.err = err
	sc.cStart, sc.cEnd, sc.tail, sc.lost = sc.off, sc.limit, true, 0
	sc.off = sc.limit
	return evCorrupt
}
