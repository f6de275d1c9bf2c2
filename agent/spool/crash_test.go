//go:build unix

package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary with these set; TestMain then
// runs crashChild instead of the tests.
const (
	crashDirEnv   = "SPOOL_TEST_CRASH_DIR"
	crashFsyncEnv = "SPOOL_TEST_CRASH_FSYNC"
)

var crashOptions = Options{SegmentBytes: 64 << 10, FsyncInterval: 2 * time.Millisecond}

// crashPayload is payload, but every fourth record is 20 to 150 KiB, so that
// a kill lands in the middle of a write(2) now and then.
func crashPayload(seq uint64) []byte {
	if seq%4 != 0 {
		return payload(seq)
	}
	b := bytes.Repeat(payload(seq), int(20<<10+seq*7919%(130<<10))/len(payload(seq)))
	le.PutUint64(b[len(b)-8:], seq)
	return b
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir, os.Getenv(crashFsyncEnv))
		return
	}
	os.Exit(m.Run())
}

// crashChild appends records until it is killed, and after each Append and
// Ack returns writes "s <seq>" or "a <seq>" to stdout, unbuffered.
func crashChild(dir, fsync string) {
	fail := func(err error) {
		fmt.Printf("e %v\n", err)
		os.Exit(2)
	}
	o := crashOptions
	o.Fsync = fsync
	s, err := Open(dir, o)
	if err != nil {
		fail(err)
	}
	line := make([]byte, 0, 32)
	for range 1_000_000 {
		want := s.LastSeq() + 1
		seq, err := s.Append(countOf(want), crashPayload(want))
		if err != nil {
			fail(err)
		}
		if seq != want {
			fail(fmt.Errorf("append returned seq %d, want %d", seq, want))
		}
		line = strconv.AppendUint(append(line[:0], "s "...), seq, 10)
		os.Stdout.Write(append(line, '\n'))
		if seq%101 == 0 && seq > 300 {
			if err := s.Ack(seq - 300); err != nil {
				fail(err)
			}
			line = strconv.AppendUint(append(line[:0], "a "...), seq-300, 10)
			os.Stdout.Write(append(line, '\n'))
		}
	}
	fail(fmt.Errorf("not killed"))
}

// TestCrashKill kills a process that appends in a loop with SIGKILL at a
// random moment, 20 times over the same directory, and checks after each
// kill that every record whose Append had returned is there, intact and in
// order, and that the acked position is at least the last Ack that returned.
func TestCrashKill(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 11))
	policies := []string{"never", "interval", "always"}
	var returned []uint64
	var maxAck uint64
	for round := range 20 {
		fsync := policies[round%len(policies)]
		killAfter := 1 + rng.IntN(400) // lines read before the kill; the child runs ahead meanwhile

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashFsyncEnv+"="+fsync)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := 0
		for sc.Scan() {
			line := sc.Text()
			if len(line) < 3 {
				t.Fatalf("round %d: child wrote %q", round, line)
			}
			n, err := strconv.ParseUint(line[2:], 10, 64)
			switch {
			case line[0] == 'e' || err != nil:
				t.Fatalf("round %d: child: %s\n%s", round, line, stderr.Bytes())
			case line[0] == 's':
				returned = append(returned, n)
			case line[0] == 'a':
				maxAck = max(maxAck, n)
			}
			lines++
			if lines == killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		cmd.Wait()
		cancel()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not by SIGKILL\n%s", round, cmd.ProcessState, stderr.Bytes())
		}

		s, err := Open(dir, crashOptions)
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		got := readCrash(t, s)
		acked, last, st := s.Acked(), s.LastSeq(), s.Stats()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if acked < maxAck {
			t.Fatalf("round %d: acked %d after an Ack(%d) returned", round, acked, maxAck)
		}
		if last < returned[len(returned)-1] {
			t.Fatalf("round %d: last seq %d, but Append returned %d", round, last, returned[len(returned)-1])
		}
		for _, seq := range returned {
			if seq > acked {
				if _, ok := slices.BinarySearch(got, seq); !ok {
					t.Fatalf("round %d (fsync %s): record %d lost after kill -9 (acked %d, read %d records)", round, fsync, seq, acked, len(got))
				}
			}
		}
		if st.CorruptRecords != 0 || st.CorruptSegments != 0 {
			t.Fatalf("round %d: a kill left corruption: %+v", round, st)
		}
		t.Logf("round %d (fsync %s): %d appends returned, %d records on disk, acked %d, torn bytes cut %d",
			round, fsync, len(returned), len(got), acked, st.TruncatedBytes)
	}
}

// readCrash reads all records and checks each one's bytes and the order.
func readCrash(t *testing.T, s *Spool) []uint64 {
	t.Helper()
	return readChecked(t, s, 1, func(rec Record) {
		if !bytes.Equal(rec.Data, crashPayload(rec.Seq)) || rec.Count != countOf(rec.Seq) {
			t.Fatalf("record %d: %d bytes, count %d: not what was appended", rec.Seq, len(rec.Data), rec.Count)
		}
	})
}
