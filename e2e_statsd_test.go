package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// statsdLine is metric i of the StatsD e2e tests: the key is "e2e.sd.<i>",
// and the forms vary (counters with a rate, timers, gauge deltas, sets,
// DogStatsD tags, Influx-style tags in the key).
func statsdLine(i int) string {
	switch i % 6 {
	case 0:
		return fmt.Sprintf("e2e.sd.%d:%d|c", i, i)
	case 1:
		return fmt.Sprintf("e2e.sd.%d:%d.25|ms|@0.1", i, i)
	case 2:
		return fmt.Sprintf("e2e.sd.%d:+%d|g", i, i)
	case 3:
		return fmt.Sprintf("e2e.sd.%d:user%d|s", i, i)
	case 4:
		return fmt.Sprintf("e2e.sd.%d:1|d|#env:e2e,bare", i)
	}
	return fmt.Sprintf("e2e.sd.%d,host=h%d:-1|g", i, i%7)
}

// statsdKey is the hash key (the text before the first ':') of statsdLine(i).
func statsdKey(i int) string {
	l := statsdLine(i)
	return l[:strings.IndexByte(l, ':')]
}

// statsdDatagrams packs statsdLine(from..to-1) into datagrams of at most
// size bytes, as a client library would.
func statsdDatagrams(from, to, size int) [][]byte {
	var out [][]byte
	var b []byte
	for i := from; i < to; i++ {
		l := statsdLine(i)
		if len(b) > 0 && len(b)+1+len(l) > size {
			out = append(out, b)
			b = nil
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, l...)
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// udpStatsdSink is a StatsD backend on 127.0.0.1: a UDP socket with a large
// receive buffer that checks every line it gets against statsdLine, counts
// each index, and an admin TCP port answering "health" with its state.
type udpStatsdSink struct {
	Addr, Admin string
	conn        *net.UDPConn
	adminLn     net.Listener
	health      atomic.Value // "up" or "down"

	mu     sync.Mutex
	counts []uint8 // per metric index
	total  atomic.Int64
	bad    atomic.Int64 // lines not byte-identical to what was sent
	badEx  atomic.Value
	wg     sync.WaitGroup
}

func newStatsdSink(t *testing.T, n int) *udpStatsdSink {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(32 << 20)
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { // as root: past net.core.rmem_max
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 32<<20)
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &udpStatsdSink{Addr: c.LocalAddr().String(), Admin: ln.Addr().String(), conn: c, adminLn: ln, counts: make([]uint8, n)}
	s.health.Store("up")
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveAdmin()
	t.Cleanup(func() {
		c.Close()
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *udpStatsdSink) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		for _, l := range bytes.Split(buf[:n], []byte{'\n'}) {
			s.line(l)
		}
		s.mu.Unlock()
	}
}

func (s *udpStatsdSink) line(l []byte) {
	rest, ok := bytes.CutPrefix(l, []byte("e2e.sd."))
	end := bytes.IndexAny(rest, ",:")
	var i int
	var err error
	if ok && end > 0 {
		i, err = strconv.Atoi(string(rest[:end]))
	}
	if !ok || end <= 0 || err != nil || i >= len(s.counts) || statsdLine(i) != string(l) {
		s.bad.Add(1)
		s.badEx.Store(string(l))
		return
	}
	s.counts[i]++
	s.total.Add(1)
}

func (s *udpStatsdSink) serveAdmin() {
	defer s.wg.Done()
	serveHealth(s.adminLn, &s.health)
}

// serveHealth answers Etsy's health check on ln ("health" ->
// "health: <state>") until ln is closed; state holds "up" or "down".
func serveHealth(ln net.Listener, state *atomic.Value) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if l, err := bufio.NewReader(c).ReadString('\n'); err == nil && strings.TrimSpace(l) == "health" {
				fmt.Fprintf(c, "health: %s\n", state.Load())
			}
		})
	}
}

// count returns how often metric i arrived.
func (s *udpStatsdSink) count(i int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.counts[i])
}

func (s *udpStatsdSink) member() hashring.Member {
	h, p, _ := net.SplitHostPort(s.Addr)
	return hashring.Member{Host: h, Port: p}
}

// golden returns, for each index in [from, to), the sink Etsy's ring over
// sinks names (node hashring 3.2.0 = package hashring's statsd ring).
func golden(t *testing.T, sinks []*udpStatsdSink, from, to int) []int {
	t.Helper()
	members := make([]hashring.Member, len(sinks))
	for i, s := range sinks {
		members[i] = s.member()
	}
	r, err := hashring.NewStatsd(members)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, to-from)
	var dst [1]int
	for i := from; i < to; i++ {
		out[i-from] = r.Lookup([]byte(statsdKey(i)), 1, nil, dst[:0])[0]
	}
	return out
}

func sinksTotal(sinks []*udpStatsdSink) int {
	n := 0
	for _, s := range sinks {
		n += int(s.total.Load())
	}
	return n
}

// sendStatsd sends datagrams to addr, keeping at most window metrics in
// flight (sent and not yet at a sink), so that the test measures placement
// and loss, not the size of loopback buffers. A stall of 3 s moves on (what
// is missing then shows as loss).
func sendStatsd(t *testing.T, addr string, grams [][]byte, perGram float64, sinks []*udpStatsdSink, base, window int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0.0
	for _, g := range grams {
		stall := time.Now().Add(3 * time.Second)
		for int(sent)-(sinksTotal(sinks)-base) > window && time.Now().Before(stall) {
			time.Sleep(200 * time.Microsecond)
		}
		if _, err := c.Write(g); err != nil {
			t.Fatal(err)
		}
		sent += perGram
	}
}

// waitTotal waits until the sinks got want metrics in all, or nothing
// arrived for 3 s.
func waitTotal(sinks []*udpStatsdSink, want int) int {
	last, lastAt := -1, time.Now()
	for {
		n := sinksTotal(sinks)
		if n >= want {
			return n
		}
		if n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > 3*time.Second {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statsdProxyConfig(stats, in, interval string, sinks []*udpStatsdSink) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
[agent]
  stats_addr = %q
[[inputs.statsd]]
  listen = %q
  read_buffer = 8388608
[[outputs.consistent_hash]]
  id = "sd"
  hash = "statsd"
  on_down = "rehash"
`, stats, in)
	for _, s := range sinks {
		fmt.Fprintf(&b, "  [[outputs.consistent_hash.to.statsd]]\n    address = %q\n    admin = %q\n    check_interval = %q\n", s.Addr, s.Admin, interval)
	}
	return b.String()
}

// waitUDPInput waits until the router's statsd input has its socket.
func waitUDPInput(t *testing.T, stats string) {
	t.Helper()
	waitListen(t, stats)
	if !waitFor(10*time.Second, func() bool { return scrape(t, stats)[series("receive_buffer_bytes", "inputs.statsd", "statsd-1")] > 0 }) {
		t.Fatal("inputs.statsd did not listen")
	}
}

// checkPlacementStatsd asserts that metrics [from, to) each arrived exactly
// once, byte for byte, at the sink want names, and returns how many arrived.
func checkPlacementStatsd(t *testing.T, sinks []*udpStatsdSink, want []int, from, to int) int {
	t.Helper()
	arrived, misplaced, dups := 0, 0, 0
	for i := from; i < to; i++ {
		for k, s := range sinks {
			c := s.count(i)
			if c == 0 {
				continue
			}
			arrived++
			if c > 1 {
				dups++
			}
			if k != want[i-from] {
				if misplaced == 0 {
					t.Errorf("%s arrived at sink %d, the golden ring names sink %d", statsdKey(i), k, want[i-from])
				}
				misplaced++
			}
		}
	}
	for k, s := range sinks {
		if b := s.bad.Load(); b > 0 {
			t.Errorf("sink %d: %d lines not byte-identical to what was sent, e.g. %q", k, b, s.badEx.Load())
		}
	}
	if misplaced > 0 || dups > 0 {
		t.Errorf("metrics %d..%d: %d misplaced, %d duplicated", from, to, misplaced, dups)
	}
	return arrived
}

// TestStatsdProxyPlacement: 1M metrics in ~1400-byte datagrams through
// inputs.statsd and the Etsy ring to 3 UDP backends: each metric arrives once,
// byte for byte, at the backend node hashring names; loss is reported.
func TestStatsdProxyPlacement(t *testing.T) {
	const n = 1_000_000
	sinks := []*udpStatsdSink{newStatsdSink(t, n), newStatsdSink(t, n), newStatsdSink(t, n)}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	p := startRouter(t, statsdProxyConfig(stats, in, "10s", sinks))
	waitUDPInput(t, stats)
	want := golden(t, sinks, 0, n)
	grams := statsdDatagrams(0, n, 1400)
	start := time.Now()
	sendStatsd(t, in, grams, float64(n)/float64(len(grams)), sinks, 0, 100_000)
	got := waitTotal(sinks, n)
	elapsed := time.Since(start)
	arrived := checkPlacementStatsd(t, sinks, want, 0, n)
	m := scrape(t, stats)
	loss := 100 * float64(n-arrived) / n
	t.Logf("%d metrics in %d datagrams: %d arrived (loss %.4f %%) in %v (%.0f metrics/s); kernel receive buffer %v bytes",
		n, len(grams), got, loss, elapsed.Round(time.Millisecond), float64(got)/elapsed.Seconds(),
		m[series("receive_buffer_bytes", "inputs.statsd", "statsd-1")])
	per := make([]int, len(sinks))
	for _, w := range want {
		per[w]++
	}
	for k, s := range sinks {
		t.Logf("sink %d: %d metrics (%.1f %%; ring share %.1f %%), %v datagrams sent to it", k, s.total.Load(),
			100*float64(s.total.Load())/n, 100*float64(per[k])/n, m[series("datagrams_total", "outputs.statsd", fmt.Sprintf("sd/statsd-%d", k+1))])
	}
	if arrived != n {
		t.Errorf("loss: %d of %d metrics did not arrive", n-arrived, n)
	}
	if r := m[series("received_total", "inputs.statsd", "statsd-1")]; int(r) != got {
		t.Errorf("input received_total = %v, sinks got %d", r, got)
	}
	if d := m[series("datagrams_total", "inputs.statsd", "statsd-1")]; int(d) != len(grams) {
		t.Errorf("input datagrams_total = %v, sent %d", d, len(grams))
	}
	if pe := m[series("parse_errors_total", "inputs.statsd", "statsd-1")]; pe != 0 {
		t.Errorf("parse_errors_total = %v", pe)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestStatsdHealthDownAndUp: a backend whose admin port answers
// "health: down" gets nothing after the next check (its metrics go where the
// ring of the live backends puts them), and its share again after
// "health: up".
func TestStatsdHealthDownAndUp(t *testing.T) {
	const phase = 30_000
	sinks := []*udpStatsdSink{newStatsdSink(t, 3*phase), newStatsdSink(t, 3*phase), newStatsdSink(t, 3*phase)}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, statsdProxyConfig(stats, in, "200ms", sinks))
	waitUDPInput(t, stats)
	healthy := func(k int) float64 {
		return scrape(t, stats)[series("healthy", "outputs.statsd", fmt.Sprintf("sd/statsd-%d", k+1))]
	}
	waitHealthy := func(k int, want float64) {
		t.Helper()
		if !waitFor(10*time.Second, func() bool { return healthy(k) == want }) {
			t.Fatalf("sink %d: healthy stayed %v", k, healthy(k))
		}
	}
	run := func(from int, ring []*udpStatsdSink, idx []int) {
		t.Helper()
		base := sinksTotal(sinks)
		grams := statsdDatagrams(from, from+phase, 1400)
		sendStatsd(t, in, grams, float64(phase)/float64(len(grams)), sinks, base, 50_000)
		if got := waitTotal(sinks, base+phase); got != base+phase {
			t.Fatalf("metrics %d..%d: %d of %d arrived", from, from+phase, got-base, phase)
		}
		g := golden(t, ring, from, from+phase)
		for i := range g {
			g[i] = idx[g[i]] // ring member -> sink index
		}
		checkPlacementStatsd(t, sinks, g, from, from+phase)
	}
	// 1: all up
	run(0, sinks, []int{0, 1, 2})
	b0 := sinks[1].total.Load()
	// 2: b says down; after the next check it leaves the ring
	sinks[1].health.Store("down")
	waitHealthy(1, 0)
	run(phase, []*udpStatsdSink{sinks[0], sinks[2]}, []int{0, 2})
	if got := sinks[1].total.Load(); got != b0 {
		t.Fatalf("the down backend got %d metrics", got-b0)
	}
	m := scrape(t, stats)
	if c := m[series("health_changes_total", "outputs.statsd", "sd/statsd-2")]; c != 1 {
		t.Errorf("health_changes_total = %v, want 1", c)
	}
	if r := m[series("rehashed_total", "outputs.consistent_hash", "sd")]; r == 0 {
		t.Error("rehashed_total = 0 while a node was down")
	}
	// 3: b is up again and gets its share of the full ring
	sinks[1].health.Store("up")
	waitHealthy(1, 1)
	run(2*phase, sinks, []int{0, 1, 2})
	if got := sinks[1].total.Load(); got == b0 {
		t.Fatal("the backend that came back got nothing")
	}
}

// TestStatsdManagement: the management interface of a StatsD proxy config:
// ping, status listing the backends, and health down/up driving /healthz.
func TestStatsdManagement(t *testing.T) {
	sinks := []*udpStatsdSink{newStatsdSink(t, 10), newStatsdSink(t, 10)}
	in, stats, mgmt := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfg := statsdProxyConfig(stats, in, "10s", sinks)
	cfg = strings.Replace(cfg, "[agent]\n", fmt.Sprintf("[agent]\n  management_addr = %q\n", mgmt), 1)
	startRouter(t, cfg)
	waitUDPInput(t, stats)
	c := plugintest.Dial(t, mgmt, 10*time.Second)
	defer c.Close()
	r := bufio.NewReader(c)
	ask := func(cmd string, lines int) []string {
		t.Helper()
		if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
			t.Fatal(err)
		}
		var out []string
		for range lines {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v (after %q)", cmd, err, out)
			}
			out = append(out, strings.TrimRight(l, "\n"))
		}
		return out
	}
	healthz := func() int {
		resp, err := http.Get("http://" + stats + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ask("ping", 1); got[0] != "pong" {
		t.Fatalf("ping: %q", got)
	}
	// uptime, nodes, nodes_down, one line per output
	st := ask("status", 3+len(sinks))
	if !strings.HasPrefix(st[0], "uptime: ") || st[1] != "nodes: "+sinks[0].Addr+" "+sinks[1].Addr || st[2] != "nodes_down: " {
		t.Fatalf("status: %q", st)
	}
	if code := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz = %d before draining", code)
	}
	if got := ask("health down", 1); got[0] != "health: down" {
		t.Fatalf("health down: %q", got)
	}
	if code := healthz(); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz = %d after health down, want 503", code)
	}
	if got := ask("health up", 1); got[0] != "health: up" {
		t.Fatalf("health up: %q", got)
	}
	if code := healthz(); code != http.StatusOK {
		t.Fatalf("/healthz = %d after health up", code)
	}
	if got := ask("stats", 2); !strings.HasPrefix(got[1], "packets_received: ") {
		t.Fatalf("stats: %q", got)
	}
}
