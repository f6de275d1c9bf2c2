package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestSinkDownAndBack: a sink down for 5 s receives, once back, everything
// sent meanwhile (within buffer_limit); the other sink is not held up.
func TestSinkDownAndBack(t *testing.T) {
	a, b := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.broadcast]]
  id = "caches"
  protocol = "graphite"
  destinations = [%q, %q]
  retry_initial = "50ms"
  retry_max = "500ms"
`, in, a.Addr, b.Addr))
	waitListen(t, in)
	first := graphiteLines("e2e.before", 0, 1000)
	sendLines(t, in, first, 1)
	if !a.WaitLen(1000, 10*time.Second) || !b.WaitLen(1000, 10*time.Second) {
		t.Fatal("warm-up lines did not arrive")
	}
	a.Stop()
	down := time.Now()
	during := graphiteLines("e2e.during", 0, 50_000)
	sendLines(t, in, during, 2)
	// the healthy sink is not held up by the dead one
	if !b.WaitLen(1000+len(during), 10*time.Second) {
		t.Fatalf("healthy sink got %d of %d while the other was down", b.Len(), 1000+len(during))
	}
	time.Sleep(time.Until(down.Add(5 * time.Second)))
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if !a.WaitLen(1000+len(during), 20*time.Second) {
		t.Fatalf("sink back after 5s got %d of %d", a.Len(), 1000+len(during))
	}
	want := sortedCopy(append(slices.Clone(first), during...))
	if got := a.Sorted(); !slices.Equal(got, want) {
		t.Fatalf("sink that came back: lines differ (got %d, want %d; duplicates or losses)", len(got), len(want))
	}
}

// TestDropOldestCounts: with drop_oldest and a buffer too small for what
// arrives while the sink is down, dropped_total equals exactly what is missing.
func TestDropOldestCounts(t *testing.T) {
	a := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	p := startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "small"
  address = %q
  buffer_limit = 1000
  batch_size = 100
  overflow = "drop_oldest"
  retry_initial = "50ms"
  retry_max = "200ms"
`, stats, in, a.Addr))
	waitListen(t, in)
	a.Stop()
	const n = 20_000
	lines := graphiteLines("e2e.drop", 0, n)
	sendLines(t, in, lines, 1)
	// wait until the input has emitted everything
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, stats)[series("received_total", "outputs.graphite", "small")] < n {
		if time.Now().After(deadline) {
			t.Fatal("input did not emit all lines")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, stats)
	dropped := int(m[series("dropped_total", "outputs.graphite", "small")])
	if dropped < n-1000 {
		t.Fatalf("dropped_total = %d, want at least %d", dropped, n-1000)
	}
	if !a.WaitLen(n-dropped, 10*time.Second) {
		t.Fatalf("sink got %d, want %d (= %d sent - %d dropped)", a.Len(), n-dropped, n, dropped)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	got := a.Lines()
	if len(got)+dropped != n {
		t.Fatalf("received %d + dropped %d != sent %d", len(got), dropped, n)
	}
	seen := map[string]bool{}
	sent := map[string]bool{}
	for _, l := range lines {
		sent[l] = true
	}
	for _, l := range got {
		if seen[l] || !sent[l] {
			t.Fatalf("line %q duplicated or never sent", l)
		}
		seen[l] = true
	}
	// drop_oldest keeps the newest: the last line sent must be there
	if !seen[lines[n-1]] {
		t.Fatalf("newest line %q was dropped", lines[n-1])
	}
}

// TestConfigErrors: typos and bad values fail with file, line, table and key.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, cfg string
		want      []string
	}{
		{"typo", "[[inputs.graphite]]\nlisten = \":0\"\nservres = 1\n[[outputs.console]]\n", []string{":3:", "[[inputs.graphite]]", `unknown key "servres"`}},
		{"unknown plugin", "[[inputs.graphite]]\n[[outputs.graphit]]\n", []string{":2:", `unknown output plugin "graphit"`, "this binary has:", "broadcast, consistent_hash"}},
		{"wrong type", "[[inputs.graphite]]\nmax_line_length = \"big\"\n[[outputs.console]]\n", []string{":2:", "max_line_length", "incompatible types"}},
		{"duration without unit", "[[inputs.graphite]]\nidle_timeout = 5\n[[outputs.console]]\n", []string{"idle_timeout", "missing unit"}},
		{"agent typo", "[agent]\nlog_levle = \"info\"\n[[inputs.graphite]]\n[[outputs.console]]\n", []string{":2:", `unknown key "log_levle"`}},
		{"single table", "[inputs.graphite]\nlisten = \":0\"\n[[outputs.console]]\n", []string{"write [[inputs.graphite]]"}},
		{"negative flush_idle", "[[inputs.graphite]]\n[[outputs.console]]\nflush_idle = \"-1s\"\n", []string{":3:", "flush_idle", "negative"}},
		{"bad overflow", "[[inputs.graphite]]\n[[outputs.console]]\noverflow = \"spill\"\n", []string{"overflow", `"spill"`}},
		{"target typo", "[[inputs.graphite]]\n[[outputs.broadcast]]\n[[outputs.broadcast.to.graphite]]\naddress = \"127.0.0.1:1\"\nadress = \"x\"\n", []string{":5:", `unknown key "adress"`}},
		{"unset env", "[[inputs.graphite]]\nlisten = \"${ROUTER_TEST_UNSET_VAR}\"\n[[outputs.console]]\n", []string{":2:", "ROUTER_TEST_UNSET_VAR is not set"}},
		{"bad destination", "[[inputs.graphite]]\n[[outputs.broadcast]]\nprotocol = \"graphite\"\ndestinations = [\"nohost\"]\n", []string{"destinations", "host:port"}},
		{"no outputs", "[[inputs.graphite]]\n", []string{"no [[outputs.*]]"}},
		{"bad TOML", "[[inputs.graphite]\n", []string{"bad.toml:1:", "delimiter"}},
		{"bad TOML line 3", "[agent]\nlog_level = \"info\"\n[[inputs.graphite]\n", []string{"bad.toml:3:", "delimiter"}},
		{"listen port out of range", "[[inputs.graphite]]\nlisten = \":99999\"\n[[outputs.console]]\n", []string{":2:", `listen ":99999": port 99999: want 0-65535`}},
		{"address port not a number", "[[inputs.graphite]]\n[[outputs.graphite]]\naddress = \"localhost:abc\"\n", []string{":3:", `address "localhost:abc": port "abc"`}},
		{"statsd admin port", "[[inputs.statsd]]\n[[outputs.statsd]]\naddress = \"127.0.0.1:8125\"\nadmin = \"127.0.0.1:0\"\n", []string{":4:", `admin "127.0.0.1:0": port 0: want 1-65535`}},
		{"destination port", "[[inputs.graphite]]\n[[outputs.broadcast]]\nprotocol = \"graphite\"\ndestinations = [\"127.0.0.1:70000\"]\n", []string{":4:", "port 70000: want 1-65535"}},
		{"agent address", "[agent]\nstats_addr = \"127.0.0.1:http-alt-nope\"\n[[inputs.graphite]]\n[[outputs.console]]\n", []string{":2:", "stats_addr", "service name"}},
		{"did you mean", "[[inputs.graphite]]\nmax_line_lenght = 5\n[[outputs.console]]\n", []string{":2:", `did you mean "max_line_length"?`, "[[inputs.graphite]] takes: allowed_chars, cleanse,"}},
		{"duplicate id", "[[inputs.graphite]]\n[[outputs.console]]\nid = \"x\"\n[[outputs.console]]\nid = \"x\"\n", []string{`id "x" already used`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "bad.toml")
			os.WriteFile(file, []byte(c.cfg), 0o600)
			var out bytes.Buffer
			code := agent.Run(context.Background(), []string{"-config", file, "-check"}, &out, &out)
			if code == 0 {
				t.Fatalf("exit 0, want an error; output: %s", out.String())
			}
			msg := out.String()
			if !strings.Contains(msg, file) {
				t.Errorf("message does not name the file: %s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
}

// TestConfigAllErrors: -check reports every error of a file at once, in
// line order (the loader's and the plugins' Init's), then how many.
func TestConfigAllErrors(t *testing.T) {
	cfg := `[agent]
  log_levl = "debug"
[[inputs.graphite]]
  listen = ":99999"
[[inputs.statsd]]
  listen = ":8125"
  read_bufer = 5
[[inputs.nosuch]]
  foo = 1
[[outputs.graphite]]
  address = "localhost:abc"
[[outputs.graphite]]
  address = "127.0.0.1:2003"
  overflow = "spill"
  batch_size = -1
[[outputs.consistent_hash]]
  protocol = "graphite"
  destinations = ["127.0.0.1:2004", "127.0.0.1:0"]
`
	file := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(file, []byte(cfg), 0o600)
	var out bytes.Buffer
	if code := agent.Run(context.Background(), []string{"-config", file, "-check"}, &out, &out); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, out.String())
	}
	want := []string{
		`:2: [agent]: unknown key "log_levl" (typo, or not in this build); did you mean "log_level"?`,
		`:4: [[inputs.graphite]] #1: listen ":99999": port 99999: want 0-65535`,
		`:7: [[inputs.statsd]]: unknown key "read_bufer" (typo, or not in this build); did you mean "read_buffer"?`,
		`:8: [[inputs.nosuch]]: unknown input plugin "nosuch"`,
		`:11: [[outputs.graphite]] #1: address "localhost:abc": port "abc"`,
		`:14: [[outputs.graphite]] #2: overflow: "spill"`,
		`:15: [[outputs.graphite]] #2: batch_size: must be positive`,
		`:18: [[outputs.consistent_hash]] #1: destinations: "127.0.0.1:0": port 0: want 1-65535`,
		`bad.toml: 8 errors`,
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], "router: "+file[:len(file)-len("bad.toml")]) || !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %q, want it to contain %q", i+1, lines[i], w)
		}
	}
}

// TestCheckCountsLikeRun: -check and the "router started" log count
// inputs, outputs (tables) and destinations the same way.
func TestCheckCountsLikeRun(t *testing.T) {
	cfg := `[agent]
  shutdown_timeout = "1s"
[[inputs.graphite]]
  listen = "127.0.0.1:0"
[[outputs.consistent_hash]]
  protocol = "graphite"
  destinations = ["127.0.0.1:2004:a", "127.0.0.1:2005:b", "127.0.0.1:2006:c"]
[[outputs.console]]
`
	file := filepath.Join(t.TempDir(), "count.toml")
	os.WriteFile(file, []byte(cfg), 0o600)
	var out bytes.Buffer
	if code := agent.Run(context.Background(), []string{"-config", file, "-check"}, &out, &out); code != 0 {
		t.Fatalf("-check: exit %d: %s", code, out.String())
	}
	if want := "ok (1 inputs, 0 processors, 2 outputs with 4 destinations, 0 rules)"; !strings.Contains(out.String(), want) {
		t.Fatalf("-check: %q, want %q", out.String(), want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs plugintest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- agent.Run(ctx, []string{"-config", file}, io.Discard, &logs) }()
	started := regexp.MustCompile(`"inputs":1,"processors":0,"aggregators":0,"outputs":2,"destinations":4,"rules":0,.*"message":"router started"`)
	deadline := time.Now().Add(10 * time.Second)
	for !started.MatchString(logs.String()) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no matching \"router started\" log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestEtcConfigsCheck: every shipped config passes -check.
func TestEtcConfigsCheck(t *testing.T) {
	files, _ := filepath.Glob("etc/*.toml")
	if len(files) == 0 {
		t.Fatal("no etc/*.toml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out bytes.Buffer
			if code := agent.Run(context.Background(), []string{"-config", f, "-check"}, &out, &out); code != 0 {
				t.Fatalf("-check %s: exit %d: %s", f, code, out.String())
			}
		})
	}
}
