package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProcStat sums over every process of session -sid (the script starts each
// SUT with setsid).
type ProcStat struct {
	Pids       []int   `json:"pids"`
	CPUSeconds float64 `json:"cpu_s"`       // utime+stime (+ reaped children)
	PeakRSSKB  int64   `json:"peak_rss_kb"` // sum of VmHWM
	UDPDrops   int64   `json:"udp_drops"`   // kernel drops at the sockets bound to -udp-port
	TakenNs    int64   `json:"taken_ns"`
}

const clockTicks = 100 // USER_HZ

func procStat(args []string) {
	fs := flag.NewFlagSet("procstat", flag.ExitOnError)
	sid := fs.Int("sid", 0, "session id")
	udpPort := fs.Int("udp-port", 0, "also sum the drop counters of the UDP sockets bound to this port (/proc/net/udp)")
	out := fs.String("out", "-", "result JSON path")
	fs.Parse(args)
	ps := ProcStat{TakenNs: time.Now().UnixNano()}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		st, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		rp := strings.LastIndexByte(s, ')')
		if rp < 0 {
			continue
		}
		f := strings.Fields(s[rp+1:]) // f[0] is field 3 (state)
		if len(f) < 15 {
			continue
		}
		if sess, _ := strconv.Atoi(f[3]); sess != *sid {
			continue
		}
		var ticks int64
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
		ps.Pids = append(ps.Pids, pid)
		ps.CPUSeconds += float64(ticks) / clockTicks
		if status, err := os.ReadFile(d + "/status"); err == nil {
			for _, line := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
					ps.PeakRSSKB += kb
				}
			}
		}
	}
	if *udpPort > 0 {
		for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				fl := strings.Fields(line)
				if len(fl) < 13 {
					continue
				}
				_, hexPort, _ := strings.Cut(fl[1], ":")
				if p, err := strconv.ParseInt(hexPort, 16, 32); err != nil || int(p) != *udpPort {
					continue
				}
				d, _ := strconv.ParseInt(fl[len(fl)-1], 10, 64)
				ps.UDPDrops += d
			}
		}
	}
	writeJSON(*out, ps)
}

// flushMax prints the router's longest StatsD flush so far (seconds), from
// router_flush_duration_max_seconds{plugin="aggregators.statsd",...} on its
// stats_addr; -1 when it is not there.
func flushMax(args []string) {
	fs := flag.NewFlagSet("flushmax", flag.ExitOnError)
	url := fs.String("url", "http://127.0.0.1:8080/metrics", "the router's /metrics")
	fs.Parse(args)
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Println(-1)
		return
	}
	defer resp.Body.Close()
	best := -1.0
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "router_flush_duration_max_seconds{") || !strings.Contains(l, `plugin="aggregators.statsd"`) {
			continue
		}
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil && v > best {
			best = v
		}
	}
	fmt.Println(best)
}

// Result is one run, one line of the results file.
type Result struct {
	SUT          string  `json:"sut"`
	Phase        string  `json:"phase"` // "search" or "round"
	TargetRate   int64   `json:"target_rate"`
	Sent         int64   `json:"metrics_sent"`
	CountsSent   int64   `json:"counts_sent"` // counters + timers
	Counted      float64 `json:"counts_flushed"`
	LossPct      float64 `json:"loss_pct"`
	ShortNames   int     `json:"names_short"` // stream names whose flushed count is below what was sent to them
	OverNames    int     `json:"names_over"`
	SendSeconds  float64 `json:"send_seconds"`
	SendRate     float64 `json:"send_rate"`
	CPUSeconds   float64 `json:"cpu_s"`
	PerCPUSecond float64 `json:"metrics_per_cpu_s"`
	PeakRSSKB    int64   `json:"peak_rss_kb"`
	FlushMaxS    float64 `json:"flush_max_s"`
	Flushes      int     `json:"flushes"`
	SinkLines    int64   `json:"sink_lines"`
	SinkReason   string  `json:"sink_reason"`
	SUTUDPDrops  int64   `json:"sut_udp_drops"`
	HarnessCPU   float64 `json:"harness_cpu_s"`
	SendErrors   int64   `json:"send_errors"`
	Time         string  `json:"time"`
}

const resultHeader = "# sut phase rate sent loss_pct names_short cpu_s metrics_per_cpu_s peak_rss_mib flush_max_s flushes sut_udp_drops sink"

// verify turns one run's files into its result: loss over the counts of
// counters and timers (gauges carry no count), SUT CPU between -proc0 and
// -proc1 (the sending), peak RSS and socket drops from -proc2 (taken after
// the final flush).
func verify(args []string) {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	sut := fs.String("sut", "", "SUT name")
	phase := fs.String("phase", "round", "search or round")
	rate := fs.Int64("rate", 0, "target metrics/s")
	sendPath := fs.String("send", "", "send JSON")
	sinkPath := fs.String("sink", "", "sink JSON")
	p0 := fs.String("proc0", "", "procstat before sending")
	p1 := fs.String("proc1", "", "procstat after sending")
	p2 := fs.String("proc2", "", "procstat after the final flush")
	fm := fs.Float64("flushmax", -1, "the SUT's longest flush in seconds (-1 = unknown)")
	results := fs.String("results", "", "append the result as a JSON line")
	header := fs.Bool("header", false, "print the column header first")
	fs.Parse(args)
	var snd SendResult
	var snk SinkResult
	var s0, s1, s2 ProcStat
	readJSON(*sendPath, &snd)
	readJSON(*sinkPath, &snk)
	readJSON(*p0, &s0)
	readJSON(*p1, &s1)
	readJSON(*p2, &s2)
	r := Result{SUT: *sut, Phase: *phase, TargetRate: *rate, Sent: snd.Metrics, CountsSent: snd.Counters + snd.Timers,
		Counted: snk.CounterSum + snk.TimerSum, SendSeconds: snd.Seconds, SendRate: snd.Rate,
		CPUSeconds: s1.CPUSeconds - s0.CPUSeconds, PeakRSSKB: s2.PeakRSSKB, FlushMaxS: *fm, Flushes: snk.Flushes,
		SinkLines: snk.Lines, SinkReason: snk.Reason, SUTUDPDrops: s2.UDPDrops - s0.UDPDrops,
		HarnessCPU: snd.CPUSecond + snk.CPUSeconds, SendErrors: snd.Errors, Time: time.Now().UTC().Format(time.RFC3339)}
	if r.CountsSent > 0 {
		r.LossPct = 100 * (1 - r.Counted/float64(r.CountsSent))
	}
	for i := 0; i < snd.Names && i < len(snk.CounterSums); i++ {
		var got float64
		switch kindOf(i) {
		case Counter:
			got = snk.CounterSums[i]
		case Timer:
			got = snk.TimerSums[i]
		default:
			continue
		}
		want := float64(sentTo(i, snd.Metrics, snd.Names))
		if got < want {
			r.ShortNames++
		} else if got > want {
			r.OverNames++
		}
	}
	if r.CPUSeconds > 0 {
		delivered := float64(r.Sent) * (1 - max(r.LossPct, 0)/100)
		r.PerCPUSecond = delivered / r.CPUSeconds
	}
	if *header {
		fmt.Println(resultHeader)
	}
	fmt.Printf("%s %s %d %d %.3f %d %.2f %.0f %.1f %.3f %d %d reason=%s,lines=%d,over=%d,harness_cpu=%.2f,send_rate=%.0f\n",
		r.SUT, r.Phase, r.TargetRate, r.Sent, r.LossPct, r.ShortNames, r.CPUSeconds, r.PerCPUSecond,
		float64(r.PeakRSSKB)/1024, r.FlushMaxS, r.Flushes, r.SUTUDPDrops, r.SinkReason, r.SinkLines, r.OverNames,
		r.HarnessCPU, r.SendRate)
	if *results != "" {
		f, err := os.OpenFile(*results, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fatalf("results: %v", err)
		}
		b, _ := json.Marshal(r)
		f.Write(append(b, '\n'))
		f.Close()
	}
}

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

// table prints the medians per SUT of the "round" runs of -in, as a
// Markdown table, the SUTs in the order they first appear; it exits 1 when a
// SUT has fewer than -repeat runs.
func table(args []string) {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	in := fs.String("in", "", "results JSON lines")
	base := fs.String("base", "etsy,telegraf", "SUTs (comma-separated) whose metrics per CPU-second is ratio 1 of a ratio column each")
	repeat := fs.Int("repeat", 5, "runs each SUT must have")
	lossMax := fs.Float64("loss-max", 0.1, "warn about a SUT whose median loss % is not below this")
	want := fs.String("suts", "", "SUTs (comma-separated) that must have -repeat runs, also when they have none")
	fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		fatalf("%v", err)
	}
	var order []string
	runs := map[string][]Result{}
	for _, l := range strings.Split(string(b), "\n") {
		var r Result
		if strings.TrimSpace(l) == "" || json.Unmarshal([]byte(l), &r) != nil || r.Phase != "round" {
			continue
		}
		if _, ok := runs[r.SUT]; !ok {
			order = append(order, r.SUT)
		}
		runs[r.SUT] = append(runs[r.SUT], r)
	}
	col := func(rs []Result, f func(Result) float64) []float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return v
	}
	short := false
	for _, w := range strings.Split(*want, ",") {
		if _, ok := runs[w]; w != "" && !ok {
			fmt.Fprintf(os.Stderr, "w8: %s has 0 of %d runs\n", w, *repeat)
			short = true
		}
	}
	var bases []string // the -base SUTs that ran, with their median
	baseRate := map[string]float64{}
	for _, b := range strings.Split(*base, ",") {
		if rs, ok := runs[b]; ok {
			bases = append(bases, b)
			baseRate[b] = median(col(rs, func(r Result) float64 { return r.PerCPUSecond }))
		}
	}
	head := "| SUT | n | rate (metrics/s) | metrics per CPU-s | min..max | loss % (max) | peak RSS MiB | flush max s |"
	rule := "|---|---|---|---|---|---|---|---|"
	for _, b := range bases {
		head += " ratio vs " + b + " |"
		rule += "---|"
	}
	fmt.Println(head)
	fmt.Println(rule)
	for _, s := range order {
		rs := runs[s]
		pc := col(rs, func(r Result) float64 { return r.PerCPUSecond })
		loss := col(rs, func(r Result) float64 { return r.LossPct })
		flush := "-"
		if fm := col(rs, func(r Result) float64 { return r.FlushMaxS }); median(fm) >= 0 {
			flush = fmt.Sprintf("%.3f", median(fm))
		}
		fmt.Printf("| %s | %d | %d | %.0f | %.0f..%.0f | %.3f (%.3f) | %.0f | %s |", s, len(rs), rs[0].TargetRate,
			median(pc), slices.Min(pc), slices.Max(pc), median(loss), slices.Max(loss),
			median(col(rs, func(r Result) float64 { return float64(r.PeakRSSKB) / 1024 })), flush)
		for _, b := range bases {
			if baseRate[b] > 0 {
				fmt.Printf(" %.2f |", median(pc)/baseRate[b])
			} else {
				fmt.Print(" - |")
			}
		}
		fmt.Println()
		if median(loss) >= *lossMax {
			fmt.Fprintf(os.Stderr, "w8: warning: %s lost %.3f %% (median) at %d metrics/s: not loss-free in the rounds\n", s, median(loss), rs[0].TargetRate)
		}
		if len(rs) < *repeat {
			fmt.Fprintf(os.Stderr, "w8: %s has %d of %d runs\n", s, len(rs), *repeat)
			short = true
		}
	}
	if short {
		os.Exit(1)
	}
}
