package crelay_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/compat/crelay"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// e2eConf is a carbon-c-relay configuration; %[1]s is the listen port,
// %[2]s and %[3]s the two destinations.
const e2eConf = `listen type linemode %[1]s proto tcp;
cluster a forward %[2]s;
cluster b carbon_ch %[3]s=x;
statistics send to blackhole;
match ^drop\. send to blackhole;
rewrite ^old\.([^.]+)\.(.*)$ into new.\_1.\g2;
match ^new\. ^both\. send to b;
match ^both\. send to a stop;
match * validate ^[0-9.]+\ [0-9]+$ else drop;
match * send to a;
`

var e2eInput = []string{
	"sys.cpu.user 1.5 1700000000",
	"drop.me 1 1700000000",
	"old.WEB01.cpu.idle 99 1700000000",
	"both.x 3 1700000000",
	"bad.value abc 1700000000",
	"spaced..name   7   1700000000",
	"chars.a!b@c 8 1700000000",
	"new.direct 9 1700000000",
}

// dialWait connects to addr, retrying until it listens.
func dialWait(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func send(t *testing.T, addr string) {
	t.Helper()
	c := dialWait(t, addr)
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(e2eInput, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
}

// waitLines waits until the sinks hold n lines in all, or the deadline
// (the comparison that follows then fails).
func waitLines(sinks []*plugintest.LineSink, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		total := 0
		for _, s := range sinks {
			total += s.Len()
		}
		if total >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sorted(s *plugintest.LineSink) []string {
	l := s.Lines()
	slices.Sort(l)
	return l
}

// TestRunsLikeCRelay: the same configuration run by carbon-c-relay and,
// converted, by the router delivers the same lines to the same
// destinations (routing, rewrite, validate, blackhole, stop, cleansing).
func TestRunsLikeCRelay(t *testing.T) {
	bin, err := exec.LookPath("carbon-c-relay")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("carbon-c-relay is not installed")
		}
		t.Skip("carbon-c-relay is not installed")
	}
	dir := t.TempDir()

	// carbon-c-relay
	ca, cb := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	cin := plugintest.FreeAddr(t)
	_, cport, _ := net.SplitHostPort(cin)
	cconf := filepath.Join(dir, "crelay.conf")
	if err := os.WriteFile(cconf, fmt.Appendf(nil, e2eConf, cport, ca.Addr, cb.Addr), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cconf, "-w", "1", "-H", "relay1")
	var clog plugintest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &clog, &clog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	send(t, "127.0.0.1:"+cport)

	// the router, on the converted configuration
	ra, rb := plugintest.NewLineSink(t), plugintest.NewLineSink(t)
	rin := plugintest.FreeAddr(t)
	_, rport, _ := net.SplitHostPort(rin)
	rconf := filepath.Join(dir, "router.conf")
	if err := os.WriteFile(rconf, fmt.Appendf(nil, e2eConf, "127.0.0.1:"+rport, ra.Addr, rb.Addr), 0o644); err != nil {
		t.Fatal(err)
	}
	var toml, errb bytes.Buffer
	if code := crelay.Run(registry.Default, []string{rconf}, &toml, &errb); code != 0 {
		t.Fatalf("convert: exit %d: %s", code, errb.String())
	}
	tfile := filepath.Join(dir, "router.toml")
	if err := os.WriteFile(tfile, toml.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var rlog plugintest.SyncBuffer
	go func() {
		done <- agent.RunWith(ctx, registry.Default, []string{"-config", tfile}, strings.NewReader(""), &rlog, &rlog)
	}()
	send(t, rin)

	wantA := []string{"both.x 3 1700000000", "chars.a_b_c 8 1700000000", "new.direct 9 1700000000",
		"new.web01.g2 99 1700000000", "spaced.name 7 1700000000", "sys.cpu.user 1.5 1700000000"}
	wantB := []string{"both.x 3 1700000000", "new.direct 9 1700000000", "new.web01.g2 99 1700000000"}
	waitLines([]*plugintest.LineSink{ca, cb}, len(wantA)+len(wantB))
	waitLines([]*plugintest.LineSink{ra, rb}, len(wantA)+len(wantB))
	cancel()
	<-done
	for _, p := range []struct {
		name    string
		want    []string
		cr, rtr *plugintest.LineSink
	}{{"a", wantA, ca, ra}, {"b", wantB, cb, rb}} {
		if got := sorted(p.cr); !slices.Equal(got, p.want) {
			t.Errorf("cluster %s, carbon-c-relay:\n got %q\nwant %q", p.name, got, p.want)
		}
		if got := sorted(p.rtr); !slices.Equal(got, p.want) {
			t.Errorf("cluster %s, router:\n got %q\nwant %q", p.name, got, p.want)
		}
	}
	if t.Failed() {
		t.Logf("converted:\n%s\nrouter log:\n%s", toml.String(), rlog.String())
	}
}
