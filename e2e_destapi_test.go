package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// routeOf asks -route where each name goes under a configuration with the
// given destinations (the check an operator runs before a change).
func routeOf(t *testing.T, dests []string, names []string) map[string]string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "route.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[[inputs.graphite]]
[[outputs.consistent_hash]]
  id = "caches"
  hash = "carbon_ch"
  protocol = "graphite"
  destinations = ["%s"]
`, strings.Join(dests, `", "`))), 0o600)
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	cmd := exec.Command(bin, "-config", cfg, "-route", "-")
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		n, d, _ := strings.Cut(l, " -> ")
		m[n] = d
	}
	return m
}

// routedLines returns n lines "<prefix>.<i> 1 1700000000" and records in
// where the destination -route gives each under dests.
func routedLines(t *testing.T, dests []string, prefix string, n int, where map[string]string) []string {
	t.Helper()
	names, lines := make([]string, n), make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s.%d", prefix, i)
		lines[i] = names[i] + " 1 1700000000"
	}
	r := routeOf(t, dests, names)
	for i, l := range lines {
		where[l] = r[names[i]]
	}
	return lines
}

// TestDestinationAPI: putdest and deldest change a consistent_hash's members
// at run time; lines sent before and after each change land where -route
// says for the members of that moment, and nothing is lost.
func TestDestinationAPI(t *testing.T) {
	sinks := map[string]*plugintest.LineSink{"a": plugintest.NewLineSink(t), "b": plugintest.NewLineSink(t), "c": plugintest.NewLineSink(t)}
	spec := func(n string) string { return sinks[n].Addr + ":" + n }
	in, stats, api := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  api_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "caches"
  hash = "carbon_ch"
  protocol = "graphite"
  destinations = [%q, %q]
`, stats, api, in, spec("a"), spec("b")))
	waitListen(t, in)
	where := map[string]string{} // line -> expected destination
	wave := func(tag string, dests []string) {
		sendLines(t, in, routedLines(t, dests, "e2e.api."+tag, 20000, where), 2)
	}
	total := func() int { return sinks["a"].Len() + sinks["b"].Len() + sinks["c"].Len() }
	waitTotal := func(n int) {
		if !waitSinks(total, n) {
			t.Fatalf("sinks got %d of %d", total(), n)
		}
	}
	wave("one", []string{spec("a"), spec("b")})
	waitTotal(20000)
	if got := lineCommand(t, api, "putdest "+spec("c")); !strings.HasPrefix(got, "Registered destination") {
		t.Fatalf("putdest: %q", got)
	}
	var st struct {
		Active     []string
		Registered map[string]time.Time
	}
	getdest := lineCommand(t, api, "getdest")
	if err := json.Unmarshal([]byte(getdest), &st); err != nil || len(st.Registered) != 3 {
		t.Fatalf("getdest: %v %+v", err, st)
	}
	// indented by one space, as Polymur's (agent/admin/testdata/polymur/api/getdest.txt)
	if !strings.HasPrefix(getdest, "{\n \"active\": [\n  \"") || !strings.Contains(getdest, "\n \"registered\": {\n  \"") || !strings.HasSuffix(getdest, "\n }\n}\n") {
		t.Fatalf("getdest is not in Polymur's shape:\n%s", getdest)
	}
	wave("two", []string{spec("a"), spec("b"), spec("c")})
	waitTotal(40000)
	// stats_addr only reads
	req, _ := http.NewRequest("DELETE", "http://"+stats+"/api/destinations/"+spec("a"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE on stats_addr: %v %v", err, resp)
	}
	resp.Body.Close()
	// the HTTP equivalent on api_addr removes a
	req, _ = http.NewRequest("DELETE", "http://"+api+"/api/destinations/"+spec("a"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("DELETE: %v %v", err, resp)
	}
	resp.Body.Close()
	wave("three", []string{spec("b"), spec("c")})
	waitTotal(60000)
	// the line command removes c and puts it back, in Polymur's words
	if got := lineCommand(t, api, "deldest "+spec("c")); got != "Unregistered destination: "+spec("c")+"\n" {
		t.Fatalf("deldest: %q", got)
	}
	if got := lineCommand(t, api, "putdest "+spec("c")); got != "Registered destination: "+spec("c")+"\n" {
		t.Fatalf("putdest: %q", got)
	}
	if got := lineCommand(t, api, "deldest"); got != "Must provide destination\n" {
		t.Fatalf("deldest without a destination: %q", got)
	}
	if got := lineCommand(t, api, "frobnicate"); got != "Not a command: frobnicate\n" {
		t.Fatalf("unknown command: %q", got)
	}
	moved := 0
	for n, s := range sinks {
		for _, l := range s.Lines() {
			if where[l] != spec(n) {
				moved++
			}
		}
	}
	if moved != 0 {
		t.Fatalf("%d lines did not land where -route said", moved)
	}
}
