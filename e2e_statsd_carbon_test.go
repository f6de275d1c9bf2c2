package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/carbontest"
	"github.com/metricsrouter/router/internal/etsytest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// The StatsD server's acceptance test, from a StatsD client library to the
// whisper files: hot-shots (the npm StatsD client) sends the same operations
// to Etsy statsd 0.9.0's daemon and to a router (inputs.statsd ->
// aggregators.statsd -> outputs.graphite); both flush every 2 s with
// deleteIdleStats into one carbon-cache (Debian's graphite-carbon), Etsy
// under etsy.*, the router under router.*. Every series Etsy has on disk
// must be there under router.* (and no other), with the same values as
// whisper-fetch reads them, within 1e-9 relative:
//   - the client's series: exactly one point each, from the flush that held
//     the burst;
//   - the counters statsd.packets_received, .metrics_received and
//     .bad_lines_seen (written at every flush): the sums of their points;
//   - statsd.numStats (written at every flush): its largest point, from the
//     burst's flush.
//
// Left out, because their values measure the daemon: statsd.processing_time
// and the gauge statsd.timestamp_lag (both must be there), and Etsy's
// statsd.graphiteStats.* (its graphite backend's own statistics, which the
// router does not write).
//
// scripts/install-statsd.sh installs hot-shots beside Etsy statsd, at
// $STATSD_DIR/../../../hot-shots/node_modules/hot-shots.

// hotShotsVersion is the version scripts/install-statsd.sh installs.
const hotShotsVersion = "17.1.1"

// hotShotsScript sends the same operations through two hot-shots clients,
// one per port given as an argument, waits until every datagram has left,
// closes both and prints how many operations each client sent. It uses no
// client-side sample rate (hot-shots would drop at random) and no
// client-side aggregation (off by default). How hot-shots writes them:
// increment/decrement "name:±v|c", timing "name:v|ms", gauge "name:v|g" (a
// negative v is "-3|g", a delta to a StatsD server), gaugeDelta "name:+v|g"
// or "name:-v|g", set/unique "name:v|s"; one datagram each (maxBufferSize 0).
const hotShotsScript = `'use strict';
const StatsD = require('hot-shots');

const ops = [
  ['increment', 'app.requests'],
  ['increment', 'app.requests'],
  ['increment', 'app.requests', 5],
  ['decrement', 'app.requests'],
  ['increment', 'app.bytes', 1500],
  ['increment', 'app.bytes', 0.25],
  ['decrement', 'app.errors', 2],
  ['decrement', 'app.errors'],
  ['increment', 'app.idle', 0],
  ['increment', 'web/home page.hits'],
  ['increment', 'web/home page.hits', 2],
  ...[12, 7.5, 300, 45, 45, 0, 99.9, 150, 3, 18, 27, 61].map(v => ['timing', 'app.latency', v]),
  ...Array.from({length: 20}, (_, i) => ['timing', 'app.db.query', (i * 37 % 20 + 1) * 1.1]),
  ['timing', 'app.single', 42],
  ['gauge', 'app.temp', 21.5],
  ['gaugeDelta', 'app.temp', 2],
  ['gaugeDelta', 'app.temp', -0.5],
  ['gauge', 'app.queue', 10],
  ['gauge', 'app.queue', -3],
  ['gaugeDelta', 'app.fresh', 4],
  ['gaugeDelta', 'app.fresh', -1],
  ['gauge', 'app.last', 1],
  ['gauge', 'app.last', 9],
  ['unique', 'app.users', 'alice'],
  ['unique', 'app.users', 'bob'],
  ['unique', 'app.users', 'alice'],
  ['unique', 'app.users', 'carol'],
  ['unique', 'app.users', 'bob'],
  ['set', 'app.ids', 1],
  ['set', 'app.ids', 2],
  ['set', 'app.ids', 2],
  ['set', 'app.ids', 3.5],
  ['set', 'app.one', 'x'],
  ['set', 'app.one', 'x'],
  ['set', 'app.one', 'x'],
];

const fail = (err) => { console.error(String(err && err.stack || err)); process.exit(1); };
const clients = process.argv.slice(2).map((port) => new StatsD({
  host: '127.0.0.1', port: Number(port), protocol: 'udp', maxBufferSize: 0,
  datadog: false, includeDataDogTags: false, errorHandler: fail,
}));
let pending = clients.length * ops.length;
const sent = (err) => {
  if (err) fail(err);
  if (--pending > 0) return;
  let open = clients.length;
  for (const c of clients) {
    c.close((err) => {
      if (err) fail(err);
      if (--open === 0) console.log(String(ops.length));
    });
  }
};
for (const [fn, stat, value] of ops) {
  for (const c of clients) {
    // (stat, value, sampleRate, tags, callback): the callback runs once the
    // datagram is sent
    c[fn](stat, value, undefined, undefined, sent);
  }
}
`

func TestStatsDServerCarbon(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	skipShort(t)
	carbontest.Bins(t)
	hotShots := hotShotsDir(t, dir)
	for attempt := 1; attempt <= 2; attempt++ {
		var split bool
		t.Run(fmt.Sprintf("attempt%d", attempt), func(t *testing.T) {
			n, s := runCarbonDifferential(t, dir, hotShots)
			if split = s; !split {
				t.Logf("%d series compared (etsy.* against router.*)", n)
			}
		})
		if !split || t.Failed() {
			return
		}
	}
	t.Fatal("a flush split the burst in both attempts")
}

// hotShotsDir is the hot-shots package that scripts/install-statsd.sh
// installs beside Etsy statsd (statsdDir).
func hotShotsDir(t *testing.T, statsdDir string) string {
	t.Helper()
	d := filepath.Join(statsdDir, "..", "..", "..", "hot-shots", "node_modules", "hot-shots")
	b, err := os.ReadFile(filepath.Join(d, "package.json"))
	if err == nil && !strings.Contains(string(b), `"version": "`+hotShotsVersion+`"`) {
		err = fmt.Errorf("not version %s", hotShotsVersion)
	}
	if err != nil {
		msg := fmt.Sprintf("hot-shots %s at %s: %v (scripts/install-statsd.sh installs it)", hotShotsVersion, d, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return d
}

// runCarbonDifferential runs one carbon-cache, one Etsy daemon and one
// router, sends the burst and compares the whisper files; split reports a
// burst that did not land in a single flush on both sides (the caller
// retries).
func runCarbonDifferential(t *testing.T, statsdDir, hotShots string) (compared int, split bool) {
	carbon := carbontest.Start(t, "[all]\npattern = .*\nretentions = 1s:1h\n")
	carbonPort := carbon.Addr[strings.LastIndexByte(carbon.Addr, ':')+1:]

	etsyPort := freeUDPPort(t)
	etsytest.Daemon(t, statsdDir, fmt.Sprintf(`{ port: %d, address: "127.0.0.1", mgmt_port: %d, mgmt_address: "127.0.0.1",
  flushInterval: 2000, backends: ["./backends/graphite"], graphiteHost: "127.0.0.1", graphitePort: %s,
  automaticConfigReload: false, deleteIdleStats: true, percentThreshold: [90, 99],
  graphite: { legacyNamespace: false, globalPrefix: "etsy" } }`, etsyPort, freeTCPPort(t), carbonPort))

	routerPort := freeUDPPort(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "5s"
[[inputs.statsd]]
  listen = "127.0.0.1:%d"
  read_buffer = 4194304
[[aggregators.statsd]]
  flush_interval = "2s"
  timer_types = ["ms"]
  percent_threshold = [90, 99]
  legacy_namespace = false
  global_prefix = "router"
  delete_idle_stats = true
[[outputs.graphite]]
  address = %q
`, plugintest.FreeAddr(t), routerPort, carbon.Addr))

	// both have flushed once: both listen
	for _, ns := range []string{"etsy", "router"} {
		carbon.WaitExists(t, ns+".counters.statsd.packets_received.count", 20*time.Second)
	}

	script := filepath.Join(t.TempDir(), "burst.js")
	if err := os.WriteFile(script, []byte(hotShotsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, strconv.Itoa(etsyPort), strconv.Itoa(routerPort))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NODE_PATH=" + filepath.Dir(hotShots)}
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node burst.js: %v\n%s%s", err, out, stderr)
	}
	sent, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("node burst.js printed %q", out)
	}

	// every datagram counted and on disk, on both sides; more than one
	// non-zero point means the burst straddled a flush
	for _, ns := range []string{"etsy", "router"} {
		name := ns + ".counters.statsd.packets_received.count"
		var pts []carbontest.Point
		if !waitFor(20*time.Second, func() bool {
			pts = carbon.Fetch(t, name)
			return sumPoints(pts) >= float64(sent)
		}) {
			t.Fatalf("%s: %v, want %d datagrams in all", name, pts, sent)
		}
		if sumPoints(pts) != float64(sent) {
			t.Fatalf("%s: %v, want %d datagrams in all", name, pts, sent)
		}
		nonZero := 0
		for _, p := range pts {
			if p.Value != 0 {
				nonZero++
			}
		}
		if nonZero != 1 {
			t.Logf("%s: the burst is in %d flushes: %v", name, nonZero, pts)
			split = true
		}
	}
	if split {
		return 0, true
	}

	// the burst's flush is on disk once carbon has created every file
	etsy, router := waitSeriesSettled(t, carbon)
	etsySet := map[string]bool{}
	for _, n := range etsy {
		etsySet["router"+strings.TrimPrefix(n, "etsy")] = true
	}
	for _, n := range router {
		if !etsySet[n] {
			t.Errorf("the router wrote %s, Etsy did not", n)
		}
	}
	users := 0
	for _, n := range etsy {
		rn := "router" + strings.TrimPrefix(n, "etsy")
		if !slices.Contains(router, rn) {
			t.Errorf("Etsy wrote %s, the router did not", n)
			continue
		}
		key := strings.TrimPrefix(n, "etsy.")
		switch {
		case key == "statsd.processing_time" || key == "gauges.statsd.timestamp_lag":
			continue // present on both sides; the value measures the daemon
		case key == "statsd.numStats":
			compared += compareCarbonValue(t, n, maxPoint(carbon.Fetch(t, n)), maxPoint(carbon.Fetch(t, rn)))
		case strings.HasPrefix(key, "counters.statsd."):
			compared += compareCarbonValue(t, n, sumPoints(carbon.Fetch(t, n)), sumPoints(carbon.Fetch(t, rn)))
		default:
			users++
			e := carbon.WaitPoints(t, n, 1, 10*time.Second)
			r := carbon.WaitPoints(t, rn, 1, 10*time.Second)
			if len(e) != 1 || len(r) != 1 {
				t.Errorf("%s: Etsy %v, router %v: want one point each", key, e, r)
				continue
			}
			compared += compareCarbonValue(t, n, e[0].Value, r[0].Value)
		}
	}
	if users < 60 {
		t.Errorf("only %d series of the client's metrics: %v", users, etsy)
	}
	t.Logf("%d datagrams per server, %d series of the client's metrics, %d series in all", sent, users, len(etsy))
	return compared, false
}

// waitSeriesSettled waits until the sets of series under etsy.* and
// router.* (without Etsy's graphiteStats) have stopped growing for 2 s and
// returns them.
func waitSeriesSettled(t *testing.T, carbon *carbontest.Cache) (etsy, router []string) {
	t.Helper()
	list := func(ns string) []string {
		var out []string
		for _, n := range carbon.Series(t, ns) {
			if !strings.HasPrefix(n, ns+".statsd.graphiteStats.") {
				out = append(out, n)
			}
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	stable := time.Now()
	for {
		e, r := list("etsy"), list("router")
		if !slices.Equal(e, etsy) || !slices.Equal(r, router) {
			etsy, router, stable = e, r, time.Now()
		}
		if time.Since(stable) >= 2*time.Second {
			return etsy, router
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-cache still creating files after 20s: %d under etsy, %d under router", len(e), len(r))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// compareCarbonValue reports whether Etsy's value and the router's are
// equal within 1e-9 relative (1 if so, else 0 and an error).
func compareCarbonValue(t *testing.T, name string, etsy, router float64) int {
	t.Helper()
	if etsy == router || math.Abs(etsy-router) <= 1e-9*math.Max(math.Abs(etsy), math.Abs(router)) {
		return 1
	}
	t.Errorf("%s: Etsy %v, router %v", strings.TrimPrefix(name, "etsy."), etsy, router)
	return 0
}

func sumPoints(pts []carbontest.Point) float64 {
	s := 0.0
	for _, p := range pts {
		s += p.Value
	}
	return s
}

func maxPoint(pts []carbontest.Point) float64 {
	m := math.Inf(-1)
	for _, p := range pts {
		m = max(m, p.Value)
	}
	return m
}
