package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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
		{"bad TOML", "[[inputs.graphite]\n", []string{"bad.toml:", "delimiter"}},
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
