package crelaytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// AggregateSlack is how many seconds Aggregate may take to get every line
// into carbon-c-relay's aggregator, counted from its start (so from the
// AggregateWindow call just before it). The window leaves this room on its
// old side; Aggregate fails the test when delivery takes longer.
const AggregateSlack = 2

// AggregateOutput is the cluster Aggregate declares for the
// configuration: a file cluster whose lines Aggregate returns.
const AggregateOutput = "out"

// sentinel is the last line Aggregate sends. A rule ahead of the caller's
// routes writes it to a cluster of its own; once it is in that file, every
// line before it has passed carbon-c-relay's router (one dispatcher reads a
// connection in order, and an aggregator takes a value synchronously).
const sentinel = "crelaytest.sentinel"

// AggregateOptions tunes Aggregate.
type AggregateOptions struct {
	// Until keeps carbon-c-relay running until then before it is stopped;
	// zero stops it as soon as the lines are in. Buckets emitted while it
	// runs (start + expire + a splay of up to every-1 seconds < now)
	// re-enter the routes when their aggregate has no `send to`; those
	// emitted by the stop do not (see Aggregate), so a chain of aggregates
	// needs Until = AggregateDeadline of the first aggregate's buckets.
	Until time.Time
	// Crashed, when set, is set to true instead of failing the test when
	// carbon-c-relay dies by a signal (3.7.3 sometimes segfaults on the
	// aggregates of TestAggregate, about one run in ten) or the lines took
	// longer than AggregateSlack to get in (a loaded host); Aggregate then
	// returns nil and the caller may run the whole comparison again.
	Crashed *bool
}

// AggregateWindow returns the timestamps [from, to) a caller may give its
// lines, at the time of the call, for an aggregate with "every every
// seconds expire after expire seconds": carbon-c-relay then neither drops
// one (too old or too far ahead of the buckets an invocation gets when its
// first value arrives: from ((now - expire) / every) * every, for
// expire/every + 2 buckets) nor emits a bucket before all lines are in, and
// its stop emits every bucket they fall in (their end is before now). from
// and to are multiples of every; to <= from means none is safe (expire >=
// 3*every + AggregateSlack - 1 always leaves one bucket). Call Aggregate
// right after it.
func AggregateWindow(every, expire int) (from, to int64) {
	return aggregateWindowAt(time.Now().Unix(), every, expire)
}

// aggregateWindowAt is AggregateWindow at unix time now.
func aggregateWindowAt(now int64, every, expire int) (from, to int64) {
	e, x := int64(every), int64(expire)
	from = ceilDiv(now+AggregateSlack-x, e) * e
	to = floorDiv(now-1, e) * e
	return from, to
}

// AggregateDeadline returns the time by which carbon-c-relay has emitted,
// on its own, the bucket holding timestamp ts of an aggregate with "every
// every seconds expire after expire seconds" (start + expire + the largest
// splay, every-1, must be before now; the aggregator looks every 250ms),
// with room for the produced lines to pass its router once more (its pipe
// from the aggregator is read asynchronously: 4 s, so that a loaded machine
// running the whole suite does not stop it before they are in; with 2 s a
// chained aggregate missed one of its first stage's products under load).
func AggregateDeadline(ts int64, every, expire int) time.Time {
	e := int64(every)
	start := floorDiv(ts, e) * e
	return time.Unix(start+int64(expire)+e, 0).Add(4 * time.Second)
}

// Aggregate runs the real carbon-c-relay with conf and returns, sorted and
// without '\n', the lines it writes to the cluster named AggregateOutput
// ("out").
//
// The contract: Aggregate writes a configuration that begins with
//
//	listen type linemode 127.0.0.1:PORT proto tcp;
//	cluster out file DIR/out.txt;
//
// (plus a rule and a file cluster of its own for a sentinel line, which
// never reaches conf's rules), followed by conf, so conf declares no
// listener and sends to out: `aggregate ... send to out;`, or `match ...
// send to out;` for what re-enters. carbon-c-relay runs in the foreground
// as `carbon-c-relay -f FILE -p PORT -s -w 2 -q 100000 -H crelaytest`: -s
// (submission mode) turns off its statistics, so nothing but conf's
// metrics reaches the rules.
//
// Aggregate sends lines (each without '\n') over one TCP connection, then
// waits until carbon-c-relay has routed all of them, keeps it running
// until opts.Until, and stops it with SIGTERM, after which it must exit
// with status 0. On SIGTERM the aggregator emits every bucket that has
// completed (start + every < now), whatever its expiry, and the relay
// delivers that before it exits; lines emitted then do not re-enter the
// aggregates (they refuse values while stopping, carbon-c-relay issue
// #200), but they do reach out through `match` rules. The stop takes
// seconds: carbon-c-relay's collector, dispatchers and servers each finish
// their current sleep first.
// Lines must carry timestamps from AggregateWindow, called just before, for
// every aggregate they reach; values are printed "%f", counts "%zu".
func Aggregate(t testing.TB, conf string, lines []string, opts AggregateOptions) []string {
	t.Helper()
	bin := Bin(t)
	begin := time.Now()
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out.txt")
	sentPath := filepath.Join(dir, "sentinel.txt")
	var payload bytes.Buffer
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			t.Fatalf("crelaytest.Aggregate: line %q has a line break", l)
		}
		payload.WriteString(l)
		payload.WriteByte('\n')
	}
	fmt.Fprintf(&payload, "%s 1 %d\n", sentinel, begin.Unix())

	var r *relay
	for attempt := 0; r == nil; attempt++ {
		var err error
		r, err = startRelay(t, bin, dir, conf, outPath, sentPath)
		if err != nil {
			// the free port may have been taken meanwhile: retry a few
			// times; a configuration error ends the test at once
			if attempt == 2 || !strings.Contains(err.Error(), "failed to setup listener") {
				t.Fatal(err)
			}
			t.Log(err)
		}
	}
	if _, err := r.conn.Write(payload.Bytes()); err != nil {
		r.fail(t, "send the lines: %v", err)
	}
	if err := r.conn.Close(); err != nil {
		r.fail(t, "close the connection: %v", err)
	}
	crashed := func() bool {
		if opts.Crashed == nil || !r.signaled() {
			return false
		}
		*opts.Crashed = true
		t.Logf("crelaytest.Aggregate: carbon-c-relay died (%v); the caller may try again\n%s", r.err, r.log.String())
		return true
	}
	if !r.waitFile(t, sentPath, sentinel+" ", opts.Crashed != nil) {
		if crashed() {
			return nil
		}
		r.fail(t, "carbon-c-relay exited before %s held %q (%v)", sentPath, sentinel+" ", r.err)
	}
	if d := time.Since(begin); d > AggregateSlack*time.Second {
		msg := fmt.Sprintf("delivering the lines took %v, over AggregateSlack (%ds): the timestamps of AggregateWindow may no longer hold", d.Round(time.Millisecond), AggregateSlack)
		if opts.Crashed != nil {
			// a loaded host: the comparison cannot hold, run it again
			r.stop(t, true)
			*opts.Crashed = true
			t.Logf("crelaytest.Aggregate: %s; the caller may try again", msg)
			return nil
		}
		r.fail(t, "%s", msg)
	}
	if !opts.Until.IsZero() {
		time.Sleep(time.Until(opts.Until))
	}
	if !r.stop(t, opts.Crashed != nil) {
		if crashed() {
			return nil
		}
		r.fail(t, "carbon-c-relay: %v", r.err)
	}

	data, err := os.ReadFile(outPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out := []string{}
	for l := range strings.Lines(string(data)) {
		out = append(out, strings.TrimSuffix(l, "\n"))
	}
	slices.Sort(out)
	return out
}

// relay is a running carbon-c-relay.
type relay struct {
	cmd    *exec.Cmd
	conn   net.Conn
	log    *plugintest.SyncBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startRelay writes the configuration, starts carbon-c-relay on a free
// loopback port and connects to it. An error means it did not come up
// (for instance, the port was taken); the process is gone then.
func startRelay(t testing.TB, bin, dir, conf, outPath, sentPath string) (*relay, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := strconv.Itoa(port)
	var c strings.Builder
	fmt.Fprintf(&c, "listen type linemode 127.0.0.1:%s proto tcp;\n", p)
	fmt.Fprintf(&c, "cluster %s file %s;\n", AggregateOutput, outPath)
	fmt.Fprintf(&c, "cluster crelaytest_sentinel file %s;\n", sentPath)
	fmt.Fprintf(&c, "match ^%s$ send to crelaytest_sentinel stop;\n\n", strings.ReplaceAll(sentinel, ".", `\.`))
	c.WriteString(conf)
	c.WriteString("\n")
	confPath := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(confPath, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	r := &relay{log: &plugintest.SyncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "-f", confPath, "-p", p, "-s", "-w", "2", "-q", "100000", "-H", "crelaytest")
	r.cmd.Dir = dir
	r.cmd.Stdout = r.log
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("carbon-c-relay exited before listening on 127.0.0.1:%s (%v):\n%s", p, r.err, r.log.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second)
		if err == nil {
			r.conn = conn
			return r, nil
		}
		if time.Now().After(deadline) {
			_ = r.cmd.Process.Kill()
			<-r.exited
			return nil, fmt.Errorf("carbon-c-relay does not listen on 127.0.0.1:%s: %v\n%s", p, err, r.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signaled reports whether carbon-c-relay has died by a signal.
func (r *relay) signaled() bool {
	select {
	case <-r.exited:
	default:
		return false
	}
	var ee *exec.ExitError
	if !errors.As(r.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// waitFile waits until the file at path holds a line beginning with
// prefix; false when carbon-c-relay exited first (a failure of the test
// unless soft).
func (r *relay) waitFile(t testing.TB, path, prefix string, soft bool) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && (bytes.HasPrefix(b, []byte(prefix)) || bytes.Contains(b, []byte("\n"+prefix))) {
			return true
		}
		select {
		case <-r.exited:
			if soft {
				return false
			}
			r.fail(t, "carbon-c-relay exited before %s held %q (%v)", path, prefix, r.err)
		default:
		}
		if time.Now().After(deadline) {
			r.fail(t, "%s does not hold %q after 10s", path, prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for carbon-c-relay to exit; false when it
// did not exit with status 0 (a failure of the test unless soft).
func (r *relay) stop(t testing.TB, soft bool) bool {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil && !soft {
		r.fail(t, "SIGTERM: %v", err)
	}
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		r.fail(t, "carbon-c-relay still runs 20s after SIGTERM")
	}
	if r.err != nil && !soft {
		r.fail(t, "carbon-c-relay: %v", r.err)
	}
	return r.err == nil
}

// fail ends the test with carbon-c-relay's output.
func (r *relay) fail(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf("crelaytest.Aggregate: %s\ncarbon-c-relay's output:\n%s", fmt.Sprintf(format, args...), r.log.String())
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
