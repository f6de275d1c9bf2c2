package keystore

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// keys runs `router keys args...` as the router binary would.
func keys(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	c, ok := registry.Default.LookupCommand("keys")
	if !ok {
		t.Fatal("command keys not registered")
	}
	var out, errb bytes.Buffer
	code = c.Run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// mustKeys runs `router keys` and requires exit status 0.
func mustKeys(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := keys(t, args...)
	if code != 0 {
		t.Fatalf("router keys %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

var (
	createdRE = regexp.MustCompile(`^Successfully registered ([A-Za-z0-9._-]+) with key ([0-9a-f]{32})\n$`)
	regenRE   = regexp.MustCompile(`^Successfully regenerated key for ([A-Za-z0-9._-]+): ([0-9a-f]{32})\n$`)
)

// created returns the key a create printed.
func created(t *testing.T, name, out string) string {
	t.Helper()
	m := createdRE.FindStringSubmatch(out)
	if m == nil || m[1] != name {
		t.Fatalf("create printed %q", out)
	}
	return m[2]
}

func regenerated(t *testing.T, name, out string) string {
	t.Helper()
	m := regenRE.FindStringSubmatch(out)
	if m == nil || m[1] != name {
		t.Fatalf("regen printed %q", out)
	}
	return m[2]
}

func TestKeysUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errHas string
	}{
		{"no command", nil, "missing command"},
		{"unknown command", []string{"show"}, `unknown command "show"`},
		{"create without name", []string{"create"}, "usage: create NAME"},
		{"create two names", []string{"create", "a", "b"}, "usage: create NAME"},
		{"bad name slash", []string{"create", "a/b"}, "bad key name"},
		{"bad name space", []string{"regen", "a b"}, "bad key name"},
		{"bad name dot", []string{"delete", ".a"}, "must not start or end"},
		{"list what", []string{"list", "keys"}, "list [names|all]"},
		{"file and consul", []string{"-file", "k.toml", "-consul", "x:1", "list"}, "cannot be combined"},
		{"id without config", []string{"-id", "a", "list"}, "-id needs -config"},
		{"unknown flag", []string{"-nope", "list"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := keys(t, tt.args...)
			if code != 2 || out != "" || !strings.Contains(errs, tt.errHas) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errs, tt.errHas)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		code, _, errs := keys(t, "-h")
		if code != 0 || !strings.Contains(errs, "Usage: router keys") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := NewKey()
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(k) || seen[k] {
			t.Fatalf("key %q (seen before: %v)", k, seen[k])
		}
		seen[k] = true
	}
}

func TestKeysConsul(t *testing.T) {
	c := plugintest.StartConsul(t)
	t.Setenv("CONSUL_HTTP_ADDR", c.Addr) // the default address, as for pgw-key
	t.Setenv("CONSUL_HTTP_TOKEN", "")

	// a running gateway key store sees what the command does
	st, _, _ := startConsulStore(t, Config{Type: "consul", Address: c.Addr})

	keyA := created(t, "alice", mustKeys(t, "create", "alice"))
	if v, ok := c.Get(t, DefaultPrefix+"alice"); !ok || v != keyA {
		t.Fatalf("consul holds %q %v, want the printed key", v, ok)
	}
	d := waitLookup(t, st, keyA, "alice", true, 2*time.Second)
	t.Logf("created key accepted by a running store after %v", d)

	keyB := created(t, "bob.example", mustKeys(t, "create", "bob.example"))
	if keyA == keyB {
		t.Fatal("two creates gave the same key")
	}

	t.Run("create refuses an existing name", func(t *testing.T) {
		code, out, errs := keys(t, "create", "alice")
		if code != 1 || out != "" || !strings.Contains(errs, "alice: already exists") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if v, _ := c.Get(t, DefaultPrefix+"alice"); v != keyA {
			t.Fatal("the existing key was changed")
		}
	})
	t.Run("list", func(t *testing.T) {
		c.Put(t, DefaultPrefix+"team/nested", "x") // not a key the gateway uses
		if out := mustKeys(t, "list"); out != "alice\nbob.example\n" {
			t.Fatalf("list: %q", out)
		}
		if out := mustKeys(t, "list", "names"); out != "alice\nbob.example\n" {
			t.Fatalf("list names: %q", out)
		}
		if out := mustKeys(t, "list", "all"); out != "alice: "+keyA+"\nbob.example: "+keyB+"\n" {
			t.Fatalf("list all: %q", out)
		}
	})
	t.Run("regen", func(t *testing.T) {
		newA := regenerated(t, "alice", mustKeys(t, "regen", "alice"))
		if newA == keyA {
			t.Fatal("regen kept the key")
		}
		if v, _ := c.Get(t, DefaultPrefix+"alice"); v != newA {
			t.Fatalf("consul holds %q", v)
		}
		waitLookup(t, st, newA, "alice", true, 2*time.Second)
		waitLookup(t, st, keyA, "", false, 0)
	})
	t.Run("delete", func(t *testing.T) {
		if out := mustKeys(t, "delete", "bob.example"); out != "Successfully deleted bob.example\n" {
			t.Fatalf("delete: %q", out)
		}
		if _, ok := c.Get(t, DefaultPrefix+"bob.example"); ok {
			t.Fatal("still in consul")
		}
		waitLookup(t, st, keyB, "", false, 2*time.Second)
		if out := mustKeys(t, "list"); out != "alice\n" {
			t.Fatalf("list after delete: %q", out)
		}
	})
	t.Run("missing names", func(t *testing.T) {
		for _, cmd := range []string{"regen", "delete"} {
			code, out, errs := keys(t, cmd, "nobody")
			if code != 1 || out != "" || !strings.Contains(errs, "nobody: no such key name") {
				t.Fatalf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
			}
		}
	})
	t.Run("flags after the command, other prefix", func(t *testing.T) {
		k := created(t, "carol", mustKeys(t, "create", "carol", "-prefix", "other/keys", "-consul", c.Addr))
		if v, _ := c.Get(t, "other/keys/carol"); v != k {
			t.Fatalf("other/keys/carol = %q", v)
		}
		if out := mustKeys(t, "-prefix", "/other/keys/", "list"); out != "carol\n" {
			t.Fatalf("list: %q", out)
		}
	})
	t.Run("-config", func(t *testing.T) {
		t.Setenv("KEYSTORE_TEST_CONSUL", c.Addr)
		k := created(t, "dave", mustKeys(t, "-config", "testdata/gateway.toml", "create", "dave"))
		if v, _ := c.Get(t, "router/test/keys/dave"); v != k {
			t.Fatalf("router/test/keys/dave = %q", v)
		}
		if out := mustKeys(t, "-config", "testdata/gateway.toml", "-id", "gw", "list", "all"); out != "dave: "+k+"\n" {
			t.Fatalf("list: %q", out)
		}
	})
	t.Run("consul unreachable", func(t *testing.T) {
		code, out, errs := keys(t, "-consul", plugintest.FreeAddr(t), "list")
		if code != 1 || out != "" || !strings.Contains(errs, "connection refused") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
}

func TestKeysFile(t *testing.T) {
	for _, src := range []string{"keys.toml", "keys_table.toml", "keys.json", "new.toml", "new.json"} {
		t.Run(src, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), src)
			var orig []byte
			if !strings.HasPrefix(src, "new") {
				var err error
				if orig, err = os.ReadFile(filepath.Join("testdata", src)); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, orig, 0o640); err != nil {
					t.Fatal(err)
				}
			} else {
				code, _, errs := keys(t, "-file", path, "list")
				if code != 1 || !strings.Contains(errs, "no such file") {
					t.Fatalf("list of a missing file: exit %d, %q", code, errs)
				}
			}
			before := ""
			if orig != nil {
				before = mustKeys(t, "-file", path, "list")
			}

			k := created(t, "zed", mustKeys(t, "-file", path, "create", "zed"))
			if out := mustKeys(t, "-file", path, "list"); out != before+"zed\n" {
				t.Fatalf("list: %q", out)
			}
			if code, _, errs := keys(t, "-file", path, "create", "zed"); code != 1 || !strings.Contains(errs, "already exists") {
				t.Fatalf("second create: exit %d %q", code, errs)
			}
			// a gateway reads the file the command wrote
			st := openStore(t, Config{Type: "file", Path: path})
			if name, ok := LookupString(st, k); !ok || name != "zed" {
				t.Fatalf("store: %q %v", name, ok)
			}

			k2 := regenerated(t, "zed", mustKeys(t, "-file", path, "regen", "zed"))
			if k2 == k || !strings.Contains(mustKeys(t, "-file", path, "list", "all"), "zed: "+k2+"\n") {
				t.Fatalf("regen: %s -> %s", k, k2)
			}
			mustKeys(t, "-file", path, "delete", "zed")
			if out := mustKeys(t, "-file", path, "list"); out != before {
				t.Fatalf("list after delete: %q, want %q", out, before)
			}

			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := os.FileMode(0o640)
			if orig == nil {
				wantMode = 0o600
			}
			if fi.Mode().Perm() != wantMode {
				t.Fatalf("mode %v, want %v", fi.Mode().Perm(), wantMode)
			}
			if orig != nil {
				// same format, layout and leading comments as the original
				format, _ := formatOf(path)
				a, _ := parseKeysFile(orig, format)
				b, err := parseKeysFile(data, format)
				if err != nil {
					t.Fatal(err)
				}
				if a.table != b.table || a.header != b.header || len(a.pairs) != len(b.pairs) {
					t.Fatalf("rewritten file differs:\n%s\nfrom\n%s", data, orig)
				}
			}
			t.Logf("%s after create/regen/delete:\n%s", src, data)
		})
	}
}

func TestKeysFileBroken(t *testing.T) {
	code, _, errs := keys(t, "-file", "testdata/broken.toml", "create", "x")
	if code != 1 || !strings.Contains(errs, "line 1") {
		t.Fatalf("exit %d %q", code, errs)
	}
	code, _, errs = keys(t, "-file", "testdata/keys.yaml", "list")
	if code != 1 || !strings.Contains(errs, "*.toml or *.json") {
		t.Fatalf("exit %d %q", code, errs)
	}
}

func TestKeysConfigFileAndStatic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.toml")
	t.Setenv("KEYSTORE_TEST_FILE", path)
	k := created(t, "alice", mustKeys(t, "-config", "testdata/gateway-file.toml", "create", "alice"))
	if out := mustKeys(t, "-file", path, "list", "all"); out != "alice: "+k+"\n" {
		t.Fatalf("list: %q", out)
	}
	if code, _, errs := keys(t, "-config", "testdata/gateway-file.toml", "-consul", "x:1", "list"); code != 2 || !strings.Contains(errs, `type = "file"`) {
		t.Fatalf("exit %d %q", code, errs)
	}

	if out := mustKeys(t, "-config", "testdata/gateway-static.toml", "list"); out != "alice\nbob\n" {
		t.Fatalf("static list: %q", out)
	}
	code, _, errs := keys(t, "-config", "testdata/gateway-static.toml", "create", "carol")
	if code != 1 || !strings.Contains(errs, `type = "static"`) {
		t.Fatalf("static create: exit %d %q", code, errs)
	}

	code, _, errs = keys(t, "-config", "testdata/gateway-two.toml", "list")
	if code != 1 || !strings.Contains(errs, "choose one with -id") {
		t.Fatalf("two gateways: exit %d %q", code, errs)
	}
	if out := mustKeys(t, "-config", "testdata/gateway-two.toml", "-id", "a", "list", "all"); out != "dev: 123\n" {
		t.Fatalf("-id a: %q", out)
	}
	if out := mustKeys(t, "-config", "testdata/gateway-two.toml", "-id", "b", "list"); out != "zed\n" {
		t.Fatalf("-id b: %q", out)
	}
	code, _, errs = keys(t, "-config", "testdata/gateway-two.toml", "-id", "c", "list")
	if code != 1 || !strings.Contains(errs, `id = "c"`) {
		t.Fatalf("-id c: exit %d %q", code, errs)
	}
	code, _, errs = keys(t, "-config", "testdata/missing.toml", "list")
	if code != 1 || !strings.Contains(errs, "no such file") {
		t.Fatalf("missing config: exit %d %q", code, errs)
	}
}
