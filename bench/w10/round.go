package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

const clockTicks = 100 // USER_HZ

// cpuOf returns utime+stime of process pid (all its threads), in seconds.
func cpuOf(pid int) (float64, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+k) / clockTicks, nil
}

func peakRSSMiB(pid int) float64 {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return float64(kb) / 1024
		}
	}
	return 0
}

// Result is one round of one SUT.
type Result struct {
	SUT          string  `json:"sut"`
	Lines        int64   `json:"lines"`
	Series       int     `json:"series"`
	CPUSeconds   float64 `json:"cpu_s"`
	PerCPUSecond float64 `json:"samples_per_cpu_s"`
	WallSeconds  float64 `json:"wall_s"` // first line to ingested
	SendSeconds  float64 `json:"send_s"`
	SamplesSeen  int64   `json:"samples_seen"` // router: at the sink; exporter: -1 (not observable)
	SeriesSeen   int     `json:"series_seen"`  // router: distinct at the sink; exporter: in one scrape
	Unmapped     int64   `json:"unmapped"`     // samples (router) or series (exporter) without the rule label
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	OK           bool    `json:"ok"`
}

// sinkCounts reads "samples series requests bad unmapped" from the w10 sink.
func sinkCounts(url string) (samples int64, series int, bad, unmapped int64, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer resp.Body.Close()
	var req int64
	_, err = fmt.Fscan(resp.Body, &samples, &series, &req, &bad, &unmapped)
	return
}

// scrapeSeries counts the series named with prefix in one scrape of url,
// and those of them with a label rule.
func scrapeSeries(url, prefix string) (n, mapped int, _ error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			n++
			if strings.Contains(line, `rule="`) {
				mapped++
			}
		}
	}
	return n, mapped, sc.Err()
}

func round(args []string) {
	fs := flag.NewFlagSet("round", flag.ExitOnError)
	sut := fs.String("sut", "", "SUT name (router | exporter)")
	pid := fs.Int("pid", 0, "the SUT's process id")
	addr := fs.String("addr", "", "the SUT's Graphite TCP address")
	sinkURL := fs.String("sink", "", "router: the w10 sink's URL (done when it has every sample)")
	scrapeURL := fs.String("scrape", "", "exporter: its /metrics URL (done when its CPU stops growing; then one scrape)")
	series := fs.Int("series", 100000, "distinct series")
	rounds := fs.Int("rounds", 20, "passes over the series (lines = series x rounds)")
	stable := fs.Duration("stable", 500*time.Millisecond, "exporter: CPU unchanged for this long = ingested")
	timeout := fs.Duration("timeout", 300*time.Second, "give up after")
	results := fs.String("results", "", "append the result as a JSON line")
	fs.Parse(args)
	if (*sinkURL == "") == (*scrapeURL == "") {
		fatalf("round: exactly one of -sink and -scrape")
	}
	res := Result{SUT: *sut, Series: *series, SamplesSeen: -1}
	conn, err := net.Dial("tcp", *addr)
	if err != nil {
		fatalf("%v", err)
	}
	cpu0, err := cpuOf(*pid)
	if err != nil {
		fatalf("%v", err)
	}
	t0 := time.Now()
	res.Lines, err = writeStream(conn, *series, *rounds, t0.Unix()-int64(*rounds))
	if err != nil {
		fatalf("send: %v", err)
	}
	conn.Close()
	res.SendSeconds = time.Since(t0).Seconds()
	deadline := t0.Add(*timeout)
	var cpu1 float64
	if *sinkURL != "" {
		for {
			n, s, bad, unmapped, err := sinkCounts(*sinkURL)
			res.SamplesSeen, res.SeriesSeen, res.Unmapped = n, s, unmapped
			if err == nil && (n >= res.Lines || bad > 0) {
				cpu1, _ = cpuOf(*pid)
				res.WallSeconds = time.Since(t0).Seconds()
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		res.OK = res.SamplesSeen == res.Lines && res.SeriesSeen == *series && res.Unmapped == 0
	} else {
		last, _ := cpuOf(*pid)
		since := time.Now()
		for time.Since(since) < *stable && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			c, err := cpuOf(*pid)
			if err != nil {
				fatalf("%v", err)
			}
			if c != last {
				last, since = c, time.Now()
			}
		}
		cpu1 = last
		res.WallSeconds = since.Sub(t0).Seconds()
		var mapped int
		res.SeriesSeen, mapped, err = scrapeSeries(*scrapeURL, "w10_")
		if err != nil {
			fatalf("scrape: %v", err)
		}
		res.Unmapped = int64(res.SeriesSeen - mapped)
		res.OK = res.SeriesSeen == *series && res.Unmapped == 0
	}
	res.CPUSeconds = cpu1 - cpu0
	if res.CPUSeconds > 0 {
		res.PerCPUSecond = float64(res.Lines) / res.CPUSeconds
	}
	res.PeakRSSMiB = peakRSSMiB(*pid)
	fmt.Printf("%s lines=%d cpu_s=%.2f samples_per_cpu_s=%.0f wall_s=%.2f send_s=%.2f samples_seen=%d series_seen=%d unmapped=%d peak_rss_mib=%.0f ok=%v\n",
		res.SUT, res.Lines, res.CPUSeconds, res.PerCPUSecond, res.WallSeconds, res.SendSeconds, res.SamplesSeen, res.SeriesSeen, res.Unmapped, res.PeakRSSMiB, res.OK)
	if *results != "" {
		appendJSON(*results, res)
	}
	if !res.OK {
		os.Exit(1)
	}
}
