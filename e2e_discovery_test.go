package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestConsulDiscovery: a consistent_hash takes its caches from a Consul
// service: 3 instances registered, 30k metrics routed; one deregistered,
// 30k more: the second wave avoids it, and each wave lands where -route
// says for the members of that moment.
func TestConsulDiscovery(t *testing.T) {
	consul := plugintest.StartConsul(t)
	sinks := map[string]*plugintest.LineSink{"alpha": plugintest.NewLineSink(t), "bravo": plugintest.NewLineSink(t), "charlie": plugintest.NewLineSink(t)}
	for name, s := range sinks {
		_, port, _ := net.SplitHostPort(s.Addr)
		p, _ := strconv.Atoi(port)
		consul.RegisterService(t, "cache-"+name, "carbon-cache", "127.0.0.1", p, map[string]string{"instance": name})
	}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "caches"
  hash = "carbon_ch"
  protocol = "graphite"
  consul_service = "carbon-cache"
  consul_address = %q
`, stats, in, consul.Addr))
	waitListen(t, in)
	current := func() []string {
		resp, err := http.Get("http://" + stats + "/api/destinations")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct{ Registered map[string]time.Time }
		json.NewDecoder(resp.Body).Decode(&st)
		var d []string
		for k := range st.Registered {
			d = append(d, k)
		}
		return d
	}
	if got := current(); len(got) != 3 {
		t.Fatalf("destinations from Consul: %v", got)
	}
	where := map[string]string{}
	total := 0
	wave := func(tag string) {
		dests := current()
		// the router's order is the catalog's (sorted by instance)
		sortByInstance(dests)
		lines := routedLines(t, dests, "e2e.consul."+tag, 30000, where)
		sendLines(t, in, lines, 2)
		total += len(lines)
		if !waitSinks(func() int {
			n := 0
			for _, s := range sinks {
				n += s.Len()
			}
			return n
		}, total) {
			t.Fatalf("wave %s: not all lines arrived", tag)
		}
	}
	wave("one")
	consul.DeregisterService(t, "cache-bravo")
	if !waitFor(10*time.Second, func() bool { return len(current()) == 2 }) {
		t.Fatalf("deregistration not seen: %v", current())
	}
	before := sinks["bravo"].Len()
	wave("two")
	if sinks["bravo"].Len() != before {
		t.Fatalf("the deregistered cache got %d lines of the second wave", sinks["bravo"].Len()-before)
	}
	for name, s := range sinks {
		for _, l := range s.Lines() {
			if !strings.HasSuffix(where[l], ":"+name) {
				t.Fatalf("%q arrived at %s, -route said %s", l, name, where[l])
			}
		}
	}
}

func sortByInstance(d []string) {
	inst := func(s string) string { return s[strings.LastIndexByte(s, ':')+1:] }
	for i := range d {
		for j := i + 1; j < len(d); j++ {
			if inst(d[j]) < inst(d[i]) {
				d[i], d[j] = d[j], d[i]
			}
		}
	}
}
