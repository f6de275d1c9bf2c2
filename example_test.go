package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/registry"
)

// customDir is the example third-party module: its own go.mod, a main.go
// importing agent, plugins/all and its outputs.jsonl.
const customDir = "examples/custom-plugin"

// customRun runs a command in dir with a deadline and returns its combined
// output; a failure fails the test, with hint.
func customRun(t *testing.T, dir string, env []string, hint, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s%s", name, strings.Join(args, " "), dir, err, out, hint)
	}
	return string(out)
}

// TestCustomPluginExample builds examples/custom-plugin with plain `go build`
// (go.sum must be complete: -mod=readonly), runs its own tests, and checks
// that the binary has its extra plugin next to every built-in, prints its
// sample, and carries metrics through it.
func TestCustomPluginExample(t *testing.T) {
	// the module's own go.mod and go.sum, nothing else: no workspace, no
	// silent go.mod update
	env := append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	const tidy = "\n(after a dependency change in the router: cd examples/custom-plugin && go mod tidy)"
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "router-custom")
	customRun(t, customDir, env, tidy, "go", "build", "-o", bin, ".")
	t.Logf("go build in %v", time.Since(start).Round(time.Millisecond))

	t.Run("its tests", func(t *testing.T) {
		// the root's go test ./... does not reach a nested module
		customRun(t, customDir, env, tidy, "go", "vet", "./...")
		t.Logf("%s", customRun(t, customDir, env, tidy, "go", "test", "-count=1", "./..."))
	})

	t.Run("not in the root module", func(t *testing.T) {
		out := customRun(t, ".", os.Environ(), "", "go", "list", "./...")
		if strings.Contains(out, "example.com/") || strings.Contains(out, "/examples/") {
			t.Errorf("go list ./... at the root lists the example module's packages:\n%s", out)
		}
	})

	t.Run("list-plugins", func(t *testing.T) {
		out := customRun(t, ".", nil, "", bin, "-list-plugins")
		listed := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			name, summary, _ := strings.Cut(l, " ")
			listed[name] = strings.TrimSpace(summary)
		}
		if s, ok := listed["outputs.jsonl"]; !ok || !strings.HasPrefix(s, "Writes metrics as JSON lines") {
			t.Errorf("outputs.jsonl not listed with its summary (%q):\n%s", s, out)
		}
		builtins := registry.Default.All() // this test binary imports plugins/all, as main.go does
		if len(builtins) < 5 {
			t.Fatalf("only %d built-ins registered in the test binary", len(builtins))
		}
		for _, p := range builtins {
			if _, ok := listed[string(p.Kind)+"."+p.Name]; !ok {
				t.Errorf("built-in %s.%s not listed", p.Kind, p.Name)
			}
		}
		if len(listed) != len(builtins)+1 {
			t.Errorf("%d plugins listed, want the %d built-ins plus outputs.jsonl", len(listed), len(builtins))
		}
	})

	t.Run("sample", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(customDir, "plugins/outputs/jsonl/sample.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if got := customRun(t, ".", nil, "", bin, "-sample", "outputs.jsonl"); got != string(want) {
			t.Errorf("-sample outputs.jsonl:\n%s\nwant sample.toml:\n%s", got, want)
		}
		if got := customRun(t, ".", nil, "", bin, "-version"); !strings.Contains(got, "main example.com/router-custom") ||
			!strings.Contains(got, "dep  github.com/metricsrouter/router") {
			t.Errorf("-version does not name the custom module and the router:\n%s", got)
		}
	})

	t.Run("end to end", func(t *testing.T) {
		dir := t.TempDir()
		in := customFreeAddr(t)
		out := filepath.Join(dir, "metrics.jsonl")
		cfg := filepath.Join(dir, "custom.toml")
		os.WriteFile(cfg, fmt.Appendf(nil, `
[agent]
  shutdown_timeout = "10s"
[[inputs.graphite]]
  listen = %q
[[outputs.jsonl]]
  path = %q
  flush_interval = "10ms"
`, in, out), 0o600)
		customRun(t, ".", nil, "", bin, "-config", cfg, "-check")

		var stderr bytes.Buffer
		cmd := exec.Command(bin, "-config", cfg)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
		})

		var conn net.Conn
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", in)
			if err == nil {
				conn = c
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("router-custom does not listen on %s: %v\n%s", in, err, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprintf(conn, "custom.test 42 1700000000\nstatsd.looking;tag=x 1.5 1700000001\n")
		conn.Close()

		want := []string{
			`{"format":"graphite","name":"custom.test","path":"custom.test","value":42,"time":1700000000}`,
			`{"format":"graphite","name":"statsd.looking","path":"statsd.looking;tag=x","value":1.5,"time":1700000001}`,
		}
		var got []byte
		for deadline := time.Now().Add(10 * time.Second); ; {
			got, _ = os.ReadFile(out)
			if bytes.Count(got, []byte("\n")) >= len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if string(got) != strings.Join(want, "\n")+"\n" {
			t.Errorf("%s:\n%s\nwant:\n%s\nrouter log:\n%s", out, got, strings.Join(want, "\n"), stderr.String())
		}

		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			done <- err // for the cleanup
			if err != nil {
				t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("no exit within 15s of SIGTERM\n%s", stderr.String())
		}
	})
}

// customFreeAddr returns a loopback address that was free a moment ago.
func customFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
