// Command w8 is the load generator, sink and report of bench workload w8
// (bench/w8.sh): StatsD over UDP into a StatsD server (the router with
// [[aggregators.statsd]], Etsy statsd, Telegraf's statsd input), whose
// flushes go to a Graphite TCP sink.
//
//	w8 send      StatsD UDP sender: -names distinct names bench.w8.<i>, a fixed
//	             mix (60 % counters, 30 % timers, 10 % gauges), paced by -pps
//	w8 sink      Graphite TCP sink keeping a sum per name
//	w8 procstat  CPU seconds and peak RSS of every process of a session
//	w8 flushmax  the router's router_flush_duration_max_seconds from its /metrics
//	w8 verify    one run's result: loss, metrics per CPU-second, peak RSS
//	w8 table     medians per SUT over the runs of a results file
//
// Which name i gets which type, and the values, depend only on the metric's
// position in the stream, so a sender's totals tell the sink's expected sums.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "send":
		send(args)
	case "sink":
		sink(args)
	case "procstat":
		procStat(args)
	case "flushmax":
		flushMax(args)
	case "verify":
		verify(args)
	case "table":
		table(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: w8 send|sink|procstat|flushmax|verify|table [flags] (-h for the flags)")
	os.Exit(2)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "w8: "+format+"\n", a...)
	os.Exit(1)
}

// writeJSON writes v to path ("-" = stdout), through a temporary file so a
// reader never sees half of it.
func writeJSON(path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fatalf("json: %v", err)
	}
	b = append(b, '\n')
	if path == "-" || path == "" {
		os.Stdout.Write(b)
		return
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		fatalf("%v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fatalf("%v", err)
	}
}

func readJSON(path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		fatalf("%v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		fatalf("%s: %v", path, err)
	}
}

// Kind is the StatsD type the stream gives name i.
type Kind int

const (
	Counter Kind = iota
	Timer
	Gauge
)

// kindOf: of every ten consecutive names, six are counters, three timers
// and one a gauge.
func kindOf(i int) Kind {
	switch r := i % 10; {
	case r < 6:
		return Counter
	case r < 9:
		return Timer
	}
	return Gauge
}

// sentTo is how many of the first n metrics of a stream over names names
// went to name i (metric j goes to name j % names).
func sentTo(i int, n int64, names int) int64 {
	if int64(i) >= n {
		return 0
	}
	return (n-int64(i)-1)/int64(names) + 1
}
