package linein

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// udpPair returns a receiving socket with a large buffer and a sender
// connected to it, both on 127.0.0.1.
func udpPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	_ = rc.SetReadBuffer(16 << 20)
	if ReceiveBuffer(rc) < 32<<20 {
		forceReceiveBuffer(rc, 16<<20)
	}
	sc, err := net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return rc, sc
}

// statsdDatagram returns a datagram of about size bytes of lines from
// "name.<from>" on, without a final '\n', and the lines.
func statsdDatagram(name string, from, size int) ([]byte, []string) {
	var b bytes.Buffer
	var lines []string
	for i := from; b.Len() < size; i++ {
		l := fmt.Sprintf("%s.%d:%d|c|@0.5|#k:v", name, i, i)
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
		lines = append(lines, l)
	}
	return b.Bytes(), lines
}

// TestBatchReaderReadsManyDatagramsPerCall: datagrams of 30 bytes to 64 KiB,
// with many lines each, arrive whole and in order, several per read call,
// and every batch stays valid after later reads.
func TestBatchReaderReadsManyDatagramsPerCall(t *testing.T) {
	rc, sc := udpPair(t)
	var grams [][]byte
	var want []string
	for i, size := range []int{30, 1400, 65000, 8000, 1, 65507, 500, 1400, 1400, 64000} {
		d, lines := statsdDatagram(fmt.Sprintf("d%d", i), 0, size)
		if len(d) > 65507 {
			d, lines = d[:bytes.LastIndexByte(d[:65507], '\n')], lines[:bytes.Count(d[:65507], []byte{'\n'})]
		}
		grams = append(grams, d)
		want = append(want, lines...)
	}
	for range 20 { // plus many small ones
		d, lines := statsdDatagram("small", len(want), 40)
		grams = append(grams, d)
		want = append(want, lines...)
	}
	for _, d := range grams {
		if _, err := sc.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	var dgCount, calls atomic.Uint64
	c, pe, tl, _ := counters()
	r := NewBatchReader(rc, 16, statsd.Parse, 64<<10, c, nil, &dgCount, &calls)
	var batches []metric.Batch
	_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for int(dgCount.Load()) < len(grams) {
		b, n, err := r.Read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", dgCount.Load(), err)
		}
		if n == 0 {
			t.Fatal("read returned no datagram and no error")
		}
		batches = append(batches, b)
	}
	// the receive slots are unmapped: the batches must not point into them
	// (they would fault) and later reads must not have overwritten them
	r.Close()
	var got []string
	for _, b := range batches {
		for i := range b {
			got = append(got, string(b[i].Raw()))
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %d lines, want %d (or different bytes)", len(got), len(want))
	}
	if pe.Load() != 0 || tl.Load() != 0 {
		t.Fatalf("parse errors %d, too long %d", pe.Load(), tl.Load())
	}
	if calls.Load() >= uint64(len(grams)) {
		t.Fatalf("%d calls for %d datagrams: not batched", calls.Load(), len(grams))
	}
	t.Logf("%d datagrams, %d lines in %d calls", len(grams), len(got), calls.Load())
}

// TestBatchReaderBadLines: malformed and over-long lines are counted and
// skipped; the good lines of the same datagram pass; a datagram's last line
// needs no '\n'; "foo:1" does not crash anything.
func TestBatchReaderBadLines(t *testing.T) {
	c, pe, tl, _ := counters()
	var bad []string
	r := NewBatchReader(nil, 4, statsd.Parse, 40, c, func(line []byte, err error) { bad = append(bad, string(line)) }, nil, nil)
	grams := [][]byte{
		[]byte("ok.1:1|c\nfoo:1\n\nbad\r\nok.2:2|g\r\n" + strings.Repeat("x", 100) + ":1|c\nok.3:3|ms"),
		[]byte("foo:1"),
		[]byte("\n"),
		[]byte("ok.4:+4|g\n"),
	}
	b := r.FrameDatagrams(grams, nil)
	var got []string
	for i := range b {
		got = append(got, string(b[i].Raw()))
	}
	want := []string{"ok.1:1|c", "ok.2:2|g\r", "ok.3:3|ms", "ok.4:+4|g"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if pe.Load() != 3 || tl.Load() != 1 {
		t.Fatalf("parse errors %d (want 3), too long %d (want 1)", pe.Load(), tl.Load())
	}
	if len(bad) != 4 {
		t.Fatalf("onError calls: %q", bad)
	}
}

// TestBatchReaderDetaches: the metrics of a read are copied out of the
// receive slots (which the next read overwrites): batches keep neither a
// 64 KiB slot per datagram nor the slots at all, and stay valid.
func TestBatchReaderDetaches(t *testing.T) {
	rc, sc := udpPair(t)
	c, _, _, _ := counters()
	r := NewBatchReader(rc, 8, statsd.Parse, 1024, c, nil, nil, nil)
	_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var batches []metric.Batch
	for i := range 100 {
		if _, err := sc.Write([]byte(fmt.Sprintf("m.%d:%d|c\n%s\n", i, i, strings.Repeat("junk", 1000)))); err != nil {
			t.Fatal(err)
		}
		b, _, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if metric.Backing(b, r.recv) != 0 {
			t.Fatal("a batch points into the receive slots")
		}
		if len(b) != 1 {
			t.Fatalf("read %d: %d metrics", i, len(b))
		}
		batches = append(batches, b)
	}
	i := 0
	for _, b := range batches {
		for k := range b {
			if want := fmt.Sprintf("m.%d:%d|c", i, i); string(b[k].Raw()) != want {
				t.Fatalf("metric %d = %q, want %q", i, b[k].Raw(), want)
			}
			i++
		}
	}
	if i != 100 {
		t.Fatalf("%d metrics", i)
	}
}

// FuzzBatchReaderFrame: framing datagrams never panics, and every metric is
// exactly one line of its datagram, in order.
func FuzzBatchReaderFrame(f *testing.F) {
	for _, s := range []string{"a:1|c", "a:1|c\nb:2|g\n", "foo:1", "\n\n\r\n", "x:1|c\r\ny:2|ms|@0.1|#k:v", strings.Repeat("z", 100) + ":1|c"} {
		f.Add([]byte(s), []byte("c:3|c"))
	}
	f.Fuzz(func(t *testing.T, d1, d2 []byte) {
		c, _, _, _ := counters()
		r := NewBatchReader(nil, 2, statsd.Parse, 64, c, nil, nil, nil)
		b := r.FrameDatagrams([][]byte{d1, d2}, nil)
		var lines [][]byte
		for _, d := range [][]byte{d1, d2} {
			lines = append(lines, bytes.Split(d, []byte{'\n'})...)
		}
		k := 0
		for i := range b {
			for k < len(lines) && !bytes.Equal(lines[k], b[i].Raw()) {
				k++
			}
			if k == len(lines) {
				t.Fatalf("metric %q is not a line of the input, in order", b[i].Raw())
			}
			k++
		}
	})
}
