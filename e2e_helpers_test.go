package main

// What the end-to-end tests share: running the router (in-process, or the
// built binary), feeding it, reading its metrics and waiting for conditions.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// Running the router.

// routerProc is a router running in-process on a config file.
type routerProc struct {
	cancel context.CancelFunc
	done   chan int
	out    *plugintest.SyncBuffer
}

// startRouter runs the router in-process on the config cfg; it stops when
// the test ends.
func startRouter(t *testing.T, cfg string) *routerProc {
	t.Helper()
	file := writeConfig(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	p := &routerProc{cancel: cancel, done: make(chan int, 1), out: &plugintest.SyncBuffer{}}
	go func() { p.done <- agent.Run(ctx, []string{"-config", file}, p.out, p.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("router did not stop")
		}
		if t.Failed() {
			t.Logf("router log:\n%s", tail(p.out.String(), 4000))
		}
	})
	return p
}

// stop cancels the router (as SIGTERM does) and returns its exit status.
func (p *routerProc) stop(t *testing.T) int {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatal("router did not stop within 60s")
	}
	return -1
}

// writeConfig writes cfg to a file in a new temporary directory and returns
// the file's path.
func writeConfig(t *testing.T, cfg string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "router.toml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

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

// proc is the real router binary running a config file.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []string
	done chan struct{}
}

// startBinary runs the router binary on cfgFile; it gets SIGTERM when the
// test ends.
func startBinary(t *testing.T, cfgFile string, args ...string) *proc {
	t.Helper()
	return startUnder(t, nil, cfgFile, args...)
}

// startUnder runs the router binary on cfgFile, behind a wrapper command
// that execs it (e.g. prlimit) unless wrapper is empty.
func startUnder(t *testing.T, wrapper []string, cfgFile string, args ...string) *proc {
	t.Helper()
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(append([]string(nil), wrapper...), bin, "-config", cfgFile), args...)
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		p.cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("router log tail:\n%s", strings.Join(p.logs[max(0, len(p.logs)-30):], "\n"))
			if f := os.Getenv("ROUTER_LOG_DUMP"); f != "" {
				os.WriteFile(f, []byte(strings.Join(p.logs, "\n")), 0o644)
			}
			p.mu.Unlock()
		}
	})
	return p
}

// kill9 kills the router with SIGKILL and waits until it is gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	<-p.done
}

// count is the number of log lines that contain substr.
func (p *proc) count(substr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.logs {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// waitLog waits (15 s at most) until n log lines contain substr.
func (p *proc) waitLog(t *testing.T, substr string, n int) {
	t.Helper()
	if !waitFor(15*time.Second, func() bool { return p.count(substr) >= n }) {
		t.Fatalf("log never showed %q %d times (saw %d)", substr, n, p.count(substr))
	}
}

// logEntries returns the router's log lines (JSON) whose message is msg.
func (p *proc) logEntries(msg string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, l := range p.logs {
		if !strings.Contains(l, msg) {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(l), &e) == nil && e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return p.cmd.Process.Signal(syscall.Signal(0)) == nil
	}
}

// peakRSS reads VmHWM of a process.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := procStatus(pid, "VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// currentRSS reads VmRSS of a process (0 once it is gone).
func currentRSS(pid int) int64 {
	b, _ := procStatus(pid, "VmRSS:")
	return b
}

// procStatus reads a field of /proc/<pid>/status given in kB, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Feeding it.

// waitListen waits (10 s at most) until a TCP connection to addr succeeds.
func waitListen(t *testing.T, addr string) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing listens on %s", addr)
	}
}

// graphiteLines returns n distinct Graphite lines starting at index from.
func graphiteLines(prefix string, from, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s.%d %d.5 %d", prefix, from+i, from+i, 1700000000+from+i)
	}
	return lines
}

// sendLines writes lines over conns TCP connections (round robin, one big
// write per connection) and closes them.
func sendLines(t *testing.T, addr string, lines []string, conns int) {
	t.Helper()
	err := eachConn(addr, conns, func(c int, conn net.Conn) error {
		w := bufio.NewWriterSize(conn, 64<<10)
		for i := c; i < len(lines); i += conns {
			w.WriteString(lines[i])
			w.WriteByte('\n')
		}
		return w.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// eachConn dials conns TCP connections to addr and runs fn on each in a
// goroutine of its own, c numbering them from 0. It returns once every fn
// has returned, with the connections closed, and the first error: a dial's
// or one fn returned.
func eachConn(addr string, conns int, fn func(c int, conn net.Conn) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			if err := fn(c, conn); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when closed empty
}

// load is clients on persistent TCP connections, each sending perTick
// lines every 10 ms until it is ended: line i of client c is
// "<prefix>.c<c>.<i> <i> 1700000000" (appendSeqLine).
type load struct {
	sent     []atomic.Int64 // lines each client has sent
	errs     atomic.Int64   // clients stopped by a write error
	mu       sync.Mutex
	firstErr error
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, addr, prefix string, clients, perTick int) *load {
	t.Helper()
	l := &load{sent: make([]atomic.Int64, clients), stop: make(chan struct{})}
	for c := range clients {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Go(func() {
			defer conn.Close()
			name := fmt.Sprintf("%s.c%d", prefix, c)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			var buf []byte
			for i := 0; ; {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				buf = buf[:0]
				for j := range perTick {
					buf = appendSeqLine(buf, name, i+j)
				}
				conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := conn.Write(buf); err != nil {
					l.errs.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = fmt.Errorf("client %d after %d lines: %w", c, i, err)
					}
					l.mu.Unlock()
					return
				}
				i += perTick
				l.sent[c].Store(int64(i))
			}
		})
	}
	return l
}

// end stops the clients and returns how many lines they sent in all.
func (l *load) end() int {
	close(l.stop)
	l.wg.Wait()
	n := 0
	for c := range l.sent {
		n += int(l.sent[c].Load())
	}
	return n
}

// err is the first write error of a client, nil if none had one.
func (l *load) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

// appendSeqLine appends the Graphite line number i of prefix:
// "<prefix>.<i> <i> 1700000000\n".
func appendSeqLine(dst []byte, prefix string, i int) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(i), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(i), 10)
	return append(dst, " 1700000000\n"...)
}

// floodSeq sends lines from..from+n-1 of prefix over conns TCP connections
// (line i on connection i%conns) as fast as the peer takes them, and closes
// them. It generates the lines as it goes (millions of them would cost the
// test process hundreds of MiB otherwise).
func floodSeq(addr, prefix string, from, n, conns int) error {
	return eachConn(addr, conns, func(c int, conn net.Conn) error {
		w := bufio.NewWriterSize(conn, 256<<10)
		var line []byte
		for i := from + c; i < from+n; i += conns {
			line = appendSeqLine(line[:0], prefix, i)
			if _, err := w.Write(line); err != nil {
				return fmt.Errorf("connection %d: %w", c, err)
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("connection %d: %w", c, err)
		}
		return nil
	})
}

// lineCommand sends lines on one connection and returns the whole answer.
func lineCommand(t *testing.T, addr string, lines ...string) string {
	t.Helper()
	c := plugintest.Dial(t, addr, 10*time.Second)
	defer c.Close()
	io.WriteString(c, strings.Join(lines, "\n")+"\n")
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// Reading its metrics, waiting.

// scrape reads /metrics into "name{plugin,id}" -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, l := range strings.Split(scrapeText(t, addr), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		out[k] = f
	}
	return out
}

// scrapeText reads /metrics.
func scrapeText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// series is the key of a series in what scrape returns.
func series(name, plugin, id string) string {
	return fmt.Sprintf(`router_%s{plugin="%s",id="%s"}`, name, plugin, id)
}

// waitCounter waits until the series key on stats reaches want.
func waitCounter(t *testing.T, stats, key string, want float64, within time.Duration) {
	t.Helper()
	var got float64
	if !waitFor(within, func() bool { got = scrape(t, stats)[key]; return got >= want }) {
		t.Fatalf("%s = %v, want %v", key, got, want)
	}
}

// waitFor polls cond every 20 ms until it holds or within passes; false on
// timeout.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// waitSinks waits (20 s at most) until total(), the lines some sinks got,
// reaches n, and reports whether it is exactly n.
func waitSinks(total func() int, n int) bool {
	waitFor(20*time.Second, func() bool { return total() >= n })
	return total() == n
}

// sortedCopy is s sorted, s unchanged.
func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// seqCheck checks lines "<prefix>.<i> ..." for i in [0, n): each exactly
// once, nothing else.
type seqCheck struct {
	prefix  string
	seen    []uint8
	got     int // lines of this prefix, duplicates included
	dups    int
	foreign int // lines not of the prefix or out of range
}

func newSeqCheck(prefix string, n int) *seqCheck {
	return &seqCheck{prefix: prefix + ".", seen: make([]uint8, n)}
}

// add checks one line (without its newline); false if it is not of the
// prefix, which is then counted as foreign only if count is set.
func (s *seqCheck) add(line string, count bool) bool {
	name, _, _ := strings.Cut(line, " ")
	rest, ok := strings.CutPrefix(name, s.prefix)
	i, err := strconv.Atoi(rest)
	if !ok || err != nil || i < 0 || i >= len(s.seen) {
		if count {
			s.foreign++
		}
		return false
	}
	s.got++
	if s.seen[i] > 0 {
		s.dups++
	}
	if s.seen[i] < 255 {
		s.seen[i]++
	}
	return true
}

// missing counts the lines in [0, n) never seen.
func (s *seqCheck) missing() int {
	m := 0
	for _, v := range s.seen {
		if v == 0 {
			m++
		}
	}
	return m
}

// downAddr returns an address on 127.0.0.1 where nothing listens and
// nothing can start to while the test runs: a socket is bound to it without
// listening, so connecting is refused. (A stopped listener's port may be
// taken by another test's listener in the meantime.)
func downAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// skipShort skips a test that takes several seconds under -short (make
// test-quick); make test runs it.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: takes seconds (make test runs it)")
	}
}
