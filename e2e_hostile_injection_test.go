package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// Issue #16, item 4: no name can inject a metric across formats. Each test
// runs the built binary, sends names full of the other format's separators
// and checks the exact bytes that leave, then sends a value the other
// format cannot carry, alone, and checks that it is rejected and counted,
// with received = sent + rejected.

// injWaitCounter waits until the runner counter name of output id reaches
// want (a deadline, polling /metrics) and returns the output's counters.
func injWaitCounter(t *testing.T, stats, plugin, id, name string, want float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	if !waitFor(15*time.Second, func() bool { m = scrape(t, stats); return m[series(name, plugin, id)] == want }) {
		t.Fatalf("%s of %s is %v, want %v", name, id, m[series(name, plugin, id)], want)
	}
	return m
}

// injCheckCounters checks an output's counters once everything is out:
// sent, rejected (what the format cannot carry) and nothing else, adding up.
func injCheckCounters(t *testing.T, m map[string]float64, plugin, id string, sent, rejected float64) {
	t.Helper()
	get := func(name string) float64 { return m[series(name, plugin, id)] }
	if get("sent_total") != sent || get("rejected_total") != rejected || get("conversion_refused_total") != rejected ||
		get("dropped_total") != 0 || get("refused_total") != 0 || get("queued") != 0 {
		t.Fatalf("%s: sent %v rejected %v conversion_refused %v dropped %v refused %v queued %v; want sent %v, rejected and conversion_refused %v, none dropped, refused or queued",
			id, get("sent_total"), get("rejected_total"), get("conversion_refused_total"), get("dropped_total"), get("refused_total"), get("queued"), sent, rejected)
	}
	if r := get("received_total"); r != get("sent_total")+get("dropped_total")+get("rejected_total")+get("refused_total")+get("queued") {
		t.Fatalf("%s: received %v is not sent + dropped + rejected + refused + queued", id, r)
	}
}

func injSendTCP(t *testing.T, addr, data string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

func injSendUDP(t *testing.T, addr, data string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
}

// injWaitLines waits for n lines at the UDP sink and returns them all.
func injWaitLines(t *testing.T, sink *plugintest.UDPSink, n int) []string {
	t.Helper()
	if !sink.WaitLines(n, 15*time.Second) {
		t.Fatalf("the StatsD sink got %q, want %d lines", sink.Lines(), n)
	}
	return sink.Lines()
}

func injStatsDConfig(stats, input, sink string) string {
	return fmt.Sprintf(`
[agent]
  stats_addr = %q
%s
[[outputs.statsd]]
  id = "sd"
  address = %q
`, stats, input, sink)
}

// TestInjectionGraphiteToStatsD: Graphite over TCP into inputs.graphite,
// out through outputs.statsd: "evil:666|c 1 1700000000" used to leave as
// "evil:666|c:1|g", which Etsy statsd reads as a +666 counter "evil" (and a
// gauge). Every StatsD separator in a name or tag now leaves as '_'; a
// negative gauge leaves as "0" then the value in one datagram (a signed
// gauge is a delta); an infinite value is rejected and counted (NaN does
// not get that far: carbon's grammar drops it at the input).
func TestInjectionGraphiteToStatsD(t *testing.T) {
	sink := plugintest.NewUDPSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startBinary(t, writeConfig(t, injStatsDConfig(stats, fmt.Sprintf("[[inputs.graphite]]\n  listen = %q", in), sink.Addr)))
	waitListen(t, in)
	waitListen(t, stats)

	injSendTCP(t, in, "evil:666|c 1 1700000000\n"+
		"a,host=evil 2 1700000000\n"+
		"a;k=v,evil:666|c;k2|#x=y 3 1700000000\n"+
		"b\rc:5|c 4 1700000000\n"+
		"neg.gauge -5 1700000000\n"+
		"plain.metric 6 1700000000\n")
	want := []string{
		"evil_666_c:1|g",
		"a_host=evil:2|g",
		"a:3|g|#k:v_evil:666_c,k2_#x:y",
		"b_c_5_c:4|g",
		"neg.gauge:0|g", "neg.gauge:-5|g",
		"plain.metric:6|g",
	}
	if got := injWaitLines(t, sink, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the StatsD sink got\n%q\nwant\n%q", got, want)
	}
	if !slices.ContainsFunc(sink.Datagrams(), func(d string) bool { return strings.Contains(d, "neg.gauge:0|g\nneg.gauge:-5|g") }) {
		t.Fatalf("the two lines of the negative gauge are not in one datagram: %q", sink.Datagrams())
	}
	injWaitCounter(t, stats, "outputs.statsd", "sd", "sent_total", 6)

	// -Inf, alone: no StatsD server reads it as a number
	injSendTCP(t, in, "inf.value -Inf 1700000000\n")
	injWaitCounter(t, stats, "outputs.statsd", "sd", "rejected_total", 1)
	injSendTCP(t, in, "after 7 1700000000\n")
	want = append(want, "after:7|g")
	if got := injWaitLines(t, sink, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the StatsD sink got\n%q\nwant\n%q", got, want)
	}
	m := injWaitCounter(t, stats, "outputs.statsd", "sd", "sent_total", 7)
	injCheckCounters(t, m, "outputs.statsd", "sd", 7, 1)
}

// injIngest POSTs a gzipped batch of Graphite lines to a gateway's /ingest.
func injIngest(t *testing.T, gw, lines string) {
	t.Helper()
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write([]byte(lines))
	zw.Close()
	req, err := http.NewRequest("POST", "http://"+gw+"/ingest", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Polymur-Key", testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ingest: %s", resp.Status)
	}
}

// TestInjectionGatewayToStatsD: the same through a Polymur gateway's
// /ingest (inputs.https_batch, which parses Graphite lines and here puts
// the key's name before each), out through outputs.statsd.
func TestInjectionGatewayToStatsD(t *testing.T) {
	sink := plugintest.NewUDPSink(t)
	gw, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startBinary(t, writeConfig(t, injStatsDConfig(stats, fmt.Sprintf(`[[inputs.https_batch]]
  listen = %q
  key_prefix = true
  [inputs.https_batch.keystore]
    type = "static"
    keys = { team-a = %q }`, gw, testKey), sink.Addr)))
	waitListen(t, gw)
	waitListen(t, stats)

	injIngest(t, gw, "evil:666|c 1 1700000000\nx;k=a,b:2|ms 2 1700000000\nneg -5 1700000000\n")
	want := []string{"team-a.evil_666_c:1|g", "team-a.x:2|g|#k:a_b:2_ms", "team-a.neg:0|g", "team-a.neg:-5|g"}
	if got := injWaitLines(t, sink, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the StatsD sink got\n%q\nwant\n%q", got, want)
	}
	injWaitCounter(t, stats, "outputs.statsd", "sd", "sent_total", 3)

	injIngest(t, gw, "inf.value -Inf 1700000000\n")
	injWaitCounter(t, stats, "outputs.statsd", "sd", "rejected_total", 1)
	injIngest(t, gw, "after 7 1700000000\n")
	want = append(want, "team-a.after:7|g")
	if got := injWaitLines(t, sink, len(want)); !slices.Equal(got, want) {
		t.Fatalf("the StatsD sink got\n%q\nwant\n%q", got, want)
	}
	m := injWaitCounter(t, stats, "outputs.statsd", "sd", "sent_total", 4)
	injCheckCounters(t, m, "outputs.statsd", "sd", 4, 1)
}

// TestInjectionStatsDToGraphite: StatsD datagrams into inputs.statsd, out
// through outputs.graphite: a name with spaces used to leave as a line of
// four or five fields, which carbon ignores while the router counted it
// sent. Whitespace (Unicode included), ';' and invalid UTF-8 (on which
// carbon drops the connection) now leave as '_'; a set member and a
// multi-value, which no Graphite line carries, are rejected and counted.
func TestInjectionStatsDToGraphite(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startBinary(t, writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.statsd]]
  listen = %q
[[outputs.graphite]]
  id = "carbon"
  address = %q
`, stats, in, sink.Addr)))
	waitUDPInput(t, stats)

	injSendUDP(t, in, "my metric:1|c|T1700000000\n"+
		"a;evil=1:2|c|T1700000000\n"+
		"a,k x=v;y=z:3|c|T1700000000\n"+
		"t\u00a0x\u3000y:4|ms|T1700000000\n"+
		"bad\xffname:5|g|T1700000000\n"+
		"five fields a b:6|c|#k:v w|T1700000000")
	want := []string{
		"my_metric 1 1700000000",
		"a_evil=1 2 1700000000",
		"a;k_x=v_y=z 3 1700000000",
		"t_x_y 4 1700000000",
		"bad_name 5 1700000000",
		"five_fields_a_b;k=v_w 6 1700000000",
	}
	if !sink.WaitLen(len(want), 15*time.Second) {
		t.Fatalf("the Graphite sink got %q, want %d lines", sink.Lines(), len(want))
	}
	if got := sink.Lines(); !slices.Equal(got, want) {
		t.Fatalf("the Graphite sink got\n%q\nwant\n%q", got, want)
	}
	injWaitCounter(t, stats, "outputs.graphite", "carbon", "sent_total", 6)

	// a set member and a multi-value, each alone
	injSendUDP(t, in, "users:alice|s")
	injWaitCounter(t, stats, "outputs.graphite", "carbon", "rejected_total", 1)
	injSendUDP(t, in, "t:1:2:3|ms")
	injWaitCounter(t, stats, "outputs.graphite", "carbon", "rejected_total", 2)
	injSendUDP(t, in, "after:7|c|T1700000000")
	want = append(want, "after 7 1700000000")
	if !sink.WaitLen(len(want), 15*time.Second) {
		t.Fatalf("the Graphite sink got %q, want %d lines", sink.Lines(), len(want))
	}
	if got := sink.Lines(); !slices.Equal(got, want) {
		t.Fatalf("the Graphite sink got\n%q\nwant\n%q", got, want)
	}
	m := injWaitCounter(t, stats, "outputs.graphite", "carbon", "sent_total", 7)
	injCheckCounters(t, m, "outputs.graphite", "carbon", 7, 2)
}
