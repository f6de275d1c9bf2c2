package spool

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkAppend measures Append of records of 1 KiB and 64 KiB with the
// fsync policies "never" and "interval" (64 MiB segments). It acks every
// 64 MiB so the disk use stays bounded; the deletions are part of the cost.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		for _, fsync := range []string{"never", "interval"} {
			b.Run(fmt.Sprintf("size=%dKiB/fsync=%s", size>>10, fsync), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{Fsync: fsync})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i)
				}
				ackEvery := uint64(64<<20) / uint64(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					seq, err := s.Append(size/64, data)
					if err != nil {
						b.Fatal(err)
					}
					if seq%ackEvery == 0 {
						if err := s.Ack(seq); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkRead measures Reader.Next over 64 MiB of records, CRC checks
// included, starting a new Reader whenever one reaches the end.
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Fsync: "never", SegmentBytes: 16 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, size)
			for range (64 << 20) / size {
				if _, err := s.Append(1, data); err != nil {
					b.Fatal(err)
				}
			}
			r := s.NewReader(1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				rec, err := r.Next()
				if err == io.EOF {
					r.Close()
					r = s.NewReader(1)
					rec, err = r.Next()
				}
				if err != nil || len(rec.Data) != size {
					b.Fatalf("next: %d bytes, %v", len(rec.Data), err)
				}
			}
			r.Close()
		})
	}
}
