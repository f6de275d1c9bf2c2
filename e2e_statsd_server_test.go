package main

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/etsytest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// The StatsD server's differential test: the same datagrams go to Etsy
// statsd 0.9.0's daemon (node stats.js, graphite backend) and to a router
// (inputs.statsd -> aggregators.statsd -> outputs.graphite), each right
// after both have flushed; the next flush of each must hold the same
// (name, value) pairs. Values are compared within 1e-9 relative. Left out:
// timestamps (the two flush on their own clocks), the values of
// processing_time and timestamp_lag (they measure the daemon; both must be
// there), Etsy's graphiteStats.* lines (its backend's own statistics) and
// the lines whose value is NaN (Etsy writes them, carbon drops them, the
// router does not emit them: they are counted in not_numbers_total).

// serverLines covers every type, sample rates, gauge deltas, sets, DogStatsD
// tags, multi-value lines, sanitizing and bad lines.
var serverLines = []string{
	"c.basic:1|c", "c.basic:2|c", "c.sampled:1|c|@0.1", "c.frac:0.3|c|@0.7", "c.neg:-5|c", "c.float:1.5e3|c",
	"c.multi:1|c:2|c|@0.5:3|c", "c.tagged:1|c|#env:prod,dc:eu", "c.tag2:1|c|#a;b:c:d,e",
	"c.white space/slash:1|c", "c.bad!chars:1|c", "c.unknowntype:4|x", "c.tiny:0.0000001|c", "c.huge:1e21|c",
	"c.extrafields:2|c|@0.5|junk", "c.\u00fcn\u00efcode:1|c",
	"nocolon", "bad:abc|c", "bad:1|c|@-0.5", "bad:1|c|0.5", "bad:-1|ms", "bad:x|g", "bad:1", "bad:|c", "bad:NaN|c",
	"t.a:100|ms", "t.a:200|ms", "t.a:50|ms|@0.5", "t.a:1.5|ms", "t.a:0|ms",
	"t.many:5|ms:3|ms:9|ms:1|ms:7|ms:2|ms:8|ms:4|ms:6|ms:10|ms:11|ms:12|ms:13|ms:14|ms:15|ms:16|ms:17|ms:18|ms:19|ms:20|ms",
	"t.one:7|ms", "t.f:0.1|ms:0.2|ms:0.7|ms:0.3|ms", "t.tagged:5|ms|#k:v", "t.big:123456789012|ms:0.000001|ms",
	"g.a:5|g", "g.a:+3|g", "g.a:-10|g", "g.b:-4|g", "g.zero:0|g", "g.zero:+5|g", "g.frac:0.1|g", "g.frac:+0.2|g",
	"g.tagged:7|g|#host:a",
	"s.a:x|s", "s.a:y|s", "s.a:x|s", "s.a:0|s", "s.b:1|s|@0.5", "s.c:a b|s", "s.tagged:u1|s|#k:v",
	"dup:1|c", "dup:2|ms", "dup:3|g", "dup:z|s",
	"m.p1:1|c\nm.p2:2|c\n\nm.p3:3|ms\n",
}

// serverLines2 touches some keys again: the flush after it shows the state
// kept between flushes (gauges kept, counters zeroed, timers and sets
// emptied).
var serverLines2 = []string{"c.basic:5|c", "g.a:+1|g", "t.a:10|ms", "s.a:q|s", "g.new:1|g", "t.new:3|ms:4|ms"}

func TestStatsDServerEtsyDifferential(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	skipShort(t)
	cases := []struct {
		name, js, toml string
	}{
		{"legacy", `percentThreshold: [90, 99.9]`, `percent_threshold = [90, 99.9]`},
		{"namespaced", `percentThreshold: [50, -10], prefixStats: "mystatsd",
  graphite: {legacyNamespace: false, globalPrefix: "glob", prefixCounter: "cnt", prefixTimer: "tm",
  prefixGauge: "gg", prefixSet: "st", globalSuffix: "sfx"}`,
			`percent_threshold = [50, -10]
  prefix_stats = "mystatsd"
  legacy_namespace = false
  global_prefix = "glob"
  prefix_counter = "cnt"
  prefix_timer = "tm"
  prefix_gauge = "gg"
  prefix_set = "st"
  global_suffix = "sfx"`},
	}
	total := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for attempt := 1; ; attempt++ {
				n, split := runServerDifferential(t, dir, tc.js, tc.toml)
				if !split {
					total += n
					return
				}
				if attempt == 3 {
					t.Fatal("a flush split the input three times")
				}
				t.Log("a flush split the input; retrying")
			}
		})
	}
	t.Logf("%d (name, value) pairs compared over both cases", total)
}

// runServerDifferential runs one Etsy daemon and one router and compares
// three flushes of each; split reports a batch that did not arrive within
// one flush on both sides (the caller retries).
func runServerDifferential(t *testing.T, dir, js, toml string) (compared int, split bool) {
	etsy := etsytest.NewFlushSink(t)
	etsyPort := freeUDPPort(t)
	etsytest.Daemon(t, dir, fmt.Sprintf(`{ port: %d, address: "127.0.0.1", mgmt_port: %d, mgmt_address: "127.0.0.1",
  flushInterval: 2000, backends: ["./backends/graphite"], graphiteHost: "127.0.0.1", graphitePort: %d,
  automaticConfigReload: false, %s }`, etsyPort, freeTCPPort(t), etsy.Port, js))

	rsink := newFlushLineSink(t)
	in, stats := freeUDPAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "5s"
[[inputs.statsd]]
  listen = %q
  read_buffer = 4194304
[[aggregators.statsd]]
  flush_interval = "2s"
  timer_types = ["ms"]
  %s
[[outputs.graphite]]
  address = %q
`, stats, in, toml, rsink.addr))

	toEtsy := dialUDP(t, fmt.Sprintf("127.0.0.1:%d", etsyPort))
	toRouter := dialUDP(t, in)
	next := func(what string, ch chan []byte) []byte {
		select {
		case b := <-ch:
			return b
		case <-time.After(10 * time.Second):
			t.Fatalf("no flush from %s", what)
			return nil
		}
	}
	// both have flushed: a batch sent now is in the next flush of each
	// (their schedules differ by 0 or 1 s of a 2 s interval)
	next("Etsy statsd", etsy.Flushes)
	next("the router", rsink.flushes)
	batches := [][]string{serverLines, serverLines2, nil}
	for i, batch := range batches {
		for _, p := range batch {
			if _, err := toEtsy.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
			if _, err := toRouter.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		e := parseFlush(t, next("Etsy statsd", etsy.Flushes))
		r := parseFlush(t, next("the router", rsink.flushes))
		packets := "stats_counts.statsd.packets_received"
		if strings.Contains(js, "prefixStats") {
			packets = "glob.cnt.mystatsd.packets_received.count.sfx"
		}
		if e[packets] != float64(len(batch)) || r[packets] != float64(len(batch)) {
			return 0, true
		}
		compared += compareFlushes(t, fmt.Sprintf("flush %d", i+1), e, r)
	}
	return compared, false
}

// parseFlush reads a flush's lines into name -> value, without the lines
// the test leaves out (see above).
func parseFlush(t *testing.T, b []byte) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad line %q", l)
		}
		if strings.Contains(f[0], ".graphiteStats.") || f[1] == "NaN" {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("bad value in %q", l)
		}
		if strings.Contains(f[0], ".processing_time") || strings.Contains(f[0], ".timestamp_lag") {
			v = 0
		}
		m[f[0]] = v
	}
	return m
}

func compareFlushes(t *testing.T, what string, etsy, router map[string]float64) int {
	t.Helper()
	names := make([]string, 0, len(etsy))
	for n := range etsy {
		names = append(names, n)
	}
	slices.Sort(names)
	same := 0
	for _, n := range names {
		want := etsy[n]
		got, ok := router[n]
		switch {
		case !ok:
			t.Errorf("%s: Etsy wrote %s %v, the router did not", what, n, want)
		case !(got == want || math.Abs(got-want) <= 1e-9*math.Max(math.Abs(got), math.Abs(want))):
			t.Errorf("%s: %s: Etsy %v, router %v", what, n, want, got)
		default:
			same++
		}
	}
	for n, v := range router {
		if _, ok := etsy[n]; !ok {
			t.Errorf("%s: the router wrote %s %v, Etsy did not", what, n, v)
		}
	}
	t.Logf("%s: %d (name, value) pairs identical", what, same)
	return same
}

// flushLineSink is a Graphite TCP sink that cuts what it reads into flushes
// at each processing_time line (the last line of an Etsy flush).
type flushLineSink struct {
	addr    string
	flushes chan []byte
}

func newFlushLineSink(t *testing.T) *flushLineSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &flushLineSink{addr: ln.Addr().String(), flushes: make(chan []byte, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				var cur []byte
				for sc.Scan() {
					cur = append(cur, sc.Bytes()...)
					cur = append(cur, '\n')
					if name, _, _ := strings.Cut(sc.Text(), " "); strings.Contains(name, ".processing_time") {
						s.flushes <- cur
						cur = nil
					}
				}
			}()
		}
	}()
	return s
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeUDPAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t)) }

func freeTCPPort(t *testing.T) int {
	t.Helper()
	a := plugintest.FreeAddr(t)
	p, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
	return p
}

func dialUDP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestStatsDServerInputsAndShutdown: the server aggregates what every input
// gives it (StatsD over TCP and UDP, http_json), Graphite lines pass by
// untouched, and the last values, sent just before the router stops, come
// out in the final flush at shutdown.
func TestStatsDServerInputsAndShutdown(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	tcpIn, udpIn, httpIn, gIn, stats := plugintest.FreeAddr(t), freeUDPAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	p := startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "5s"
[[inputs.statsd]]
  listen = %q
  protocol = "tcp"
[[inputs.statsd]]
  listen = %q
[[inputs.http_json]]
  listen = %q
[[inputs.graphite]]
  listen = %q
[[aggregators.statsd]]
  flush_interval = "1s"
[[outputs.graphite]]
  address = %q
`, stats, tcpIn, udpIn, httpIn, gIn, sink.Addr))
	waitListen(t, tcpIn)
	waitListen(t, httpIn)
	waitListen(t, gIn)
	sendLines(t, tcpIn, []string{"srv.tcp:2|c", "srv.tcp:4|c", "srv.lat:10|ms"}, 1)
	udp := dialUDP(t, udpIn)
	for range 3 {
		if _, err := udp.Write([]byte("srv.udp:1|c\nsrv.lat:20|ms")); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		res, err := http.Post("http://"+httpIn+"/count/srv.http", "application/x-www-form-urlencoded", strings.NewReader("value=5"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("http_json: %d", res.StatusCode)
		}
	}
	sendLines(t, gIn, []string{"graphite.untouched 7 1700000000"}, 1)
	waitCounter(t, stats, series("received_total", "aggregators.statsd", "statsd-1"), 3+6+2, 10*time.Second)
	// the last ones: in the final flush
	sendLines(t, tcpIn, []string{"srv.tcp:100|c"}, 1)
	waitCounter(t, stats, series("received_total", "aggregators.statsd", "statsd-1"), 3+6+2+1, 10*time.Second)
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var sums map[string]float64
	var lat float64
	var untouched bool
	read := func() bool {
		sums, lat, untouched = map[string]float64{}, 0, false
		for _, l := range sink.Lines() {
			f := strings.Fields(l)
			if len(f) != 3 {
				t.Fatalf("bad line %q", l)
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "stats_counts.srv.tcp", "stats_counts.srv.udp", "stats_counts.srv.http":
				sums[f[0]] += v
			case "stats.timers.srv.lat.count":
				lat += v
			case "graphite.untouched":
				untouched = l == "graphite.untouched 7 1700000000"
			}
		}
		return sums["stats_counts.srv.tcp"] == 106 && untouched
	}
	waitFor(5*time.Second, read) // the sink reads what the router wrote before it stopped
	if sums["stats_counts.srv.tcp"] != 106 || sums["stats_counts.srv.udp"] != 3 || sums["stats_counts.srv.http"] != 10 || lat != 4 {
		t.Fatalf("sums %v, timer count %v: want tcp 106, udp 3, http 10, 4 timer values", sums, lat)
	}
	if !untouched {
		t.Fatal("the Graphite line did not pass untouched")
	}
	if !strings.Contains(p.out.String(), `"message":"aggregator summary"`) {
		t.Fatal("no aggregator summary at shutdown")
	}
}

// TestSumCountersIntoEtsy: a proxy router with sum_counters in front of
// Etsy statsd's daemon: Etsy's stats_counts add up to what the clients
// sent (sample rates applied), from far fewer lines than were sent, and the
// router counts the lines it merged away.
func TestSumCountersIntoEtsy(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	etsy := etsytest.NewFlushSink(t)
	etsyPort := freeUDPPort(t)
	etsytest.Daemon(t, dir, fmt.Sprintf(`{ port: %d, address: "127.0.0.1", mgmt_port: %d, mgmt_address: "127.0.0.1",
  flushInterval: 1000, backends: ["./backends/graphite"], graphiteHost: "127.0.0.1", graphitePort: %d }`,
		etsyPort, freeTCPPort(t), etsy.Port))
	in, stats := freeUDPAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.statsd]]
  listen = %q
  read_buffer = 4194304
[[outputs.statsd]]
  address = "127.0.0.1:%d"
  sum_counters = true
  flush_interval = "500ms"
  batch_size = 100000
`, stats, in, etsyPort))
	// the first flush: Etsy is up
	select {
	case <-etsy.Flushes:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush from Etsy statsd")
	}
	c := dialUDP(t, in)
	want := map[string]float64{}
	sent := 0
	for i := range 2000 {
		name := fmt.Sprintf("sum.c%d", i%20)
		line := name + ":3|c"
		want["stats_counts."+name] += 3
		if i%4 == 0 {
			line = name + ":1|c|@0.25"
			want["stats_counts."+name] += 4 - 3
		}
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	got := map[string]float64{}
	received := 0.0
	deadline := time.After(15 * time.Second)
	for !maps.Equal(got, want) {
		select {
		case b := <-etsy.Flushes:
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				f := strings.Fields(l)
				v, _ := strconv.ParseFloat(f[1], 64)
				if strings.HasPrefix(f[0], "stats_counts.sum.") {
					got[f[0]] += v
				}
				if f[0] == "stats_counts.statsd.metrics_received" {
					received += v
				}
			}
		case <-deadline:
			t.Fatalf("Etsy's counts %v, want %v", got, want)
		}
	}
	summed := scrape(t, stats)[series("counters_summed_total", "outputs.statsd", "statsd-1")]
	t.Logf("%d lines sent, Etsy received %v, the router merged %v away", sent, received, summed)
	if received > 200 || summed == 0 || received+summed != float64(sent) {
		t.Fatalf("Etsy received %v lines and the router merged %v of %d", received, summed, sent)
	}
}
