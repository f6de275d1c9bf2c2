package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
)

const rules = 20

// seriesPath writes the Graphite path of series i into b.
func seriesPath(b []byte, i int) []byte {
	k, rest := i%rules, i/rules
	b = append(b, "w10.r"...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, ".host"...)
	b = strconv.AppendInt(b, int64(rest/50), 10)
	b = append(b, ".i"...)
	b = strconv.AppendInt(b, int64(rest/10%5), 10)
	b = append(b, ".m"...)
	b = strconv.AppendInt(b, int64(rest%10), 10)
	return b
}

// writeStream writes rounds x series lines "<path> <value> <ts>" to w; round
// r has timestamp ts0+r, series i the value r*1000 + i%1000.
func writeStream(w io.Writer, series, rounds int, ts0 int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var line []byte
	var n int64
	for r := range rounds {
		for i := range series {
			line = seriesPath(line[:0], i)
			line = append(line, ' ')
			line = strconv.AppendInt(line, int64(r*1000+i%1000), 10)
			line = append(line, ' ')
			line = strconv.AppendInt(line, ts0+int64(r), 10)
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, bw.Flush()
}

// mapping writes the graphite_exporter mapping file of the stream: rules
// r0..r15 are globs, r16..r19 regexes; each names the metric
// w10_r<k>_<metric> with the labels host, instance and rule.
func mapping(args []string) {
	fs := flag.NewFlagSet("mapping", flag.ExitOnError)
	out := fs.String("out", "-", "mapping file path")
	fs.Parse(args)
	w := os.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		w = f
	}
	fmt.Fprintln(w, "# bench w10: 16 glob and 4 regex rules, written by bench/w10 mapping")
	fmt.Fprintln(w, "mappings:")
	for k := range rules {
		if k < 16 {
			fmt.Fprintf(w, "  - match: w10.r%d.*.*.*\n", k)
		} else {
			fmt.Fprintf(w, "  - match: 'w10\\.r%d\\.([^.]+)\\.([^.]+)\\.([^.]+)'\n    match_type: regex\n", k)
		}
		fmt.Fprintf(w, "    name: w10_r%d_${3}\n    labels:\n      host: ${1}\n      instance: ${2}\n      rule: r%d\n", k, k)
	}
}
