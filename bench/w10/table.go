package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// table prints the medians per SUT (rounds with ok=false are left out and
// counted) and the ratio of samples per CPU-second to -base.
func table(args []string) {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	in := fs.String("in", "", "results file (JSON lines)")
	base := fs.String("base", "exporter", "SUT of the ratio column")
	repeat := fs.Int("repeat", 5, "expected rounds per SUT (exit 1 when fewer are ok)")
	fs.Parse(args)
	f, err := os.Open(*in)
	if err != nil {
		fatalf("%v", err)
	}
	defer f.Close()
	by := map[string][]Result{}
	var order []string
	failed := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fatalf("%s: %v", *in, err)
		}
		if _, seen := by[r.SUT]; !seen {
			order = append(order, r.SUT)
			by[r.SUT] = nil
		}
		if !r.OK {
			failed[r.SUT]++
			continue
		}
		by[r.SUT] = append(by[r.SUT], r)
	}
	col := func(rs []Result, get func(Result) float64) []float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		return v
	}
	perCPU := func(r Result) float64 { return r.PerCPUSecond }
	baseMed := median(col(by[*base], perCPU))
	fmt.Printf("| SUT | n ok (failed) | samples | CPU-s | samples per CPU-s (min..max) | wall s | series seen | peak RSS MiB | ratio vs %s |\n", *base)
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	short := false
	for _, s := range order {
		rs := by[s]
		if len(rs) < *repeat {
			short = true
		}
		if len(rs) == 0 {
			fmt.Printf("| %s | 0 (%d) | | | | | | | |\n", s, failed[s])
			continue
		}
		pc := col(rs, perCPU)
		ratio := "-"
		if baseMed > 0 {
			ratio = fmt.Sprintf("%.2f", median(pc)/baseMed)
		}
		fmt.Printf("| %s | %d (%d) | %d | %.2f | %.0f (%.0f..%.0f) | %.2f | %.0f | %.0f | %s |\n", s, len(rs), failed[s], rs[0].Lines,
			median(col(rs, func(r Result) float64 { return r.CPUSeconds })), median(pc), slices.Min(pc), slices.Max(pc),
			median(col(rs, func(r Result) float64 { return r.WallSeconds })),
			median(col(rs, func(r Result) float64 { return float64(r.SeriesSeen) })),
			median(col(rs, func(r Result) float64 { return r.PeakRSSMiB })), ratio)
	}
	if short {
		fmt.Fprintln(os.Stderr, strings.TrimSpace("w10: fewer ok rounds than -repeat for some SUT"))
		os.Exit(1)
	}
}
