package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// Issue #17: every change of the topology (reload, destination API,
// service catalog) is reconciled by id. These tests run the binary under
// load and count every line.

// spooledKeys are the keys of a spooled graphite output a reload changes,
// one per reload, each between two values.
var spooledKeys = [][2]string{
	{"batch_size = 5000", "batch_size = 4000"},
	{"buffer_limit = 1000000", "buffer_limit = 900000"},
	{`flush_interval = "0s"`, `flush_interval = "20ms"`},
	{`flush_idle = "10ms"`, `flush_idle = "5ms"`},
	{`retry_initial = "100ms"`, `retry_initial = "50ms"`},
	{`retry_max = "30s"`, `retry_max = "20s"`},
	{`write_timeout = "30s"`, `write_timeout = "20s"`},
	{"workers = 1", "workers = 2"},
	{"spool_max_bytes = 1073741824", "spool_max_bytes = 536870912"},
	{`spool_fsync = "interval"`, `spool_fsync = "never"`},
	{"spool_replay_rate = 0", "spool_replay_rate = 1000000"},
	{`overflow = "block"`, `overflow = "drop_oldest"`},
	{`log_level = "info"`, `log_level = "debug"`},
	{`timeout = "10s"`, `timeout = "9s"`},
	{"write_buffer = 65536", "write_buffer = 32768"},
}

// ringKeys are keys of a consistent_hash whose targets come from Consul.
var ringKeys = [][2]string{
	{"batch_size = 5000", "batch_size = 3000"},
	{`on_down = "queue"`, `on_down = "rehash"`},
	{`flush_interval = "0s"`, `flush_interval = "10ms"`},
}

// delivered counts lines and duplicates over sinks.
func delivered(sinks ...*plugintest.LineSink) (lines, dups int) {
	seen := map[string]bool{}
	for _, s := range sinks {
		for _, l := range s.Lines() {
			if seen[l] {
				dups++
			}
			seen[l] = true
		}
	}
	return len(seen), dups
}

func waitDelivered(t *testing.T, want int, sinks ...*plugintest.LineSink) (int, int) {
	t.Helper()
	var n, d int
	waitFor(60*time.Second, func() bool { n, d = delivered(sinks...); return n >= want })
	return n, d
}

func apiCall(t *testing.T, method, url string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, body)
	}
}

// TestReloadThirtyChangesUnderLoad (issue #17 acceptance): ~50k lines/s;
// 30 reloads, each changing a different key of a spooled output and one of
// a consistent_hash whose caches come from Consul, and between reloads a
// destination added or removed through the destination API. The process
// never exits (before: "spool in use by another process" and exit 1 at the
// first change of the spooled output), and every line reaches every output
// that had it.
func TestReloadThirtyChangesUnderLoad(t *testing.T) {
	consul := plugintest.StartConsul(t)
	spooledSink, dynSink, extraSink := plugintest.NewLineSink(t), plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	caches := []*plugintest.LineSink{plugintest.NewLineSink(t), plugintest.NewLineSink(t)}
	for i, s := range caches {
		_, port, _ := net.SplitHostPort(s.Addr)
		p, _ := strconv.Atoi(port)
		consul.RegisterService(t, fmt.Sprintf("cache-%d", i), "carbon-cache", "127.0.0.1", p, map[string]string{"instance": fmt.Sprint("c", i)})
	}
	in, api := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "r.toml")
	spooled := "\n  " + strings.Join(first(spooledKeys), "\n  ")
	ring := "\n  " + strings.Join(first(ringKeys), "\n  ")
	render := func() string {
		return fmt.Sprintf(`
[agent]
  api_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "spooled"
  address = %q
  spool_dir = %q%s
[[outputs.consistent_hash]]
  id = "ring"
  protocol = "graphite"
  consul_service = "carbon-cache"
  consul_address = %q%s
[[outputs.broadcast]]
  id = "dyn"
  protocol = "graphite"
  destinations = [%q]
`, api, in, spooledSink.Addr, filepath.Join(dir, "spool"), spooled, consul.Addr, ring, dynSink.Addr)
	}
	os.WriteFile(cfgFile, []byte(render()), 0o600)
	p := startBinary(t, cfgFile)
	waitListen(t, in)
	l := startLoad(t, in, "e2e.reconcile", 4, 125) // 125 lines per 10 ms per client: 50k/s in all
	for i := range 30 {
		time.Sleep(200 * time.Millisecond)
		kv := spooledKeys[i%len(spooledKeys)]
		if strings.Contains(spooled, kv[0]) {
			spooled = strings.Replace(spooled, kv[0], kv[1], 1)
		} else {
			spooled = strings.Replace(spooled, kv[1], kv[0], 1)
		}
		rk := ringKeys[i%len(ringKeys)]
		if strings.Contains(ring, rk[0]) {
			ring = strings.Replace(ring, rk[0], rk[1], 1)
		} else {
			ring = strings.Replace(ring, rk[1], rk[0], 1)
		}
		os.WriteFile(cfgFile, []byte(render()), 0o600)
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, `"cause":"reload"`, i+1)
		// the destination API: a destination added (a reload removes it again)
		apiCall(t, http.MethodPut, "http://"+api+"/api/destinations/"+extraSink.Addr+"?output=dyn")
		select {
		case <-p.done:
			t.Fatalf("the router exited at reload %d", i+1)
		default:
		}
	}
	n := l.end()
	if err := l.err(); err != nil {
		t.Fatalf("%d client errors; first: %v", l.errs.Load(), err)
	}
	for _, c := range []struct {
		name  string
		sinks []*plugintest.LineSink
	}{{"spooled", []*plugintest.LineSink{spooledSink}}, {"ring", caches}, {"dyn", []*plugintest.LineSink{dynSink}}} {
		got, dups := waitDelivered(t, n, c.sinks...)
		t.Logf("%s: sent %d, delivered %d distinct, %d duplicates", c.name, n, got, dups)
		if got != n {
			t.Errorf("%s: delivered %d of %d", c.name, got, n)
		}
		if dups != 0 {
			t.Errorf("%s: %d duplicates", c.name, dups)
		}
	}
	if c := p.count("spool in use"); c != 0 {
		t.Fatalf("%d spool conflicts", c)
	}
	t.Logf("30 reloads at ~50k lines/s: %d lines; the extra API destination got %d while present; applied: %d", n, extraSink.Len(), p.count(`"message":"configuration applied"`))
}

func first(kv [][2]string) []string {
	out := make([]string, len(kv))
	for i, x := range kv {
		out[i] = x[0]
	}
	return out
}

// TestReloadWithoutChangesKeepsEverything (issue #17 acceptance): a reload
// that changes nothing restarts nothing, discovered outputs included: the
// log says kept, and no sink sees a new connection.
func TestReloadWithoutChangesKeepsEverything(t *testing.T) {
	consul := plugintest.StartConsul(t)
	plain := plugintest.NewLineSink(t)
	caches := []*plugintest.LineSink{plugintest.NewLineSink(t), plugintest.NewLineSink(t)}
	for i, s := range caches {
		_, port, _ := net.SplitHostPort(s.Addr)
		p, _ := strconv.Atoi(port)
		consul.RegisterService(t, fmt.Sprintf("cache-%d", i), "carbon-cache", "127.0.0.1", p, map[string]string{"instance": fmt.Sprint("c", i)})
	}
	in := plugintest.FreeAddr(t)
	cfgFile := writeConfig(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "plain"
  address = %q
  spool_dir = %q
[[outputs.consistent_hash]]
  id = "ring"
  protocol = "graphite"
  consul_service = "carbon-cache"
  consul_address = %q
`, in, plain.Addr, filepath.Join(t.TempDir(), "spool"), consul.Addr))
	p := startBinary(t, cfgFile)
	waitListen(t, in)
	sendLines(t, in, graphiteLines("e2e.keep", 0, 1000), 1)
	if n, _ := waitDelivered(t, 1000, caches...); n != 1000 || !plain.WaitLen(1000, 10*time.Second) {
		t.Fatalf("before the reload: %d and %d of 1000", n, plain.Len())
	}
	before := []int{plain.Accepted(), caches[0].Accepted(), caches[1].Accepted()}
	for i := range 3 {
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, `"cause":"reload"`, i+1)
	}
	applied := regexp.MustCompile(`"cause":"reload".*"destinations_kept":(\d+),"destinations_started":(\d+),"destinations_restarted":(\d+),"destinations_removed":(\d+),"inputs_kept":(\d+),"inputs_started":(\d+)`)
	p.mu.Lock()
	var lines []string
	for _, l := range p.logs {
		if m := applied.FindStringSubmatch(l); m != nil {
			lines = append(lines, strings.Join(m[1:], ","))
		}
	}
	p.mu.Unlock()
	for _, l := range lines {
		if l != "3,0,0,0,1,0" { // kept: plain and both caches; the input
			t.Errorf("a reload without changes: kept,started,restarted,removed,inputs kept,started = %s", l)
		}
	}
	sendLines(t, in, graphiteLines("e2e.keep", 1000, 1000), 1)
	if n, _ := waitDelivered(t, 2000, caches...); n != 2000 || !plain.WaitLen(2000, 10*time.Second) {
		t.Fatalf("after the reloads: %d and %d of 2000", n, plain.Len())
	}
	after := []int{plain.Accepted(), caches[0].Accepted(), caches[1].Accepted()}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("connections accepted by the sinks before %v, after %v: a reload reconnected", before, after)
	}
	t.Logf("3 reloads without changes: %v; sink connections %v before and after", lines, after)
}

// TestReloadRemovesSeries (issue #17 acceptance): after a reload removes
// output x, /metrics has no series with id="x", and rounds of adding and
// removing 50 outputs do not grow the heap (no retained runner).
func TestReloadRemovesSeries(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "r.toml")
	base := fmt.Sprintf("[agent]\n  stats_addr = %q\n  pprof = true\n[[inputs.graphite]]\n  listen = %q\n[[outputs.graphite]]\n  id = \"keep\"\n  address = %q\n", stats, in, sink.Addr)
	var extra strings.Builder
	for i := range 50 {
		fmt.Fprintf(&extra, "[[outputs.graphite]]\n  id = \"x%d\"\n  address = %q\n", i, sink.Addr)
	}
	os.WriteFile(cfgFile, []byte(base), 0o600)
	p := startBinary(t, cfgFile)
	waitListen(t, in)
	heap := func() int64 {
		resp, err := http.Get("http://" + stats + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no HeapAlloc in the heap profile")
		return 0
	}
	sendLines(t, in, graphiteLines("e2e.series", 0, 10000), 1)
	// the baseline is taken after the first round: what that round leaves
	// for good (maps grown to hold 51 outputs' series do not shrink) is a
	// one-time cost; a retained runner would add to every round
	var before int64
	reloads := 0
	for round := range 5 {
		os.WriteFile(cfgFile, []byte(base+extra.String()), 0o600)
		p.cmd.Process.Signal(syscall.SIGHUP)
		reloads++
		p.waitLog(t, `"cause":"reload"`, reloads)
		sendLines(t, in, graphiteLines("e2e.series", 10000*(round+1), 10000), 1)
		m := scrape(t, stats)
		if _, ok := m[series("sent_total", "outputs.graphite", "x7")]; !ok {
			t.Fatal("no series for x7 while it runs")
		}
		os.WriteFile(cfgFile, []byte(base), 0o600)
		p.cmd.Process.Signal(syscall.SIGHUP)
		reloads++
		p.waitLog(t, `"cause":"reload"`, reloads)
		if round == 0 {
			waitFor(10*time.Second, func() bool { return !strings.Contains(scrapeText(t, stats), `id="x`) })
			before = heap()
		}
	}
	var text string
	if !waitFor(10*time.Second, func() bool { text = scrapeText(t, stats); return !strings.Contains(text, `id="x`) }) {
		t.Fatalf("series of removed outputs still exported:\n%s", grepLines(text, `id="x`))
	}
	// a removed output's runner ends a little after the reload that
	// removed it, so the heap may take a moment to come down: what is
	// still there after 10 s is retained
	var after int64
	waitFor(10*time.Second, func() bool { after = heap(); return after <= before+2<<20 })
	t.Logf("heap after GC: %d bytes after the first round of adding and removing 50 outputs, %d after 4 more", before, after)
	if after > before+2<<20 {
		t.Fatalf("heap grew from %d to %d bytes: removed outputs are retained", before, after)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
