package main

// outputs.http_json and outputs.prometheus_remote_write as targets of the
// distributors (consistent_hash, broadcast, failover) and of [[rules]]
// send_to: the router in-process, its receivers on real sockets.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// jsonSink is an HTTP endpoint taking inputs.http_json's /batch body (a
// JSON array of {"type","key","value"} objects); it counts every key.
type jsonSink struct {
	srv  *httptest.Server
	URL  string // http://host:port/batch
	Host string // host:port
	mu   sync.Mutex
	keys map[string]int
	n    int
	bad  []string // what it refused, and why
}

func newJSONSink(t *testing.T) *jsonSink {
	t.Helper()
	s := &jsonSink{keys: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/batch"
	s.Host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

func (s *jsonSink) serve(w http.ResponseWriter, r *http.Request) {
	var batch []struct {
		Type  string          `json:"type"`
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	err := json.NewDecoder(r.Body).Decode(&batch)
	if err == nil && (r.Method != http.MethodPost || r.URL.Path != "/batch") {
		err = fmt.Errorf("%s %s", r.Method, r.URL.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, m := range batch {
		s.keys[m.Key]++
		s.n++
	}
}

// counts returns the keys received (copied), their total and the refusals.
func (s *jsonSink) counts() (map[string]int, int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]int, len(s.keys))
	for k, v := range s.keys {
		c[k] = v
	}
	return c, s.n, append([]string(nil), s.bad...)
}

func (s *jsonSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// rwSample is one sample a remote-write request carried.
type rwSample struct {
	labels map[string]string
	value  float64
	ts     int64
}

// rwSink is a Prometheus remote-write 1.0 receiver: it decodes each
// request's snappy block and protobuf WriteRequest and keeps the samples.
type rwSink struct {
	srv     *httptest.Server
	URL     string
	mu      sync.Mutex
	samples []rwSample
	bad     []string
}

func newRWSink(t *testing.T) *rwSink {
	t.Helper()
	s := &rwSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/api/v1/write"
	return s
}

func (s *rwSink) serve(w http.ResponseWriter, r *http.Request) {
	samples, err := func() ([]rwSample, error) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/write" {
			return nil, fmt.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "snappy" {
			return nil, fmt.Errorf("Content-Encoding %q", ce)
		}
		if v := r.Header.Get("X-Prometheus-Remote-Write-Version"); v != "0.1.0" {
			return nil, fmt.Errorf("X-Prometheus-Remote-Write-Version %q", v)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			return nil, fmt.Errorf("Content-Type %q", ct)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		raw, err := s2.Decode(nil, body)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		return decodeWriteRequest(raw)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.samples = append(s.samples, samples...)
	w.WriteHeader(http.StatusNoContent)
}

// byName counts the samples per __name__, and returns their total and the
// refusals.
func (s *rwSink) byName() (map[string]int, int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := map[string]int{}
	for _, sm := range s.samples {
		c[sm.labels["__name__"]]++
	}
	return c, len(s.samples), append([]string(nil), s.bad...)
}

func (s *rwSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.samples)
}

func (s *rwSink) all() []rwSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rwSample(nil), s.samples...)
}

// protoFields walks the fields of one protobuf message, calling fn with
// each field's number, wire type and value (the bytes of a length-delimited
// field, else the varint or fixed value in v).
func protoFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			v = uint64(v32)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d: wire type %d", num, typ)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

// decodeWriteRequest reads prometheus.WriteRequest (remote-write 1.0):
// timeseries = 1 {labels = 1 {name = 1, value = 2}, samples = 2 {value = 1
// double, timestamp = 2 int64}}.
func decodeWriteRequest(b []byte) ([]rwSample, error) {
	var out []rwSample
	err := protoFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, ts []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil // metadata and the like
		}
		labels := map[string]string{}
		var samples []rwSample
		err := protoFields(ts, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
			switch {
			case num == 1 && typ == protowire.BytesType:
				var name, value string
				err := protoFields(data, func(num protowire.Number, _ protowire.Type, _ uint64, d []byte) error {
					switch num {
					case 1:
						name = string(d)
					case 2:
						value = string(d)
					}
					return nil
				})
				if err != nil {
					return err
				}
				if _, dup := labels[name]; dup {
					return fmt.Errorf("label %q twice", name)
				}
				labels[name] = value
			case num == 2 && typ == protowire.BytesType:
				var sm rwSample
				err := protoFields(data, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
					switch {
					case num == 1 && typ == protowire.Fixed64Type:
						sm.value = math.Float64frombits(v)
					case num == 2 && typ == protowire.VarintType:
						sm.ts = int64(v)
					}
					return nil
				})
				if err != nil {
					return err
				}
				samples = append(samples, sm)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if labels["__name__"] == "" {
			return errors.New("series without __name__")
		}
		for _, sm := range samples {
			sm.labels = labels
			out = append(out, sm)
		}
		return nil
	})
	return out, err
}

// promName is the default remote-write name of a Graphite path (no mapping
// file): every character outside [a-zA-Z0-9_:] becomes '_'.
func promName(path string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, path)
}

// nowLines are Graphite lines "<prefix>.<i> <i+1> <now>" for i in [0, n).
func nowLines(prefix string, n int, now int64) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s.%d %d %d", prefix, i, i+1, now)
	}
	return lines
}

// checkNamesOnce fails unless got holds each name of want exactly once
// and nothing else.
func checkNamesOnce(t *testing.T, what string, got map[string]int, want []string) {
	t.Helper()
	missing, dups := 0, 0
	for _, n := range want {
		switch got[n] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	if missing > 0 || dups > 0 || len(got) != len(want) {
		t.Fatalf("%s: %d names, want %d; %d missing, %d duplicated", what, len(got), len(want), missing, dups)
	}
}

// TestOutputsConsistentHashHTTPJSON: outputs.consistent_hash (carbon_ch)
// over two inline [[outputs.consistent_hash.to.http_json]] targets, each a
// router B (inputs.http_json -> outputs.statsd over TCP -> line sink).
// Every metric reaches exactly one B, the one carbon's ring names for it,
// and a second round of the same names lands where the first did.
func TestOutputsConsistentHashHTTPJSON(t *testing.T) {
	const n = 2000
	type routerB struct {
		addr string
		sink *plugintest.LineSink
	}
	bs := make([]routerB, 2)
	for i := range bs {
		bs[i] = routerB{addr: plugintest.FreeAddr(t), sink: plugintest.NewLineSink(t)}
		startRouter(t, fmt.Sprintf(`
[[inputs.http_json]]
  listen = %q
[[outputs.statsd]]
  address = %q
  protocol = "tcp"
`, bs[i].addr, bs[i].sink.Addr))
	}
	in := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.consistent_hash]]
  id = "ch"
  hash = "carbon_ch"
  retry_initial = "20ms"
  retry_max = "200ms"
  [[outputs.consistent_hash.to.http_json]]
    url = "http://%s/batch"
    instance = "a"
  [[outputs.consistent_hash.to.http_json]]
    url = "http://%s/batch"
    instance = "b"
`, in, bs[0].addr, bs[1].addr))
	for _, b := range bs {
		waitListen(t, b.addr)
	}
	waitListen(t, in)

	// where carbon's ring puts each name, from the ring's own package
	members := make([]hashring.Member, len(bs))
	for i, b := range bs {
		u, err := url.Parse("http://" + b.addr)
		if err != nil {
			t.Fatal(err)
		}
		members[i] = hashring.Member{Host: u.Hostname(), Port: u.Port(), Instance: string(rune('a' + i))}
	}
	ring, err := hashring.NewCarbon(members, hashring.CollisionBump)
	if err != nil {
		t.Fatal(err)
	}
	const now = 1767225600
	lines := nowLines("e2e.chj", n, now)
	want := [2][]string{}
	for i := range n {
		name := fmt.Sprintf("e2e.chj.%d", i)
		dst := ring.Lookup([]byte(name), 1, nil, nil)
		want[dst[0]] = append(want[dst[0]], name)
	}
	if len(want[0]) == 0 || len(want[1]) == 0 {
		t.Fatalf("ring puts %d and %d names on the two targets: the test needs both", len(want[0]), len(want[1]))
	}

	for round := 1; round <= 2; round++ {
		sendLines(t, in, lines, 2)
		total := func() int { return bs[0].sink.Len() + bs[1].sink.Len() }
		if !waitSinks(total, round*n) {
			t.Fatalf("round %d: the Bs got %d + %d lines, want %d in all", round, bs[0].sink.Len(), bs[1].sink.Len(), round*n)
		}
		for i, b := range bs {
			got := map[string]int{}
			for _, l := range b.sink.Lines() {
				name, _, _ := strings.Cut(l, ":")
				got[name]++
			}
			for _, name := range want[i] {
				if got[name] != round {
					t.Fatalf("round %d: B%d got %s %d times, want %d", round, i, name, got[name], round)
				}
			}
			if len(got) != len(want[i]) {
				t.Fatalf("round %d: B%d got %d names, want %d (names of the other B)", round, i, len(got), len(want[i]))
			}
		}
	}
	t.Logf("%d names, twice: %d on B0, %d on B1, each where carbon_ch places it", n, len(want[0]), len(want[1]))
}

// TestOutputsBroadcastHTTPJSONRemoteWrite: outputs.broadcast to an
// http_json target and a prometheus_remote_write target; both get every
// metric once, remote write with the Graphite time in milliseconds.
func TestOutputsBroadcastHTTPJSONRemoteWrite(t *testing.T) {
	const n = 3000
	hj, rw := newJSONSink(t), newRWSink(t)
	in := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.broadcast]]
  id = "bc"
  retry_initial = "20ms"
  retry_max = "200ms"
  [[outputs.broadcast.to.http_json]]
    url = %q
  [[outputs.broadcast.to.prometheus_remote_write]]
    url = %q
    batch_size = 500
`, in, hj.URL, rw.URL))
	waitListen(t, in)
	now := time.Now().Unix()
	lines := nowLines("e2e.bc", n, now)
	sendLines(t, in, lines, 2)
	if !waitSinks(func() int { return hj.total() + rw.total() }, 2*n) {
		t.Fatalf("http_json got %d, remote write %d, want %d each", hj.total(), rw.total(), n)
	}
	hjNames, _, hjBad := hj.counts()
	rwNames, _, rwBad := rw.byName()
	if len(hjBad) > 0 || len(rwBad) > 0 {
		t.Fatalf("refused requests: http_json %q, remote write %q", hjBad, rwBad)
	}
	names, prom := make([]string, n), make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("e2e.bc.%d", i)
		prom[i] = promName(names[i])
	}
	checkNamesOnce(t, "http_json", hjNames, names)
	checkNamesOnce(t, "remote write", rwNames, prom)
	for _, sm := range rw.all() {
		i, err := strconv.Atoi(strings.TrimPrefix(sm.labels["__name__"], "e2e_bc_"))
		if err != nil || sm.value != float64(i+1) || sm.ts != now*1000 || len(sm.labels) != 1 {
			t.Fatalf("remote write sample %v = %v @%d, want value %d @%d and only __name__", sm.labels, sm.value, sm.ts, i+1, now*1000)
		}
	}
}

// TestOutputsFailoverHTTPJSON: outputs.failover over two http_json
// targets; the first refuses connections, so once its runner has seen that,
// the second gets every metric. What the first held when it failed (the
// probe) stays queued there, counted, not lost.
func TestOutputsFailoverHTTPJSON(t *testing.T) {
	const n = 5000
	secondary := newJSONSink(t)
	down := downAddr(t)
	in, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
  shutdown_timeout = "1s"   # the probe queued at the dead primary would hold the shutdown otherwise
[[inputs.graphite]]
  listen = %q
[[outputs.failover]]
  id = "fo"
  retry_initial = "20ms"
  retry_max = "200ms"
  [[outputs.failover.to.http_json]]
    id = "primary"
    url = "http://%s/batch"
  [[outputs.failover.to.http_json]]
    id = "secondary"
    url = %q
`, stats, in, down, secondary.URL))
	waitListen(t, in)
	sendLines(t, in, []string{"e2e.fo.probe 1 1767225600"}, 1) // the primary's runner finds it down
	upKey := series("up", "outputs.http_json", "primary")
	if !waitFor(10*time.Second, func() bool { v, ok := scrape(t, stats)[upKey]; return ok && v == 0 }) {
		t.Fatalf("%s never 0", upKey)
	}
	if got := secondary.total(); got != 0 {
		t.Fatalf("secondary got %d metrics before the run", got)
	}
	lines := nowLines("e2e.fo", n, 1767225600)
	sendLines(t, in, lines, 2)
	if !waitSinks(secondary.total, n) {
		t.Fatalf("secondary got %d of %d", secondary.total(), n)
	}
	got, _, bad := secondary.counts()
	if len(bad) > 0 {
		t.Fatalf("secondary refused %q", bad)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("e2e.fo.%d", i)
	}
	checkNamesOnce(t, "secondary", got, names)
	m := scrape(t, stats)
	if q := m[series("queued", "outputs.http_json", "primary")]; q != 1 {
		t.Fatalf("primary queued %v, want 1 (the probe)", q)
	}
	if d := m[series("dropped_total", "outputs.http_json", "primary")] + m[series("dropped_total", "outputs.http_json", "secondary")]; d != 0 {
		t.Fatalf("dropped %v", d)
	}
}

// TestOutputsRulesHTTPJSONRemoteWrite: [[rules]] send the e2e.prom.* names
// to a prometheus_remote_write output and every other name to an http_json
// output; each gets exactly its share.
func TestOutputsRulesHTTPJSONRemoteWrite(t *testing.T) {
	const n = 2000
	hj, rw := newJSONSink(t), newRWSink(t)
	in := plugintest.FreeAddr(t)
	startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.http_json]]
  id = "json"
  url = %q
  retry_initial = "20ms"
[[outputs.prometheus_remote_write]]
  id = "prom"
  url = %q
  batch_size = 500
  retry_initial = "20ms"
[[rules]]
  match = '^e2e\.prom\.'
  send_to = ["prom"]
  stop = true
[[rules]]
  match = "*"
  send_to = ["json"]
  stop = true
`, in, hj.URL, rw.URL))
	waitListen(t, in)
	now := time.Now().Unix()
	lines := append(nowLines("e2e.prom", n, now), nowLines("e2e.json", n, now)...)
	sendLines(t, in, lines, 2)
	if !waitSinks(func() int { return hj.total() + rw.total() }, 2*n) {
		t.Fatalf("http_json got %d, remote write %d, want %d each", hj.total(), rw.total(), n)
	}
	hjNames, _, hjBad := hj.counts()
	rwNames, _, rwBad := rw.byName()
	if len(hjBad) > 0 || len(rwBad) > 0 {
		t.Fatalf("refused requests: http_json %q, remote write %q", hjBad, rwBad)
	}
	jsonNames, promNames := make([]string, n), make([]string, n)
	for i := range n {
		jsonNames[i] = fmt.Sprintf("e2e.json.%d", i)
		promNames[i] = promName(fmt.Sprintf("e2e.prom.%d", i))
	}
	checkNamesOnce(t, "http_json", hjNames, jsonNames)
	checkNamesOnce(t, "remote write", rwNames, promNames)
}
