package statsdagg

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"

	"github.com/metricsrouter/router/internal/etsytest"
)

// The differential test runs Etsy statsd's own daemon (node stats.js, the npm
// package statsd 0.9.0 in $STATSD_DIR) with its graphite backend pointed at a
// TCP sink, sends it two batches of datagrams, each right after a flush, and
// compares whole flushes with State.Flush at the same timestamps.
//
// Compared, for every case: every line of flush 1 (before any input: Etsy's
// own statistics), flush 2 (batchA), flush 3 (batchB: what each type keeps,
// resets or deletes), then of the case's idle flushes (nothing sent:
// deletions, gauge TTLs running out). Names and values are compared as
// text, which is stricter than 1e-9 relative; processing_time by name only
// (its value measures each implementation); Etsy's graphiteStats.* lines
// are dropped (see the package doc). The cases:
//   - legacy: legacy namespace, percentThreshold [90, 99.9, -10], no delete
//     option, flushes 1-3;
//   - namespaced: legacyNamespace false with every prefix, a global suffix and
//     prefixStats set, eight percent thresholds (out of range, zero, negative,
//     repeated), flushes 1-3;
//   - delete-idle-histogram: legacy, deleteIdleStats (the four delete options),
//     gaugesMaxTTL 2, histogram bins with 'inf' and three entries of which the
//     first match wins, flushes 1-5;
//   - delete-some-namespaced: namespaced, deleteCounters and deleteGauges alone
//     with gaugesMaxTTL 3 (the gauges of batchA only are written in flushes
//     2-4 and gone from flush 5; those of batchB in 3-5, gone in flush 6),
//     flushes 1-6;
//   - idle-overrides: namespaced with a global suffix, deleteIdleStats with
//     deleteCounters and deleteGauges false (timers and sets deleted),
//     histogram bins unsorted and repeated (2.5 and 2.50: one line),
//     flushes 1-4.

// batchA covers every type, sample rates, tags, sanitizing, multi-value lines,
// bad lines and Etsy's quirks that do not make it throw.
var batchA = []string{
	"c.basic:1|c", "c.basic:2|c", "c.sampled:1|c|@0.1", "c.frac:0.3|c|@0.7",
	"c.neg:-5|c", "c.float:1.5e3|c", "c.hex:0x10|c", "c.multi:1|c:2|c|@0.5:3|c",
	"c.tagged:1|c|#env:prod,dc:eu", "c.tag2:1|c|#a;b:c:d,e|#ignored",
	"c.white space/slash:1|c", "c.bad!chars@#:1|c", "c.unknowntype:4|x", "c.emptytype:4|",
	"c.rate1e:1|c|@0.5e1", "c.ratezero:1|c|@0x2", "c.nan:0|c|@0x1", "c.nan:2|c",
	"c.tiny:0.0000001|c", "c.huge:1e21|c", "c.ws:  |c", ":1|c", "c.uni\u00a0 space\u2003x:1|c",
	"c.\u00fcn\u00efcode:1|c", "c.extrafields:2|c|@0.5|junk", "c.cr:1|c\r",
	"nocolon", "bad:abc|c", "bad:1|c|@-0.5", "bad:1|c|0.5", "bad:1|c|", "bad:-1|ms", "bad:x|g",
	"bad:1", "bad:1|c|@", "bad:1|c|@.", "bad:|c", "bad:NaN|c", "bad:inf|c", "bad:1_0|c",
	"t.a:100|ms", "t.a:200|ms", "t.a:50|ms|@0.5", "t.a:1.5|ms", "t.a:0|ms", "t.a:-0|ms",
	"t.many:5|ms:3|ms:9|ms:1|ms:7|ms:2|ms:8|ms:4|ms:6|ms:10|ms:11|ms:12|ms:13|ms:14|ms:15|ms:16|ms:17|ms:18|ms:19|ms:20|ms",
	"t.one:7|ms", "t.f:0.1|ms:0.2|ms:0.7|ms:0.3|ms", "t.spacetype:-3| ms", "t.spacetype:4|ms",
	"t.inf:1e999|ms", "t.inf:1|ms", "t.tagged:5|ms|#k:v", "t.cr:4|ms\r", "t.big:123456789012|ms:0.000001|ms",
	"g.a:5|g", "g.a:+3|g", "g.a:-10|g", "g.b:-4|g", "g.c:+0|g", "g.zero:0|g", "g.zero:+5|g",
	"g.sampled:3|g|@0.5", "g.space: -2|g", "g.frac:0.1|g", "g.frac:+0.2|g", "g.exp:1e-7|g",
	"s.a:x|s", "s.a:y|s", "s.a:x|s", "s.a:|s", "s.a:0|s", "s.proto:__proto__|s", "s.spacetype:5| s",
	"s.b:1|s|@0.5", "s.c:a b|s", "s.c:a  b|s",
	"dup:1|c", "dup:2|ms", "dup:3|g", "dup:z|s",
	"m.p1:1|c\nm.p2:2|c\n\nm.p3:3|ms\n",
	"c.tagempty:1|c|#x,,y", "c.tagcomma:1|c|#,", "c.tagonly:1|c|#", "c.tagws:1|c|#a b: c d",
	"c.tagorder:1|c|#zz:1,aa:2,mm", "h.dog:4|h", "h.dog:6|h|@0.5", "d.dog:5|d", "h.neg:-4|h", "d.bad:x|d",
	"c.comma,x:1|c", "c.comma2,k=v,x:1|c", "c.comma3,k=:1|c", "c.semi;k=v:1|c",
	"statsd.bad_lines_seen:3|c",
}

// batchB touches some keys again, so the flush after it shows which state
// Etsy keeps (gauges, zeroed counters, emptied timers and sets).
var batchB = []string{
	"c.basic:5|c", "g.a:+1|g", "t.a:10|ms", "s.a:q|s", "g.new:1|g", "c.nan:1|c|@0x1",
	"t.new:3|ms:1|ms", "s.new:a|s",
}

func TestEtsyDifferential(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	cases := []struct {
		name string
		js   string // the graphite section and percentThreshold of the config
		cfg  func() Config
		idle int // flushes after the last batch, beyond the first
	}{
		{"legacy", `percentThreshold: [90, 99.9, -10], graphite: {legacyNamespace: true}`, func() Config {
			c := DefaultConfig()
			c.FlushInterval = 2 * time.Second
			c.PercentThreshold = []float64{90, 99.9, -10}
			return c
		}, 0},
		{"namespaced", `percentThreshold: [50, 99.9, -25, 150, -100, 0, 90, 90], prefixStats: "mystatsd",
			graphite: {legacyNamespace: false, globalPrefix: "glob", prefixCounter: "", prefixTimer: "tm",
			prefixGauge: "gg", prefixSet: "st", globalSuffix: "sfx"}`, func() Config {
			c := DefaultConfig()
			c.FlushInterval = 1500 * time.Millisecond
			c.PercentThreshold = []float64{50, 99.9, -25, 150, -100, 0, 90, 90}
			c.LegacyNamespace = false
			c.GlobalPrefix, c.PrefixCounter, c.PrefixTimer = "glob", "", "tm"
			c.PrefixGauge, c.PrefixSet, c.GlobalSuffix, c.PrefixStats = "gg", "st", "sfx", "mystatsd"
			return c
		}, 0},
		{"delete-idle-histogram", `percentThreshold: [90], deleteIdleStats: true, gaugesMaxTTL: 2,
			histogram: [{metric: "t.a", bins: [1, 100, 150.5, "inf"]}, {metric: "t.", bins: [5, 10]}, {metric: "t.many", bins: [1]}]`, func() Config {
			c := DefaultConfig()
			c.FlushInterval = 1500 * time.Millisecond
			c.DeleteCounters, c.DeleteTimers, c.DeleteSets, c.DeleteGauges = true, true, true, true
			c.GaugesMaxTTL = 2
			c.Histogram = []Histogram{{"t.a", []float64{1, 100, 150.5, math.Inf(1)}}, {"t.", []float64{5, 10}}, {"t.many", []float64{1}}}
			return c
		}, 2},
		{"delete-some-namespaced", `deleteCounters: true, deleteGauges: true, gaugesMaxTTL: 3,
			graphite: {legacyNamespace: false}`, func() Config {
			c := DefaultConfig()
			c.FlushInterval = 1500 * time.Millisecond
			c.LegacyNamespace = false
			c.DeleteCounters, c.DeleteGauges, c.GaugesMaxTTL = true, true, 3
			return c
		}, 3},
		{"idle-overrides", `deleteIdleStats: true, deleteCounters: false, deleteGauges: false,
			histogram: [{metric: "t.", bins: [10, 2.5, 0.5, 2.50, 1e21, "inf"]}],
			graphite: {legacyNamespace: false, globalSuffix: "sfx"}`, func() Config {
			c := DefaultConfig()
			c.FlushInterval = 1500 * time.Millisecond
			c.LegacyNamespace, c.GlobalSuffix = false, "sfx"
			no := false
			c.DeleteCounters, c.DeleteTimers, c.DeleteGauges, c.DeleteSets = ResolveDeleteIdle(true, &no, nil, &no, nil)
			c.Histogram = []Histogram{{"t.", []float64{10, 2.5, 0.5, 2.50, 1e21, math.Inf(1)}}}
			return c
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for attempt := 1; ; attempt++ {
				split := runEtsy(t, dir, tc.js, tc.cfg(), tc.idle)
				if !split {
					return
				}
				if attempt == 2 {
					t.Fatal("a flush split the input twice")
				}
				t.Log("a flush split the input; retrying")
			}
		})
	}
}

// runEtsy runs one daemon and compares three or more flushes. It returns true when a
// batch did not arrive within one flush interval (the caller retries).
func runEtsy(t *testing.T, dir, js string, cfg Config, idle int) (split bool) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	flushes := make(chan []byte, 16)
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			b, _ := io.ReadAll(c)
			c.Close()
			flushes <- b
		}
	}()
	udpPort, mgmtPort := freePort(t, "udp"), freePort(t, "tcp")
	conf := filepath.Join(t.TempDir(), "config.js")
	text := fmt.Sprintf(`{ port: %d, address: "127.0.0.1", mgmt_port: %d, mgmt_address: "127.0.0.1",
  flushInterval: %d, backends: ["./backends/graphite"], graphiteHost: "127.0.0.1", graphitePort: %d,
  automaticConfigReload: false, %s }`, udpPort, mgmtPort, cfg.FlushInterval.Milliseconds(),
		sink.Addr().(*net.TCPAddr).Port, js)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "stats.js", conf)
	cmd.Dir = dir
	var out plugintest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node stats.js output:\n%s", out.String())
		}
	}()
	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wait := func() []byte {
		select {
		case b := <-flushes:
			return b
		case <-time.After(cfg.FlushInterval + 5*time.Second):
			t.Fatal("no flush from Etsy statsd")
			return nil
		}
	}
	packetsName := cfg.PrefixStats + ".packets_received"
	batches := append([][]string{batchA, batchB, nil}, make([][]string, idle)...)
	etsy := wait()
	for i := 0; ; i++ {
		want, ts := parseEtsy(t, etsy, cfg.PrefixStats)
		got := st.Flush(ts, nil)
		if i > 0 {
			// packets_received of this flush says whether the batch
			// sent after the previous one all arrived in it.
			n := len(batches[i-1])
			pk := "stats_counts." + packetsName + " " + fmt.Sprint(n) + " "
			if !cfg.LegacyNamespace {
				pk = st.counters[st.packets].countName + " " + fmt.Sprint(n) + " "
			}
			if !strings.Contains(string(etsy), pk) {
				return true
			}
		}
		gotLines, procs := blankProcessingTime(parseLines(string(got)), cfg.PrefixStats)
		want, etsyProcs := blankProcessingTime(want, cfg.PrefixStats)
		if procs != 1 || etsyProcs != 1 {
			t.Errorf("flush %d: %d processing_time lines, Etsy %d, want 1", i+1, procs, etsyProcs)
		}
		compareLines(t, fmt.Sprintf("flush %d", i+1), want, gotLines)
		t.Logf("flush %d at %d: %d lines compared", i+1, ts, len(want))
		if i == len(batches)-1 {
			return false
		}
		for _, p := range batches[i] {
			if _, err := conn.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
			_ = st.AddPacket([]byte(p))
		}
		etsy = wait()
	}
}

// parseEtsy returns Etsy's lines without the statistics State does not
// write, and the flush's timestamp (that of its numStats line).
func parseEtsy(t *testing.T, b []byte, prefixStats string) ([]string, int64) {
	var lines []string
	var ts int64 = -1
	for _, l := range parseLines(string(b)) {
		name := l[:strings.IndexByte(l, ' ')]
		if strings.Contains(name, prefixStats+".graphiteStats.") {
			continue
		}
		if strings.Contains(name, ".numStats") {
			fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &ts)
		}
		lines = append(lines, l)
	}
	if ts < 0 {
		t.Fatalf("no numStats line in Etsy's flush:\n%s", b)
	}
	return lines, ts
}

// blankProcessingTime replaces the value of the processing_time lines (it
// measures each implementation) by "-", so that their names are compared,
// and says how many there were.
func blankProcessingTime(lines []string, prefixStats string) ([]string, int) {
	n := 0
	for i, l := range lines {
		name, rest, _ := strings.Cut(l, " ")
		if strings.Contains(name, prefixStats+".processing_time") {
			_, ts, _ := strings.Cut(rest, " ")
			lines[i] = name + " - " + ts
			n++
		}
	}
	return lines, n
}

func parseLines(s string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	slices.Sort(lines)
	return lines
}

func compareLines(t *testing.T, what string, want, got []string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || i < len(want) && want[i] < got[j]:
			t.Errorf("%s: Etsy wrote %q, State did not", what, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			t.Errorf("%s: State wrote %q, Etsy did not", what, got[j])
			j++
		default:
			i++
			j++
		}
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
