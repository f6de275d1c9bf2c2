package statsd

import (
	"errors"
	"slices"
	"strings"
	"testing"

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
		"t:10|ms", "a:1|c|#env:prod", "once:7|c|@0.1", "_e{1,1}:x|y", "nan:NaN|c", "nan:1|c", "x:1|c|T1700000000", "x:2|c|T1700000000", "x:3|c")
	s := newSummer()
	out, gone := s.merge(in)
	var got []string
	for i := range out {
		got = append(got, string(out[i].Line()))
	}
	want := []string{
		"a:8|c", "g:5|g", "b:5|c|#env:prod", "b:2|c|#env:dev", "t:10|ms", "a:1|c|#env:prod", "once:7|c|@0.1",
		"_e{1,1}:x|y", "nan:NaN|c", "nan:1|c", "x:3|c|T1700000000", "x:3|c",
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
	// nothing to merge: the batch itself
	plain := mixedBatch(t, "a:1|c", "b:1|c", "g:1|g")
	if out, gone := s.merge(plain); &out[0] != &plain[0] || gone != 0 {
		t.Fatal("a batch without repeated counters was copied")
	}
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
	sink := plugintest.NewUDPSink(b)
	s, _ := newOutput(b, func(s *StatsD) { s.Address, s.SumCounters = sink.Addr, true })
	if err := s.Connect(b.Context()); err != nil {
		b.Fatal(err)
	}
	var lines []string
	for i := range 1000 {
		lines = append(lines, "bench.c."+string(rune('a'+i%50))+":1|c|@0.5")
	}
	batch := mixedBatch(b, lines...)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/metric")
}
