package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/carbontest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestPickleFromCarbonRelay: Debian's carbon-relay (RELAY_METHOD =
// consistent-hashing, which sends pickle, protocol 2, up to 500 datapoints
// a message) -> the router's inputs.graphite format = "pickle" ->
// outputs.graphite plaintext -> a sink: 100,000 datapoints, each exactly
// once, names, values and timestamps as sent.
func TestPickleFromCarbonRelay(t *testing.T) {
	skipShort(t)
	carbontest.RelayBins(t)
	sink := plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	p := startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
  format = "pickle"
[[outputs.graphite]]
  address = %q
`, in, sink.Addr))
	waitListen(t, in)
	relay := carbontest.StartRelay(t, carbontest.RelayOptions{Destinations: []string{in + ":a"}})
	const n = 100_000
	lines := make([]string, n)
	for i := range lines {
		// values carbon turns into floats; the router writes what carbon reads
		lines[i] = fmt.Sprintf("relay.%d.v %d.25 %d", i%1000, i, 1700000000+i/1000)
	}
	sendLines(t, relay.Addr, lines, 4)
	if !sink.WaitLen(n, 60*time.Second) {
		t.Fatalf("sink got %d of %d lines\nrelay log:\n%s", sink.Len(), n, tail(relay.Log(), 2000))
	}
	time.Sleep(500 * time.Millisecond) // nothing more may come
	got := sink.Sorted()
	want := sortedCopy(lines)
	// carbon sends float timestamps; the router writes the integral ones
	// as integers, and values as carbon stores them
	if len(got) != n {
		t.Fatalf("sink got %d lines, want %d", len(got), n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	if c := p.stop(t); c != 0 {
		t.Fatalf("exit %d", c)
	}
	if !strings.Contains(p.out.String(), `"received":100000`) {
		t.Errorf("input summary does not say 100000 received:\n%s", tail(p.out.String(), 1500))
	}
}

// TestPickleToCarbonCache: the router's outputs.graphite format = "pickle"
// -> carbon-cache's pickle receiver: whisper-fetch reads every value of
// every series, for Graphite lines and for a StatsD gauge.
func TestPickleToCarbonCache(t *testing.T) {
	skipShort(t)
	cache := carbontest.StartWith(t, "[all]\npattern = .*\nretentions = 1s:1h\n", carbontest.Options{Pickle: true})
	in := plugintest.FreeAddr(t)
	sd := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[inputs.statsd]]
  listen = %q
  protocol = "tcp"
[[outputs.graphite]]
  address = %q
  format = "pickle"
  write_buffer = 2048
`, in, sd, cache.PickleAddr))
	waitListen(t, in)
	waitListen(t, sd)
	now := time.Now().Unix() - 100
	const series, points = 50, 20
	var lines []string
	for s := range series {
		for p := range points {
			lines = append(lines, fmt.Sprintf("pk.s%d %s %d", s, value(s, p), now+int64(p)))
		}
	}
	sendLines(t, in, lines, 2)
	sendLines(t, sd, []string{"pk.gauge:42.5|g"}, 1)
	for s := range series {
		name := fmt.Sprintf("pk.s%d", s)
		pts := cache.WaitPoints(t, name, points, 30*time.Second)
		if len(pts) != points {
			t.Fatalf("%s: %d points, want %d", name, len(pts), points)
		}
		for p, pt := range pts {
			want, _ := parseFloat(value(s, p))
			if pt.Time != now+int64(p) || pt.Value != want {
				t.Fatalf("%s point %d = %+v, want {%d %v}", name, p, pt, now+int64(p), want)
			}
		}
	}
	if pts := cache.WaitPoints(t, "pk.gauge", 1, 30*time.Second); pts[0].Value != 42.5 {
		t.Fatalf("pk.gauge = %+v, want 42.5", pts)
	}
}

// value is point p of series s: integers, fractions, negatives and large
// numbers.
func value(s, p int) string {
	switch p % 4 {
	case 0:
		return fmt.Sprint(s*100 + p)
	case 1:
		return fmt.Sprintf("%d.125", s)
	case 2:
		return fmt.Sprintf("-%d.5", p)
	}
	return "1.5e+12"
}

func parseFloat(s string) (float64, error) {
	var f float64
	_, err := fmt.Sscan(s, &f)
	return f, err
}

// TestMaliciousPickleRefused: a pickle that would run os.system (GLOBAL +
// REDUCE, and protocol 4's STACK_GLOBAL) is refused whole and counted; the
// command never runs; the router goes on and the same connection's next
// message is read.
func TestMaliciousPickleRefused(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  format = "pickle"
[[outputs.graphite]]
  address = %q
`, stats, in, sink.Addr))
	waitListen(t, in)
	marker := filepath.Join(dir, "pwned")
	cmd := "touch " + marker
	// protocol 0: cos\nsystem\n(S'...'\ntR.
	p0 := []byte("cos\nsystem\n(S'" + cmd + "'\ntR.")
	// protocol 4: STACK_GLOBAL from two short unicode strings
	p4 := []byte{0x80, 4, 0x8c, 2, 'o', 's', 0x8c, 6, 's', 'y', 's', 't', 'e', 'm', 0x93, 0x8c, byte(len(cmd))}
	p4 = append(append(p4, cmd...), 0x85, 'R', '.')
	good := carbontest.PickleDatapoints(t, []carbontest.Datapoint{{Name: "after.bad", Time: 1700000000, Value: 7}}, 2)
	c, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, msg := range [][]byte{p0, p4} {
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(msg)))
		if _, err := c.Write(append(frame, msg...)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(good); err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLen(1, 10*time.Second) {
		t.Fatal("the message after the refused ones was not read")
	}
	if l := sink.Lines()[0]; l != "after.bad 7 1700000000" {
		t.Errorf("sink got %q", l)
	}
	waitCounter(t, stats, series("pickle_refused_total", "inputs.graphite", "graphite-1"), 2, 10*time.Second)
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("%s exists: the pickle ran (%v)", marker, err)
	}
}
