package spool

import (
	"io"
	"path/filepath"
	"testing"
)

// validSegment returns a segment file holding the records base .. base+n-1.
func validSegment(base uint64, n int) []byte {
	b := make([]byte, segHdrSize)
	putSegHeader(b, base, base-1)
	var rec []byte
	for seq := base; seq < base+uint64(n); seq++ {
		rec = encodeRecord(rec, seq, uint32(countOf(seq)), payload(seq))
		b = append(b, rec...)
	}
	return b
}

// FuzzSegment opens a spool whose segment file holds arbitrary bytes, as the
// newest segment or as an older one, reads everything, appends and reads the
// new record back. Nothing may panic, Open must not fail, and what is read
// must be ordered and bounded by the file.
func FuzzSegment(f *testing.F) {
	good := validSegment(1, 6)
	f.Add(good, false)
	f.Add(good, true)
	f.Add(good[:len(good)-7], false)
	f.Add(good[:segHdrSize+3], true)
	zeroHdr := append([]byte(nil), good...)
	clear(zeroHdr[:segHdrSize])
	f.Add(zeroHdr, false)
	flipped := append([]byte(nil), good...)
	flipped[segHdrSize+recHdrSize+2] ^= 0xff
	f.Add(flipped, true)
	huge := append([]byte(nil), good...)
	le.PutUint32(huge[segHdrSize+4:], 0xfffffff0) // a length far beyond the file
	f.Add(huge, false)
	f.Add([]byte{}, false)
	f.Add([]byte(segMagic), true)

	f.Fuzz(func(t *testing.T, data []byte, older bool) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, segName(1)), data)
		if older {
			writeFile(t, filepath.Join(dir, segName(1000)), validSegment(1000, 0))
		}
		s, err := Open(dir, Options{Fsync: "never", SegmentBytes: 4096})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer s.Close()
		r := s.NewReader(0)
		defer r.Close()
		var last uint64
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			if rec.Seq <= last || rec.Count < 0 || len(rec.Data) > len(data) || rec.Seq > s.LastSeq() {
				t.Fatalf("record seq %d (after %d, last %d), count %d, %d bytes from a %d-byte file",
					rec.Seq, last, s.LastSeq(), rec.Count, len(rec.Data), len(data))
			}
			last = rec.Seq
		}
		seq, err := s.Append(3, []byte("new"))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		if seq <= last {
			t.Fatalf("append got seq %d, not above the stored %d", seq, last)
		}
		rec, err := r.Next()
		if err != nil || rec.Seq != seq || string(rec.Data) != "new" || rec.Count != 3 {
			t.Fatalf("reading the appended record: %d %q %v", rec.Seq, rec.Data, err)
		}
		if st := s.Stats(); st.Bytes != dirBytes(t, dir) {
			t.Fatalf("stats bytes %d, files hold %d", st.Bytes, dirBytes(t, dir))
		}
	})
}
