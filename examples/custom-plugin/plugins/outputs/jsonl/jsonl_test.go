package jsonl_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"

	"example.com/router-custom/plugins/outputs/jsonl"

	_ "github.com/metricsrouter/router/plugins/inputs/graphite" // for the loader test
)

// connected returns an outputs.jsonl writing to a file under t.TempDir(),
// initialised and connected, with its counters.
func connected(t *testing.T, line bool) (*jsonl.JSONL, string, *plugintest.Metrics) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	j := &jsonl.JSONL{Path: path, Line: line}
	env, m := plugintest.Env(t, "outputs.jsonl")
	if err := j.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := j.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, path, m
}

func TestSampleDecodesStrictlyAndInits(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Outputs, "jsonl")
	if !ok {
		t.Fatal("outputs.jsonl is not registered")
	}
	v := p.New()
	if err := plugintest.DecodeSample(p.Sample, "outputs", "jsonl", v); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "outputs.jsonl")
	if err := v.(registry.Initializer).Init(env); err != nil {
		t.Fatalf("the sample does not pass Init: %v", err)
	}
	if p.Summary() == "" {
		t.Error("sample.toml has no first comment line (-list-plugins shows it)")
	}
}

// TestSampleLoadsThroughTheAgent: the router's own loader (strict keys, the
// agent's common keys, Init) accepts the sample next to a built-in input.
func TestSampleLoadsThroughTheAgent(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Outputs, "jsonl")
	cfg, err := agent.ParseConfig(registry.Default, "sample.toml", p.Sample+"\n[[inputs.graphite]]\n", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(cfg, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	_, err = agent.ParseConfig(registry.Default, "typo.toml", "[[outputs.jsonl]]\n  pth = \"x\"\n", func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "pth") {
		t.Fatalf("a typo was not reported: %v", err)
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{
		{"stdout", "-", true},
		{"file", "/var/lib/router/metrics.jsonl", true},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&jsonl.JSONL{Path: tc.path}).Init(registry.Env{})
			if (err == nil) != tc.ok {
				t.Fatalf("Init(path=%q) = %v, want ok %v", tc.path, err, tc.ok)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want map[string]any
	}{
		{"graphite", "web1.cpu.load 0.5 1700000000",
			map[string]any{"format": "graphite", "name": "web1.cpu.load", "path": "web1.cpu.load", "value": 0.5, "time": 1700000000.0}},
		{"graphite tags", "web1.cpu;dc=eu 2 1700000000",
			map[string]any{"format": "graphite", "name": "web1.cpu", "path": "web1.cpu;dc=eu", "value": 2.0, "time": 1700000000.0}},
		{"graphite float time", "a.b 1e3 1700000000.5",
			map[string]any{"format": "graphite", "name": "a.b", "path": "a.b", "value": 1000.0, "time": 1700000000.0}},
		{"statsd counter", "statsd:hits:3|c|@0.1|#env:prod,canary",
			map[string]any{"format": "statsd", "name": "hits", "path": "hits", "value": 3.0, "type": "c", "rate": 0.1, "tags": "env:prod,canary"}},
		{"statsd set", "statsd:users:alice|s",
			map[string]any{"format": "statsd", "name": "users", "path": "users", "value": "alice", "type": "s"}},
		{"escaping", "statsd:q\"x\\y:1|g",
			map[string]any{"format": "statsd", "name": "q\"x\\y", "path": "q\"x\\y", "value": 1.0, "type": "g"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, path, m := connected(t, false)
			if err := j.Write(t.Context(), plugintest.Batch(t, tc.line)); err != nil {
				t.Fatal(err)
			}
			out, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("not JSON: %q: %v", out, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			if n := m.Get("bytes_written_total"); n != uint64(len(out)) {
				t.Errorf("bytes_written_total = %d, want %d", n, len(out))
			}
		})
	}
}

func TestWriteBatchAppendsOneLineEach(t *testing.T) {
	j, path, _ := connected(t, true)
	lines := []string{"a.b 1 1700000000", "statsd:c:2|ms", "x\x01y 3 1700000001"}
	for range 2 {
		if err := j.Write(t.Context(), plugintest.Batch(t, lines...)); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := os.ReadFile(path)
	got := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
	if len(got) != 2*len(lines) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), 2*len(lines), out)
	}
	for i, l := range got {
		var v struct{ Line string }
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %d not JSON: %q: %v", i, l, err)
		}
		if want := strings.TrimPrefix(lines[i%len(lines)], "statsd:"); v.Line != want {
			t.Errorf("line %d: \"line\" = %q, want %q", i, v.Line, want)
		}
	}
}

// TestWriteErrorAsksForReconnect: a failed write closes the file and wraps
// registry.ErrNotConnected, so the runner keeps the batch and reconnects.
func TestWriteErrorAsksForReconnect(t *testing.T) {
	dir := t.TempDir()
	j := &jsonl.JSONL{Path: filepath.Join(dir, "missing", "out.jsonl")}
	if err := j.Init(registry.Env{}); err != nil {
		t.Fatal(err)
	}
	if err := j.Connect(t.Context()); err == nil {
		t.Fatal("Connect to a missing directory succeeded")
	}
	if err := j.Write(t.Context(), plugintest.Batch(t, "a 1 1700000000")); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write before Connect = %v, want ErrNotConnected", err)
	}

	j, path, _ := connected(t, false)
	if err := j.Close(); err != nil { // the file goes away underneath
		t.Fatal(err)
	}
	if err := j.Write(t.Context(), plugintest.Batch(t, "a 1 1700000000")); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write after Close = %v, want ErrNotConnected", err)
	}
	if err := j.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(t.Context(), plugintest.Batch(t, "a 1 1700000000")); err != nil {
		t.Fatalf("Write after reconnect: %v", err)
	}
	if out, _ := os.ReadFile(path); !bytes.Contains(out, []byte(`"name":"a"`)) {
		t.Fatalf("file after reconnect: %q", out)
	}
}

func TestREADMEShowsTheSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := registry.Default.Lookup(registry.Outputs, "jsonl")
	if !strings.Contains(string(readme), "```toml\n"+p.Sample+"```") {
		t.Error("README.md has no toml block identical to sample.toml")
	}
}
