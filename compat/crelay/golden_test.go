package crelay_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/compat/crelay"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/all"
)

var update = flag.Bool("update", false, "rewrite the golden .toml files")

// goldenCases are the testdata/golden/*.conf files, each with its
// command-line options (NAME.args), expected output (NAME.toml) and
// expected warnings (NAME.stderr, none when absent).
func goldenCases(t *testing.T) []string {
	t.Helper()
	confs, err := filepath.Glob("testdata/golden/*.conf")
	if err != nil || len(confs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	return confs
}

func goldenArgs(t *testing.T, conf string) []string {
	t.Helper()
	raw, err := os.ReadFile(strings.TrimSuffix(conf, ".conf") + ".args")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return append(strings.Fields(string(raw)), conf)
}

// TestGolden: each configuration converts to exactly its .toml and
// .stderr (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	for _, conf := range goldenCases(t) {
		t.Run(filepath.Base(conf), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := crelay.Run(registry.Default, goldenArgs(t, conf), &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			want := strings.TrimSuffix(conf, ".conf") + ".toml"
			wantErr := strings.TrimSuffix(conf, ".conf") + ".stderr"
			if *update {
				if err := os.WriteFile(want, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				if errb.Len() > 0 {
					if err := os.WriteFile(wantErr, errb.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				} else if err := os.Remove(wantErr); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				return
			}
			expErr, err := os.ReadFile(wantErr)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if errb.String() != string(expErr) {
				t.Errorf("stderr differs from %s:\n%s", wantErr, errb.String())
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(exp) {
				t.Errorf("output differs from %s:\n%s", want, out.String())
			}
		})
	}
}

// TestGoldenLoads: every golden output is TOML the router loads and
// initialises, and `router -check` accepts it.
func TestGoldenLoads(t *testing.T) {
	for _, conf := range goldenCases(t) {
		t.Run(filepath.Base(conf), func(t *testing.T) {
			want := strings.TrimSuffix(conf, ".conf") + ".toml"
			text, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			var anyv map[string]any
			if _, err := toml.Decode(string(text), &anyv); err != nil {
				t.Fatalf("not TOML: %v", err)
			}
			cfg, err := agent.ParseConfig(registry.Default, want, string(text), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("the router does not load it: %v", err)
			}
			if _, err := agent.New(cfg, zerolog.Nop()); err != nil {
				t.Fatalf("the router does not initialise it: %v", err)
			}
			var out, errb bytes.Buffer
			if code := agent.RunWith(t.Context(), registry.Default, []string{"-config", want, "-check"}, strings.NewReader(""), &out, &errb); code != 0 {
				t.Fatalf("router -config %s -check: exit %d: %s", want, code, errb.String())
			}
		})
	}
}
