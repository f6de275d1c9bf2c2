package spool

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const corruptN = 200 // records in the spool the corruption tests damage

// segLayout is where the records of one intact segment file are.
type segLayout struct {
	path string
	base uint64
	size int64
	recs []recPos
}

type recPos struct {
	seq       uint64
	off, size int64
}

// layout decodes the (still intact) segment files of dir.
func layout(t *testing.T, dir string) []segLayout {
	t.Helper()
	var out []segLayout
	for _, p := range segFiles(t, dir) {
		base, _ := parseSegName(filepath.Base(p))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		l := segLayout{path: p, base: base, size: fi.Size()}
		var sc scanner
		sc.reset(f, base, fi.Size())
		for {
			off := sc.off
			ev := sc.next()
			if ev == evEnd {
				break
			}
			if ev != evRecord {
				t.Fatalf("%s: corrupt before the test damaged it", p)
			}
			l.recs = append(l.recs, recPos{seq: sc.rec.Seq, off: off, size: sc.off - off})
		}
		f.Close()
		out = append(out, l)
	}
	return out
}

// recsFrom returns the seqs of the records of l that end after offset cut.
func (l segLayout) recsFrom(cut int64) []uint64 {
	var s []uint64
	for _, r := range l.recs {
		if r.off+r.size > cut {
			s = append(s, r.seq)
		}
	}
	return s
}

func (l segLayout) seqs() []uint64 { return l.recsFrom(0) }

func flip(t *testing.T, path string, offs ...int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		b[o] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// damage is what a corruption case did and what Open and the readers must
// make of it.
type damage struct {
	lost            []uint64 // exactly these seqs are missing afterwards
	counted         bool     // and Stats.CorruptRecords counts each of them
	corruptSegments uint64
	truncated       bool   // bytes were cut from the newest segment's tail
	firstSeq        uint64 // records below this are gone as acked (0: none)
	acked           uint64 // Acked() after Open
}

func TestCorruption(t *testing.T) {
	type testCase struct {
		name   string
		mutate func(t *testing.T, dir string, segs []segLayout) damage
	}
	mid := func(segs []segLayout) segLayout { return segs[len(segs)/2] }
	newest := func(segs []segLayout) segLayout { return segs[len(segs)-1] }
	oneRecord := func(field int64) func(*testing.T, string, []segLayout) damage {
		return func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			r := m.recs[2]
			flip(t, m.path, r.off+field)
			return damage{lost: []uint64{r.seq}, counted: true}
		}
	}
	tests := []testCase{
		{"flip crc", oneRecord(0)},
		{"flip length low byte", oneRecord(4)},
		{"flip length high byte", oneRecord(7)},
		{"flip seq", oneRecord(8)},
		{"flip count", oneRecord(16)},
		{"flip data", oneRecord(recHdrSize + 3)},
		{"flip first record", func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			flip(t, m.path, m.recs[0].off+5)
			return damage{lost: []uint64{m.recs[0].seq}, counted: true}
		}},
		{"flip last record of a sealed segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			r := m.recs[len(m.recs)-1]
			flip(t, m.path, r.off+r.size-1)
			return damage{lost: []uint64{r.seq}, counted: true}
		}},
		{"flip in the newest segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := newest(segs)
			flip(t, m.path, m.recs[1].off+recHdrSize)
			return damage{lost: []uint64{m.recs[1].seq}, counted: true}
		}},
		{"zero a whole sealed segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			writeFile(t, m.path, make([]byte, m.size))
			return damage{lost: m.seqs(), counted: true, corruptSegments: 1}
		}},
		{"zero the header of a sealed segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			b, _ := os.ReadFile(m.path)
			clear(b[:segHdrSize])
			writeFile(t, m.path, b)
			return damage{corruptSegments: 1}
		}},
		{"zero the header of the newest segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := newest(segs)
			b, _ := os.ReadFile(m.path)
			clear(b[:segHdrSize])
			writeFile(t, m.path, b)
			return damage{corruptSegments: 1}
		}},
		{"delete a sealed segment", func(t *testing.T, dir string, segs []segLayout) damage {
			m := mid(segs)
			if err := os.Remove(m.path); err != nil {
				t.Fatal(err)
			}
			return damage{lost: m.seqs(), counted: true}
		}},
		{"garbage segment files", func(t *testing.T, dir string, segs []segLayout) damage {
			rng := rand.New(rand.NewPCG(1, 2))
			m := mid(segs)
			for _, base := range []uint64{0, m.base + 1, newest(segs).base + 1000} {
				writeFile(t, filepath.Join(dir, segName(base)), randBytes(rng, 3000))
			}
			writeFile(t, filepath.Join(dir, segName(m.base+2)), nil)
			writeFile(t, filepath.Join(dir, segName(m.base+3)), []byte(segMagic)) // a short header
			return damage{corruptSegments: 5}
		}},
		{"leftover temporary files", func(t *testing.T, dir string, segs []segLayout) damage {
			writeFile(t, filepath.Join(dir, ackName+tmpSuffix), []byte("junk"))
			writeFile(t, filepath.Join(dir, segName(corruptN+1)+tmpSuffix), []byte("junk"))
			return damage{}
		}},
		{"delete the ack file", func(t *testing.T, dir string, segs []segLayout) damage {
			return damage{acked: 0}
		}},
		{"ack file with a bad crc", func(t *testing.T, dir string, segs []segLayout) damage {
			var b [ackSize]byte
			encodeAck(&b, 40)
			b[10] ^= 1
			writeFile(t, filepath.Join(dir, ackName), b[:])
			return damage{acked: 0}
		}},
		{"empty ack file", func(t *testing.T, dir string, segs []segLayout) damage {
			writeFile(t, filepath.Join(dir, ackName), nil)
			return damage{acked: 0}
		}},
		{"good ack file", func(t *testing.T, dir string, segs []segLayout) damage {
			var b [ackSize]byte
			encodeAck(&b, 40)
			writeFile(t, filepath.Join(dir, ackName), b[:])
			// segments whose records are all acked are deleted at Open
			first := segs[0].base
			for _, l := range segs[1:] {
				if l.base-1 <= 40 {
					first = l.base
				}
			}
			return damage{acked: 40, firstSeq: first}
		}},
		{"ack file beyond the segments", func(t *testing.T, dir string, segs []segLayout) damage {
			var b [ackSize]byte
			encodeAck(&b, corruptN+50)
			writeFile(t, filepath.Join(dir, ackName), b[:])
			for _, l := range segs[:len(segs)-1] {
				os.Remove(l.path)
			}
			return damage{acked: corruptN + 50, firstSeq: corruptN + 1}
		}},
		{"all segments deleted", func(t *testing.T, dir string, segs []segLayout) damage {
			for _, l := range segs {
				os.Remove(l.path)
			}
			return damage{lost: seqRange(1, corruptN)}
		}},
	}
	for seed := range uint64(4) {
		tests = append(tests,
			testCase{fmt.Sprintf("random flips seed=%d", seed), func(t *testing.T, dir string, segs []segLayout) damage {
				rng := rand.New(rand.NewPCG(seed, 7))
				m := segs[1+rng.IntN(len(segs)-2)]
				var offs []int64
				var lost []uint64
				for range 1 + rng.IntN(4) {
					o := segHdrSize + rng.Int64N(m.size-segHdrSize)
					offs = append(offs, o)
					for _, r := range m.recs {
						if o >= r.off && o < r.off+r.size && !slices.Contains(lost, r.seq) {
							lost = append(lost, r.seq)
						}
					}
				}
				flip(t, m.path, offs...)
				slices.Sort(lost)
				return damage{lost: lost, counted: true}
			}},
			testCase{fmt.Sprintf("truncate a sealed segment seed=%d", seed), func(t *testing.T, dir string, segs []segLayout) damage {
				rng := rand.New(rand.NewPCG(seed, 8))
				m := segs[1+rng.IntN(len(segs)-2)]
				cut := rng.Int64N(m.size)
				if seed == 0 {
					cut = m.recs[len(m.recs)/2].off // at a record boundary
				}
				truncate(t, m.path, cut)
				d := damage{lost: m.recsFrom(cut), counted: true}
				if cut < segHdrSize {
					d.corruptSegments = 1
				}
				return d
			}},
			testCase{fmt.Sprintf("truncate the newest segment seed=%d", seed), func(t *testing.T, dir string, segs []segLayout) damage {
				rng := rand.New(rand.NewPCG(seed, 9))
				m := newest(segs)
				cut := segHdrSize + rng.Int64N(m.size-segHdrSize)
				if seed == 0 {
					cut = m.recs[1].off + 1
				}
				truncate(t, m.path, cut)
				d := damage{lost: m.recsFrom(cut)}
				for _, r := range m.recs {
					if r.off < cut && r.off+r.size > cut {
						d.truncated = true // a torn record
					}
				}
				return d
			}},
		)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Fsync: "never", SegmentBytes: 2048}
			s, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, s, corruptN)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := layout(t, dir)
			if len(segs) < 8 {
				t.Fatalf("only %d segments", len(segs))
			}
			d := tt.mutate(t, dir, segs)

			s = mustOpen(t, dir, o)
			if s.Acked() != d.acked {
				t.Errorf("acked %d, want %d", s.Acked(), d.acked)
			}
			var want []uint64
			for seq := max(1, d.firstSeq); seq <= corruptN; seq++ {
				if !slices.Contains(d.lost, seq) {
					want = append(want, seq)
				}
			}
			got := readAll(t, s, 1)
			if !slices.Equal(got, want) {
				t.Fatalf("read %d records, want %d; missing %v, extra %v", len(got), len(want), diff(want, got), diff(got, want))
			}
			st := s.Stats()
			if d.counted && st.CorruptRecords != uint64(len(d.lost)) {
				t.Errorf("corrupt records %d, want %d", st.CorruptRecords, len(d.lost))
			}
			if !d.counted && st.CorruptRecords != 0 {
				t.Errorf("corrupt records %d, want 0", st.CorruptRecords)
			}
			if st.CorruptSegments != d.corruptSegments {
				t.Errorf("corrupt segments %d, want %d", st.CorruptSegments, d.corruptSegments)
			}
			if (st.TruncatedBytes > 0) != d.truncated {
				t.Errorf("truncated bytes %d, want some: %v", st.TruncatedBytes, d.truncated)
			}
			if st.Bytes != dirBytes(t, dir) {
				t.Errorf("stats bytes %d, files hold %d", st.Bytes, dirBytes(t, dir))
			}
			// a second pass counts nothing twice
			if again := readAll(t, s, 1); !slices.Equal(again, got) || s.Stats().CorruptRecords != st.CorruptRecords {
				t.Errorf("second read: %d records, corrupt %d; first: %d, %d", len(again), s.Stats().CorruptRecords, len(got), st.CorruptRecords)
			}
			// the spool goes on: new seqs come after everything readable
			last := s.LastSeq()
			if len(got) > 0 && last < got[len(got)-1] {
				t.Fatalf("last seq %d below a stored record %d", last, got[len(got)-1])
			}
			if last < s.Acked() {
				t.Fatalf("last seq %d below the acked %d", last, s.Acked())
			}
			appendN(t, s, 30)
			after := readAll(t, s, 1)
			if !slices.Equal(after[:len(got)], got) || !slices.Equal(after[len(got):], seqRange(last+1, last+30)) {
				t.Fatalf("after appending %d..%d: read %v", last+1, last+30, tailOf(after))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// and survives another restart
			s = mustOpen(t, dir, o)
			if again := readAll(t, s, 1); !slices.Equal(again, after) {
				t.Fatalf("after reopening: %d records, want %d", len(again), len(after))
			}
		})
	}
}

// diff returns the seqs of a that are not in b.
func diff(a, b []uint64) []uint64 {
	var d []uint64
	for _, x := range a {
		if !slices.Contains(b, x) {
			d = append(d, x)
		}
	}
	return d
}
