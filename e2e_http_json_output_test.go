package main

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// httpJSONLines are n distinct StatsD lines of every type /batch carries
// (counter, gauge set and deltas, timing, set), with sample rates and
// DogStatsD tags, each written as inputs.http_json renders what it
// receives (rate before tags), so that they must come out of the far
// router byte for byte.
func httpJSONLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		switch i % 8 {
		case 0:
			lines[i] = fmt.Sprintf("hj.c.%d:%d|c|#env:prod,shard:s%d", i, i, i%7)
		case 1:
			lines[i] = fmt.Sprintf("hj.c.%d:1|c|@0.5|#env:prod", i)
		case 2:
			lines[i] = fmt.Sprintf("hj.g.%d:%d.5|g|#env:prod", i, i)
		case 3:
			lines[i] = fmt.Sprintf("hj.g.%d:+%d|g|#dir:up", i, i)
		case 4:
			lines[i] = fmt.Sprintf("hj.g.%d:-%d|g|#dir:down", i, i)
		case 5:
			lines[i] = fmt.Sprintf("hj.t.%d:%d.25|ms|@0.25|#env:prod,route:r%d", i, i, i%5)
		case 6:
			lines[i] = fmt.Sprintf("hj.s.%d:user-%d|s|#env:prod", i, i)
		case 7:
			lines[i] = fmt.Sprintf("hj.t.%d:%d|ms", i, i)
		}
	}
	return lines
}

// TestHTTPJSONOutputRouterToRouter: router A (inputs.statsd over TCP ->
// outputs.http_json) -> router B (inputs.http_json -> outputs.statsd) ->
// UDP sink. 100k StatsD metrics of every type with tags arrive exactly;
// B is stopped for 10 s mid-run and restarted on the same port, and A's
// queue holds what came meanwhile: nothing is lost or duplicated.
func TestHTTPJSONOutputRouterToRouter(t *testing.T) {
	skipShort(t)
	const total, chunks = 100000, 10
	sink := plugintest.NewUDPSink(t)
	bAddr := plugintest.FreeAddr(t)
	bCfg := writeConfig(t, fmt.Sprintf(`
[[inputs.http_json]]
  listen = %q
[[outputs.statsd]]
  address = %q
`, bAddr, sink.Addr))
	b := startBinary(t, bCfg)
	waitListen(t, bAddr)

	aAddr := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.statsd]]
  listen = %q
  protocol = "tcp"
[[outputs.http_json]]
  url = "http://%s/batch"
  gzip = true
  buffer_limit = 1000000
  overflow = "block"
  retry_max = "1s"
`, aAddr, bAddr))
	waitListen(t, aAddr)

	lines := httpJSONLines(total)
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		per := total / chunks
		for c := range chunks {
			err := eachConn(aAddr, 1, func(_ int, conn net.Conn) error {
				w := bufio.NewWriterSize(conn, 64<<10)
				for _, l := range lines[c*per : (c+1)*per] {
					w.WriteString(l)
					w.WriteByte('\n')
				}
				return w.Flush()
			})
			if err != nil {
				sendErr <- err
				return
			}
			sent.Add(int64(per))
			time.Sleep(time.Second)
		}
		sendErr <- nil
	}()

	// B goes down once some metrics went through, for 10 s
	if !sink.WaitLines(total/10, 30*time.Second) {
		t.Fatalf("sink got %d lines before the stop", len(sink.Lines()))
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done
	b.cmd.Wait()
	atStop, sentAtStop := len(sink.Lines()), sent.Load()
	time.Sleep(10 * time.Second)
	if got := len(sink.Lines()); got != atStop {
		t.Fatalf("sink got %d lines while B was down (had %d)", got, atStop)
	}
	if sent.Load() <= sentAtStop {
		t.Fatal("nothing was sent to A while B was down")
	}
	startBinary(t, bCfg)
	waitListen(t, bAddr)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if !sink.WaitLines(total, 60*time.Second) {
		t.Fatalf("sink got %d of %d lines", len(sink.Lines()), total)
	}
	time.Sleep(300 * time.Millisecond) // duplicates would arrive now
	got := sink.Lines()
	slices.Sort(got)
	want := slices.Clone(lines)
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("sink got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d (sorted): got %q, want %q", i, got[i], want[i])
		}
	}
	t.Logf("B down 10 s with %d of %d lines delivered; %d sent meanwhile; all %d arrived exactly", atStop, total, sent.Load()-sentAtStop, total)
}
