package main

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/etsytest"

	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// flapSink is a StatsD backend on a fixed UDP address of 127.0.0.1 that
// records where each line arrived, with an admin TCP port answering
// "health" with its state.
type flapSink struct {
	Addr, Admin string
	idx         int
	health      atomic.Value // "up" or "down"
	conn        *net.UDPConn
	ln          net.Listener
	wg          sync.WaitGroup
	seen        *flapSeen
}

// flapSeen records at which sink each line arrived.
type flapSeen struct {
	mu sync.Mutex
	at map[string]int
}

func (s *flapSeen) where(line string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.at[line]
	return k, ok
}

// newFlapSink listens on UDP addr; it returns nil if addr is taken.
func newFlapSink(t *testing.T, addr string, idx int, seen *flapSeen) *flapSink {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	s := &flapSink{Addr: addr, Admin: ln.Addr().String(), idx: idx, conn: c, ln: ln, seen: seen}
	s.health.Store("up")
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveAdmin()
	t.Cleanup(s.close)
	return s
}

func (s *flapSink) close() {
	s.conn.Close()
	s.ln.Close()
	s.wg.Wait()
}

func (s *flapSink) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		s.seen.mu.Lock()
		for _, l := range bytes.Split(buf[:n], []byte{'\n'}) {
			if len(l) > 0 {
				s.seen.at[string(l)] = s.idx
			}
		}
		s.seen.mu.Unlock()
	}
}

func (s *flapSink) serveAdmin() {
	defer s.wg.Done()
	serveHealth(s.ln, &s.health)
}

// etsyPoint is node hashring's point of virtual node i of node "host:port".
func etsyPoint(node string, i int) uint32 {
	d := md5.Sum([]byte(node + "-" + strconv.Itoa(i)))
	return binary.LittleEndian.Uint32(d[:4])
}

// sharedPointSinks starts two sinks on ports of 127.0.0.1 whose nodes have a
// ring point in common (virtual nodes below 39, which every ring size has):
// the first such pair from port 20000 up whose ports are free.
func sharedPointSinks(t *testing.T, seen *flapSeen) (a, b *flapSink, point uint32) {
	t.Helper()
	type vnode struct{ port, i int }
	points := map[uint32]vnode{}
	for port := 20000; port < 32768; port++ {
		node := "127.0.0.1:" + strconv.Itoa(port)
		for i := range 39 {
			p := etsyPoint(node, i)
			o, ok := points[p]
			if !ok {
				points[p] = vnode{port, i}
				continue
			}
			if o.port == port {
				continue
			}
			if a = newFlapSink(t, "127.0.0.1:"+strconv.Itoa(o.port), 0, seen); a == nil {
				continue
			}
			if b = newFlapSink(t, node, 1, seen); b == nil {
				a.close()
				continue
			}
			t.Logf("%s-%d and %s-%d share point %d", a.Addr, o.i, node, i, p)
			return a, b, p
		}
	}
	t.Fatal("no free pair of ports with a shared point")
	return nil, nil, 0
}

// onSharedPoint tells whether key goes to point p of the two-node ring of a
// and b: whether its hash is at or before p and after the point before it.
func onSharedPoint(a, b *flapSink, p uint32, key string) bool {
	prev, last := uint32(0), uint32(0)
	found := false
	for _, node := range []string{a.Addr, b.Addr} {
		for i := range 40 { // node hashring gives each of 2 nodes 40 points
			q := etsyPoint(node, i)
			last = max(last, q)
			if q < p && q >= prev {
				prev, found = q, true
			}
		}
	}
	d := md5.Sum([]byte(key))
	h := binary.LittleEndian.Uint32(d[:4])
	if !found { // p is the first point: its arc wraps
		return h <= p || h > last
	}
	return h > prev && h <= p
}

// startProxyJS runs Etsy statsd's proxy.js (from the statsd package in dir)
// on UDP addr in front of sinks, with health checks every 100 ms.
func startProxyJS(t *testing.T, dir, addr string, sinks []*flapSink) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("proxy.js needs node: ", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	mgmt := plugintest.FreeAddr(t)
	_, mport, _ := net.SplitHostPort(mgmt)
	var nodes []string
	for _, s := range sinks {
		h, p, _ := net.SplitHostPort(s.Addr)
		_, ap, _ := net.SplitHostPort(s.Admin)
		nodes = append(nodes, fmt.Sprintf("{host: %q, port: %s, adminport: %s}", h, p, ap))
	}
	cfg := fmt.Sprintf(`{
nodes: [%s],
server: './servers/udp',
address: %q,
port: %s,
mgmt_address: '127.0.0.1',
mgmt_port: %s,
forkCount: 0,
checkInterval: 100,
cacheSize: 10000,
automaticConfigReload: false
}
`, strings.Join(nodes, ", "), host, port, mport)
	file := filepath.Join(t.TempDir(), "proxy-config.js")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(dir, "proxy.js"), file)
	cmd.Dir = dir
	out := &plugintest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("proxy.js output:\n%s", tail(out.String(), 4000))
		}
	})
	waitListen(t, mgmt) // proxy.js opens its management port after its UDP socket
}

// TestEtsyFlapMatchesProxyJS: two backends whose nodes share a ring point,
// behind the router (etc/statsd-proxy.toml's shape) and behind Etsy statsd's
// proxy.js at once. A key on the shared point goes to the first backend;
// after that backend's admin port reports down and then up, proxy.js has
// re-added it at the end of node hashring's server list, so the key goes to
// the second; the router must send it to the same backend, and after the
// second backend flaps in turn, back to the first.
func TestEtsyFlapMatchesProxyJS(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	seen := &flapSeen{at: map[string]int{}}
	a, b, point := sharedPointSinks(t, seen)
	sinks := []*flapSink{a, b}

	// keys on the shared point, and keys of a and of b elsewhere
	members := []hashring.Member{}
	for _, s := range sinks {
		h, p, _ := net.SplitHostPort(s.Addr)
		members = append(members, hashring.Member{Host: h, Port: p})
	}
	ring, err := hashring.NewStatsd(members)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	only := [2]string{}
	for i := 0; len(shared) < 3 || only[0] == "" || only[1] == ""; i++ {
		k := "flap." + strconv.Itoa(i)
		if onSharedPoint(a, b, point, k) {
			shared = append(shared, k)
		} else if x := ring.Lookup([]byte(k), 1, nil, nil)[0]; only[x] == "" {
			only[x] = k
		}
	}

	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `
[agent]
  stats_addr = %q
[[inputs.statsd]]
  listen = %q
  protocol = "udp"
[[outputs.consistent_hash]]
  id = "statsd"
  hash = "statsd"
  on_down = "rehash"
`, stats, in)
	for _, s := range sinks {
		fmt.Fprintf(&cfg, "  [[outputs.consistent_hash.to.statsd]]\n    address = %q\n    admin = %q\n    check_interval = \"100ms\"\n", s.Addr, s.Admin)
	}
	startRouter(t, cfg.String())
	waitUDPInput(t, stats)
	pjs := plugintest.FreeAddr(t)
	startProxyJS(t, dir, pjs, sinks)

	proxies := []struct{ name, addr string }{{"router", in}, {"proxy.js", pjs}}
	conns := make([]net.Conn, len(proxies))
	for i, p := range proxies {
		c, err := net.Dial("udp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	seq := 0
	// send sends key through proxy p until a line arrives, resending every
	// 50 ms (UDP), and returns the sink it arrived at (-1: none in 10 s).
	send := func(p int, key string) int {
		seq++
		line := fmt.Sprintf("%s:%d|c", key, seq)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := conns[p].Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
			for range 10 {
				if k, ok := seen.where(line); ok {
					return k
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return -1
	}
	// settle sends key through both proxies until it arrives at sink want
	// from each: both have taken in the last health change, and the
	// router has seen it (it learns of it from the metrics it routes).
	settle := func(what, key string, want int) {
		t.Helper()
		for p := range proxies {
			if !waitFor(10*time.Second, func() bool { return send(p, key) == want }) {
				t.Fatalf("%s: %s did not send %s to sink %d", what, proxies[p].name, key, want)
			}
		}
	}
	// check sends each shared key through both proxies: the router must
	// send it where proxy.js does, which is sink want.
	check := func(what string, want int) {
		t.Helper()
		for _, k := range shared {
			r, j := send(0, k), send(1, k)
			if r != j || j != want {
				t.Errorf("%s: %s went to sink %d through the router, to sink %d through proxy.js; want %d", what, k, r, j, want)
			}
		}
	}

	settle("start", only[0], 0)
	check("all up", 0)

	a.health.Store("down")
	settle("a down", only[0], 1)
	check("a down", 1)
	a.health.Store("up")
	settle("a up", only[0], 0)
	check("a down then up", 1)

	b.health.Store("down")
	settle("b down", only[1], 0)
	check("b down", 0)
	b.health.Store("up")
	settle("b up", only[1], 1)
	check("b down then up", 0)
}
