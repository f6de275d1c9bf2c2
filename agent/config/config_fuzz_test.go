package config_test

import (
	"testing"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/all"
)

// FuzzParseConfig: whatever the text, loading a configuration returns a
// configuration or an error; it never panics.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"[[inputs.graphite]]\nlisten = \":0\"\n[[outputs.console]]\n",
		"[agent]\nlog_level = \"debug\"\n[[inputs.graphite]]\n[[outputs.broadcast]]\nprotocol = \"graphite\"\ndestinations = [\"127.0.0.1:1\"]\n",
		"[[inputs.statsd]]\n[[outputs.consistent_hash]]\nhash = \"statsd\"\n[[outputs.consistent_hash.to.statsd]]\naddress = \"127.0.0.1:1\"\n",
		"[[inputs.graphite]\n",
		"x = ${A:-b}\n[[inputs.graphite]]\nlisten = \"${L}\"\n",
		"[[outputs.graphite]]\naddress = 1\n[[outputs.graphite.to.x]]\n",
		"[inputs]\ngraphite = 3\n",
	} {
		f.Add(seed)
	}
	lookup := func(k string) (string, bool) {
		if k == "L" {
			return ":0", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := config.Parse(registry.Default, "fuzz.toml", text, lookup)
		if err == nil && cfg == nil {
			t.Fatal("no configuration and no error")
		}
	})
}
