package plugintest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Consul is a real HashiCorp Consul agent in dev mode (a single server with
// the KV store in memory) on free loopback ports, started by a test.
//
// Dev mode keeps its data in memory: after Stop, Kill or Restart the KV store
// is EMPTY (only the node id in the data directory survives). A test that
// restarts the agent must Put again what it needs.
//
// The helper talks to the agent's HTTP API with net/http only, so that
// plugintest does not depend on Consul's Go API client module.
type Consul struct {
	Addr    string // host:port of the HTTP API, e.g. "127.0.0.1:41234"
	Bin     string // the consul binary
	DataDir string // its -data-dir, under t.TempDir()
	LogFile string // the agent's output, shown (tail) when the test failed

	httpPort, serfPort, serverPort int
	client                         *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// consulStartTimeout is how long StartConsul and Restart wait for a leader.
const consulStartTimeout = 30 * time.Second

// StartConsul starts `consul agent -dev` on free loopback ports and waits
// until it has a leader. The binary is $CONSUL_BIN, else
// <module root>/.tools/bin/consul (scripts/install-consul.sh puts it there),
// else consul on $PATH. Without one the test is skipped, or fails when
// CI=true; with -short it is skipped. The agent is stopped when the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin := consulBin(t)
	dir := t.TempDir()
	c := &Consul{
		Bin:     bin,
		DataDir: filepath.Join(dir, "data"),
		LogFile: filepath.Join(dir, "consul.log"),
		client:  &http.Client{Timeout: 10 * time.Second},
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.signal(syscall.SIGTERM, 15*time.Second)
		c.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("consul log (tail):\n%s", c.logTail(4000))
		}
	})
	start := time.Now()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.pickPorts(); err != nil {
			continue
		}
		if err = c.start(); err == nil {
			t.Logf("consul %s: leader after %v", c.Addr, time.Since(start).Round(time.Millisecond))
			return c
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start consul: %v", err)
	return nil
}

// consulBin finds the consul binary, or skips (fails under CI=true). With
// -short (make test-quick) it skips: the quick loop needs no Consul.
func consulBin(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no Consul agent (make test runs these tests)")
	}
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		if !isExecutable(p) {
			t.Fatalf("CONSUL_BIN=%s is not an executable file (run scripts/install-consul.sh)", p)
		}
		return p
	}
	if root := moduleRoot(); root != "" {
		if p := filepath.Join(root, ".tools", "bin", "consul"); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	msg := "no consul binary ($CONSUL_BIN, <repo>/.tools/bin/consul or $PATH): run scripts/install-consul.sh"
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// moduleRoot is the nearest directory at or above the working directory
// (the package under test) holding a go.mod.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// pickPorts chooses three free ports; the Serf LAN port must be free for
// both TCP and UDP.
func (c *Consul) pickPorts() error {
	var closers []io.Closer
	defer func() {
		for _, cl := range closers {
			cl.Close()
		}
	}()
	tcp := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		closers = append(closers, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	if c.httpPort, err = tcp(); err != nil {
		return err
	}
	if c.serverPort, err = tcp(); err != nil {
		return err
	}
	for i := 0; ; i++ {
		p, err := tcp()
		if err != nil {
			return err
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			closers = append(closers, u)
			c.serfPort = p
			break
		}
		if i == 20 {
			return fmt.Errorf("no port free for both tcp and udp: %w", err)
		}
	}
	c.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.httpPort))
	return nil
}

// start runs the agent on c's ports and data dir and waits for a leader.
func (c *Consul) start() error {
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== plugintest: starting consul at %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.Bin, "agent", "-dev",
		"-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(c.httpPort),
		"-serf-lan-port", strconv.Itoa(c.serfPort),
		"-server-port", strconv.Itoa(c.serverPort),
		"-serf-wan-port=-1", "-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1",
		"-data-dir", c.DataDir,
		"-node", "plugintest",
		"-log-level", "info",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR=", "CONSUL_HTTP_TOKEN=")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", c.Bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // exits 1 even after a clean SIGTERM
		close(done)
	}()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()

	deadline := time.Now().Add(consulStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("consul exited before it had a leader:\n%s", c.logTail(2000))
		default:
		}
		if c.hasLeader() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.signal(syscall.SIGKILL, 5*time.Second)
	return fmt.Errorf("consul at %s had no leader after %v:\n%s", c.Addr, consulStartTimeout, c.logTail(2000))
}

func (c *Consul) hasLeader() bool {
	resp, err := c.client.Get("http://" + c.Addr + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	return resp.StatusCode == http.StatusOK && s != ""
}

// signal sends sig to a running agent and waits for it to exit, then kills
// it if it is still there after wait. It does nothing if it is not running.
func (c *Consul) signal(sig syscall.Signal, wait time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	c.client.CloseIdleConnections()
}

// Stop stops the agent with SIGTERM and waits for it to exit (it exits with
// status 1 even then).
func (c *Consul) Stop(t testing.TB) {
	t.Helper()
	c.signal(syscall.SIGTERM, 15*time.Second)
}

// Kill kills the agent with SIGKILL and waits for it to exit.
func (c *Consul) Kill(t testing.TB) {
	t.Helper()
	c.signal(syscall.SIGKILL, 5*time.Second)
}

// Running reports whether the agent process is running.
func (c *Consul) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Restart stops the agent if it runs (SIGTERM) and starts it again on the
// same ports and data directory. The KV store is empty afterwards (dev mode):
// Put again what the test needs.
func (c *Consul) Restart(t testing.TB) {
	t.Helper()
	c.signal(syscall.SIGTERM, 15*time.Second)
	start := time.Now()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = c.start(); err == nil {
			t.Logf("consul %s: restarted, leader after %v", c.Addr, time.Since(start).Round(time.Millisecond))
			return
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart consul: %v", err)
}

// Put sets a KV key (e.g. "polymur/gateway/keys/alice") to value.
func (c *Consul) Put(t testing.TB, key, value string) {
	t.Helper()
	body := c.kv(t, http.MethodPut, key, value)
	if strings.TrimSpace(body) != "true" {
		t.Fatalf("consul put %s: answer %q", key, body)
	}
}

// Delete removes a KV key (no error if it does not exist).
func (c *Consul) Delete(t testing.TB, key string) {
	t.Helper()
	c.kv(t, http.MethodDelete, key, "")
}

// Get returns the value of a KV key and whether it exists.
func (c *Consul) Get(t testing.TB, key string) (string, bool) {
	t.Helper()
	resp, err := c.client.Get("http://" + c.Addr + "/v1/kv/" + strings.TrimPrefix(key, "/") + "?raw")
	if err != nil {
		t.Fatalf("consul get %s: %v", key, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		return string(b), true
	case http.StatusNotFound:
		return "", false
	}
	t.Fatalf("consul get %s: %s: %s", key, resp.Status, b)
	return "", false
}

// kv does a KV write, retrying for a few seconds on transport errors and
// 5xx (a fresh leader may briefly refuse writes), and returns the body.
func (c *Consul) kv(t testing.TB, method, key, value string) string {
	t.Helper()
	url := "http://" + c.Addr + "/v1/kv/" + strings.TrimPrefix(key, "/")
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequest(method, url, bytes.NewReader([]byte(value)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = errors.Join(rerr, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b)))
			if resp.StatusCode < 500 {
				t.Fatalf("consul %s %s: %v", method, key, err)
			}
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("consul %s %s: %v", method, key, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail returns the last n bytes of the agent's output.
func (c *Consul) logTail(n int64) string {
	f, err := os.Open(c.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// RegisterService registers a service instance with the agent (passing
// health: no checks), its meta map included.
func (c *Consul) RegisterService(t testing.TB, id, name, addr string, port int, meta map[string]string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ID": id, "Name": name, "Address": addr, "Port": port, "Meta": meta})
	c.agentCall(t, http.MethodPut, "/v1/agent/service/register", body)
}

// DeregisterService removes a service instance.
func (c *Consul) DeregisterService(t testing.TB, id string) {
	t.Helper()
	c.agentCall(t, http.MethodPut, "/v1/agent/service/deregister/"+id, nil)
}

func (c *Consul) agentCall(t testing.TB, method, path string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+c.Addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("consul %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("consul %s %s: %s: %s", method, path, resp.Status, b)
	}
}
