package main

import (
	"bytes"
	"errors"
	"flag"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SinkResult is what sink writes: the sums of the flushed counts of the
// stream's counters and timers, per name and in total.
type SinkResult struct {
	Lines        int64     `json:"lines"`
	Bad          int64     `json:"bad"`
	Conns        int64     `json:"conns"`
	Flushes      int       `json:"flushes"` // distinct timestamps
	DistinctName int       `json:"distinct_names"`
	CounterSum   float64   `json:"counter_count_sum"`
	TimerSum     float64   `json:"timer_count_sum"`
	CounterNames int       `json:"counter_names"` // stream names with a count line
	TimerNames   int       `json:"timer_names"`
	CounterSums  []float64 `json:"counter_sums"` // index: name i
	TimerSums    []float64 `json:"timer_sums"`
	FirstNs      int64     `json:"first_ns"`
	LastNs       int64     `json:"last_ns"`
	LastCountNs  int64     `json:"last_count_ns"` // last line that changed a count sum
	Reason       string    `json:"reason"`
	CPUSeconds   float64   `json:"cpu_s"`
}

// pattern is a SUT's name of a stream name's count: prefix + the name (its
// dots written as sep) + suffix, e.g. "stats_counts." + "bench.w8.7" + "".
type pattern struct{ prefix, suffix, stem string }

func newPattern(tmpl, sep string) pattern {
	p, s, ok := strings.Cut(tmpl, "{}")
	if !ok {
		fatalf("sink: pattern %q has no {}", tmpl)
	}
	return pattern{p, s, "bench" + sep + "w8" + sep}
}

// index returns i when name is the pattern's name of bench.w8.<i>.
func (p pattern) index(name []byte) (int, bool) {
	if !bytes.HasPrefix(name, []byte(p.prefix)) || !bytes.HasSuffix(name, []byte(p.suffix)) ||
		len(name) < len(p.prefix)+len(p.suffix)+len(p.stem)+1 {
		return 0, false
	}
	mid := name[len(p.prefix) : len(name)-len(p.suffix)]
	if !bytes.HasPrefix(mid, []byte(p.stem)) {
		return 0, false
	}
	n := 0
	for _, c := range mid[len(p.stem):] {
		if c < '0' || c > '9' || n > 1<<30 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

type sinkState struct {
	mu      sync.Mutex
	r       SinkResult
	sums    map[string]float64
	stamps  map[int64]struct{}
	counter pattern
	timer   pattern
	names   int
	done    bool // the result is written
}

// line takes one "name value timestamp" line; s.mu is held.
func (s *sinkState) line(l []byte, now int64) {
	if s.done {
		return
	}
	s.r.Lines++
	f := bytes.Fields(l)
	if len(f) != 3 {
		s.r.Bad++
		return
	}
	v, err := strconv.ParseFloat(string(f[1]), 64)
	if err != nil {
		s.r.Bad++
		return
	}
	if ts, err := strconv.ParseInt(string(f[2]), 10, 64); err == nil {
		s.stamps[ts] = struct{}{}
	}
	s.sums[string(f[0])] += v
	// the kind of name i tells which pattern applies (Telegraf writes
	// counters and gauges alike: "bench_w8_<i>")
	if i, ok := s.counter.index(f[0]); ok && i < s.names && kindOf(i) == Counter {
		s.r.CounterSums[i] += v
		if v != 0 {
			s.r.LastCountNs = now
		}
	} else if i, ok := s.timer.index(f[0]); ok && i < s.names && kindOf(i) == Timer {
		s.r.TimerSums[i] += v
		if v != 0 {
			s.r.LastCountNs = now
		}
	}
}

func (s *sinkState) conn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 256<<10)
	var carry []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			data := buf[:n]
			now := time.Now().UnixNano()
			s.mu.Lock()
			if s.r.FirstNs == 0 {
				s.r.FirstNs = now
			}
			s.r.LastNs = now
			for {
				k := bytes.IndexByte(data, '\n')
				if k < 0 {
					break
				}
				if len(carry) > 0 {
					carry = append(carry, data[:k]...)
					s.line(carry, now)
					carry = carry[:0]
				} else {
					s.line(data[:k], now)
				}
				data = data[k+1:]
			}
			s.mu.Unlock()
			carry = append(carry, data...)
		}
		if err != nil {
			if len(bytes.TrimSpace(carry)) > 0 {
				s.mu.Lock()
				s.line(carry, time.Now().UnixNano())
				s.mu.Unlock()
			}
			return
		}
	}
}

// result fills in the totals; s.mu is held.
func (s *sinkState) result() SinkResult {
	r := s.r
	r.Flushes = len(s.stamps)
	r.DistinctName = len(s.sums)
	r.CounterSum, r.TimerSum, r.CounterNames, r.TimerNames = 0, 0, 0, 0
	for i := 0; i < s.names; i++ {
		r.CounterSum += r.CounterSums[i]
		r.TimerSum += r.TimerSums[i]
		if r.CounterSums[i] != 0 {
			r.CounterNames++
		}
		if r.TimerSums[i] != 0 {
			r.TimerNames++
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	r.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
	return r
}

// sink accepts Graphite plaintext on -listen and sums every name's values.
// The count lines of the stream's counters (-counter) and timers (-timer)
// are also summed per stream name. SIGUSR1 (the sender is done) starts the
// wait for the final flush: the sink writes -out once no line has changed a
// count for -settle, or -timeout after the signal, and from then on reads
// and discards until SIGTERM (which writes -out if that has not happened).
func sink(args []string) {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:2003", "TCP address")
	out := fs.String("out", "-", "result JSON path")
	ready := fs.String("ready", "", "file created once listening")
	names := fs.Int("names", 100000, "distinct stream names")
	counter := fs.String("counter", "stats_counts.{}", "the SUT's name of a counter's count ({} = the stream name)")
	timer := fs.String("timer", "stats.timers.{}.count", "the SUT's name of a timer's count")
	sep := fs.String("sep", ".", "how the SUT writes the dots of bench.w8.<i>")
	settle := fs.Duration("settle", 3*time.Second, "after SIGUSR1: stop once no count changed for this long")
	timeout := fs.Duration("timeout", time.Minute, "after SIGUSR1: stop after this long regardless")
	fs.Parse(args)

	s := &sinkState{sums: make(map[string]float64, 1<<20), stamps: map[int64]struct{}{},
		counter: newPattern(*counter, *sep), timer: newPattern(*timer, *sep), names: *names}
	s.r.CounterSums = make([]float64, *names)
	s.r.TimerSums = make([]float64, *names)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatalf("sink: %v", err)
	}
	if *ready != "" {
		os.WriteFile(*ready, nil, 0o644)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.r.Conns++
			s.mu.Unlock()
			go s.conn(c)
		}
	}()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	var tick <-chan time.Time
	var since time.Time
	written := false
	for {
		select {
		case g := <-sig:
			if g != syscall.SIGUSR1 {
				if !written {
					s.finish(*out, "signal")
				}
				ln.Close()
				return
			}
			if tick == nil && !written {
				since = time.Now()
				t := time.NewTicker(100 * time.Millisecond)
				tick = t.C
			}
		case now := <-tick:
			s.mu.Lock()
			last := time.Unix(0, s.r.LastCountNs)
			s.mu.Unlock()
			if last.Before(since) {
				last = since
			}
			switch {
			case now.Sub(last) >= *settle:
				s.finish(*out, "settled")
			case now.Sub(since) >= *timeout:
				s.finish(*out, "timeout")
			default:
				continue
			}
			written, tick = true, nil
		}
	}
}

// finish writes the result; the lines that come later (a SUT's flush at
// shutdown) are read and not counted.
func (s *sinkState) finish(out, reason string) {
	s.mu.Lock()
	s.r.Reason = reason
	r := s.result()
	s.done = true
	s.mu.Unlock()
	writeJSON(out, r)
}
