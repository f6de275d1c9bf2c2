package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// proxyJSGolden is testdata/statsd-proxyjs/passthrough.txt: what Etsy
// proxy.js forwarded, and to which of its two nodes, for each datagram.
type proxyJSGolden struct {
	nodes []string
	grams []proxyJSGram
}

type proxyJSGram struct {
	sent string
	fwd  []proxyJSLine // sorted by (node, bytes)
}

type proxyJSLine struct{ node, bytes string }

func readProxyJSGolden(t *testing.T) proxyJSGolden {
	t.Helper()
	f, err := os.Open("testdata/statsd-proxyjs/passthrough.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var g proxyJSGolden
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "# node: "); ok {
			g.nodes = append(g.nodes, n)
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		var s string
		if err := json.Unmarshal([]byte(f[len(f)-1]), &s); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		switch f[0] {
		case "datagram":
			g.grams = append(g.grams, proxyJSGram{sent: s})
		case "forwarded":
			g.grams[len(g.grams)-1].fwd = append(g.grams[len(g.grams)-1].fwd, proxyJSLine{f[1], s})
		}
	}
	if len(g.nodes) != 2 || len(g.grams) < 10 {
		t.Fatalf("golden: %d nodes, %d datagrams", len(g.nodes), len(g.grams))
	}
	return g
}

// TestStatsdPassthroughLikeProxyJS: the lines Etsy proxy.js forwards
// although no StatsD parser accepts them (DogStatsD events and service
// checks, unknown types, NaN and overflowing values, leading spaces, no
// type) are forwarded by the router too: the same bytes, placed on the
// same node of the Etsy ring (keyed by the text before the first ':'),
// counted in passed_unparsed_total; with strict = true they are counted as
// parse errors and dropped.
func TestStatsdPassthroughLikeProxyJS(t *testing.T) {
	g := readProxyJSGolden(t)

	// Placement: each line as inputs.statsd parses it (codec.Parse, else
	// codec.ParseOpaque), on the ring of the golden's two nodes.
	var members []hashring.Member
	for _, n := range g.nodes {
		h, p, _ := strings.Cut(n, ":")
		members = append(members, hashring.Member{Host: h, Port: p})
	}
	ring, err := hashring.NewStatsd(members)
	if err != nil {
		t.Fatal(err)
	}
	var all []string // every line forwarded, sorted
	unparsed := 0
	for _, gram := range g.grams {
		var got []proxyJSLine
		for _, line := range strings.Split(gram.sent, "\n") {
			if line == "" {
				continue
			}
			var m metric.Metric
			if codec.Parse([]byte(line), &m) != nil {
				unparsed++
				if err := codec.ParseOpaque([]byte(line), &m); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
			}
			dst := ring.Lookup(m.Path(), 1, []bool{true, true}, nil)
			got = append(got, proxyJSLine{g.nodes[dst[0]], string(codec.Append(nil, &m, metric.Untyped))})
		}
		for i := range got {
			got[i].bytes = strings.TrimSuffix(got[i].bytes, "\n")
		}
		slices.SortFunc(got, func(a, b proxyJSLine) int { return strings.Compare(a.node+"\x00"+a.bytes, b.node+"\x00"+b.bytes) })
		if !slices.Equal(got, gram.fwd) {
			t.Errorf("datagram %q:\n router: %q\nproxy.js: %q", gram.sent, got, gram.fwd)
		}
		for _, l := range gram.fwd {
			all = append(all, l.bytes)
		}
	}
	slices.Sort(all)
	if unparsed < 10 {
		t.Fatalf("only %d lines of the golden are unparsed: it no longer tests passing them", unparsed)
	}

	// End to end: the router forwards the same bytes, and counts them.
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			sink := plugintest.NewUDPSink(t)
			in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
			p := startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.statsd]]
  listen = %q
  strict = %v
[[outputs.statsd]]
  address = %q
`, stats, in, strict, sink.Addr))
			waitUDPInput(t, stats)
			c, err := net.Dial("udp", in)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, gram := range g.grams {
				if _, err := c.Write([]byte(gram.sent)); err != nil {
					t.Fatal(err)
				}
			}
			want := all
			if strict {
				want = nil
				for _, l := range all {
					var m metric.Metric
					if codec.Parse([]byte(l), &m) == nil {
						want = append(want, l)
					}
				}
			}
			if !sink.WaitLines(len(want), 10*time.Second) {
				t.Fatalf("%d of %d lines arrived", len(sink.Lines()), len(want))
			}
			time.Sleep(100 * time.Millisecond) // nothing more
			got := sink.Lines()
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("forwarded:\n%q\nwant:\n%q", got, want)
			}
			m := scrape(t, stats)
			pu, pe := m[series("passed_unparsed_total", "inputs.statsd", "statsd-1")], m[series("parse_errors_total", "inputs.statsd", "statsd-1")]
			if strict && (pu != 0 || int(pe) != unparsed) || !strict && (int(pu) != unparsed || pe != 0) {
				t.Errorf("passed_unparsed_total %v, parse_errors_total %v; want %d unparsed lines counted as %s", pu, pe, unparsed,
					map[bool]string{false: "passed", true: "parse errors"}[strict])
			}
			if code := p.stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
}
