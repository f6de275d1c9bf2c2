package main

// outputs.prometheus_remote_write against a real Prometheus (Debian's
// prometheus package, run by the test with its remote-write receiver on)
// and a real VictoriaMetrics (Debian's victoria-metrics package): 10k
// Graphite lines through a mapping file (globs, regex, labels, drop) and 1k
// tagged lines, with the store stopped for 10 s in the middle.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// promServer is a remote-write receiver process (Prometheus or
// VictoriaMetrics) started by a test, with its own storage.
type promServer struct {
	bin, dir, addr string
	args           []string // flags after the binary
	ready          string   // path answering 200 once it takes writes
	cmd            *exec.Cmd
	log            *os.File
}

// lookBin finds a Debian package's binary, or fails (CI=true) or skips.
func lookBin(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (apt-get install %s)", bin, pkg)
		}
		t.Skipf("%s not installed (apt-get install %s)", bin, pkg)
	}
	return p
}

// startPrometheus runs Debian's prometheus with its remote-write receiver.
func startPrometheus(t *testing.T) *promServer {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global:\n  scrape_interval: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{bin: lookBin(t, "prometheus", "prometheus"), dir: dir, addr: plugintest.FreeAddr(t), ready: "/-/ready"}
	p.args = []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.addr,
		"--web.enable-remote-write-receiver",
	}
	return p.run(t)
}

// startVictoriaMetrics runs Debian's victoria-metrics (single node), whose
// /api/v1/write takes remote-write requests.
func startVictoriaMetrics(t *testing.T) *promServer {
	t.Helper()
	dir := t.TempDir()
	p := &promServer{bin: lookBin(t, "victoria-metrics", "victoria-metrics"), dir: dir, addr: plugintest.FreeAddr(t), ready: "/health"}
	p.args = []string{
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-httpListenAddr=" + p.addr,
		"-search.latencyOffset=0s",
		"-search.disableCache",
	}
	return p.run(t)
}

func (p *promServer) run(t *testing.T) *promServer {
	t.Helper()
	p.start(t)
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			t.Logf("%s log:\n%s", filepath.Base(p.bin), tail(string(b), 3000))
		}
	})
	return p
}

func (p *promServer) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.log = log
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool {
		resp, err := http.Get("http://" + p.addr + p.ready)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("%s not ready within 60s", filepath.Base(p.bin))
	}
}

// stop ends the process this test started (SIGTERM, then SIGKILL).
func (p *promServer) stop(t *testing.T) {
	t.Helper()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
	p.log.Close()
}

// query runs an instant query at time at and returns each series as its
// labels (`k="v"` sorted, joined by ',') mapped to its value.
func (p *promServer) query(t *testing.T, q string, at int64) (map[string]string, error) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(at, 10)}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: status %s", q, r.Status)
	}
	out := make(map[string]string, len(r.Data.Result))
	for _, s := range r.Data.Result {
		out[labelKey(s.Metric)] = fmt.Sprint(s.Value[1])
	}
	return out, nil
}

func labelKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// remoteWriteCase builds the lines sent and the series Prometheus must hold
// after the mapping of plugins/outputs/prometheus_remote_write/testdata/mapping.yaml.
func remoteWriteCase(ts int64) (lines []string, want map[string]string, dropped int) {
	want = map[string]string{}
	add := func(v string, kv ...string) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		want[labelKey(m)] = v
	}
	for i := range 10_000 {
		v := strconv.Itoa(i) + ".5"
		var name string
		switch i % 5 {
		case 0: // glob, labels from captures
			name = fmt.Sprintf("test.dispatcher.P%d.send.success", i)
			add(v, "__name__", "dispatcher_events_total", "action", "send", "job", "test_dispatcher", "outcome", "success", "processor", fmt.Sprintf("P%d", i))
		case 1: // glob, ${1} in a label template
			name = fmt.Sprintf("prod%d.signup.facebook.failure", i)
			add(v, "__name__", "signup_events_total", "job", fmt.Sprintf("prod%d_server", i), "outcome", "failure", "provider", "facebook")
		case 2: // regex
			name = fmt.Sprintf("servers.rack-%d.networking.subnetworks.transmissions.eth0.failure.mean_rate", i)
			add(v, "__name__", "servers_networking_transmissions_failure_mean_rate", "hostname", fmt.Sprintf("rack-%d", i), "device", "eth0")
		case 3: // action: drop
			name = fmt.Sprintf("noise.%d.x", i)
			dropped++
		default: // no rule: the default name
			name = fmt.Sprintf("plain.metric-%d.count", i)
			add(v, "__name__", fmt.Sprintf("plain_metric_%d_count", i))
		}
		lines = append(lines, fmt.Sprintf("%s %s %d", name, v, ts))
	}
	for i := range 1000 {
		v := strconv.Itoa(i)
		if i%2 == 0 { // Graphite 1.1 tags
			lines = append(lines, fmt.Sprintf("disk.used;host=h%d;dc=eu-1 %s %d", i, v, ts))
			add(v, "__name__", "disk_used", "host", fmt.Sprintf("h%d", i), "dc", "eu-1")
		} else { // tags plus a mapping label of the same name, which wins
			lines = append(lines, fmt.Sprintf("app.eu.requests;region=us;host=h%d %s %d", i, v, ts))
			add(v, "__name__", "app_requests", "host", fmt.Sprintf("h%d", i), "region", "eu")
		}
	}
	return lines, want, dropped
}

func TestE2ERemoteWritePrometheus(t *testing.T) {
	skipShort(t)
	testRemoteWrite(t, startPrometheus(t))
}

func TestE2ERemoteWriteVictoriaMetrics(t *testing.T) {
	skipShort(t)
	testRemoteWrite(t, startVictoriaMetrics(t))
}

// testRemoteWrite sends the lines of remoteWriteCase through the router to
// prom, stopping prom for 10 s half way, and checks what prom then holds.
func testRemoteWrite(t *testing.T, prom *promServer) {
	mapping, err := filepath.Abs("plugins/outputs/prometheus_remote_write/testdata/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.prometheus_remote_write]]
  id = "prom"
  url = "http://%s/api/v1/write"
  mapping_file = %q
  timeout = "5s"
  batch_size = 500
  flush_interval = "200ms"
  retry_max = "1s"
`, stats, in, prom.addr, mapping))
	waitListen(t, in)

	ts := time.Now().Unix() - 30
	lines, want, dropped := remoteWriteCase(ts)
	half := len(lines) / 2
	sendLines(t, in, lines[:half], 4)
	// Stop the store mid-run for 10 s; the second half arrives meanwhile.
	prom.stop(t)
	sendLines(t, in, lines[half:], 4)
	time.Sleep(10 * time.Second)
	prom.start(t)

	var got map[string]string
	if !waitFor(90*time.Second, func() bool {
		got, err = prom.query(t, `{__name__=~".+"}`, ts+1)
		return err == nil && len(got) >= len(want)
	}) {
		t.Fatalf("the store has %d series (err %v), want %d", len(got), err, len(want))
	}
	missing, wrong := 0, 0
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			if missing++; missing <= 5 {
				t.Errorf("missing series %s", k)
			}
		case g != v:
			if wrong++; wrong <= 5 {
				t.Errorf("series %s = %s, want %s", k, g, v)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s", k)
		}
	}
	if missing+wrong > 0 {
		t.Fatalf("%d series missing, %d with a wrong value, of %d", missing, wrong, len(want))
	}
	if n, err := prom.query(t, `{__name__=~"noise.*|dropped"}`, ts+1); err != nil || len(n) != 0 {
		t.Fatalf("dropped series present: %v %v", n, err)
	}
	m := scrape(t, stats)
	if d := m[series("mapping_dropped_total", "outputs.prometheus_remote_write", "prom")]; d != float64(dropped) {
		t.Errorf("mapping_dropped_total = %v, want %d", d, dropped)
	}
}
