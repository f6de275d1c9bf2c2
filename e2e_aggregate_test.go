package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// aggConfig is a router with one aggregate rule (every 2 s, expire after
// 3 s) sending to sink; extra goes into [rules.aggregate].
func aggConfig(stats, in, sink, extra string) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "5s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "sink"
  address = %q
[[rules]]
  id = "hosts"
  match = '^e2e\.agg\.(h[0-9]+)\.cpu\.[0-9]+$'
  send_to = ["sink"]
  stop = true
  [rules.aggregate]
    every = "2s"
    expire = "3s"
    timestamp = "start"
    max_series = 400
    %s
    compute = [
      { type = "sum", write_to = 'agg.\1.sum' },
      { type = "count", write_to = 'agg.\1.count' },
      { type = "max", write_to = 'agg.\1.max' },
      { type = "average", write_to = 'agg.\1.avg' },
    ]
`, stats, in, sink, extra)
}

// expectAgg computes, by brute force, what the rule of aggConfig produces
// for values[host] all in the bucket starting at start.
func expectAgg(values map[int][]float64, start int64) []string {
	var out []string
	for h, vs := range values {
		sum, mx := 0.0, math.Inf(-1)
		for _, v := range vs {
			sum += v
			mx = max(mx, v)
		}
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
		ts := strconv.FormatInt(start, 10)
		out = append(out, fmt.Sprintf("agg.h%d.sum %s %s", h, f(sum), ts), fmt.Sprintf("agg.h%d.count %d %s", h, len(vs), ts),
			fmt.Sprintf("agg.h%d.max %s %s", h, f(mx), ts), fmt.Sprintf("agg.h%d.avg %s %s", h, f(sum/float64(len(vs))), ts))
	}
	slices.Sort(out)
	return out
}

// TestAggregateEndToEnd: 100 hosts x 8 CPUs x 5 values into one bucket;
// what the router emits once the bucket expires equals a brute-force
// computation; a late value, a future one and the values of series past
// max_series are counted, not aggregated.
func TestAggregateEndToEnd(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	p := startRouter(t, aggConfig(stats, in, sink.Addr, ""))
	waitListen(t, in)
	start := (time.Now().Unix() / 2) * 2
	values := map[int][]float64{}
	var lines []string
	for h := range 100 {
		for c := range 8 {
			for k := range 5 {
				v := float64((h*31+c*7+k*3)%97) + 0.25
				values[h] = append(values[h], v)
				lines = append(lines, fmt.Sprintf("e2e.agg.h%d.cpu.%d %v %d", h, c, v, start+int64(k%2)))
			}
		}
	}
	lines = append(lines, fmt.Sprintf("e2e.agg.h1.cpu.0 5 %d", start-100), fmt.Sprintf("e2e.agg.h1.cpu.0 5 %d", start+100))
	for h := 100; h < 160; h++ { // 4 series each, past max_series: the first 100 hosts have 400
		lines = append(lines, fmt.Sprintf("e2e.agg.h%d.cpu.0 1 %d", h, start))
	}
	sendLines(t, in, lines, 1)
	want := expectAgg(values, start)
	if !sink.WaitLen(len(want), 15*time.Second) {
		t.Fatalf("%d of %d aggregates arrived", sink.Len(), len(want))
	}
	time.Sleep(300 * time.Millisecond)
	if got := sink.Sorted(); !slices.Equal(got, want) {
		t.Fatalf("aggregates differ from the brute-force computation:\n got %d: %q...\nwant %d: %q...", len(got), got[:min(4, len(got))], len(want), want[:4])
	}
	m := scrape(t, stats)
	get := func(name string) float64 { return m[fmt.Sprintf(`router_%s{aggregate="hosts"}`, name)] }
	// per compute: the late and the future value count 4 times each; the
	// 60 hosts past max_series 240 times
	if get("aggregate_late_total") != 4 || get("aggregate_future_total") != 4 || get("aggregate_refused_total") != 240 {
		t.Errorf("late %v future %v refused %v, want 4, 4, 240", get("aggregate_late_total"), get("aggregate_future_total"), get("aggregate_refused_total"))
	}
	if get("aggregate_series") > 400 {
		t.Errorf("%v series, max_series is 400", get("aggregate_series"))
	}
	if got := get("aggregate_received_total"); got != float64(len(lines)) {
		t.Errorf("received %v, want %d", got, len(lines))
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestAggregateSpoolRestart: with spool_dir, the buckets still open at
// shutdown are saved, taken up by the next start and emitted then: a
// restart loses no aggregate.
func TestAggregateSpoolRestart(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	dir := t.TempDir()
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfg := aggConfig(stats, in, sink.Addr, fmt.Sprintf("spool_dir = %q", dir))
	p := startRouter(t, cfg)
	waitListen(t, in)
	next := (time.Now().Unix()/2)*2 + 2 // a bucket that has not ended at shutdown
	values := map[int][]float64{}
	var lines []string
	for h := range 20 {
		for k := range 3 {
			v := float64(h*10 + k)
			values[h] = append(values[h], v)
			lines = append(lines, fmt.Sprintf("e2e.agg.h%d.cpu.%d %v %d", h, k, v, next))
		}
	}
	sendLines(t, in, lines[:30], 1)
	waitFor(5*time.Second, func() bool {
		return scrape(t, stats)[`router_aggregate_received_total{aggregate="hosts"}`] == 30
	})
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if sink.Len() != 0 {
		t.Fatalf("emitted before the bucket ended: %q", sink.Lines())
	}
	if !strings.Contains(p.out.String(), "open buckets saved for the next start") {
		t.Fatalf("no state saved:\n%s", p.out.String())
	}
	p2 := startRouter(t, cfg)
	waitListen(t, in)
	if !strings.Contains(p2.out.String(), "open buckets of the last run taken up") {
		t.Fatalf("state not taken up:\n%s", p2.out.String())
	}
	sendLines(t, in, lines[30:], 1)
	want := expectAgg(values, next)
	if !sink.WaitLen(len(want), 15*time.Second) {
		t.Fatalf("%d of %d aggregates arrived", sink.Len(), len(want))
	}
	time.Sleep(300 * time.Millisecond)
	if got := sink.Sorted(); !slices.Equal(got, want) {
		t.Fatalf("after a restart:\n got %q\nwant %q", got, want)
	}
	if code := p2.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestAggregateReloadRetires: a reload that changes an aggregate rule ends
// the old rule's state: the buckets that have ended are emitted through the
// new rules, the values of the open ones are dropped and counted
// (router_aggregate_dropped_total), nothing silently.
func TestAggregateReloadRetires(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfg := func(every string) string {
		return fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "sink"
  address = %q
[[rules]]
  id = "r"
  match = '^in\.([a-z]+)\.[0-9]+$'
  stop = true
  [rules.aggregate]
    every = %q
    expire = "60s"
    timestamp = "start"
    compute = [ { type = "sum", write_to = 'agg.\1.sum' } ]
[[rules]]
  match = '^agg\.'
  send_to = ["sink"]
`, stats, in, sink.Addr, every)
	}
	file := writeConfig(t, cfg("10s"))
	p := startBinary(t, file)
	waitListen(t, in)
	now := time.Now().Unix()
	ended := (now/10)*10 - 20 // a bucket that has ended, not expired
	open := (now/10)*10 + 10  // one that has not ended
	sendLines(t, in, []string{
		fmt.Sprintf("in.a.1 2 %d", ended), fmt.Sprintf("in.a.2 3 %d", ended),
		fmt.Sprintf("in.b.1 5 %d", open), fmt.Sprintf("in.b.2 7 %d", open), fmt.Sprintf("in.b.3 1 %d", open),
	}, 1)
	waitFor(5*time.Second, func() bool { return scrape(t, stats)[`router_aggregate_received_total{aggregate="r"}`] == 5 })
	if err := os.WriteFile(file, []byte(cfg("20s")), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	if !sink.WaitLen(1, 10*time.Second) {
		t.Fatal("the ended bucket of the changed rule was not emitted")
	}
	if got, want := sink.Lines(), []string{fmt.Sprintf("agg.a.sum 5.000000 %d", ended)}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !waitFor(5*time.Second, func() bool { return scrape(t, stats)[`router_aggregate_dropped_total{aggregate="r"}`] == 3 }) {
		t.Fatalf("dropped %v, want 3", scrape(t, stats)[`router_aggregate_dropped_total{aggregate="r"}`])
	}
	p.waitLog(t, "aggregate rule removed or changed by a reload", 1)
}
