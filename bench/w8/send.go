package main

import (
	"flag"
	"net"
	"strconv"
	"syscall"
	"time"
)

// SendResult is what send prints: the totals the sink's sums are checked
// against.
type SendResult struct {
	Metrics   int64   `json:"metrics"`
	Counters  int64   `json:"counters"`
	Timers    int64   `json:"timers"`
	Gauges    int64   `json:"gauges"`
	Datagrams int64   `json:"datagrams"`
	Names     int     `json:"names"`
	Per       int     `json:"per_datagram"`
	PPS       int     `json:"pps"`
	Errors    int64   `json:"send_errors"`
	StartNs   int64   `json:"start_ns"`
	EndNs     int64   `json:"end_ns"`
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"metrics_per_s"`
	CPUSecond float64 `json:"cpu_s"`
}

// send writes -metrics StatsD lines to -addr over UDP, -per lines to a
// datagram, -pps datagrams per second (0 = as fast as the socket takes them).
// Metric j is name i = j % names: counters "bench.w8.<i>:1|c", timers
// "bench.w8.<i>:<v>|ms" (v = j*7919 mod 1000), gauges "bench.w8.<i>:<j mod 1000>|g".
func send(args []string) {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8125", "StatsD UDP address")
	metrics := fs.Int64("metrics", 1000000, "metrics to send")
	names := fs.Int("names", 100000, "distinct names")
	per := fs.Int("per", 1, "metrics per datagram")
	pps := fs.Int("pps", 0, "datagrams per second (0 = unpaced)")
	out := fs.String("out", "-", "result JSON path")
	fs.Parse(args)
	if *per < 1 || *names < 1 {
		fatalf("send: -per and -names must be positive")
	}
	c, err := net.Dial("udp", *addr)
	if err != nil {
		fatalf("send: %v", err)
	}
	defer c.Close()
	r := SendResult{Names: *names, Per: *per, PPS: *pps}
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)

	// paced in slices of 0.5 ms: short bursts, so the receiver's socket
	// buffer sees an even stream
	chunk := int64(1)
	if *pps > 2000 {
		chunk = int64(*pps / 2000)
	}
	buf := make([]byte, 0, 64**per)
	start := time.Now()
	r.StartNs = start.UnixNano()
	var j int64
	for j < *metrics {
		for k := int64(0); k < chunk && j < *metrics; k++ {
			buf = buf[:0]
			for m := 0; m < *per && j < *metrics; m++ {
				if m > 0 {
					buf = append(buf, '\n')
				}
				i := int(j % int64(*names))
				buf = append(buf, "bench.w8."...)
				buf = strconv.AppendInt(buf, int64(i), 10)
				buf = append(buf, ':')
				switch kindOf(i) {
				case Counter:
					buf = append(buf, "1|c"...)
					r.Counters++
				case Timer:
					buf = strconv.AppendInt(buf, j*7919%1000, 10)
					buf = append(buf, "|ms"...)
					r.Timers++
				case Gauge:
					buf = strconv.AppendInt(buf, j%1000, 10)
					buf = append(buf, "|g"...)
					r.Gauges++
				}
				j++
			}
			if _, err := c.Write(buf); err != nil {
				r.Errors++ // ECONNREFUSED: nothing listens (yet); the datagram is lost
			}
			r.Datagrams++
		}
		if *pps > 0 {
			due := start.Add(time.Duration(float64(r.Datagrams) / float64(*pps) * 1e9))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
	}
	end := time.Now()
	r.Metrics = j
	r.EndNs = end.UnixNano()
	r.Seconds = end.Sub(start).Seconds()
	if r.Seconds > 0 {
		r.Rate = float64(r.Metrics) / r.Seconds
	}
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	r.CPUSecond = tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	writeJSON(*out, r)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
