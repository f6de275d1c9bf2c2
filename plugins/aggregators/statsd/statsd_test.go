package statsd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// batch parses StatsD lines (opaque when the codec refuses them, as
// inputs.statsd with strict = false) and Graphite lines ("g:" prefix); the
// first metric is the first of its datagram.
func batch(t testing.TB, lines ...string) metric.Batch {
	t.Helper()
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if g, ok := strings.CutPrefix(l, "g:"); ok {
			if err := graphite.Parse([]byte(g), &b[i]); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if codec.Parse([]byte(l), &b[i]) != nil {
			if err := codec.ParseOpaque([]byte(l), &b[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(b) > 0 {
		b[0].MarkPacketStart()
	}
	return b
}

func newPlugin(t testing.TB, set func(*StatsD)) (*StatsD, *plugintest.Metrics) {
	t.Helper()
	s := New()
	if set != nil {
		set(s)
	}
	env, m := plugintest.Env(t, "aggregators.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	return s, m
}

// flushAll returns what one flush emits, in one batch.
func flushAll(s *StatsD, now time.Time) metric.Batch {
	var all metric.Batch
	s.Flush(now, false, func(b metric.Batch) { all = append(all, b...) })
	return all
}

func flushed(b metric.Batch) map[string]float64 {
	m := map[string]float64{}
	for i := range b {
		m[string(b[i].Path())] = b[i].Value()
	}
	return m
}

func TestTakeAndFlush(t *testing.T) {
	s, m := newPlugin(t, nil)
	rest := s.Take(batch(t, "a:1|c", "g:graphite.path 5 1700000000", "lat:10|ms", "lat:20|h", "bad:x|g", "_e{1,1}:a|b", "gg:3|g"))
	if len(rest) != 1 || string(rest[0].Path()) != "graphite.path" {
		t.Fatalf("rest %v: want the Graphite metric only", rest)
	}
	if m.Get("received_total") != 6 || m.Get("bad_lines_total") != 2 {
		t.Fatalf("received %d bad %d, want 6 and 2", m.Get("received_total"), m.Get("bad_lines_total"))
	}
	out := flushAll(s, time.Unix(1700000000, 600e6))
	f := flushed(out)
	for name, want := range map[string]float64{
		"stats_counts.a": 1, "stats.a": 0.1, "stats.timers.lat.count": 2, "stats.timers.lat.mean": 15,
		"stats.gauges.gg": 3, "stats_counts.statsd.packets_received": 1, "stats_counts.statsd.metrics_received": 6,
		"stats_counts.statsd.bad_lines_seen": 2, "statsd.numStats": 6,
	} {
		if got, ok := f[name]; !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", name, got, ok, want)
		}
	}
	if _, ok := f["stats.statsd.processing_time"]; !ok {
		t.Error("no processing_time")
	}
	if ts := out[0].Time(); ts != 1700000001 {
		t.Errorf("timestamp %d, want the flush time rounded (1700000001)", ts)
	}
	// the next flush starts from zero, gauges kept
	f = flushed(flushAll(s, time.Unix(1700000010, 0)))
	if f["stats_counts.a"] != 0 || f["stats.timers.lat.count"] != 0 || f["stats.gauges.gg"] != 3 {
		t.Errorf("second flush: %v", f)
	}
}

func TestLimits(t *testing.T) {
	s, m := newPlugin(t, func(s *StatsD) { s.MaxSeries, s.MaxValues = 2, 3 })
	s.Take(batch(t, "a:1|c", "b:1|c", "c:1|c", "t:1|ms"))
	if m.Get("refused_total") != 2 {
		t.Fatalf("refused %d, want 2 (c, t)", m.Get("refused_total"))
	}
	s, m = newPlugin(t, func(s *StatsD) { s.MaxValues = 3 })
	s.Take(batch(t, "t:1|ms", "t:2|ms", "u:x|s", "t:3|ms", "u:y|s", "c:1|c"))
	if m.Get("values_refused_total") != 2 {
		t.Fatalf("values refused %d, want 2", m.Get("values_refused_total"))
	}
	f := flushed(flushAll(s, time.Unix(1700000000, 0)))
	if f["stats.timers.t.count"] != 2 || f["stats.sets.u.count"] != 1 || f["stats_counts.c"] != 1 {
		t.Fatalf("flush: %v", f)
	}
	// the limit is per interval
	s.Take(batch(t, "t:1|ms", "t:2|ms", "t:3|ms"))
	if f := flushed(flushAll(s, time.Unix(1700000010, 0))); f["stats.timers.t.count"] != 3 {
		t.Fatalf("second interval: %v", f)
	}
}

func TestNaNNotEmitted(t *testing.T) {
	// a percentile whose range holds Infinity - Infinity: Etsy writes NaN
	s, m := newPlugin(t, func(s *StatsD) { s.PercentThreshold = []float64{-50} })
	s.Take(batch(t, "t:1e999|ms", "t:1e999|ms"))
	out := flushAll(s, time.Unix(1700000000, 0))
	for i := range out {
		if v := out[i].Value(); v != v {
			t.Fatalf("NaN emitted: %s", out[i].Line())
		}
	}
	if m.Get("not_numbers_total") == 0 {
		t.Fatal("no NaN counted")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		set  func(*StatsD)
		want string
	}{
		{func(s *StatsD) { s.FlushInterval = 0 }, "flush_interval"},
		{func(s *StatsD) { s.FlushInterval = 1500 * 1e6 }, "whole seconds"},
		{func(s *StatsD) { s.PercentThreshold = []float64{0} }, "percent_threshold"},
		{func(s *StatsD) { s.PercentThreshold = []float64{101} }, "percent_threshold"},
		{func(s *StatsD) { s.TimerTypes = []string{"ms", "x"} }, "timer_types"},
		{func(s *StatsD) { s.TimerTypes = []string{"h"} }, `"ms" is always`},
		{func(s *StatsD) { s.GaugesMaxTTL = 0 }, "gauges_max_ttl"},
		{func(s *StatsD) { s.Histogram = []Histogram{{Metric: "a", Bins: []any{"x"}}} }, "histogram[0]"},
		{func(s *StatsD) { s.MaxSeries = 0 }, "max_series"},
		{func(s *StatsD) { s.MaxValues = -1 }, "max_values"},
	} {
		s := New()
		c.set(s)
		env, _ := plugintest.Env(t, "aggregators.statsd")
		if err := s.Init(env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error with %q, got %v", c.want, err)
		}
	}
}

func TestSampleDecodes(t *testing.T) {
	s := New()
	if err := plugintest.DecodeSample(sample, "aggregators", "statsd", s); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "aggregators.statsd")
	if err := s.Init(env); err != nil {
		t.Fatal(err)
	}
	if s.Interval() != 10*time.Second || s.MaxSeries != 1_000_000 {
		t.Fatalf("sample: interval %v max_series %d", s.Interval(), s.MaxSeries)
	}
}

var benchLines = func() []string {
	var l []string
	for i := range 1000 {
		switch {
		case i%10 < 6:
			l = append(l, fmt.Sprintf("bench.c.%d:1|c", i))
		case i%10 < 9:
			l = append(l, fmt.Sprintf("bench.t.%d:%d|ms", i, i%97))
		default:
			l = append(l, fmt.Sprintf("bench.g.%d:%d|g", i, i))
		}
	}
	return l
}()

func BenchmarkTake(b *testing.B) {
	s, _ := newPlugin(b, nil)
	in := batch(b, benchLines...)
	work := make(metric.Batch, len(in))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		copy(work, in)
		s.Take(work)
		if i%1000 == 999 {
			b.StopTimer()
			s.Flush(time.Unix(1700000000, 0), false, func(metric.Batch) {})
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/metric")
}

// BenchmarkFlush1M is the whole flush of a million keys (600k counters,
// 300k timers of 3 values, 100k gauges: 7.5 million lines), rendering and
// the Graphite batch, after a first flush.
func BenchmarkFlush1M(b *testing.B) {
	s, _ := newPlugin(b, func(s *StatsD) { s.MaxSeries = 2_000_000 })
	var lines []string
	for i := range 1_000_000 {
		switch {
		case i%10 < 6:
			lines = append(lines, fmt.Sprintf("svc.c.%d:1|c", i))
		case i%10 < 9:
			for v := range 3 {
				lines = append(lines, fmt.Sprintf("svc.t.%d:%d|ms", i, i%97+v))
			}
		default:
			lines = append(lines, fmt.Sprintf("svc.g.%d:5|g", i))
		}
	}
	in := batch(b, lines...)
	work := make(metric.Batch, len(in))
	// a first flush sizes the buffers, as every flush after a server's
	// first one finds them
	copy(work, in)
	s.Take(work)
	s.Flush(time.Unix(1700000000, 0), false, func(metric.Batch) {})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		copy(work, in)
		s.Take(work)
		b.StartTimer()
		s.Flush(time.Unix(1700000000, 0), false, func(metric.Batch) {})
	}
}

// TestTakeDuringFlush: lines taken while a flush holds the state do not
// wait: they count in the next interval, in order (a gauge and its delta).
func TestTakeDuringFlush(t *testing.T) {
	s, m := newPlugin(t, nil)
	s.mu.Lock() // as a flush does
	done := make(chan metric.Batch)
	in := batch(t, "c:1|c", "gg:5|g", "gg:+2|g", "g:graphite.x 1 1700000000")
	go func() { done <- s.Take(in) }()
	var rest metric.Batch
	select {
	case rest = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Take waited for the flush")
	}
	if len(rest) != 1 || m.Get("received_total") != 3 {
		t.Fatalf("rest %d, received %d", len(rest), m.Get("received_total"))
	}
	s.mu.Unlock()
	s.Take(batch(t, "gg:+1|g")) // after the waiting ones
	f := flushed(flushAll(s, time.Unix(1700000000, 0)))
	if f["stats_counts.c"] != 1 || f["stats.gauges.gg"] != 8 || f["stats_counts.statsd.packets_received"] != 2 {
		t.Fatalf("flush: %v", f)
	}
}

// TestFlushBatches: a flush larger than flushBatch comes in several batches
// whose lines are their own (the rendering buffer is reused).
func TestFlushBatches(t *testing.T) {
	s, _ := newPlugin(t, nil)
	var lines []string
	for i := range 3 * flushBatch {
		lines = append(lines, fmt.Sprintf("c%d:1|c", i))
	}
	s.Take(batch(t, lines...))
	var batches []metric.Batch
	s.Flush(time.Unix(1700000000, 0), false, func(b metric.Batch) { batches = append(batches, b) })
	total := 0
	for _, b := range batches {
		if len(b) > flushBatch {
			t.Fatalf("a batch of %d metrics", len(b))
		}
		total += len(b)
	}
	if len(batches) < 6 || total != 2*3*flushBatch+3*2+2 {
		t.Fatalf("%d batches, %d metrics", len(batches), total)
	}
	first := string(batches[0][0].Line())
	s.Take(batch(t, "other:5|g"))
	flushAll(s, time.Unix(1700000010, 0))
	if got := string(batches[0][0].Line()); got != first {
		t.Fatalf("an emitted line changed with the next flush: %q, was %q", got, first)
	}
}
