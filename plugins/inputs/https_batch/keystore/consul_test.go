package keystore

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

const testPrefix = "router/test/keys/"

// startConsulStore opens a Consul store and runs it; stop ends Run and
// waits for it.
func startConsulStore(t *testing.T, cfg Config) (st Store, m *plugintest.Metrics, stop func()) {
	t.Helper()
	env, m := plugintest.Env(t, "inputs.https_batch")
	st, stop = runStore(t, cfg, env)
	return st, m, stop
}

func gauge(t *testing.T, m *plugintest.Metrics, name string) float64 {
	t.Helper()
	v, ok := m.GaugeValue(name)
	if !ok {
		t.Fatalf("gauge %s not registered", name)
	}
	return v
}

func TestConsulOpen(t *testing.T) {
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	c.Put(t, testPrefix+"bob", " "+keyB+"\n")
	c.Put(t, testPrefix, "")                // a folder entry, as the Consul UI makes: empty name
	c.Put(t, testPrefix+"team/carol", "x1") // nested path
	c.Put(t, testPrefix+"dave", "")         // empty key
	c.Put(t, testPrefix+"erin", keyA)       // alice's key again
	c.Put(t, "router/test/keysx/frank", "outside the prefix")

	env, m := plugintest.Env(t, "inputs.https_batch")
	st, err := New(Config{Type: "consul", Address: c.Addr, Prefix: strings.TrimSuffix(testPrefix, "/")}, env)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := st.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Open took %v", time.Since(start))
	for key, want := range map[string]string{keyA: "alice", keyB: "bob"} {
		if name, ok := LookupString(st, key); !ok || name != want {
			t.Errorf("lookup %.8s: %q %v, want %q", key, name, ok, want)
		}
	}
	for _, key := range []string{"x1", "outside the prefix", "", keyB + "\n"} {
		if name, ok := LookupString(st, key); ok {
			t.Errorf("lookup %q accepted as %q", key, name)
		}
	}
	for name, want := range map[string]float64{"keystore_keys": 2, "keystore_skipped_entries": 4, "keystore_consul_up": 1} {
		if v := gauge(t, m, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := gauge(t, m, "keystore_last_sync_age_seconds"); v < 0 || v > 5 {
		t.Errorf("keystore_last_sync_age_seconds = %v", v)
	}
	if n := m.Get("keystore_syncs_total"); n != 1 {
		t.Errorf("keystore_syncs_total = %d", n)
	}
}

// TestConsulLive: with the default sync_interval (30s), a key put or deleted
// while the store runs applies within 2s thanks to the blocking query.
func TestConsulLive(t *testing.T) {
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	baseGoroutines := runtime.NumGoroutine()
	st, m, stop := startConsulStore(t, Config{Type: "consul", Address: c.Addr, Prefix: testPrefix})
	waitLookup(t, st, keyA, "alice", true, 0)

	keyC := NewKey()
	t.Run("put applies within 2s", func(t *testing.T) {
		c.Put(t, testPrefix+"carol", keyC)
		d := waitLookup(t, st, keyC, "carol", true, 2*time.Second)
		t.Logf("new key accepted after %v", d)
	})
	t.Run("delete applies within 2s", func(t *testing.T) {
		c.Delete(t, testPrefix+"alice")
		d := waitLookup(t, st, keyA, "", false, 2*time.Second)
		t.Logf("deleted key rejected after %v", d)
		waitLookup(t, st, keyC, "carol", true, 0)
	})
	t.Run("changed key", func(t *testing.T) {
		newC := NewKey()
		c.Put(t, testPrefix+"carol", newC)
		waitLookup(t, st, newC, "carol", true, 2*time.Second)
		waitLookup(t, st, keyC, "", false, 0)
	})
	t.Run("duplicate is skipped", func(t *testing.T) {
		keyD := NewKey()
		c.Put(t, testPrefix+"dave", keyD)
		c.Put(t, testPrefix+"zed", keyD)
		waitLookup(t, st, keyD, "dave", true, 2*time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for gauge(t, m, "keystore_skipped_entries") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("keystore_skipped_entries = %v, want 1", gauge(t, m, "keystore_skipped_entries"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		if name, _ := LookupString(st, keyD); name != "dave" {
			t.Fatalf("duplicate key resolves to %q", name)
		}
	})
	if e := m.Get("keystore_sync_errors_total"); e != 0 {
		t.Errorf("keystore_sync_errors_total = %d", e)
	}

	// Run ends promptly and leaves no goroutine behind (checked in this
	// goroutine: a subtest would add its own)
	start := time.Now()
	stop() // Run is in a blocking query (up to 30s) now
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v to return", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the store:\n%s", runtime.NumGoroutine(), baseGoroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsulOutage: Consul killed -> keys keep working, metrics say so;
// Consul back (empty, dev mode) with keys put again -> sync resumes and the
// keys not put again are purged.
func TestConsulOutage(t *testing.T) {
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	c.Put(t, testPrefix+"bob", keyB)
	cache := filepath.Join(t.TempDir(), "keys-cache.json")
	st, m, _ := startConsulStore(t, Config{Type: "consul", Address: c.Addr, Prefix: testPrefix, SyncInterval: dur(time.Second), CacheFile: cache})
	waitLookup(t, st, keyB, "bob", true, 0)
	checkCache(t, cache, "alice", "bob")

	c.Kill(t)
	if v := m.WaitGauge("keystore_consul_up", 0, 5*time.Second); v != 0 {
		t.Fatalf("keystore_consul_up = %v after the kill", v)
	}
	if e := m.WaitCounter("keystore_sync_errors_total", 2, 10*time.Second); e < 2 {
		t.Fatalf("keystore_sync_errors_total = %d", e)
	}
	for key, want := range map[string]string{keyA: "alice", keyB: "bob"} {
		if name, ok := LookupString(st, key); !ok || name != want {
			t.Fatalf("while consul is down: lookup %.8s = %q %v", key, name, ok)
		}
	}
	if v := gauge(t, m, "keystore_keys"); v != 2 {
		t.Fatalf("keystore_keys = %v while consul is down", v)
	}
	// the age of the last good sync grows while consul is down
	for deadline := time.Now().Add(5 * time.Second); gauge(t, m, "keystore_last_sync_age_seconds") < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("keystore_last_sync_age_seconds = %v while consul is down", gauge(t, m, "keystore_last_sync_age_seconds"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := gauge(t, m, "keystore_consul_up"); v != 0 {
		t.Fatalf("keystore_consul_up = %v", v)
	}
	checkCache(t, cache, "alice", "bob")

	start := time.Now()
	c.Restart(t)
	keyC := NewKey()
	c.Put(t, testPrefix+"alice", keyA)
	c.Put(t, testPrefix+"carol", keyC)
	waitLookup(t, st, keyC, "carol", true, 10*time.Second)
	t.Logf("sync resumed %v after the restart began", time.Since(start).Round(time.Millisecond))
	waitLookup(t, st, keyB, "", false, 2*time.Second) // bob was not put again
	waitLookup(t, st, keyA, "alice", true, 0)
	if v := m.WaitGauge("keystore_consul_up", 1, 2*time.Second); v != 1 {
		t.Fatalf("keystore_consul_up = %v after the restart", v)
	}
	waitCache(t, cache, "alice", "carol")
}

func readCache(t *testing.T, path string) ([]string, os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := parseKeysFile(data, formatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range kf.pairs {
		names = append(names, p.name)
	}
	return names, fi.Mode().Perm()
}

func checkCache(t *testing.T, path string, names ...string) {
	t.Helper()
	got, mode := readCache(t, path)
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("cache holds %v, want %v", got, names)
	}
	if mode != 0o600 {
		t.Fatalf("cache file mode %v, want 0600", mode)
	}
}

func waitCache(t *testing.T, path string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got, _ := readCache(t, path)
		if strings.Join(got, ",") == strings.Join(names, ",") || time.Now().After(deadline) {
			checkCache(t, path, names...)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsulStartWithoutConsul: with Consul down, Open fails unless
// start_without_consul allows starting from a non-empty cache file.
func TestConsulStartWithoutConsul(t *testing.T) {
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache.json")
	cfg := Config{Type: "consul", Address: c.Addr, Prefix: testPrefix, SyncInterval: dur(time.Second), CacheFile: cache}

	// a first run writes the cache
	_, _, stop := startConsulStore(t, cfg)
	stop()
	checkCache(t, cache, "alice")
	c.Kill(t)

	open := func(t *testing.T, cfg Config) (Store, *plugintest.Metrics, error) {
		env, m := plugintest.Env(t, "inputs.https_batch")
		st, err := New(cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		return st, m, st.Open(t.Context())
	}
	t.Run("fails without start_without_consul", func(t *testing.T) {
		_, m, err := open(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "unreachable, not starting") || !strings.Contains(err.Error(), "start_without_consul") {
			t.Fatalf("Open: %v", err)
		}
		t.Log(err)
		if m.Get("keystore_sync_errors_total") != 1 {
			t.Fatal("the failed list is not counted")
		}
	})
	t.Run("fails without a cache file", func(t *testing.T) {
		cfg := cfg
		cfg.CacheFile = filepath.Join(dir, "none.json")
		cfg.StartWithoutConsul = true
		_, _, err := open(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "no cache_file") {
			t.Fatalf("Open: %v", err)
		}
		t.Log(err)
	})
	t.Run("fails with an empty cache file", func(t *testing.T) {
		cfg := cfg
		cfg.CacheFile = filepath.Join(dir, "empty.json")
		cfg.StartWithoutConsul = true
		if err := os.WriteFile(cfg.CacheFile, []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := open(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "holds no key") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("fails with a broken cache file", func(t *testing.T) {
		cfg := cfg
		cfg.CacheFile = filepath.Join(dir, "broken.json")
		cfg.StartWithoutConsul = true
		if err := os.WriteFile(cfg.CacheFile, []byte("{\"alice\": "), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := open(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "cache_file unusable") {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("starts from the cache, then syncs when consul is back", func(t *testing.T) {
		cfg := cfg
		cfg.StartWithoutConsul = true
		st, m, err := open(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if name, ok := LookupString(st, keyA); !ok || name != "alice" {
			t.Fatalf("lookup from cache: %q %v", name, ok)
		}
		if v := gauge(t, m, "keystore_consul_up"); v != 0 {
			t.Fatalf("keystore_consul_up = %v", v)
		}
		if v := gauge(t, m, "keystore_last_sync_age_seconds"); v < 0 {
			t.Fatalf("keystore_last_sync_age_seconds = %v", v)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = st.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()

		c.Restart(t)
		c.Put(t, testPrefix+"bob", keyB)
		waitLookup(t, st, keyB, "bob", true, 10*time.Second)
		waitLookup(t, st, keyA, "", false, 2*time.Second)
		waitCache(t, cache, "bob")
	})
}

func TestConsulOpenCacheUnwritable(t *testing.T) {
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	env, _ := plugintest.Env(t, "inputs.https_batch")
	st, err := New(Config{Type: "consul", Address: c.Addr, Prefix: testPrefix, CacheFile: filepath.Join(t.TempDir(), "no", "such", "dir", "cache.json")}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(t.Context()); err == nil || !strings.Contains(err.Error(), "cache_file") {
		t.Fatalf("Open: %v", err)
	}
}

func TestConsulToken(t *testing.T) {
	// The token is sent (consul/api's X-Consul-Token); a dev agent without
	// ACLs accepts any token, so this only checks that it is not in the way.
	c := plugintest.StartConsul(t)
	c.Put(t, testPrefix+"alice", keyA)
	st, _, _ := startConsulStore(t, Config{Type: "consul", Address: "http://" + c.Addr, Token: "anything", Prefix: testPrefix})
	waitLookup(t, st, keyA, "alice", true, 0)
}
