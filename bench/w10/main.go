// Command w10 is the load generator, sink and report of bench workload w10
// (bench/w10.sh): Graphite lines over TCP into outputs.prometheus_remote_write
// of the router or into Prometheus's graphite_exporter, both mapping names
// with the same graphite_exporter mapping file.
//
//	w10 mapping  writes the mapping file: 20 rules (16 globs, 4 regexes)
//	w10 sink     remote-write receiver: decodes snappy + protobuf, counts
//	             samples and distinct series, discards them
//	w10 round    one measured run against a started SUT: CPU before the first
//	             line, send every line, wait until all is ingested, CPU after
//	w10 table    medians per SUT over the rounds of a results file
//
// The stream: -rounds passes over -series series; series i is
// w10.r<k>.host<h>.i<j>.m<m> with k = i mod 20 (the rule), so each rule gets
// series/20 of them (100 hosts x 5 instances x 10 metrics for 100k series).
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
	case "mapping":
		mapping(args)
	case "sink":
		sink(args)
	case "round":
		round(args)
	case "table":
		table(args)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: w10 mapping|sink|round|table [flags] (-h for the flags)")
	os.Exit(2)
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "w10: "+format+"\n", a...)
	os.Exit(1)
}

func appendJSON(path string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fatalf("json: %v", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		fatalf("%v", err)
	}
}
