package statsd

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/etsytest"
	gcodec "github.com/metricsrouter/router/plugins/codec/graphite"
	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

func mixedBatch(t testing.TB, lines ...string) metric.Batch {
	t.Helper()
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if codec.Parse([]byte(l), &b[i]) != nil {
			if err := codec.ParseOpaque([]byte(l), &b[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

func TestSumCountersMerge(t *testing.T) {
	in := mixedBatch(t,
		"a:1|c", "g:5|g", "a:2|c|@0.5", "b:1|c|#env:prod", "a:3|c", "b:2|c|#env:dev", "b:4|c|#env:prod",
		"t:10|ms", "a:1|c|#env:prod", "once:7|c|@0.1", "_e{1,1}:x|y", "nan:NaN|c", "nan:1|c", "x:1|c|T1700000000", "x:2|c|T1700000000", "x:3|c",
		// the shortest decimal that parses back, never an exponent
		"f:0.1|c", "f:0.2|c", "m:1e6|c", "m:1|c", "l:6e20|c", "l:6e20|c", "s:1|c|@0.125", "s:-3|c",
		// tokens Etsy statsd reads otherwise than the codec: as they came
		"u:1_000|c", "u:1_000|c", "h:0x1p4|c", "h:0x1p4|c", "r:1|c|@1e-1", "r:1|c|@1e-1",
		// a rate then other sections: without the rate they would take its place
		"e:1|c|@0.5|c:abc", "e:1|c|@0.5|c:abc", "e:1|c|c:abc", "e:2|c|c:abc",
		// a sum that overflows: as they came
		"big:1e308|c", "big:1e308|c",
		// Etsy multi-value lines, a gauge and a timer of a counter's name, a set
		"mv:1|c:2|c", "mv:1|c:2|c", "a:1|g", "a:1|ms", "a:1|s")
	g := make(metric.Batch, 2)
	for i := range g {
		if err := gcodec.Parse([]byte("a 1 1700000000"), &g[i]); err != nil {
			t.Fatal(err)
		}
	}
	in = append(in, g...)
	s := newSummer()
	out, gone := s.merge(in)
	var got []string
	for i := range out {
		got = append(got, string(out[i].Line()))
	}
	want := []string{
		"a:8|c", "g:5|g", "b:5|c|#env:prod", "b:2|c|#env:dev", "t:10|ms", "a:1|c|#env:prod", "once:7|c|@0.1",
		"_e{1,1}:x|y", "nan:NaN|c", "nan:1|c", "x:3|c|T1700000000", "x:3|c",
		"f:0.30000000000000004|c", "m:1000001|c", "l:1200000000000000000000|c", "s:5|c",
		"u:1_000|c", "u:1_000|c", "h:0x1p4|c", "h:0x1p4|c", "r:1|c|@1e-1", "r:1|c|@1e-1",
		"e:1|c|@0.5|c:abc", "e:1|c|@0.5|c:abc", "e:3|c|c:abc",
		"big:1e308|c", "big:1e308|c",
		"mv:1|c:2|c", "mv:1|c:2|c", "a:1|g", "a:1|ms", "a:1|s", "a 1 1700000000", "a 1 1700000000",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("merged\n%q\nwant\n%q", got, want)
	}
	if gone != len(in)-len(out) {
		t.Fatalf("gone %d, want %d", gone, len(in)-len(out))
	}
	if slices.Contains(s.cover, 0) || sum32(s.cover) != len(in) {
		t.Fatalf("cover %v: want every input metric covered once", s.cover)
	}
	// the summed lines are StatsD counters, as parsed
	for i := range out {
		if string(out[i].Line()) == "f:0.30000000000000004|c" && (out[i].Type() != metric.Counter || out[i].Value() != 0.30000000000000004 || out[i].Rate() != 0) {
			t.Fatalf("summed metric %q: type %v value %v rate %v", out[i].Line(), out[i].Type(), out[i].Value(), out[i].Rate())
		}
	}
	// nothing to merge: the batch itself
	plain := mixedBatch(t, "a:1|c", "b:1|c", "g:1|g")
	if out, gone := s.merge(plain); &out[0] != &plain[0] || gone != 0 {
		t.Fatal("a batch without repeated counters was copied")
	}
	// values a processor set: NaN is left to the codec (which refuses it)
	nan := mixedBatch(t, "n:1|c", "n:2|c", "p:1|c", "p:2|c")
	nan[0].SetValue(math.NaN())
	nan[1].SetValue(math.NaN())
	nan[2].SetValue(1.5)
	out, gone = s.merge(nan)
	got = got[:0]
	for i := range out {
		got = append(got, string(out[i].Line()))
	}
	if want := []string{"n:NaN|c", "n:NaN|c", "p:3.5|c"}; !slices.Equal(got, want) || gone != 1 {
		t.Fatalf("set values: %q (%d merged away), want %q", got, gone, want)
	}
}

// TestSumCountersNoAlloc: once its buffers have grown, summing a batch
// allocates nothing, and neither does a write with sum_counters. Under the
// race detector, which makes sync.Pool drop items, only the summing is
// checked: x/net's sendmmsg takes its headers from a pool. AllocsPerRun
// counts the whole process's allocations, and goroutines other tests left
// may add some: the best of three runs counts.
func TestSumCountersNoAlloc(t *testing.T) {
	s, batch := benchOutput(t)
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	allocs := func(f func()) float64 {
		best := math.Inf(1)
		for range 3 {
			best = min(best, testing.AllocsPerRun(50, f))
		}
		return best
	}
	if n := allocs(func() { s.sum.merge(batch) }); n != 0 {
		t.Fatalf("%v allocations per sum of %d metrics", n, len(batch))
	}
	if raceEnabled {
		return
	}
	if n := allocs(func() {
		if err := s.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per write of %d metrics", n, len(batch))
	}
}

// benchOutput returns an output with sum_counters writing to a UDP socket
// that nobody reads (the kernel drops what does not fit), and a batch of
// 1000 lines: 50 counters with a rate and tags, gauges and timers.
func benchOutput(t testing.TB) (*StatsD, metric.Batch) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s, _ := newOutput(t, func(s *StatsD) { s.Address, s.SumCounters = pc.LocalAddr().String(), true })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 1000 {
		switch i % 10 {
		case 3:
			lines = append(lines, fmt.Sprintf("bench.g.%d:%d|g", i%7, i))
		case 7:
			lines = append(lines, fmt.Sprintf("bench.t.%d:%d|ms|@0.5", i%7, i))
		default:
			lines = append(lines, fmt.Sprintf("bench.c.%d:1|c|@0.5|#env:prod,host:h%d", i%50, i%3))
		}
	}
	return s, mixedBatch(t, lines...)
}

func sum32(a []int32) int {
	n := 0
	for _, v := range a {
		n += int(v)
	}
	return n
}

// TestSumCountersWrite: over UDP the merged lines go out and are counted; a
// write cut short after some datagrams drops the rest (counted as rejected)
// instead of sending sums twice; one that sent nothing is retried whole.
func TestSumCountersWrite(t *testing.T) {
	sink := plugintest.NewUDPSink(t)
	s, m := newOutput(t, func(s *StatsD) { s.Address, s.SumCounters = sink.Addr, true })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 300 {
		lines = append(lines, "c"+string(rune('a'+i%3))+":1|c")
	}
	if err := s.Write(t.Context(), mixedBatch(t, lines...)); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLines(3, wait) {
		t.Fatal("no lines")
	}
	if got := sink.Lines(); !slices.Equal(got, []string{"ca:100|c", "cb:100|c", "cc:100|c"}) || m.Get("counters_summed_total") != 297 {
		t.Fatalf("lines %q, counters_summed_total %d", got, m.Get("counters_summed_total"))
	}

	s, m = newOutput(t, func(s *StatsD) { s.Address, s.SumCounters, s.MaxPacketSize = sink.Addr, true, 64 })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	fake := &flakyPC{ok: 1}
	s.pc = fake
	lines = lines[:0]
	for i := range 40 {
		lines = append(lines, "counter.number.padded.to.thirty."+string(rune('a'+i%10))+":1|c")
	}
	b := mixedBatch(t, lines...)
	err := s.Write(t.Context(), b)
	var p *registry.PartialWriteError
	if !errors.As(err, &p) || p.Written != len(b) || p.Err != nil || p.Refused == 0 || p.Refused >= len(b) {
		t.Fatalf("write cut short: %v (%+v), want all handled, the unsent ones refused", err, p)
	}
	sent := 0
	for _, g := range fake.grams {
		for _, l := range strings.Split(g, "\n") {
			var one metric.Metric
			if codec.Parse([]byte(l), &one) != nil {
				t.Fatalf("bad line %q", l)
			}
			sent += int(one.Value())
		}
	}
	if sent+p.Refused != len(b) {
		t.Fatalf("%d counts sent + %d refused != %d", sent, p.Refused, len(b))
	}
	// nothing sent: the error as is, the batch retried whole
	fake.ok = 0
	fake.grams = nil
	if err := s.Write(t.Context(), b); errors.As(err, &p) || err == nil {
		t.Fatalf("a write that sent nothing: %v, want a plain error", err)
	}
	_ = m
}

func BenchmarkWriteSumCounters(b *testing.B) {
	s, batch := benchOutput(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
}

// TestSumCountersEtsyTotals: the output with sum_counters writes batches
// to Etsy statsd's own daemon (node stats.js, graphite backend): Etsy's
// stats_counts are the totals of the lines in the batches (sample rates
// applied), it receives one line per counter and tag set per batch plus
// every other metric unchanged, in the datagrams the output counted, and
// reads no bad line.
func TestSumCountersEtsyTotals(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	flushes := etsytest.NewFlushSink(t)
	port := freeUDPPort(t)
	etsytest.Daemon(t, dir, fmt.Sprintf(`{ port: %d, address: "127.0.0.1", mgmt_port: 0, mgmt_address: "127.0.0.1",
  flushInterval: 1000, backends: ["./backends/graphite"], graphiteHost: "127.0.0.1", graphitePort: %d }`, port, flushes.Port))
	select {
	case <-flushes.Flushes: // Etsy is up
	case <-time.After(wait):
		t.Fatal("no flush from Etsy statsd")
	}
	s, m := newOutput(t, func(s *StatsD) { s.Address, s.SumCounters = fmt.Sprintf("127.0.0.1:%d", port), true })
	if err := s.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	const batches, perBatch, names = 6, 500, 25
	want := map[string]float64{}
	wantLines, wantTimers, sent := 0, 0, 0
	rates := []string{"", "|@0.5", "|@0.25", "|@0.125"} // exact in binary: the totals compare exactly
	for k := range batches {
		var lines []string
		keys := map[string]bool{}
		for i := range perBatch {
			switch {
			case i%10 == 3:
				lines = append(lines, fmt.Sprintf("sumetsy.g%d:%d|g", i%5, i))
				wantLines++
			case i%10 == 7:
				lines = append(lines, fmt.Sprintf("sumetsy.t%d:%d|ms|@0.5", i%5, i))
				wantLines++
				wantTimers++
			default:
				name := fmt.Sprintf("sumetsy.c%d", (i*7+k)%names)
				tags, key := "", name
				if i%3 == 0 {
					tags, key = "|#env:prod", name+";env=prod"
				}
				r := i % len(rates)
				v := float64(i%4 + 1 - 2*(i%11/10)) // some negative
				lines = append(lines, fmt.Sprintf("%s:%g|c%s%s", name, v, rates[r], tags))
				want["stats_counts."+key] += v * float64(int(1)<<r)
				if !keys[key] {
					keys[key] = true
					wantLines++
				}
			}
		}
		sent += len(lines)
		if err := s.Write(t.Context(), mixedBatch(t, lines...)); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Get("counters_summed_total"); int(got) != sent-wantLines {
		t.Fatalf("counters_summed_total %d, want %d (%d lines sent, %d written)", got, sent-wantLines, sent, wantLines)
	}
	got := map[string]float64{}
	var received, packets, bad, timers float64
	deadline := time.After(wait)
	for !maps.Equal(got, want) || int(received) < wantLines {
		select {
		case b := <-flushes.Flushes:
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				f := strings.Fields(l)
				if len(f) != 3 {
					continue
				}
				v, _ := strconv.ParseFloat(f[1], 64)
				switch {
				case strings.HasPrefix(f[0], "stats_counts.sumetsy."):
					got[f[0]] += v
				case f[0] == "stats_counts.statsd.metrics_received":
					received += v
				case f[0] == "stats_counts.statsd.packets_received":
					packets += v
				case f[0] == "stats_counts.statsd.bad_lines_seen":
					bad += v
				case strings.HasPrefix(f[0], "stats.timers.sumetsy.") && strings.HasSuffix(f[0], ".count"):
					timers += v
				}
			}
		case <-deadline:
			t.Fatalf("Etsy's counts after %d lines in %d batches:\n%v\nwant\n%v\n%v lines received, want %d", sent, batches, got, want, received, wantLines)
		}
	}
	if int(received) != wantLines || packets != float64(m.Get("datagrams_total")) || bad != 0 || int(timers) != 2*wantTimers {
		t.Fatalf("Etsy received %v lines in %v datagrams (%v bad), %v timer samples; want %d lines in %d datagrams, %d timer samples",
			received, packets, bad, timers, wantLines, m.Get("datagrams_total"), 2*wantTimers)
	}
	t.Logf("%d lines in %d batches: Etsy received %v lines in %v datagrams, with the same totals", sent, batches, received, packets)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
