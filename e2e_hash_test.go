package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// loadCarbonExpected reads testdata/e2e-carbon-ch/expected.txt: the instance
// Graphite carbon's own ring picks for e2e.ch.<i>.
func loadCarbonExpected(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/e2e-carbon-ch/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var inst []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			inst = append(inst, l)
		}
	}
	return inst
}

func chConfig(in, stats, onDown string, sinks map[string]*plugintest.LineSink) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "caches"
  hash = "carbon_ch"
  collision = "bump"
  on_down = %q
  retry_initial = "50ms"
  retry_max = "300ms"
  protocol = "graphite"
  destinations = ["%s:a", "%s:b", "%s:c"]
`, stats, in, onDown, sinks["a"].Addr, sinks["b"].Addr, sinks["c"].Addr)
}

// checkPlacement asserts every line on every sink is at the instance carbon
// names for it, and returns the total.
func checkPlacement(t *testing.T, sinks map[string]*plugintest.LineSink, expected []string, allowForeign map[string]bool) int {
	t.Helper()
	total := 0
	for inst, s := range sinks {
		for _, l := range s.Lines() {
			var i, v int
			if _, err := fmt.Sscanf(l, "e2e.ch.%d %d", &i, &v); err != nil {
				t.Fatalf("sink %s: unexpected line %q", inst, l)
			}
			if expected[i] != inst && !allowForeign[inst] {
				t.Fatalf("e2e.ch.%d arrived at %s, carbon puts it at %s", i, inst, expected[i])
			}
			total++
		}
	}
	return total
}

func chLines(names, copies int) []string {
	lines := make([]string, 0, names*copies)
	for c := 0; c < copies; c++ {
		for i := 0; i < names; i++ {
			lines = append(lines, fmt.Sprintf("e2e.ch.%d %d 1700000000", i, c))
		}
	}
	return lines
}

// TestCarbonCHDownQueue: with on_down = "queue" a dead node's metrics wait
// for it: nothing moves, nothing is lost once it returns.
func TestCarbonCHDownQueue(t *testing.T) {
	expected := loadCarbonExpected(t)[:20000]
	sinks := map[string]*plugintest.LineSink{"a": plugintest.NewLineSink(t), "b": plugintest.NewLineSink(t), "c": plugintest.NewLineSink(t)}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, chConfig(in, stats, "queue", sinks))
	waitListen(t, in)
	sinks["b"].Stop()
	lines := chLines(len(expected), 1)
	sendLines(t, in, lines, 2)
	want := map[string]int{}
	for _, inst := range expected {
		want[inst]++
	}
	for _, inst := range []string{"a", "c"} {
		if !sinks[inst].WaitLen(want[inst], 20*time.Second) {
			t.Fatalf("sink %s got %d, want %d", inst, sinks[inst].Len(), want[inst])
		}
	}
	if sinks["b"].Len() != 0 {
		t.Fatal("stopped sink received lines")
	}
	m := scrape(t, stats)
	if q := m[series("queued", "outputs.graphite", "caches/"+sinks["b"].Addr+":b")]; int(q) != want["b"] {
		t.Errorf("queued for b = %v, want %d", q, want["b"])
	}
	if err := sinks["b"].Start(); err != nil {
		t.Fatal(err)
	}
	if !sinks["b"].WaitLen(want["b"], 20*time.Second) {
		t.Fatalf("sink b got %d after coming back, want %d", sinks["b"].Len(), want["b"])
	}
	if total := checkPlacement(t, sinks, expected, nil); total != len(lines) {
		t.Fatalf("%d arrived, %d sent", total, len(lines))
	}
}

// TestCarbonCHDownRehash: with on_down = "rehash" the live nodes take the dead
// node's share while it is down, and the rehashed_total counter says how many.
func TestCarbonCHDownRehash(t *testing.T) {
	expected := loadCarbonExpected(t)[:20000]
	sinks := map[string]*plugintest.LineSink{"a": plugintest.NewLineSink(t), "b": plugintest.NewLineSink(t), "c": plugintest.NewLineSink(t)}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, chConfig(in, stats, "rehash", sinks))
	waitListen(t, in)
	sinks["b"].Stop()
	// The router learns b is down from a failed write: send one b-line and
	// wait until b's output reports down.
	var probe string
	for i, inst := range expected {
		if inst == "b" {
			probe = fmt.Sprintf("e2e.ch.%d -1 1700000000", i)
			break
		}
	}
	sendLines(t, in, []string{probe}, 1)
	upKey := series("up", "outputs.graphite", "caches/"+sinks["b"].Addr+":b")
	if !waitFor(10*time.Second, func() bool { return scrape(t, stats)[upKey] == 0 }) {
		t.Fatal("b never reported down")
	}
	lines := chLines(len(expected), 1)
	sendLines(t, in, lines, 2)
	total := func() int { return sinks["a"].Len() + sinks["c"].Len() }
	if !waitSinks(total, len(lines)) {
		t.Fatalf("a+c got %d of %d while b was down", total(), len(lines))
	}
	// a and c got their own lines plus b's
	checkPlacement(t, map[string]*plugintest.LineSink{"a": sinks["a"], "c": sinks["c"]}, expected, map[string]bool{"a": true, "c": true})
	nb := 0
	for _, inst := range expected {
		if inst == "b" {
			nb++
		}
	}
	m := scrape(t, stats)
	if got := m[series("rehashed_total", "outputs.consistent_hash", "caches")]; int(got) != nb {
		t.Errorf("rehashed_total = %v, want %d (b's share)", got, nb)
	}
	// b comes back and gets the probe that was queued for it, and nothing else
	if err := sinks["b"].Start(); err != nil {
		t.Fatal(err)
	}
	if !sinks["b"].WaitLen(1, 10*time.Second) {
		t.Fatal("queued probe never reached b")
	}
}

// TestRouteMode: -route prints the destinations as written, primary first.
func TestRouteMode(t *testing.T) {
	cluster := `
[[inputs.graphite]]
[[outputs.consistent_hash]]
  id = "cluster"
  hash = "carbon_ch"
  collision = "first"
  replication = 2
  protocol = "graphite"
  destinations = ["127.0.0.1:2003", "127.0.0.2:2004", "127.0.0.3:2005", "127.0.0.4:2006", "127.0.0.5:2007", "127.0.0.6:2008", "127.0.0.7:2009"]
`
	cfg := writeConfig(t, cluster)
	run := func(stdin string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := agent.RunWith(context.Background(), registry.Default, args, strings.NewReader(stdin), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	// carbon-c-relay test/issue236: this metric -> [127.0.0.5:2007, 127.0.0.6:2008]
	name := "cd85d26b19018dec78e33d44e1477993130267ec79f92abd25ece33fa029bf56"
	if got := run("", "-config", cfg, "-route", name); got != "127.0.0.5:2007\n127.0.0.6:2008\n" {
		t.Fatalf("-route: %q", got)
	}
	// several outputs: a header per output; stdin mode: one line per name
	os.WriteFile(cfg, []byte(cluster+`[[outputs.broadcast]]
  id = "archive"
  [[outputs.broadcast.to.graphite]]
    address = "10.1.1.1:2003"
    instance = "x"
[[outputs.console]]
`), 0o600)
	want := "# outputs.consistent_hash cluster\n127.0.0.5:2007\n127.0.0.6:2008\n# outputs.broadcast archive\n10.1.1.1:2003:x\n# outputs.console console-1\n# outputs.console console-1 has no network destination\n"
	if got := run("", "-config", cfg, "-route", name); got != want {
		t.Fatalf("-route, 3 outputs:\n%s\nwant:\n%s", got, want)
	}
	if got := run(name+"\n", "-config", cfg, "-route", "-"); got != name+" -> 127.0.0.5:2007 127.0.0.6:2008 10.1.1.1:2003:x\n" {
		t.Fatalf("-route -: %q", got)
	}
}
