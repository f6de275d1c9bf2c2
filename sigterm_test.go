package main

import (
	"bufio"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestSIGTERMUnderLoad: the real binary gets SIGTERM while four clients
// are sending; everything the input accepted reaches the sink, and the exit
// status is 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	sink := plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	p := startBinary(t, writeConfig(t, fmt.Sprintf(`
[agent]
  shutdown_timeout = "20s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "sink"
  address = %q
`, in, sink.Addr)))
	waitListen(t, in)

	var attempted atomic.Int64
	stop := make(chan struct{})
	clients := make(chan error, 1)
	go func() {
		clients <- eachConn(in, 4, func(c int, conn net.Conn) error {
			w := bufio.NewWriterSize(conn, 16<<10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					w.Flush()
					return nil
				default:
				}
				fmt.Fprintf(w, "e2e.sigterm.c%d.%d %d 1700000000\n", c, i, i)
				attempted.Add(1)
				if i%100 == 99 {
					if w.Flush() != nil {
						return nil
					}
					// ~100k lines/s per client: load, but one the sink keeps up with
					time.Sleep(time.Millisecond)
				}
			}
		})
	}()
	time.Sleep(time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// read the log to its end (the summaries come last) before Wait, which
	// closes the pipe
	<-p.done
	err := p.cmd.Wait()
	close(stop)
	<-clients // a client that could not connect just did not send
	if err != nil {
		t.Fatalf("router exited with %v", err)
	}
	var received, sent, left float64 = -1, -1, -1
	if e := p.logEntries("input summary"); len(e) > 0 {
		received = e[len(e)-1]["received"].(float64)
	}
	if e := p.logEntries("output summary"); len(e) > 0 {
		sent = e[len(e)-1]["sent"].(float64)
		left = e[len(e)-1]["left"].(float64)
	}
	if received <= 0 {
		t.Fatalf("no input summary in the log (received=%v)", received)
	}
	if !sink.WaitLen(int(received), 60*time.Second) {
		t.Fatalf("sink got %d lines, input accepted %v", sink.Len(), received)
	}
	t.Logf("clients attempted %d lines, input accepted %v, output sent %v, left %v, sink got %d",
		attempted.Load(), received, sent, left, sink.Len())
	if float64(sink.Len()) != received || sent != received || left != 0 {
		t.Fatalf("lost data: input accepted %v, output sent %v, left %v, sink got %d", received, sent, left, sink.Len())
	}
}
