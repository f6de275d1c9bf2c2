package keystore

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

const (
	keyA = "0123456789abcdef0123456789abcdef"
	keyB = "fedcba9876543210fedcba9876543210"
)

func dur(d time.Duration) registry.Duration { return registry.Duration(d) }

func TestNormalize(t *testing.T) {
	env := map[string]string{"CONSUL_HTTP_ADDR": "10.0.0.1:8500", "CONSUL_HTTP_TOKEN": "tok"}
	withEnv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	noEnv := func(string) (string, bool) { return "", false }
	tests := []struct {
		name   string
		cfg    Config
		lookup func(string) (string, bool)
		want   Config // when wantErr == ""
		errHas string
	}{
		{name: "consul defaults", cfg: Config{Type: "consul"}, lookup: noEnv,
			want: Config{Type: "consul", Address: "127.0.0.1:8500", Prefix: "polymur/gateway/keys/", SyncInterval: dur(30 * time.Second)}},
		{name: "consul env", cfg: Config{Type: "consul"}, lookup: withEnv,
			want: Config{Type: "consul", Address: "10.0.0.1:8500", Token: "tok", Prefix: "polymur/gateway/keys/", SyncInterval: dur(30 * time.Second)}},
		{name: "consul explicit beats env", cfg: Config{Type: "consul", Address: "c:1", Token: "t2", Prefix: "/a/b", SyncInterval: dur(time.Second)}, lookup: withEnv,
			want: Config{Type: "consul", Address: "c:1", Token: "t2", Prefix: "a/b/", SyncInterval: dur(time.Second)}},
		{name: "consul root prefix", cfg: Config{Type: "consul", Prefix: "/"}, lookup: noEnv, errHas: "KV root"},
		{name: "consul short sync", cfg: Config{Type: "consul", SyncInterval: dur(time.Millisecond)}, lookup: noEnv, errHas: "too short"},
		{name: "consul long sync", cfg: Config{Type: "consul", SyncInterval: dur(time.Hour)}, lookup: noEnv, errHas: "too long"},
		{name: "start without consul needs cache", cfg: Config{Type: "consul", StartWithoutConsul: true}, lookup: noEnv, errHas: "needs cache_file"},
		{name: "consul with path", cfg: Config{Type: "consul", Path: "k.toml"}, lookup: noEnv, errHas: `apply only to type = "file"`},
		{name: "consul with keys", cfg: Config{Type: "consul", Keys: map[string]string{"a": "b"}}, lookup: noEnv, errHas: `apply only to type = "static"`},
		{name: "file defaults", cfg: Config{Type: "file", Path: "k.json"}, lookup: noEnv,
			want: Config{Type: "file", Path: "k.json", ReloadInterval: dur(2 * time.Second)}},
		{name: "file needs path", cfg: Config{Type: "file"}, lookup: noEnv, errHas: "needs path"},
		{name: "file extension", cfg: Config{Type: "file", Path: "k.yaml"}, lookup: noEnv, errHas: "*.toml or *.json"},
		{name: "file short reload", cfg: Config{Type: "file", Path: "k.toml", ReloadInterval: dur(time.Millisecond)}, lookup: noEnv, errHas: "too short"},
		{name: "file with address", cfg: Config{Type: "file", Path: "k.toml", Address: "x:1"}, lookup: noEnv, errHas: `apply only to type = "consul"`},
		{name: "static", cfg: Config{Type: "static", Keys: map[string]string{"a": keyA}}, lookup: noEnv,
			want: Config{Type: "static", Keys: map[string]string{"a": keyA}}},
		{name: "static dev", cfg: Config{Type: "static", DevMode: true}, lookup: noEnv, want: Config{Type: "static", DevMode: true}},
		{name: "static empty", cfg: Config{Type: "static"}, lookup: noEnv, errHas: "needs keys"},
		{name: "static both", cfg: Config{Type: "static", DevMode: true, Keys: map[string]string{"a": keyA}}, lookup: noEnv, errHas: "not both"},
		{name: "static with cache", cfg: Config{Type: "static", DevMode: true, CacheFile: "x"}, lookup: noEnv, errHas: `apply only to type = "consul"`},
		{name: "no type", cfg: Config{}, lookup: noEnv, errHas: "type is required"},
		{name: "bad type", cfg: Config{Type: "vault"}, lookup: noEnv, errHas: `unknown type "vault"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			err := c.normalize(tt.lookup)
			if !plugintest.WantErr(t, "normalize", err, tt.errHas) {
				return
			}
			if c.Type != tt.want.Type || c.Address != tt.want.Address || c.Token != tt.want.Token || c.Prefix != tt.want.Prefix ||
				c.SyncInterval != tt.want.SyncInterval || c.Path != tt.want.Path || c.ReloadInterval != tt.want.ReloadInterval || c.DevMode != tt.want.DevMode {
				t.Fatalf("got %+v\nwant %+v", c, tt.want)
			}
		})
	}
}

func TestNewRejectsBadStaticName(t *testing.T) {
	env, _ := plugintest.Env(t, "inputs.https_batch")
	_, err := New(Config{Type: "static", Keys: map[string]string{"a b": keyA}}, env)
	if err == nil || !strings.Contains(err.Error(), "space or control") {
		t.Fatalf("err = %v", err)
	}
}

func TestLookup(t *testing.T) {
	set, skip := buildSet([]pair{{"alice", keyA}, {"bob", " " + keyB + "\n"}})
	if len(skip) != 0 {
		t.Fatalf("skipped %v", skip)
	}
	tests := []struct {
		name, key, want string
		ok              bool
	}{
		{"exact", keyA, "alice", true},
		{"trimmed when stored", keyB, "bob", true},
		{"untrimmed candidate", keyB + "\n", "", false},
		{"long common prefix", keyA[:31] + "0", "", false},
		{"stored key plus suffix", keyA + "0", "", false},
		{"prefix of stored key", keyA[:16], "", false},
		{"case differs", strings.ToUpper(keyA), "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, ok := set.lookup([]byte(tt.key))
			if name != tt.want || ok != tt.ok {
				t.Fatalf("lookup(%q) = %q, %v; want %q, %v", tt.key, name, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := emptySet.lookup(nil); ok {
		t.Fatal("nil key found in the empty set")
	}
}

// TestLookupStructure checks what makes Lookup's timing independent of how
// much of a key matches: the index is the SHA-256 of the key (a candidate
// sharing 31 of 32 characters lands in another bucket of the map), and the
// only byte comparison is subtle.ConstantTimeCompare on an equal hash.
func TestLookupStructure(t *testing.T) {
	set, _ := buildSet([]pair{{"alice", keyA}})
	if len(set.byHash) != 1 {
		t.Fatalf("index has %d entries", len(set.byHash))
	}
	for h, e := range set.byHash {
		if string(e.key) != keyA || e.name != "alice" {
			t.Fatalf("entry %+v", e)
		}
		near := []byte(keyA)
		near[len(near)-1] ^= 1
		if _, ok := set.byHash[sha256.Sum256(near)]; ok || h == sha256.Sum256(near) {
			t.Fatal("a near miss shares the index entry")
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	st := openStore(t, Config{Type: "static", Keys: map[string]string{"alice": keyA}})
	hit, miss := []byte(keyA), []byte(keyB)
	header := strings.Clone(keyA)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := st.Lookup(hit); !ok {
			t.Fatal("miss")
		}
		if _, ok := st.Lookup(miss); ok {
			t.Fatal("hit")
		}
		if _, ok := LookupString(st, header); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Lookup allocates %.1f times per run", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	env := registry.Env{}
	keys := map[string]string{}
	for i := range 1000 {
		keys["user"+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = NewKey()
	}
	keys["alice"] = keyA
	st, err := New(Config{Type: "static", Keys: keys}, env)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Open(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, key string }{{"hit", keyA}, {"miss_prefix", keyA[:31] + "0"}, {"miss", keyB}} {
		b.Run(bc.name, func(b *testing.B) {
			k := []byte(bc.key)
			b.ReportAllocs()
			for b.Loop() {
				st.Lookup(k)
			}
		})
	}
}

func TestBuildSetSkips(t *testing.T) {
	set, skip := buildSet([]pair{{"carol", keyB}, {"bob", keyB}, {"alice", keyA}, {"dave", "  "}})
	if got := len(set.pairs); got != 2 {
		t.Fatalf("%d keys, want 2", got)
	}
	if name, _ := set.lookup([]byte(keyB)); name != "bob" {
		t.Fatalf("keyB is %q, want bob (the first name in order)", name)
	}
	want := []skipped{{"carol", "same key as bob"}, {"dave", "empty key"}}
	if len(skip) != len(want) {
		t.Fatalf("skipped %v, want %v", skip, want)
	}
	for i := range want {
		if skip[i] != want[i] {
			t.Fatalf("skipped %v, want %v", skip, want)
		}
	}
}

func TestStatic(t *testing.T) {
	env, m := plugintest.Env(t, "inputs.https_batch")
	st, err := New(Config{Type: "static", Keys: map[string]string{"alice": keyA, "bob": keyB, "carol": keyA}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Lookup([]byte(keyA)); ok {
		t.Fatal("a key works before Open")
	}
	if err := st.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if name, ok := st.Lookup([]byte(keyA)); !ok || name != "alice" {
		t.Fatalf("keyA: %q %v", name, ok)
	}
	if v, _ := m.GaugeValue("keystore_keys"); v != 2 {
		t.Fatalf("keystore_keys = %v", v)
	}
	if v, _ := m.GaugeValue("keystore_skipped_entries"); v != 1 {
		t.Fatalf("keystore_skipped_entries = %v", v)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := st.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStaticDevMode(t *testing.T) {
	st := openStore(t, Config{Type: "static", DevMode: true})
	if name, ok := LookupString(st, "123"); !ok || name != "dev" {
		t.Fatalf("123: %q %v", name, ok)
	}
	if _, ok := LookupString(st, "1234"); ok {
		t.Fatal("1234 accepted")
	}
}

func TestParseKeysFile(t *testing.T) {
	tests := []struct {
		file   string
		table  bool
		names  []string
		skip   int
		errHas string
	}{
		{file: "keys.toml", names: []string{"alice", "bob.example"}},
		{file: "keys_table.toml", table: true, names: []string{"alice", "bob"}},
		{file: "keys.json", names: []string{"alice", "bob"}},
		{file: "duplicate.toml", names: []string{"alice", "bob", "carol", "dave"}, skip: 1},
		{file: "broken.toml", errHas: "line 1"},
		{file: "notstring.json", errHas: "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			format, _ := formatOf(tt.file)
			kf, err := parseKeysFile(data, format)
			if !plugintest.WantErr(t, "parseKeysFile", err, tt.errHas) {
				return
			}
			var names []string
			for _, p := range kf.pairs {
				names = append(names, p.name)
			}
			if strings.Join(names, ",") != strings.Join(tt.names, ",") || kf.table != tt.table || len(kf.skip) != tt.skip {
				t.Fatalf("names %v table %v skip %v", names, kf.table, kf.skip)
			}
			// rendering and parsing again gives the same file
			out, err := kf.render()
			if err != nil {
				t.Fatal(err)
			}
			kf2, err := parseKeysFile(out, format)
			if err != nil {
				t.Fatalf("%v in\n%s", err, out)
			}
			if len(kf2.pairs) != len(kf.pairs) || kf2.table != kf.table || kf2.header != kf.header {
				t.Fatalf("round trip changed the file:\n%s", out)
			}
			for i := range kf.pairs {
				if kf.pairs[i] != kf2.pairs[i] {
					t.Fatalf("round trip changed %v into %v", kf.pairs[i], kf2.pairs[i])
				}
			}
		})
	}
}

// openStore makes the store cfg describes, with a test Env, and opens it.
func openStore(t *testing.T, cfg Config) Store {
	t.Helper()
	env, _ := plugintest.Env(t, "inputs.https_batch")
	return openStoreEnv(t, cfg, env)
}

// openStoreEnv makes the store cfg describes, with env, and opens it.
func openStoreEnv(t *testing.T, cfg Config, env registry.Env) Store {
	t.Helper()
	st, err := New(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

// runStore opens the store cfg describes and runs it until stop, or the
// end of the test: stop ends Run and waits for it.
func runStore(t *testing.T, cfg Config, env registry.Env) (st Store, stop func()) {
	t.Helper()
	st = openStoreEnv(t, cfg, env)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := st.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return st, stop
}

// fileStore starts a file store on path with a short reload interval and
// runs it until the test ends.
func startFileStore(t *testing.T, path string) (Store, *plugintest.Metrics) {
	t.Helper()
	env, m := plugintest.Env(t, "inputs.https_batch")
	st, _ := runStore(t, Config{Type: "file", Path: path, ReloadInterval: dur(100 * time.Millisecond)}, env)
	return st, m
}

// waitLookup waits until key resolves to want (ok) or is rejected (!ok).
func waitLookup(t *testing.T, st Store, key, want string, ok bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		name, found := LookupString(st, key)
		if found == ok && name == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %v: lookup(%.8s…) = %q, %v; want %q, %v", timeout, key, name, found, want, ok)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fileWait bounds the wait for a file change to apply (reload_interval is
// 100ms here: 100-200ms when the machine is not starved).
const fileWait = 5 * time.Second

func TestFileStore(t *testing.T) {
	for _, ext := range []string{"toml", "json"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys."+ext)
			write := func(content string) {
				t.Helper()
				if err := writeFileAtomic(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			pairs := func(kv ...string) string {
				var b strings.Builder
				if ext == "json" {
					b.WriteString("{")
				}
				for i := 0; i < len(kv); i += 2 {
					if ext == "json" {
						if i > 0 {
							b.WriteString(",")
						}
						b.WriteString(`"` + kv[i] + `":"` + kv[i+1] + `"`)
					} else {
						b.WriteString(kv[i] + ` = "` + kv[i+1] + "\"\n")
					}
				}
				if ext == "json" {
					b.WriteString("}")
				}
				return b.String()
			}
			write(pairs("alice", keyA))
			st, m := startFileStore(t, path)
			waitLookup(t, st, keyA, "alice", true, 0)

			t.Run("reload on change", func(t *testing.T) {
				write(pairs("alice", keyA, "bob", keyB))
				d := waitLookup(t, st, keyB, "bob", true, fileWait)
				t.Logf("new key accepted after %v", d)
			})
			t.Run("in-place rewrite", func(t *testing.T) {
				if err := os.WriteFile(path, []byte(pairs("bob", keyB)), 0o600); err != nil {
					t.Fatal(err)
				}
				waitLookup(t, st, keyB, "bob", true, fileWait)
				waitLookup(t, st, keyA, "", false, fileWait)
			})
			t.Run("broken file keeps the last good keys", func(t *testing.T) {
				errs := m.Get("keystore_sync_errors_total")
				write(pairs("alice", keyA)[:10] + "\x00{[")
				if got := m.WaitCounter("keystore_sync_errors_total", errs+1, fileWait); got != errs+1 {
					t.Fatalf("sync errors = %d, want %d", got, errs+1)
				}
				waitLookup(t, st, keyB, "bob", true, 0)
				if _, ok := LookupString(st, keyA); ok {
					t.Fatal("keyA of the broken file accepted")
				}
			})
			t.Run("missing file keeps the last good keys", func(t *testing.T) {
				errs := m.Get("keystore_sync_errors_total")
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if got := m.WaitCounter("keystore_sync_errors_total", errs+1, fileWait); got != errs+1 {
					t.Fatalf("sync errors = %d, want %d", got, errs+1)
				}
				waitLookup(t, st, keyB, "bob", true, 0)
			})
			t.Run("fixed file is loaded", func(t *testing.T) {
				write(pairs("alice", keyA))
				waitLookup(t, st, keyA, "alice", true, fileWait)
				waitLookup(t, st, keyB, "", false, fileWait)
				if v, _ := m.GaugeValue("keystore_keys"); v != 1 {
					t.Fatalf("keystore_keys = %v", v)
				}
				if v, _ := m.GaugeValue("keystore_last_sync_age_seconds"); v < 0 || v > 2 {
					t.Fatalf("keystore_last_sync_age_seconds = %v", v)
				}
			})
		})
	}
}

func TestFileStoreOpenErrors(t *testing.T) {
	tests := []struct{ file, errHas string }{
		{"missing.toml", "no such file"},
		{"broken.toml", "line 1"},
		{"notstring.json", "must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			env, _ := plugintest.Env(t, "inputs.https_batch")
			st, err := New(Config{Type: "file", Path: filepath.Join("testdata", tt.file)}, env)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Open(t.Context()); err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Open: %v, want an error with %q", err, tt.errHas)
			}
		})
	}
}

func TestFileStoreDuplicates(t *testing.T) {
	env, m := plugintest.Env(t, "inputs.https_batch")
	st := openStoreEnv(t, Config{Type: "file", Path: "testdata/duplicate.toml"}, env)
	if name, _ := LookupString(st, keyB); name != "bob" {
		t.Fatalf("keyB is %q", name)
	}
	if v, _ := m.GaugeValue("keystore_keys"); v != 2 {
		t.Fatalf("keystore_keys = %v", v)
	}
	// a/b (nested), carol (bob's key), dave (empty)
	if v, _ := m.GaugeValue("keystore_skipped_entries"); v != 3 {
		t.Fatalf("keystore_skipped_entries = %v", v)
	}
}

func TestWriteFileAtomicMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.json")
	if err := writeFileAtomic(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestLookupTimingProbe measures what a timing attack would: a wrong key
// sharing 31 of 32 characters with a valid one must not take measurably
// longer to refuse than one sharing none. Medians of interleaved rounds keep
// it stable on a busy machine; the bound is loose (the structure test above
// is the proof, this is the measurement).
func TestLookupTimingProbe(t *testing.T) {
	st := openStore(t, Config{Type: "static", Keys: map[string]string{"alice": keyA}})
	near := []byte(keyA)
	near[len(near)-1] ^= 1
	far := []byte(strings.Repeat("z", len(keyA)))
	const rounds, per = 301, 2000
	round := func(k []byte) time.Duration {
		t0 := time.Now()
		for i := 0; i < per; i++ {
			st.Lookup(k)
		}
		return time.Since(t0)
	}
	var dn, df []time.Duration
	for r := 0; r < rounds; r++ {
		dn = append(dn, round(near))
		df = append(df, round(far))
	}
	slices.Sort(dn)
	slices.Sort(df)
	mn, mf := dn[rounds/2], df[rounds/2]
	ratio := float64(mn) / float64(mf)
	t.Logf("median per lookup: near miss %v, far miss %v (ratio %.3f)", mn/per, mf/per, ratio)
	if ratio > 1.25 || ratio < 0.8 {
		t.Fatalf("near-miss keys take %.2fx the time of far misses", ratio)
	}
}
