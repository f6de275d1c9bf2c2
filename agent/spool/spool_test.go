package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is the data the tests store under seq: its length and bytes are
// derived from seq, so that any record can be checked on its own.
func payload(seq uint64) []byte {
	n := int(seq*7919%293) + 8
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*131 + uint64(i)*31)
	}
	le.PutUint64(b, seq)
	return b
}

func countOf(seq uint64) int { return int(seq%7) + 1 }

func mustOpen(t testing.TB, dir string, o Options) *Spool {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// appendN appends the records lastSeq+1 .. lastSeq+n with their payloads.
func appendN(t testing.TB, s *Spool, n int) {
	t.Helper()
	for range n {
		want := s.LastSeq() + 1
		seq, err := s.Append(countOf(want), payload(want))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		if seq != want {
			t.Fatalf("append returned seq %d, want %d", seq, want)
		}
	}
}

// readAll reads from seq from until io.EOF, checks every record against its
// payload and the order, and returns the seqs.
func readAll(t testing.TB, s *Spool, from uint64) []uint64 {
	t.Helper()
	return readChecked(t, s, from, func(rec Record) { checkRecord(t, rec) })
}

// readChecked reads from seq from until io.EOF, checks every record with
// check and the order, and returns the seqs.
func readChecked(t testing.TB, s *Spool, from uint64, check func(rec Record)) []uint64 {
	t.Helper()
	r := s.NewReader(from)
	defer r.Close()
	var seqs []uint64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return seqs
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		check(rec)
		if rec.Seq < from || (len(seqs) > 0 && rec.Seq <= seqs[len(seqs)-1]) {
			t.Fatalf("record %d out of order after %v (from %d)", rec.Seq, tailOf(seqs), from)
		}
		seqs = append(seqs, rec.Seq)
	}
}

func checkRecord(t testing.TB, rec Record) {
	t.Helper()
	if !bytes.Equal(rec.Data, payload(rec.Seq)) || rec.Count != countOf(rec.Seq) {
		t.Fatalf("record %d: count %d, data %x: not what was appended", rec.Seq, rec.Count, rec.Data)
	}
}

func tailOf(s []uint64) []uint64 { return s[max(0, len(s)-3):] }

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// segFiles lists the segment files of dir, oldest first.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dirBytes(t testing.TB, dir string) int64 {
	var n int64
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	for _, fsync := range []string{"always", "interval", "never", ""} {
		t.Run("fsync="+fsync, func(t *testing.T) {
			s := mustOpen(t, t.TempDir(), Options{Fsync: fsync, FsyncInterval: time.Millisecond, SegmentBytes: 4096})
			appendN(t, s, 100)
			if got := readAll(t, s, 1); !slices.Equal(got, seqRange(1, 100)) {
				t.Fatalf("read %v..., want 1..100", got[:min(5, len(got))])
			}
			if got := readAll(t, s, 42); !slices.Equal(got, seqRange(42, 100)) {
				t.Fatalf("read from 42: %d records, want 59", len(got))
			}
			if err := s.Ack(50); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, s, s.Acked()+1); !slices.Equal(got, seqRange(51, 100)) {
				t.Fatalf("read after ack: %d records, want 50", len(got))
			}
			st := s.Stats()
			if st.LastSeq != 100 || st.AckedSeq != 50 || st.CorruptRecords != 0 || st.CorruptSegments != 0 {
				t.Fatalf("stats %+v", st)
			}
			if st.Bytes != dirBytes(t, s.dir) {
				t.Fatalf("stats bytes %d, files hold %d", st.Bytes, dirBytes(t, s.dir))
			}
		})
	}
}

func TestReopenContinuesSeq(t *testing.T) {
	dir := t.TempDir()
	o := Options{Fsync: "never", SegmentBytes: 2048}
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 30)
	if err := s.Ack(12); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		s := mustOpen(t, dir, o)
		last := uint64(30 + 10*round)
		if s.LastSeq() != last || s.Acked() != 12 {
			t.Fatalf("round %d: reopened with last %d acked %d, want %d and 12", round, s.LastSeq(), s.Acked(), last)
		}
		appendN(t, s, 10)
		if got := readAll(t, s, s.Acked()+1); !slices.Equal(got, seqRange(13, last+10)) {
			t.Fatalf("round %d: read %d records, want 13..%d", round, len(got), last+10)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReaderFollowsAppends(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{Fsync: "never", SegmentBytes: 1024})
	r := s.NewReader(1)
	defer r.Close()
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("empty spool: %v, want io.EOF", err)
	}
	var next uint64 = 1
	for _, n := range []int{1, 3, 40, 1, 100} { // 40 and 100 records span several new segments
		appendN(t, s, n)
		for range n {
			rec, err := r.Next()
			if err != nil {
				t.Fatalf("next after append: %v", err)
			}
			checkRecord(t, rec)
			if rec.Seq != next {
				t.Fatalf("got seq %d, want %d", rec.Seq, next)
			}
			next++
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after all records: %v, want io.EOF", err)
		}
	}
	if st := s.Stats(); st.Segments < 10 {
		t.Fatalf("only %d segments: the test did not rotate", st.Segments)
	}
}

func TestAckDeletesSegments(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Fsync: "never", SegmentBytes: 1024})
	appendN(t, s, 100)
	before := len(segFiles(t, dir))
	if before < 10 {
		t.Fatalf("%d segments, want many", before)
	}
	tests := []struct {
		ack     uint64
		wantErr bool
	}{
		{ack: 0},
		{ack: 37},
		{ack: 20}, // below the position: nothing
		{ack: 101, wantErr: true},
		{ack: 100},
	}
	prev := before
	for _, tt := range tests {
		err := s.Ack(tt.ack)
		if (err != nil) != tt.wantErr {
			t.Fatalf("ack %d: err %v, want error %v", tt.ack, err, tt.wantErr)
		}
		files := segFiles(t, dir)
		if len(files) > prev {
			t.Fatalf("ack %d: segments grew from %d to %d", tt.ack, prev, len(files))
		}
		prev = len(files)
		if st := s.Stats(); st.Segments != len(files) || st.Bytes != dirBytes(t, dir) {
			t.Fatalf("ack %d: stats %d segments %d bytes, files %d and %d", tt.ack, st.Segments, st.Bytes, len(files), dirBytes(t, dir))
		}
		// every record above the position is still there
		if got := readAll(t, s, s.Acked()+1); !slices.Equal(got, seqRange(s.Acked()+1, 100)) {
			t.Fatalf("ack %d: %d records readable, want %d", tt.ack, len(got), 100-s.Acked())
		}
	}
	if s.Acked() != 100 || prev != 1 {
		t.Fatalf("acked %d with %d segments, want 100 and only the active one", s.Acked(), prev)
	}
	if n := len(segFiles(t, dir)); n >= before/2 {
		t.Fatalf("ack 37 of 100 left %d of %d segments", n, before)
	}
}

func TestMaxBytes(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 8192
	s := mustOpen(t, dir, Options{Fsync: "never", SegmentBytes: 2048, MaxBytes: maxBytes})
	var n int
	for {
		want := s.LastSeq() + 1
		_, err := s.Append(countOf(want), payload(want))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if b := dirBytes(t, dir); b > maxBytes {
			t.Fatalf("files hold %d bytes after %d appends, max %d", b, n, maxBytes)
		}
	}
	st := s.Stats()
	if n < 20 || st.Bytes > maxBytes || st.Bytes != dirBytes(t, dir) {
		t.Fatalf("%d appends before full, stats bytes %d, files %d", n, st.Bytes, dirBytes(t, dir))
	}
	// a full spool loses nothing and wrote nothing for the refused record
	if got := readAll(t, s, 1); !slices.Equal(got, seqRange(1, uint64(n))) {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	if _, err := s.Append(1, make([]byte, maxBytes)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("record larger than max bytes: %v, want ErrTooLarge", err)
	}
	// acking everything frees room, the active segment included
	if err := s.Ack(s.LastSeq()); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 20)
	if b := dirBytes(t, dir); b > maxBytes {
		t.Fatalf("files hold %d bytes, max %d", b, maxBytes)
	}
}

func TestDropOldest(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{Fsync: "never", SegmentBytes: 1024})
	if _, _, err := s.DropOldest(); err == nil {
		t.Fatal("drop from an empty spool: no error")
	}
	appendN(t, s, 60)
	// read a few records of the oldest segment, as a runner would
	r := s.NewReader(1)
	defer r.Close()
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	firstNext := nextBase(t, dir, 1)
	wantRecords, wantCount := 0, 0
	for seq := uint64(2); seq < firstNext; seq++ {
		wantRecords++
		wantCount += countOf(seq)
	}
	records, count, err := s.DropOldest()
	if err != nil {
		t.Fatal(err)
	}
	if records != wantRecords || count != wantCount {
		t.Fatalf("dropped %d records (%d metrics), want %d (%d)", records, count, wantRecords, wantCount)
	}
	// the reader was in the dropped segment: it goes on at the next one
	rec, err := r.Next()
	if err != nil || rec.Seq != firstNext {
		t.Fatalf("reader after drop: seq %d, %v; want %d", rec.Seq, err, firstNext)
	}
	st := s.Stats()
	if st.DroppedRecords != uint64(wantRecords) || st.DroppedCount != uint64(wantCount) || st.FirstSeq != firstNext {
		t.Fatalf("stats %+v", st)
	}
	// drop down to the active segment, then the active one's records
	total := uint64(records)
	for s.Stats().Segments > 1 {
		n, _, err := s.DropOldest()
		if err != nil {
			t.Fatal(err)
		}
		total += uint64(n)
	}
	n, _, err := s.DropOldest()
	if err != nil || n == 0 {
		t.Fatalf("drop of the active segment: %d records, %v", n, err)
	}
	total += uint64(n)
	if total != 59 || s.Stats().DroppedRecords != 59 {
		t.Fatalf("dropped %d records in all, want 59", total)
	}
	if _, _, err := s.DropOldest(); err == nil {
		t.Fatal("drop with nothing left: no error")
	}
	if got := readAll(t, s, 1); len(got) != 0 {
		t.Fatalf("records left after dropping all: %v", got)
	}
	appendN(t, s, 1)
	if got := readAll(t, s, 1); !slices.Equal(got, []uint64{61}) {
		t.Fatalf("after drop and append: %v, want [61]", got)
	}
}

// nextBase returns the base of the first segment file after the one at base.
func nextBase(t *testing.T, dir string, base uint64) uint64 {
	t.Helper()
	for _, p := range segFiles(t, dir) {
		if b, _ := parseSegName(filepath.Base(p)); b > base {
			return b
		}
	}
	t.Fatalf("no segment after %d", base)
	return 0
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open: %v, want ErrLocked naming the directory", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir, Options{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		o    Options
		want string
	}{
		{"fsync policy", t.TempDir(), Options{Fsync: "sometimes"}, `unknown fsync policy "sometimes"`},
		{"negative max", t.TempDir(), Options{MaxBytes: -1}, "negative"},
		{"dir is a file", file, Options{}, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.dir, tt.o)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestClose(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	r := s.NewReader(1)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	ch := s.Notify()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("close did not wake Notify waiters")
	}
	if _, err := r.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("reader after close: %v", err)
	}
	if _, err := s.Append(1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("ack after close: %v", err)
	}
	if _, _, err := s.DropOldest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("drop after close: %v", err)
	}
}

// TestConcurrent appends from several goroutines while a reader follows,
// acks, and another goroutine reads stats; run it with -race.
func TestConcurrent(t *testing.T) {
	const writers, perWriter = 4, 300
	s := mustOpen(t, t.TempDir(), Options{Fsync: "interval", FsyncInterval: time.Millisecond, SegmentBytes: 8192})
	var mu sync.Mutex
	sent := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				data := []byte(strings.Repeat(string(rune('a'+w)), i%200))
				seq, err := s.Append(i, data)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sent[seq] = data
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				s.Stats()
			}
		}
	}()
	defer close(done)

	r := s.NewReader(1)
	defer r.Close()
	deadline := time.After(20 * time.Second)
	var next uint64 = 1
	for next <= writers*perWriter {
		ch := s.Notify()
		rec, err := r.Next()
		if err == io.EOF {
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("reader stuck at %d", next)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Seq != next {
			t.Fatalf("seq %d, want %d", rec.Seq, next)
		}
		mu.Lock()
		want, ok := sent[rec.Seq]
		mu.Unlock()
		// the reader may see a record before its Append has returned
		if ok && !bytes.Equal(rec.Data, want) {
			t.Fatalf("record %d: data differs", rec.Seq)
		}
		if rec.Seq%50 == 0 {
			if err := s.Ack(rec.Seq); err != nil {
				t.Fatal(err)
			}
		}
		next++
	}
	wg.Wait()
	if len(sent) != writers*perWriter {
		t.Fatalf("%d appends returned, want %d", len(sent), writers*perWriter)
	}
	if got := readAll2(t, s, s.Acked()+1, sent); got != writers*perWriter-int(s.Acked()) {
		t.Fatalf("re-read %d records after ack %d", got, s.Acked())
	}
}

// readAll2 reads from from and checks the records against sent.
func readAll2(t *testing.T, s *Spool, from uint64, sent map[uint64][]byte) int {
	t.Helper()
	r := s.NewReader(from)
	defer r.Close()
	n := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec.Data, sent[rec.Seq]) {
			t.Fatalf("record %d differs", rec.Seq)
		}
		n++
	}
}

func TestLargeRecord(t *testing.T) {
	dir := t.TempDir()
	o := Options{Fsync: "never", SegmentBytes: 1024}
	s := mustOpen(t, dir, o)
	big := bytes.Repeat([]byte("0123456789"), 1000)
	appendN(t, s, 3)
	seq, err := s.Append(1000, big)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	check := func(s *Spool) {
		t.Helper()
		r := s.NewReader(1)
		defer r.Close()
		for want := uint64(1); want <= 7; want++ {
			rec, err := r.Next()
			if err != nil || rec.Seq != want {
				t.Fatalf("seq %d, %v; want %d", rec.Seq, err, want)
			}
			if rec.Seq == seq {
				if !bytes.Equal(rec.Data, big) || rec.Count != 1000 {
					t.Fatalf("large record came back as %d bytes, count %d", len(rec.Data), rec.Count)
				}
			} else {
				checkRecord(t, rec)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(mustOpen(t, dir, o))
}
