package config

import (
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// TestTagPassTagDrop: tagpass / tagdrop tables in both TOML spellings on
// inputs, processors and outputs; a [inputs.x.tagpass] sub-table does not
// count as an instance; distributor targets do not inherit them.
func TestTagPassTagDrop(t *testing.T) {
	reg := registry.New()
	reg.Add(registry.Inputs, "in", func() any { return &fakeIn{} }, "# fake input\n")
	reg.Add(registry.Processors, "p", func() any { return &procP{} }, "# p\n")
	reg.Add(registry.Outputs, "out", func() any { return &fakeOut{} }, "# out\n")
	cfg, err := Parse(reg, "t.toml", `
[[inputs.in]]
  listen = "a"
  [inputs.in.tagpass]
    env = ["prod", "dev*"]
[[inputs.in]]
  listen = "b"
  tagdrop = {dc = ["ams"]}
[[processors.p]]
  tag = "1"
  tagpass = {env = ["prod"]}
  namepass = ["a.*"]
[[outputs.out]]
  id = "o"
  [outputs.out.tagdrop]
    env = ["dev*"]
`, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 2 || cfg.Inputs[0].Plugin.(*fakeIn).Listen != "a" || cfg.Inputs[1].Plugin.(*fakeIn).Listen != "b" {
		t.Fatalf("inputs: %d", len(cfg.Inputs))
	}
	pass := func(in *Instance, line string) bool {
		var m metric.Metric
		if err := graphite.Parse([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		return in.Sel.PassMetric(&m)
	}
	for _, c := range []struct {
		in   *Instance
		line string
		want bool
	}{
		{cfg.Inputs[0], "a.b;env=prod 1 2", true},
		{cfg.Inputs[0], "a.b;env=devel 1 2", true},
		{cfg.Inputs[0], "a.b;env=staging 1 2", false},
		{cfg.Inputs[0], "a.b 1 2", false},
		{cfg.Inputs[1], "a.b;dc=ams 1 2", false},
		{cfg.Inputs[1], "a.b;dc=fra 1 2", true},
		{cfg.Processors[0], "a.b;env=prod 1 2", true},
		{cfg.Processors[0], "b.b;env=prod 1 2", false},
		{cfg.Outputs[0], "a.b;env=dev 1 2", false},
		{cfg.Outputs[0], "a.b;env=prod 1 2", true},
	} {
		if got := pass(c.in, c.line); got != c.want {
			t.Errorf("%s %q: %v, want %v", c.in.Label(), c.line, got, c.want)
		}
	}
	if !strings.Contains(cfg.Inputs[0].Fingerprint, "dev*") {
		t.Errorf("the fingerprint does not hold tagpass: %q", cfg.Inputs[0].Fingerprint)
	}
	if _, err := Parse(reg, "t.toml", "[[inputs.in]]\n  tagpass = {env = [\"a[\"]}\n[[outputs.out]]\n",
		func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), `tagpass.env pattern "a["`) {
		t.Errorf("bad tagpass pattern: %v", err)
	}
	if _, err := Parse(reg, "t.toml", "[[inputs.in]]\n  tagpass = {env = \"prod\"}\n[[outputs.out]]\n",
		func(string) (string, bool) { return "", false }); err == nil {
		t.Errorf("tagpass with a string, not a list: no error")
	}
}

// TestRulesMatchTag: match_tag in a [[rules]] table, inline and as a
// sub-table, decodes with no unknown key.
func TestRulesMatchTag(t *testing.T) {
	reg := registry.New()
	reg.Add(registry.Inputs, "in", func() any { return &fakeIn{} }, "# fake input\n")
	reg.Add(registry.Outputs, "out", func() any { return &fakeOut{} }, "# out\n")
	cfg, err := Parse(reg, "t.toml", `
[[inputs.in]]
[[outputs.out]]
  id = "o"
[[rules]]
  match_tag = {env = "prod"}
  send_to = ["o"]
[[rules]]
  match = "^a"
  send_to = ["o"]
  [rules.match_tag]
    dc = ["ams*", "fra"]
`, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rules) != 2 || cfg.Rules[0].MatchTag["env"][0] != "prod" || len(cfg.Rules[1].MatchTag["dc"]) != 2 {
		t.Fatalf("rules: %+v", cfg.Rules)
	}
	if _, err := Parse(reg, "t.toml", "[[inputs.in]]\n[[outputs.out]]\n  id = \"o\"\n[[rules]]\n  match_tags = {env = \"prod\"}\n  send_to = [\"o\"]\n",
		func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), `did you mean "match_tag"`) {
		t.Errorf("typo match_tags: %v", err)
	}
}
