package carbonagg_test

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/compat/carbonagg"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/all"
)

var update = flag.Bool("update", false, "rewrite the golden .toml files")

// goldens are the conversions of testdata/sample.conf whose output is
// committed (go test -run TestGolden -update rewrites them).
var goldens = []struct {
	args []string
	want string
}{
	{[]string{"testdata/sample.conf"}, "testdata/sample.toml"},
	{[]string{"-o", "caches", "-max-intervals", "2", "testdata/sample.conf"}, "testdata/sample-o-caches.toml"},
}

// TestGolden: the sample converts to exactly its .toml.
func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.want, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := carbonagg.Run(registry.Default, g.args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("stderr: %s", errb.String())
			}
			if *update {
				if err := os.WriteFile(g.want, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(g.want)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(exp) {
				t.Errorf("output differs from %s:\n%s", g.want, out.String())
			}
		})
	}
}

// converted is the converted TOML as written, decoded strictly.
type converted struct {
	Inputs struct {
		Graphite []struct {
			Listen   string `toml:"listen"`
			Protocol string `toml:"protocol"`
		} `toml:"graphite"`
	} `toml:"inputs"`
	Outputs struct {
		Graphite []struct {
			ID      string `toml:"id"`
			Address string `toml:"address"`
			Format  string `toml:"format"`
		} `toml:"graphite"`
	} `toml:"outputs"`
	Rules []struct {
		Match     any      `toml:"match"`
		SendTo    []string `toml:"send_to"`
		Aggregate *struct {
			Every     string `toml:"every"`
			Expire    string `toml:"expire"`
			Timestamp string `toml:"timestamp"`
			Compute   []struct {
				Type    string `toml:"type"`
				WriteTo string `toml:"write_to"`
			} `toml:"compute"`
		} `toml:"aggregate"`
	} `toml:"rules"`
}

func decode(t *testing.T, text string) *converted {
	t.Helper()
	var c converted
	md, err := toml.Decode(text, &c)
	if err != nil {
		t.Fatalf("not TOML: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("keys the test does not know: %v", u)
	}
	return &c
}

// TestGoldenLoads: every golden output is TOML the router loads and
// initialises (router -check), and says what the rules file says: a rule
// per line in order with its expire, and a last rule forwarding
// everything, all to the one output.
func TestGoldenLoads(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.want, func(t *testing.T) {
			text, err := os.ReadFile(g.want)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := agent.ParseConfig(registry.Default, g.want, string(text), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("the router does not load it: %v", err)
			}
			if _, err := agent.New(cfg, zerolog.Nop()); err != nil {
				t.Fatalf("the router does not initialise it: %v", err)
			}
			c := decode(t, string(text))
			out, expire := "carbon", map[string]string{"10s": "60s", "15s": "90s", "30s": "180s", "60s": "360s"}
			if slices.Contains(g.args, "caches") {
				out, expire = "caches", map[string]string{"10s": "30s", "15s": "45s", "30s": "90s", "60s": "180s"}
			}
			if len(c.Inputs.Graphite) != 1 || c.Inputs.Graphite[0].Listen != ":2023" || len(c.Outputs.Graphite) != 1 || c.Outputs.Graphite[0].ID != out || c.Outputs.Graphite[0].Format != "pickle" {
				t.Errorf("inputs %+v outputs %+v", c.Inputs, c.Outputs)
			}
			raw, _ := os.ReadFile("testdata/sample.conf")
			lines := 0
			for _, l := range strings.Split(string(raw), "\n") {
				if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
					lines++
				}
			}
			if len(c.Rules) != lines+1 {
				t.Fatalf("%d rules for %d rule lines", len(c.Rules), lines)
			}
			for i, r := range c.Rules[:lines] {
				a := r.Aggregate
				if a == nil || a.Timestamp != "start" || expire[a.Every] != a.Expire || len(a.Compute) != 1 || !slices.Equal(r.SendTo, []string{out}) {
					t.Errorf("rule %d: %+v", i+1, r)
				}
			}
			if last := c.Rules[lines]; last.Match != "*" || last.Aggregate != nil || !slices.Equal(last.SendTo, []string{out}) {
				t.Errorf("last rule %+v", last)
			}
		})
	}
}
