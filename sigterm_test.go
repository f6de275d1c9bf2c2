package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// buildRouter builds the router binary once per test run.
var buildRouter = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "router-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "router")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestSIGTERMUnderLoad: the real binary gets SIGTERM while four clients
// are sending; everything the input accepted reaches the sink, and the exit
// status is 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	sink := plugintest.NewLineSink(t)
	in := plugintest.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "r.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
  shutdown_timeout = "20s"
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  id = "sink"
  address = %q
`, in, sink.Addr)), 0o600)
	cmd := exec.Command(bin, "-config", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logLines []string
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logLines = append(logLines, sc.Text())
		}
	}()
	waitListen(t, in)

	var attempted atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", in)
			if err != nil {
				return
			}
			defer conn.Close()
			w := bufio.NewWriterSize(conn, 16<<10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					w.Flush()
					return
				default:
				}
				fmt.Fprintf(w, "e2e.sigterm.c%d.%d %d 1700000000\n", c, i, i)
				attempted.Add(1)
				if i%100 == 99 {
					if w.Flush() != nil {
						return
					}
					// ~100k lines/s per client: load, but one the sink keeps up with
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// read the log to its end (the summaries come last) before Wait, which
	// closes the pipe
	<-logDone
	err = cmd.Wait()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("router exited with %v; log tail:\n%s", err, strings.Join(logLines[max(0, len(logLines)-20):], "\n"))
	}
	var received, sent, left float64 = -1, -1, -1
	for _, l := range logLines {
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		switch e["message"] {
		case "input summary":
			received = e["received"].(float64)
		case "output summary":
			sent = e["sent"].(float64)
			left = e["left"].(float64)
		}
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
