package all_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/all"
)

func tomlKeys(v any) []string {
	t := reflect.TypeOf(v).Elem()
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			keys = append(keys, strings.Split(tag, ",")[0])
		}
	}
	return keys
}

// docSection returns the part of a Markdown doc under the heading that names
// plugin ("### inputs.graphite", "### inputs.http_json (statsd-http-proxy)"),
// up to the next heading of the same or a higher level. Lines in code fences
// are never headings.
func docSection(doc, plugin string) (string, bool) {
	var b strings.Builder
	fence, found, level := false, false, 0
	for _, l := range strings.SplitAfter(doc, "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if n := len(l) - len(strings.TrimLeft(l, "#")); !fence && n > 0 && strings.HasPrefix(l[n:], " ") {
			if found && n <= level {
				break
			}
			if title := strings.TrimSpace(l[n:]); !found && (title == plugin || strings.HasPrefix(title, plugin+" ")) {
				found, level = true, n
			}
		}
		if found {
			b.WriteString(l)
		}
	}
	return b.String(), found
}

// TestPluginsKeepToTheContract: names, samples and keys of every built-in,
// and its section in docs/plugins.md showing its sample.
func TestPluginsKeepToTheContract(t *testing.T) {
	doc, err := os.ReadFile(pluginsDoc)
	if err != nil {
		t.Fatal(err)
	}
	all := registry.Default.All()
	if len(all) < 5 {
		t.Fatalf("only %d plugins registered", len(all))
	}
	for _, p := range all {
		full := string(p.Kind) + "." + p.Name
		t.Run(full, func(t *testing.T) {
			v := p.New()
			if reflect.TypeOf(v).Kind() != reflect.Pointer || reflect.TypeOf(v).Elem().Kind() != reflect.Struct {
				t.Fatalf("factory returns %T, want a pointer to a struct", v)
			}
			if v2 := p.New(); v == v2 {
				t.Fatal("factory returns the same value twice")
			}
			for _, k := range tomlKeys(v) {
				if slices.Contains(config.CommonKeys(p.Kind), k) {
					t.Errorf("plugin declares the agent's common key %q", k)
				}
				if k != strings.ToLower(k) || strings.Contains(k, "-") {
					t.Errorf("key %q is not lower snake_case", k)
				}
			}
			if p.Summary() == "" {
				t.Error("sample.toml has no first comment line (used by -list-plugins)")
			}
			if !strings.Contains(p.Sample, "[["+full+"]]") {
				t.Errorf("sample.toml has no [[%s]] table", full)
			}
			// the sample must load as is through the real loader (strict keys, Init)
			cfg := p.Sample
			if p.Kind != registry.Inputs {
				cfg += "\n[[inputs.graphite]]\n"
			}
			if p.Kind != registry.Outputs {
				cfg += "\n[[outputs.console]]\n"
			}
			c, err := agent.ParseConfig(registry.Default, full+"/sample.toml", cfg, func(string) (string, bool) { return "test", true })
			if err != nil {
				t.Fatalf("sample.toml does not load: %v", err)
			}
			if _, err := agent.New(c, zerolog.Nop()); err != nil {
				t.Errorf("sample.toml does not pass Init: %v", err)
			}
			section, ok := docSection(string(doc), full)
			if !ok {
				t.Fatalf("docs/plugins.md has no section headed %q", full)
			}
			if !strings.Contains(section, "```toml\n"+p.Sample+"```") {
				t.Errorf("docs/plugins.md's %s section has no toml block identical to its sample.toml", full)
			}
		})
	}
}
