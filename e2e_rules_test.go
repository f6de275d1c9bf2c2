package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestRulesRouteAndReload runs the binary with a rule chain over real
// sockets: each sink gets exactly what the rules send it (renamed where a
// rewrite applies), the rest is counted as blackholed; per-rule counters
// are exported; a SIGHUP swaps the chain as a whole and removes the
// counters of rules that are gone.
func TestRulesRouteAndReload(t *testing.T) {
	sa, sb := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	head := fmt.Sprintf(`[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "A"
  address = %q
[[outputs.graphite]]
  id = "B"
  address = %q
`, stats, in, sa.Addr, sb.Addr)
	first := head + `
[[rules]]
  id = "to-a"
  match = '^a\.'
  send_to = ["A"]
  stop = true
[[rules]]
  id = "rename-b"
  rewrite = '^b\.(.*)$'
  into = 'bb.\_1'
[[rules]]
  id = "to-b"
  match = ['^bb\.', '\.both$']
  send_to = ["B"]
[[rules]]
  id = "rest"
  match = "*"
  send_to = ["blackhole"]
`
	cfgFile := filepath.Join(t.TempDir(), "r.toml")
	if err := os.WriteFile(cfgFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, cfgFile)
	waitListen(t, in)
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("a.%d 1 1700000000", i), fmt.Sprintf("b.X%d 2 1700000000", i), fmt.Sprintf("c.%d 3 1700000000", i))
	}
	lines = append(lines, "b.x.both 4 1700000000") // matches both expressions of to-b: sent twice
	sendLines(t, in, lines, 2)
	if !sa.WaitLen(100, 10*time.Second) || !sb.WaitLen(102, 10*time.Second) {
		t.Fatalf("sinks got %d and %d lines, want 100 and 102", sa.Len(), sb.Len())
	}
	for _, l := range sa.Lines() {
		if !strings.HasPrefix(l, "a.") {
			t.Fatalf("A got %q", l)
		}
	}
	both := 0
	for _, l := range sb.Lines() {
		if !strings.HasPrefix(l, "bb.x") {
			t.Fatalf("B got %q (want renamed, lower-cased)", l)
		}
		if l == "bb.x.both 4 1700000000" {
			both++
		}
	}
	if both != 2 {
		t.Fatalf("B got the two-expression match %d times, want 2", both)
	}
	waitCounter(t, stats, series("blackholed_total", "agent", "rules"), 100, 5*time.Second)
	m := scrape(t, stats)
	// rest also sees what to-b sent on (no stop there)
	for rule, want := range map[string]float64{"to-a": 100, "rename-b": 101, "to-b": 102, "rest": 201} {
		if got := m[fmt.Sprintf(`router_rule_matched_total{rule=%q}`, rule)]; got != want {
			t.Errorf("rule %s matched %v, want %v", rule, got, want)
		}
	}
	if got := m[series("unmatched_total", "agent", "rules")]; got != 0 {
		t.Errorf("unmatched %v", got)
	}

	// SIGHUP: everything to B now.
	second := head + `
[[rules]]
  id = "all-b"
  match = "*"
  send_to = ["B"]
`
	if err := os.WriteFile(cfgFile, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"cause":"reload"`, 1)
	sendLines(t, in, []string{"a.new 1 1700000000", "c.new 1 1700000000"}, 1)
	if !sb.WaitLen(104, 10*time.Second) {
		t.Fatalf("B has %d lines after the reload, want 104", sb.Len())
	}
	if sa.Len() != 100 {
		t.Fatalf("A got %d lines, want still 100", sa.Len())
	}
	text := scrapeText(t, stats)
	if strings.Contains(text, `rule="to-a"`) || !strings.Contains(text, `router_rule_matched_total{rule="all-b"} 2`) {
		t.Fatalf("rule series after the reload:\n%s", grepLines(text, "rule_matched"))
	}
	// the shutdown log counts what no rule sent anywhere, since the start
	const summary = "rules summary: metrics no rule sent anywhere"
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, summary, 1)
	e := p.logEntries(summary)[0]
	if e["blackholed"] != 100.0 || e["unmatched"] != 0.0 || e["validate_dropped"] != 0.0 || e["rules"] != 1.0 {
		t.Fatalf("summary %v", e)
	}
}

// TestRouteJSON checks -route - -json on a file with rules: one object per
// line read, in order, with the name each output would get.
func TestRouteJSON(t *testing.T) {
	cfg := writeConfig(t, `[[inputs.graphite]]
  listen = "127.0.0.1:0"
[[outputs.consistent_hash]]
  id = "ch"
  hash = "carbon_ch"
  collision = "first"
  protocol = "graphite"
  destinations = ["127.0.0.1:2101:a", "127.0.0.1:2102:b"]
[[outputs.graphite]]
  id = "one"
  address = "127.0.0.1:2103"
[[rules]]
  rewrite = '^x\.(.*)$'
  into = 'y.\1'
[[rules]]
  match = '^y\.'
  validate = '^[0-9]+ '
  send_to = ["ch", "one"]
  stop = true
[[rules]]
  match = '*'
  send_to = ["blackhole"]
`)
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	out := runStdin(t, "x.a 1 1700000000\nx.b -1 1700000000\nzzz\n", bin, "-config", cfg, "-route", "-", "-json")
	want := `{"metric":"x.a","sends":[{"output":"ch","dest":"127.0.0.1:2102","name":"y.a"},{"output":"one","dest":"127.0.0.1:2103","name":"y.a"}],"dropped":""}
{"metric":"x.b","sends":[],"dropped":"validate"}
{"metric":"zzz","sends":[],"dropped":"blackhole"}
`
	if out != want {
		t.Fatalf("-route - -json:\n%s\nwant:\n%s", out, want)
	}
}

// runStdin runs a command with stdin and returns its standard output; a
// non-zero exit fails the test.
func runStdin(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestSelectors checks Telegraf's namepass / namedrop on an input, a
// processor and an output, over real sockets.
func TestSelectors(t *testing.T) {
	sa, sb := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  namedrop = ["junk.*"]
[[processors.prefix]]
  prefix = "p."
  namepass = ["a.*", "c.{x,y}"]
[[outputs.graphite]]
  id = "A"
  address = %q
  namepass = ["p.*"]
  namedrop = ["p.a.2"]
[[outputs.graphite]]
  id = "B"
  address = %q
`, stats, in, sa.Addr, sb.Addr))
	waitListen(t, in)
	sendLines(t, in, []string{"a.1 1 1", "a.2 1 1", "b.1 1 1", "junk.1 1 1", "c.x 1 1", "c.z 1 1"}, 1)
	if !sb.WaitLen(5, 10*time.Second) {
		t.Fatalf("B has %d lines", sb.Len())
	}
	if got, want := strings.Join(sb.Sorted(), ","), "b.1 1 1,c.z 1 1,p.a.1 1 1,p.a.2 1 1,p.c.x 1 1"; got != want {
		t.Fatalf("B got %s, want %s", got, want)
	}
	if !sa.WaitLen(2, 10*time.Second) {
		t.Fatalf("A has %d lines", sa.Len())
	}
	if got, want := strings.Join(sa.Sorted(), ","), "p.a.1 1 1,p.c.x 1 1"; got != want {
		t.Fatalf("A got %s, want %s", got, want)
	}
	waitCounter(t, stats, series("filtered_total", "inputs.graphite", "graphite-1"), 1, 5*time.Second)
	waitCounter(t, stats, series("filtered_total", "outputs.graphite", "A"), 3, 5*time.Second)
}

// TestFileOutputIPAndReopen: outputs.file with ip = true writes each line
// as "<sender> <line>" (carbon-c-relay's `file ip`), and SIGHUP reopens the
// file after logrotate moved it, losing and duplicating nothing.
func TestFileOutputIPAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.log")
	in := plugintest.FreeAddr(t)
	cfgFile := filepath.Join(dir, "r.toml")
	cfg := fmt.Sprintf(`[[inputs.graphite]]
  listen = %q
[[outputs.file]]
  id = "archive"
  files = [%q]
  ip = true
[[rules]]
  match = '^keep\.'
  send_to = ["archive"]
`, in, path)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, cfgFile)
	waitListen(t, in)
	read := func(f string) []string {
		b, _ := os.ReadFile(f)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	sendLines(t, in, []string{"keep.a 1 1700000000", "drop.b 1 1700000000", "keep.c 2 1700000000"}, 1)
	if !waitFor(10*time.Second, func() bool { return len(read(path)) == 2 }) {
		t.Fatalf("file has %q", read(path))
	}
	if got := strings.Join(read(path), "|"); got != "127.0.0.1 keep.a 1 1700000000|127.0.0.1 keep.c 2 1700000000" {
		t.Fatalf("file has %q", got)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"cause":"reload"`, 1)
	sendLines(t, in, []string{"keep.d 3 1700000000"}, 1)
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(path); return err == nil && len(read(path)) == 1 && read(path)[0] != "" }) {
		t.Fatalf("no new file after SIGHUP: %v", read(path))
	}
	if got := read(path)[0]; got != "127.0.0.1 keep.d 3 1700000000" {
		t.Fatalf("new file has %q", got)
	}
	if got := len(read(path + ".1")); got != 2 {
		t.Fatalf("rotated file has %d lines, want 2", got)
	}
}
