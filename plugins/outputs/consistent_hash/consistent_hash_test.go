package consistent_hash

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

func targets(n int, inst bool) []registry.Target {
	t := make([]registry.Target, n)
	for i := range t {
		t[i] = registry.Target{ID: fmt.Sprint(i), Plugin: "graphite", Host: fmt.Sprintf("127.0.0.%d", i+1), Port: fmt.Sprint(2003 + i)}
		if inst {
			t[i].Instance = fmt.Sprintf("node%02d", i)
		}
	}
	return t
}

func newCH(t testing.TB, hash string, n, repl int, onDown string) (*ConsistentHash, *plugintest.Metrics) {
	t.Helper()
	c := &ConsistentHash{Hash: hash, Collision: "first", Flavour: "crelay", Replication: repl, OnDown: onDown}
	if err := c.SetTargets(targets(n, false)); err != nil {
		t.Fatal(err)
	}
	env, m := plugintest.Env(t, "outputs.consistent_hash")
	if err := c.Init(env); err != nil {
		t.Fatal(err)
	}
	return c, m
}

// TestIssue236 routes carbon-c-relay's worked example through the plugin
// (the ring itself is golden-tested in package hashring).
func TestIssue236(t *testing.T) {
	m := metric.NewGraphite("cd85d26b19018dec78e33d44e1477993130267ec79f92abd25ece33fa029bf56", 1, time.Unix(1, 0))
	for hash, want := range map[string][2]int{
		"carbon_ch":     {4, 5}, // 127.0.0.5:2007, 127.0.0.6:2008
		"fnv1a_ch":      {3, 2}, // 127.0.0.4:2006, 127.0.0.3:2005
		"jump_fnv1a_ch": {3, 4}, // 127.0.0.4:2006, 127.0.0.5:2007
	} {
		c, _ := newCH(t, hash, 7, 2, "queue")
		got := c.Route(&m, nil, nil)
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: %v, want %v", hash, got, want)
		}
	}
}

func TestRehashCountsAndFallsBack(t *testing.T) {
	c, counters := newCH(t, "carbon_ch", 3, 1, "rehash")
	up := []bool{true, true, true}
	moved := 0
	for i := 0; i < 1000; i++ {
		m := metric.NewGraphite(fmt.Sprintf("k.%d", i), 1, time.Unix(1, 0))
		own := c.Route(&m, up, nil)[0]
		down := []bool{true, true, true}
		down[own] = false
		got := c.Route(&m, down, nil)
		if len(got) != 1 || got[0] == own {
			t.Fatalf("%d: routed to down node %v", i, got)
		}
		moved++
		// every target down: queue at the own node
		if got := c.Route(&m, []bool{false, false, false}, nil); len(got) != 1 || got[0] != own {
			t.Fatalf("all down: %v, want own %d", got, own)
		}
	}
	if got := counters.Get("rehashed_total"); int(got) != moved {
		t.Fatalf("rehashed_total = %d, want %d", got, moved)
	}
	q, _ := newCH(t, "carbon_ch", 3, 1, "queue")
	m := metric.NewGraphite("k.1", 1, time.Unix(1, 0))
	own := q.Route(&m, nil, nil)[0]
	down := []bool{true, true, true}
	down[own] = false
	if got := q.Route(&m, down, nil); got[0] != own {
		t.Fatalf("on_down=queue moved the metric to %d", got[0])
	}
}

// TestStatsdFlap: with on_down = "rehash" a statsd target that went down and
// came back goes to the end of proxy.js's server list, so it loses the ring
// point it shares with the other target (hashring's statsd_flap_2.txt);
// with "queue" the list never changes.
func TestStatsdFlap(t *testing.T) {
	// virtual node 33 of the first and 4 of the second are both at 1765889975;
	// "shared.32" hashes just before it
	ts := []registry.Target{
		{ID: "a", Plugin: "statsd", Host: "127.0.0.1", Port: "20239"},
		{ID: "b", Plugin: "statsd", Host: "127.0.0.1", Port: "22058"},
	}
	m := metric.NewGraphite("shared.32", 1, time.Unix(1, 0))
	for _, tc := range []struct {
		onDown string
		want   []int // after all up, a down, all up, b down, all up
	}{
		{"rehash", []int{0, 1, 1, 0, 0}},
		{"queue", []int{0, 0, 0, 0, 0}},
	} {
		c := &ConsistentHash{Hash: "statsd", Replication: 1, OnDown: tc.onDown}
		if err := c.SetTargets(ts); err != nil {
			t.Fatal(err)
		}
		env, _ := plugintest.Env(t, "outputs.consistent_hash")
		if err := c.Init(env); err != nil {
			t.Fatal(err)
		}
		for i, up := range [][]bool{{true, true}, {false, true}, {true, true}, {true, false}, {true, true}} {
			if got := c.Route(&m, up, nil); len(got) != 1 || got[0] != tc.want[i] {
				t.Errorf("%s, step %d (up %v): %v, want [%d]", tc.onDown, i, up, got, tc.want[i])
			}
		}
	}
}

func TestInitErrors(t *testing.T) {
	cases := []struct {
		c    ConsistentHash
		n    int
		want string
	}{
		{ConsistentHash{Hash: "md5", Replication: 1, OnDown: "queue"}, 2, "hash"},
		{ConsistentHash{Hash: "carbon_ch", Collision: "x", Replication: 1, OnDown: "queue"}, 2, "collision"},
		{ConsistentHash{Hash: "fnv1a_ch", Flavour: "x", Replication: 1, OnDown: "queue"}, 2, "flavour"},
		{ConsistentHash{Hash: "statsd", Replication: 3, OnDown: "queue"}, 2, "replication"},
		{ConsistentHash{Hash: "statsd", Replication: 1, OnDown: "later"}, 2, "on_down"},
	}
	for _, c := range cases {
		cc := c.c
		cc.SetTargets(targets(c.n, false))
		env, _ := plugintest.Env(t, "x")
		if err := cc.Init(env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %q", c.c, err, c.want)
		}
	}
}

// BenchmarkRoute: Route per metric through the plugin, per hash (0 allocs).
func BenchmarkRoute(b *testing.B) {
	ms := make([]metric.Metric, 1024)
	for i := range ms {
		ms[i] = metric.NewGraphite(fmt.Sprintf("bench.metric.path.%d", i), 1, time.Unix(1, 0))
	}
	for _, hash := range []string{"carbon_ch", "fnv1a_ch", "jump_fnv1a_ch", "statsd"} {
		for _, tc := range []struct {
			repl int
			down bool
		}{{1, false}, {2, false}, {1, true}} {
			b.Run(fmt.Sprintf("%s/replication=%d/one_down=%v", hash, tc.repl, tc.down), func(b *testing.B) {
				c, _ := newCH(b, hash, 8, tc.repl, "rehash")
				up := []bool{true, true, true, !tc.down, true, true, true, true}
				dst := make([]int, 0, 4)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					dst = c.Route(&ms[i&1023], up, dst[:0])
					i++
				}
			})
		}
	}
}
