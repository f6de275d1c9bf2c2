package etsyconf_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/compat/etsyconf"
	"github.com/metricsrouter/router/internal/etsytest"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/all"
)

var update = flag.Bool("update", false, "rewrite the golden .toml and .stderr files")

// result is one run of the converter.
type result struct {
	code        int
	out, stderr string
}

func convert(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := etsyconf.Run(context.Background(), registry.Default, args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// needNode fails the test when node is missing: the node reader is half of
// what the golden tests compare.
func needNode(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed")
		}
		t.Skip("node is not installed")
	}
}

// golden compares a conversion with NAME.toml (stdout) and NAME.stderr
// (standard error; missing when empty), or rewrites them with -update.
func golden(t *testing.T, r result, base string) {
	t.Helper()
	wantCode := 0
	if r.stderr != "" {
		wantCode = 2
	}
	if r.code != wantCode {
		t.Errorf("exit %d, want %d: %s", r.code, wantCode, r.stderr)
	}
	files := []struct{ path, got string }{{base + ".toml", r.out}, {base + ".stderr", r.stderr}}
	for _, f := range files {
		if *update {
			if f.got == "" {
				_ = os.Remove(f.path)
				continue
			}
			if err := os.WriteFile(f.path, []byte(f.got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(f.path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if f.got != string(want) {
			t.Errorf("output differs from %s:\n%s", f.path, f.got)
		}
	}
}

// TestGolden: each testdata/*.js converts to its .toml (and .stderr), the
// same with node and with the object literal parser (-no-node).
func TestGolden(t *testing.T) {
	needNode(t)
	files, err := filepath.Glob("testdata/*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, js := range files {
		t.Run(filepath.Base(js), func(t *testing.T) {
			withNode := convert(t, js)
			withGo := convert(t, "-no-node", js)
			if withNode != withGo {
				t.Errorf("node and -no-node differ:\nnode: exit %d\n%s%s\n-no-node: exit %d\n%s%s",
					withNode.code, withNode.out, withNode.stderr, withGo.code, withGo.out, withGo.stderr)
			}
			golden(t, withNode, strings.TrimSuffix(js, ".js"))
		})
	}
}

// TestExampleConfig: Etsy statsd's own exampleConfig.js (its long comment
// included) converts without a remark, the same with node and without, to
// testdata/exampleConfig.toml.
func TestExampleConfig(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	want, err := filepath.Abs("testdata/exampleConfig")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // the header names the file as given
	withNode := convert(t, "exampleConfig.js")
	withGo := convert(t, "-no-node", "exampleConfig.js")
	if withNode != withGo {
		t.Errorf("node and -no-node differ:\n%+v\n%+v", withNode, withGo)
	}
	golden(t, withNode, want)
	if withNode.stderr != "" {
		t.Errorf("remarks on Etsy's own example: %s", withNode.stderr)
	}
}

// TestGoldenChecks: every golden .toml is a configuration the router
// loads and initialises (router -check).
func TestGoldenChecks(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) < 7 {
		t.Fatalf("golden files: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			text, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if msg, line := agent.CheckConverted(registry.Default, string(text)); msg != "" {
				t.Errorf("router -check refuses it (line %d): %s", line, msg)
			}
		})
	}
}
