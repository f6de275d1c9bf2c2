package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules: the core (registry, agent, metric, codecs) depends only
// on the standard library, BurntSushi/toml, zerolog, for /metrics only
// (agent/metrics) Prometheus' client_golang, and for Telegraf's namepass /
// namedrop globs only (agent/selector) gobwas/glob; consul/api and golang-jwt
// are imported only by the plugins that need them.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"./agent", "./registry", "./plugins/metric", "./plugins/codec/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"github.com/metricsrouter/router/", "github.com/BurntSushi/toml", "github.com/rs/zerolog",
		"github.com/mattn/go-colorable", "github.com/mattn/go-isatty", "golang.org/x/sys/",
		// client_golang and what it brings
		"github.com/prometheus/", "github.com/beorn7/perks", "github.com/cespare/xxhash/", "github.com/munnerz/goautoneg",
		"google.golang.org/protobuf/",
		// namepass / namedrop (the glob library Telegraf uses)
		"github.com/gobwas/glob"}
	for _, p := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(p, a)
		}
		if !ok {
			t.Errorf("the core depends on %s", p)
		}
		for _, bad := range []string{"/plugins/inputs/", "/plugins/outputs/", "/plugins/processors/", "/plugins/discovery/"} {
			if strings.Contains(p, bad) {
				t.Errorf("the core depends on plugin %s", p)
			}
		}
	}
	out, err = exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string][]string{
		"github.com/hashicorp/consul/api":                {"github.com/metricsrouter/router/plugins/inputs/https_batch/keystore", "github.com/metricsrouter/router/plugins/discovery/consul"},
		"github.com/golang-jwt/jwt/v5":                   {"github.com/metricsrouter/router/plugins/inputs/http_json"},
		"github.com/prometheus/client_golang/prometheus": {"github.com/metricsrouter/router/agent/metrics"},
		"github.com/gobwas/glob":                         {"github.com/metricsrouter/router/agent/selector"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if who, ok := rules[imp]; ok {
				allowedHere := false
				for _, w := range who {
					allowedHere = allowedHere || f[0] == w
				}
				if !allowedHere {
					t.Errorf("%s imports %s", f[0], imp)
				}
			}
		}
	}
}
