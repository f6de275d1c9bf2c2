package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The sender's datagrams, read back from a real UDP socket, carry the mix
// and the totals its JSON reports, and each name the count sentTo predicts.
func TestSendMixAndTotals(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	out := filepath.Join(t.TempDir(), "send.json")
	const metrics, names = 2003, 100
	send([]string{"-addr", pc.LocalAddr().String(), "-metrics", "2003", "-names", "100", "-per", "7", "-pps", "5000", "-out", out})
	var r SendResult
	readJSON(out, &r)
	if r.Metrics != metrics || r.Counters+r.Timers+r.Gauges != metrics || r.Datagrams != (metrics+6)/7 {
		t.Fatalf("totals %+v", r)
	}
	perName := map[string]int64{}
	kinds := map[string]int64{}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got := int64(0); got < r.Datagrams; got++ {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", got, err)
		}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			name, rest, _ := strings.Cut(l, ":")
			_, typ, _ := strings.Cut(rest, "|")
			perName[name]++
			kinds[typ]++
		}
	}
	if kinds["c"] != r.Counters || kinds["ms"] != r.Timers || kinds["g"] != r.Gauges {
		t.Fatalf("read %v, sender says %+v", kinds, r)
	}
	// 2003 = 20 rounds of 100 names + names 0..2: 1203 counters, 600 timers, 200 gauges
	if r.Counters != 1203 || r.Timers != 600 || r.Gauges != 200 {
		t.Fatalf("mix %+v", r)
	}
	for i := 0; i < names; i++ {
		name := "bench.w8." + strconv.Itoa(i)
		if perName[name] != sentTo(i, metrics, names) {
			t.Fatalf("%s: got %d, sentTo %d", name, perName[name], sentTo(i, metrics, names))
		}
	}
}

// The sink sums the count lines of the stream's counters and timers over a
// real TCP connection, in Etsy's names and in Telegraf's (where a gauge
// looks like a counter and must not count).
func TestSinkSums(t *testing.T) {
	for _, tc := range []struct {
		counter, timer, sep string
		lines               string
	}{
		{"stats_counts.{}", "stats.timers.{}.count", ".",
			"stats_counts.bench.w8.0 3 1\nstats.bench.w8.0 3 1\nstats.timers.bench.w8.6.count 2 1\nstats.timers.bench.w8.6.upper 9 1\n" +
				"stats.gauges.bench.w8.9 5 1\nstats_counts.bench.w8.0 1 2\nstats_counts.bench.w8.9 7 2\nstats_counts.bench.w8x1 1 2\nbad line\n"},
		{"{}", "{}.count", "_",
			"bench_w8_0 3 1\nbench_w8_6.count 2 1\nbench_w8_6.upper 9 1\nbench_w8_9 5 1\nbench_w8_0 1 2\nbench_w8_9 7 2\nbad line\n"},
	} {
		s := &sinkState{sums: map[string]float64{}, stamps: map[int64]struct{}{},
			counter: newPattern(tc.counter, tc.sep), timer: newPattern(tc.timer, tc.sep), names: 10}
		s.r.CounterSums = make([]float64, 10)
		s.r.TimerSums = make([]float64, 10)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			c, err := ln.Accept()
			if err == nil {
				s.conn(c)
			}
			close(done)
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// in two writes, one line split between them
		k := len(tc.lines) / 2
		c.Write([]byte(tc.lines[:k]))
		time.Sleep(20 * time.Millisecond)
		c.Write([]byte(tc.lines[k:]))
		c.Close()
		<-done
		ln.Close()
		r := s.result()
		if r.CounterSum != 4 || r.TimerSum != 2 || r.CounterNames != 1 || r.TimerNames != 1 || r.Flushes != 2 || r.Bad != 1 {
			t.Errorf("%s: %+v", tc.counter, r)
		}
	}
}
