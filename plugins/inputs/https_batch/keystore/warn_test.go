package keystore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// logBuf collects JSON log lines.
type logBuf struct{ plugintest.SyncBuffer }

// entries returns the log lines whose message contains msg.
func (l *logBuf) entries(t *testing.T, msg string) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m, _ := e["message"].(string); strings.Contains(m, msg) {
			s := map[string]string{}
			for k, v := range e {
				s[k], _ = v.(string)
			}
			out = append(out, s)
		}
	}
	return out
}

const weakMsg = "weak api key accepted"

// strongKey is not published anywhere.
const strongKey = "9f3c1a7e5b2d4c6e8a0b1d3f5e7c9a2b"

// TestWeakKeyWarnings: the dev_mode key, keys published in Polymur's and
// this project's documentation, and short keys are each logged once at
// start, as a warning naming the key's name and never the key.
func TestWeakKeyWarnings(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Config
		warned map[string]string // name -> part of the reason
	}{
		{"dev mode", Config{Type: TypeStatic, DevMode: true}, map[string]string{DevName: "dev_mode"}},
		{"sample key", Config{Type: TypeStatic, Keys: map[string]string{"example": keyA, "prod": strongKey}}, map[string]string{"example": "example key"}},
		{"polymur readme keys", Config{Type: TypeStatic, Keys: map[string]string{"readme": "19d2d0f0130a9c9a6f97bdb0", "curl": "test-key"}},
			map[string]string{"readme": "example key", "curl": "example key"}},
		{"short key", Config{Type: TypeStatic, Keys: map[string]string{"short": "a1b2c3d4e5f6"}}, map[string]string{"short": "shorter than 16"}},
		{"strong keys only", Config{Type: TypeStatic, Keys: map[string]string{"a": strongKey, "b": keyB}}, map[string]string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs logBuf
			env := registry.Env{ID: "t", Plugin: "inputs.https_batch", Log: zerolog.New(&logs), Metrics: plugintest.NewMetrics()}
			st, err := New(c.cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, e := range logs.entries(t, weakMsg) {
				if e["level"] != "warn" {
					t.Errorf("level %q", e["level"])
				}
				if _, dup := got[e["name"]]; dup {
					t.Errorf("%s warned twice", e["name"])
				}
				got[e["name"]] = e["reason"]
			}
			if len(got) != len(c.warned) {
				t.Fatalf("warned %v, want %v", got, c.warned)
			}
			for name, reason := range c.warned {
				if !strings.Contains(got[name], reason) {
					t.Errorf("%s: reason %q, want %q", name, got[name], reason)
				}
			}
			keys := []string{DevKey}
			for _, k := range c.cfg.Keys {
				keys = append(keys, k)
			}
			for _, k := range keys {
				if strings.Contains(logs.String(), `"`+k+`"`) {
					t.Fatalf("a key is in the log:\n%s", logs.String())
				}
			}
		})
	}
}

// TestKeyFileWarnings: a key file that its group or others can read gets a
// warning with its path at start, a 0600 one none; a weak key added by a
// reload is warned about once, not again at the next reload.
func TestKeyFileWarnings(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.toml")
			if err := writeFileAtomic(path, []byte(`prod = "`+strongKey+`"`), mode); err != nil {
				t.Fatal(err)
			}
			var logs logBuf
			env := registry.Env{ID: "t", Plugin: "inputs.https_batch", Log: zerolog.New(&logs), Metrics: plugintest.NewMetrics()}
			st, err := New(Config{Type: TypeFile, Path: path}, env)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			w := logs.entries(t, "secret file open to group or others")
			if want := mode&0o066 != 0; want != (len(w) == 1) || len(w) > 1 {
				t.Fatalf("mode %v: %d warnings:\n%s", mode, len(w), logs.String())
			}
			if len(w) == 1 && (w[0]["path"] != path || w[0]["setting"] != "keystore.path" || w[0]["level"] != "warn") {
				t.Fatalf("warning %v", w[0])
			}
		})
	}
	t.Run("reload", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys.toml")
		write := func(content string) {
			t.Helper()
			if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(`prod = "` + strongKey + `"`)
		var logs logBuf
		env := registry.Env{ID: "t", Plugin: "inputs.https_batch", Log: zerolog.New(&logs), Metrics: plugintest.NewMetrics()}
		st, stop := runStore(t, Config{Type: TypeFile, Path: path, ReloadInterval: dur(100 * time.Millisecond)}, env)
		defer stop()
		write(`prod = "` + strongKey + `"` + "\ndev = \"123\"\n")
		waitLookup(t, st, "123", "dev", true, fileWait)
		write(`prod = "` + strongKey + `"` + "\ndev = \"123\"\nother = \"" + keyB + "\"\n")
		waitLookup(t, st, keyB, "other", true, fileWait)
		var names []string
		for _, e := range logs.entries(t, weakMsg) {
			names = append(names, e["name"])
		}
		if !slices.Equal(names, []string{"dev"}) {
			t.Fatalf("weak key warnings for %v, want [dev] once:\n%s", names, logs.String())
		}
	})
}
