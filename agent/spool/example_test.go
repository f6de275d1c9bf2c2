package spool_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/metricsrouter/router/agent/spool"
)

// store appends a batch, dropping the oldest records when the spool is full
// (overflow "drop_oldest"), and returns how many metrics were dropped.
func store(s *spool.Spool, count int, lines []byte) (dropped int, err error) {
	for {
		_, err := s.Append(count, lines)
		if !errors.Is(err, spool.ErrFull) {
			return dropped, err
		}
		_, n, err := s.DropOldest()
		if err != nil {
			return dropped, err
		}
		dropped += n
	}
}

// A runner stores batches while its destination is down, and replays them
// from the acked position when it is back, acking what was written.
func Example() {
	dir, err := os.MkdirTemp("", "spool")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := spool.Open(dir, spool.Options{MaxBytes: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	store(s, 2, []byte("a.b 1 1700000000\nc.d 2 1700000000\n"))
	store(s, 1, []byte("e.f 3 1700000000\n"))

	r := s.NewReader(s.Acked() + 1)
	defer r.Close()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break // wait on s.Notify() for more
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("seq %d: %d metrics, %d bytes\n", rec.Seq, rec.Count, len(rec.Data))
		// ... write rec.Data to the destination, then:
		if err := s.Ack(rec.Seq); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("acked", s.Acked())
	// Output:
	// seq 1: 2 metrics, 34 bytes
	// seq 2: 1 metrics, 17 bytes
	// acked 2
}
