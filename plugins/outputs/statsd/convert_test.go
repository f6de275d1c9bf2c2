package statsd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"

	_ "github.com/metricsrouter/router/plugins/inputs/statsd"
	_ "github.com/metricsrouter/router/plugins/outputs/broadcast"
	_ "github.com/metricsrouter/router/plugins/outputs/consistent_hash"
)

// loads checks that text is a configuration the router accepts (-check).
func loads(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := agent.ParseConfig(registry.Default, "converted.toml", text, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("converted TOML does not load: %v\n%s", err, text)
	}
	if _, err := agent.New(cfg, zerolog.Nop()); err != nil {
		t.Fatalf("converted TOML does not pass Init: %v\n%s", err, text)
	}
	return cfg
}

func noHost() (string, error) { return "", errors.New("no hostname") }

// TestConvertGoStatsdProxy: the README example and a mirror config with
// other spellings of the keys convert to TOML that loads, with each node's
// address, admin port and interval.
func TestConvertGoStatsdProxy(t *testing.T) {
	cases := []struct {
		file string
		ms   bool
		want []string
		dist string
	}{
		{"testdata/go-statsd-proxy.json", false, []string{
			`management_addr = "127.0.0.1:8126"`, `listen = "0.0.0.0:8125"`, `hash = "statsd"`, `on_down = "rehash"`,
			`[[outputs.consistent_hash.to.statsd]]`, `address = "127.0.0.1:8130"`, `admin = "127.0.0.1:8140"`,
			`address = "127.0.0.1:8132"`, `admin = "127.0.0.1:8142"`, `check_interval = "16m40s"`, "convert again with -ms",
		}, "consistent_hash"},
		{"testdata/go-statsd-proxy.json", true, []string{`check_interval = "1s"`}, "consistent_hash"},
		{"testdata/go-statsd-proxy-mirror.json", false, []string{
			`management_addr = "127.0.0.1:8135"`, `listen = "127.0.0.1:8125"`, `[[outputs.broadcast]]`,
			`[[outputs.broadcast.to.statsd]]`, `address = "127.0.0.1:8130"`, `admin = "127.0.0.1:8141"`, `check_interval = "2s"`,
		}, "broadcast"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := ConvertGoStatsdProxy(data, c.file, c.ms, noHost)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			cfg := loads(t, out)
			if len(cfg.Outputs) != 1 || cfg.Outputs[0].Name != c.dist {
				t.Fatalf("outputs: %+v", cfg.Outputs)
			}
			if n := strings.Count(out, "address = "); n != len(cfg.Outputs[0].Targets) {
				t.Fatalf("%d addresses, %d targets", n, len(cfg.Outputs[0].Targets))
			}
		})
	}
}

func TestConvertDefaultsAndErrors(t *testing.T) {
	out, ignored, err := ConvertGoStatsdProxy([]byte(`{"nodes":[{"host":"::1","port":8127,"managementport":8128},{"port":8129}]}`), "x.json", false,
		func() (string, error) { return "statsd-host", nil })
	if err != nil || ignored != nil {
		t.Fatal(err, ignored)
	}
	for _, w := range []string{`management_addr = "127.0.0.1:8126"`, `listen = "statsd-host:8125"`, `address = "[::1]:8127"`,
		`admin = "[::1]:8128"`, `check_interval = "1s"`, `address = "statsd-host:8129"`, "go-statsd-proxy uses the hostname"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	loads(t, out)
	for _, bad := range []struct{ json, want string }{
		{`{}`, "no nodes"},
		{`{"nodes":[]}`, "no nodes"},
		{`[1]`, "not a go-statsd-proxy"},
		{`{"host":"h","nodes":[{"host":"a"}]}`, "no port"},
		{`{"host":"h","nodes":[{"host":"a","port":70000}]}`, "out of range"},
		{`{"host":"h","nodes":[{"host":"a","port":1},{"host":"a","port":1}]}`, "twice"},
		{`{"host":"h","nodes":[{"port":1}]}`, "no hostname"},
		{`{"host":"h","nodes":[{"host":"a","port":1}],"checkInterval":-1}`, "negative"},
	} {
		if _, _, err := ConvertGoStatsdProxy([]byte(bad.json), "x.json", false, noHost); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: err = %v, want %q", bad.json, err, bad.want)
		}
	}
}

// proxyJSExample is Etsy statsd 0.9.0's exampleProxyConfig.js as JSON,
// evaluated as its lib/config.js reads a configuration:
//
//	npm install statsd@0.9.0
//	node -e 'let config; eval("config = " + require("fs").readFileSync(process.argv[1], "utf8"));
//	  console.log(JSON.stringify(config, null, 2))' node_modules/statsd/exampleProxyConfig.js
const proxyJSExample = `{
  "nodes": [
    {
      "host": "127.0.0.1",
      "port": 8127,
      "adminport": 8128
    },
    {
      "host": "127.0.0.1",
      "port": 8129,
      "adminport": 8130
    },
    {
      "host": "127.0.0.1",
      "port": 8131,
      "adminport": 8132
    }
  ],
  "server": "./servers/udp",
  "host": "0.0.0.0",
  "port": 8125,
  "udp_version": "udp4",
  "mgmt_port": 8126,
  "forkCount": 0,
  "checkInterval": 1000,
  "cacheSize": 10000
}
`

// TestConvertIgnoredFields: every field go-statsd-proxy would skip is named,
// in file order, at the top level and in each node, with go-statsd-proxy's
// name for the Etsy proxy.js fields that have one; fields it reads are not
// named, in any letter case.
func TestConvertIgnoredFields(t *testing.T) {
	const unknown = ": unknown to go-statsd-proxy, ignored"
	const meant = unknown + "; did you mean "
	read := func(file string) string {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	cases := []struct {
		name, json string
		want       []string
	}{
		{"proxy.js example", proxyJSExample, []string{
			"nodes[0].adminport" + meant + "managementport?",
			"nodes[1].adminport" + meant + "managementport?",
			"nodes[2].adminport" + meant + "managementport?",
			"server" + unknown,
			"udp_version" + unknown,
			"mgmt_port" + meant + "managementport?",
			"forkCount" + unknown,
			"cacheSize" + unknown,
		}},
		{"go-statsd-proxy README", read("testdata/go-statsd-proxy.json"), nil},
		{"mirror", read("testdata/go-statsd-proxy-mirror.json"), []string{"cacheSize" + unknown}},
		{"mixed", `{"Nodes": [{"HOST": "a", "Port": 1, "ManagementPort": 2, "weight": 3, "AdminPort": 4}, {"host": "b", "port": 1}],
			"MGMT_ADDRESS": "0.0.0.0", "address": "::", "Mgmt_Port": 9, "log": {"backend": "syslog", "adminport": 1},
			"Host": "h", "ManagementHost": "h", "managementPORT": 8126, "CHECKINTERVAL": 1, "Mirror": false, "a b": 1, "": 2, "hosts": []}`, []string{
			"nodes[0].weight" + unknown,
			"nodes[0].AdminPort" + meant + "managementport?",
			"MGMT_ADDRESS" + meant + "managementhost?",
			"address" + meant + "host?",
			"Mgmt_Port" + meant + "managementport?",
			"log" + unknown,
			`"a b"` + unknown,
			`""` + unknown,
			"hosts" + unknown,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, ignored, err := ConvertGoStatsdProxy([]byte(c.json), "x.json", false, noHost)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ignored, c.want) {
				t.Errorf("ignored:\n%s\nwant:\n%s", strings.Join(ignored, "\n"), strings.Join(c.want, "\n"))
			}
			for _, w := range c.want {
				if !strings.Contains(out, "# IGNORED: "+w+"\n") {
					t.Errorf("the TOML does not name %q:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "# IGNORED: "); n != len(c.want) {
				t.Errorf("%d IGNORED lines, want %d", n, len(c.want))
			}
			loads(t, out)
		})
	}
	// what the warning is about: adminport gives no health check
	out, _, _ := ConvertGoStatsdProxy([]byte(proxyJSExample), "x.json", true, noHost)
	if strings.Contains(out, "admin = ") {
		t.Errorf("adminport became an admin address:\n%s", out)
	}
}

// TestConvertCommand: `router convert go-statsd-proxy FILE` as registered.
func TestConvertCommand(t *testing.T) {
	c, ok := registry.Default.LookupCommand("convert")
	if !ok {
		t.Fatal("command convert is not registered")
	}
	run := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := c.Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("", "go-statsd-proxy", "testdata/go-statsd-proxy.json")
	if code != 0 || !strings.Contains(out, `hash = "statsd"`) {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	data, _ := os.ReadFile("testdata/go-statsd-proxy-mirror.json")
	if code, out, _ := run(string(data), "go-statsd-proxy", "-ms", "-"); code != 0 || !strings.Contains(out, `check_interval = "10ms"`) {
		t.Fatalf("stdin, -ms: exit %d: %s", code, out)
	}
	for _, args := range [][]string{nil, {"polymur"}, {"go-statsd-proxy"}, {"go-statsd-proxy", "a", "b"}} {
		if code, _, errs := run("", args...); code != 2 || !strings.Contains(errs, "usage") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	if code, _, errs := run("", "go-statsd-proxy", "testdata/missing.json"); code != 1 || !strings.Contains(errs, "missing.json") {
		t.Errorf("missing file: exit %d, %s", code, errs)
	}

	// unknown fields: converted anyway, each named on standard error
	code, out, errs = run(proxyJSExample, "go-statsd-proxy", "-ms", "-")
	if code != 0 || !strings.Contains(out, "[[outputs.consistent_hash.to.statsd]]") || strings.Contains(out, "router convert:") {
		t.Fatalf("proxy.js fields: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if len(lines) != 8 || lines[0] != "router convert: warning: -: nodes[0].adminport: unknown to go-statsd-proxy, ignored; did you mean managementport?" ||
		lines[7] != "router convert: warning: -: cacheSize: unknown to go-statsd-proxy, ignored" {
		t.Errorf("warnings:\n%s", errs)
	}
	// -strict: refused, nothing printed
	code, out, errs = run(proxyJSExample, "go-statsd-proxy", "-strict", "-")
	if code != 1 || out != "" || !strings.Contains(errs, "router convert: -: mgmt_port: unknown to go-statsd-proxy; did you mean managementport?\n") ||
		strings.Contains(errs, "ignored") ||
		!strings.HasSuffix(errs, "router convert: -: 8 unknown fields (-strict)\n") {
		t.Errorf("-strict: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if code, out, errs := run("", "go-statsd-proxy", "-strict", "testdata/go-statsd-proxy.json"); code != 0 || out == "" || errs != "" {
		t.Errorf("-strict, no unknown field: exit %d, stderr %q", code, errs)
	}
}

// TestTomlStringKeepsDollarBrace: a value with "${" must reach the plugin
// as written, not be expanded by the loader's ${VAR} step.
func TestTomlStringKeepsDollarBrace(t *testing.T) {
	q := tomlString("a${HOME}b")
	if strings.Contains(q, "${") {
		t.Fatalf("tomlString left ${ in %s", q)
	}
	var v struct{ S string }
	cfg := "s = " + q + "\n"
	expanded, err := config.ExpandEnv(cfg, func(string) (string, bool) { return "EXPANDED", true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toml.Decode(expanded, &v); err != nil || v.S != "a${HOME}b" {
		t.Fatalf("decoded %q, %v; want a${HOME}b", v.S, err)
	}
}
