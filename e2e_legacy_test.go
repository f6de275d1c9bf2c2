package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// TestLegacyFlags: the original polymur-proxy and polymur-gateway command
// lines (flags and POLYMUR_* environment variables) run the equivalent
// configuration: lines go proxy -> gateway -> destination.
func TestLegacyFlags(t *testing.T) {
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	sink := plugintest.NewLineSink(t)
	gw, in := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	_, gwPort, _ := net.SplitHostPort(gw)
	start := func(env []string, args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s log:\n%s", args[0], tail(out.String(), 2000))
			}
		})
	}
	start([]string{"POLYMUR_GW_DESTINATIONS=" + sink.Addr}, "polymur-gateway", "-dev-mode", "-listen-addr", "127.0.0.1",
		"-listen-http-port", gwPort, "-api-addr", plugintest.FreeAddr(t), "-stat-addr", plugintest.FreeAddr(t))
	waitListen(t, gw)
	start([]string{"POLYMUR_PROXY_WORKERS=2", "POLYMUR_PROXY_API_KEY=123"}, "polymur-proxy", "-gateway", "http://"+gw,
		"-listen-addr", in, "-stat-addr", plugintest.FreeAddr(t))
	waitListen(t, in)
	lines := graphiteLines("e2e.legacy", 0, 10000)
	sendLines(t, in, lines, 1)
	if !sink.WaitLen(len(lines), 20*time.Second) {
		t.Fatalf("sink got %d of %d", sink.Len(), len(lines))
	}
	checkExactlyOnce(t, lines, sink.Lines())
}

// TestLegacyPrintConfig: -print-config shows a configuration that loads.
func TestLegacyPrintConfig(t *testing.T) {
	for _, args := range [][]string{
		{"polymur-proxy", "-gateway", "https://gw:443", "-api-key", "secret", "-cert", "/etc/ca.pem", "-workers", "5", "-metrics-flush", "10", "-console-out"},
		{"polymur-proxy", "-gateway", "https://gw:443", "-api-key", "secret"},
		{"polymur-gateway", "-destinations", "10.0.0.1:2003:a,10.0.0.2:2003:b", "-distribution", "hash-route", "-key-prefix", "-cert", "c.pem", "-key", "k.pem"},
		{"polymur-gateway", "-dev-mode", "-destinations", "10.0.0.1:2003"},
	} {
		var out, errb bytes.Buffer
		if code := agent.RunWith(context.Background(), registry.Default, append(args, "-print-config"), nil, &out, &errb); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errb.String())
		}
		text := out.String()
		if strings.Contains(text, "secret") && !strings.Contains(text, "api_key = \"secret\"") {
			t.Fatalf("API key leaked into the comment:\n%s", text)
		}
		// certificate files do not exist here: check everything else loads
		text = strings.NewReplacer(`tls_listen`, `# tls_listen`, `tls_cert`, `# tls_cert`, `tls_key`, `# tls_key`, `ca_cert`, `# ca_cert`).Replace(text)
		cfg, err := agent.ParseConfig(registry.Default, "generated.toml", text, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%v: generated configuration does not load: %v\n%s", args, err, text)
		}
		if args[0] == "polymur-proxy" {
			// -workers N is kept; without it the output's own default applies
			spec, _ := registry.Default.Lookup(registry.Outputs, "https_batch")
			want := spec.Output.Workers
			if slices.Contains(args, "-workers") {
				want = 5
			}
			if w := cfg.Outputs[0].Out.Workers; cfg.Outputs[0].ID != "gateway" || w != want {
				t.Errorf("%v: output %s has %d workers, want %d", args, cfg.Outputs[0].ID, w, want)
			}
		}
		t.Logf("%s -> %d lines of TOML", args[0], strings.Count(text, "\n"))
	}
}
