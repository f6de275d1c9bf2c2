package etsyconf_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/compat/etsyconf"
	"github.com/metricsrouter/router/registry"
)

// TestCommand: `router convert statsd-config` as registered, next to the
// other formats.
func TestCommand(t *testing.T) {
	c, ok := registry.Default.LookupCommand("convert")
	if !ok {
		t.Fatal("command convert is not registered")
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := c.Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("statsd-config", "-no-node", "testdata/delete.js")
	if code != 0 || errs != "" || !strings.HasPrefix(out, "# Converted from the Etsy statsd configuration testdata/delete.js by\n#   router convert statsd-config testdata/delete.js\n") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if code, out, errs := run("-h"); code != 0 || !strings.Contains(out, "router convert statsd-config [-no-node] FILE.js") || !strings.Contains(out, "router convert carbon-c-relay") {
		t.Errorf("-h: exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := run("statsd-config", "-h"); code != 0 || !strings.Contains(errs, "usage: router convert statsd-config") {
		t.Errorf("statsd-config -h: exit %d, %s", code, errs)
	}
	for _, args := range [][]string{{"statsd-config"}, {"statsd-config", "a", "b"}, {"statsd-config", "-x", "a"}} {
		if code, out, errs := run(args...); code != 2 || out != "" || !strings.Contains(errs, "usage") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	for _, flag := range []string{"", "-no-node"} {
		args := []string{"statsd-config", flag, "testdata/missing.js"}
		if flag == "" {
			args = []string{"statsd-config", "testdata/missing.js"}
		}
		if code, out, errs := run(args...); code != 1 || out != "" || errs != "router convert: testdata/missing.js: open testdata/missing.js: no such file or directory\n" {
			t.Errorf("missing file %q: exit %d, %q", flag, code, errs)
		}
	}
}

// TestErrors: values Etsy fails on give exit status 1 and nothing printed;
// what cannot be converted gives 2, is named on standard error, and (unless
// the router refuses the result) the rest is printed.
func TestErrors(t *testing.T) {
	needNode(t)
	for _, c := range []struct {
		name, conf string
		code       int
		printed    bool
		msgs       []string
	}{
		{"bad port", `{port: 70000}`, 1, false, []string{"port: the number 70000 is not a port"}},
		{"bad server port", `{servers: [{port: "x"}]}`, 1, false, []string{`servers[0].port: the string "x" is not a port`}},
		{"bad graphite port", `{graphiteHost: "h", graphitePort: -1}`, 1, false, []string{"graphitePort: the number -1 is not a port"}},
		{"backends not an array", `{backends: "./backends/graphite"}`, 1, false, []string{"backends: want an array"}},
		{"servers not an array", `{servers: {port: 1}}`, 1, false, []string{"servers: want an array"}},
		{"not an object", `[1, 2]`, 1, false, []string{"not an object"}},
		{"syntax", `{a: }`, 1, false, []string{"node cannot evaluate it: SyntaxError"}},
		{"flush not whole seconds", `{flushInterval: 2500}`, 2, true, []string{"flushInterval: 2500 ms: flush_interval is whole seconds"}},
		{"empty suffix", `{graphite: {globalSuffix: ""}}`, 2, true, []string{"graphite.globalSuffix: \"\": Etsy then ends every name with a dot"}},
		{"pickle", `{graphiteHost: "h", graphiteProtocol: "pickle"}`, 2, true, []string{`graphiteProtocol: "pickle"`}},
		{"unix socket", `{server: "./servers/tcp", socket: "/tmp/statsd.sock", graphiteHost: "h"}`, 2, false, []string{"socket: a unix socket"}},
		{"custom server", `{servers: [{server: "./servers/udp"}, {server: "statsd-http-server"}]}`, 2, true, []string{`servers[1].server: the string "statsd-http-server" is not one of Etsy's servers`}},
		{"custom backend", `{backends: ["statsd-influxdb-backend"], influxdb: {}}`, 2, true, []string{
			`backends[0]: the string "statsd-influxdb-backend": a backend the router does not have`,
			"influxdb: unknown to Etsy statsd",
		}},
		{"histogram catch-all", `{histogram: [{metric: "a", bins: [1]}, {metric: "", bins: ["inf"]}, {metric: "b", bins: []}, {metric: "c", bins: ["x"]}]}`, 2, true, []string{
			`histogram[1].metric: "" matches every timer`,
			"histogram[2].bins: [] keeps the timers",
			`histogram[3].bins[0]: the string "x": want a number or "inf"`,
		}},
		{"values", `{percentThreshold: ["90"], prefixStats: 1, graphite: {globalPrefix: null}, healthStatus: "down", title: "s", automaticConfigReload: true, dumpMessages: 1, console: {prettyprint: true}, backends: ["./backends/console"]}`, 2, true, []string{
			`percentThreshold[0]: the string "90": want a number`,
			"prefixStats: the number 1: want a string",
			"graphite.globalPrefix: null: want a string",
			`healthStatus: the string "down": the router starts healthy`,
			`title: the string "s": the process title`,
			"automaticConfigReload: the router does not watch",
			"dumpMessages: the router does not log the lines",
			"console.prettyprint: outputs.console writes",
		}},
		{"router refuses", `{percentThreshold: [90, 0]}`, 2, false, []string{"the router refuses the converted configuration: ", "percent_threshold"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.js")
			if err := os.WriteFile(file, []byte(c.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{file}, {"-no-node", file}} {
				if (c.name == "syntax" || c.name == "not an object") && args[0] == "-no-node" {
					continue // the parser's own messages: TestParseRefuses
				}
				r := convert(t, args...)
				if r.code != c.code || (r.out != "") != c.printed {
					t.Errorf("%q: exit %d (want %d), printed %t:\n%s%s", args, r.code, c.code, r.out != "", r.out, r.stderr)
				}
				for _, m := range c.msgs {
					if !strings.Contains(r.stderr, "router convert: "+file+": ") || !strings.Contains(r.stderr, m) {
						t.Errorf("%q: stderr lacks %q:\n%s", args, m, r.stderr)
					}
					if c.printed && !strings.Contains(r.out, "# NOT CONVERTED: ") {
						t.Errorf("%q: the header does not list what was not converted:\n%s", args, r.out)
					}
				}
			}
		})
	}
}

// TestNodeOnly: a file that is JavaScript rather than a literal converts
// with node (as Etsy evaluates it), and the parser says it needs node.
func TestNodeOnly(t *testing.T) {
	needNode(t)
	file := filepath.Join(t.TempDir(), "config.js")
	conf := "{\n  graphiteHost: ['carbon', 'example', 'com'].join('.'),\n  graphite: { globalSuffix: require('os').hostname().split('.')[0] },\n  flushInterval: 6 * 10000,\n}\n"
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	r := convert(t, file)
	if r.code != 0 || !strings.Contains(r.out, `address = "carbon.example.com:2003"`) || !strings.Contains(r.out, `flush_interval = "1m"`) ||
		!strings.Contains(r.out, "global_suffix = "+registry.QuoteTOML(strings.Split(host, ".")[0])) {
		t.Errorf("exit %d:\n%s%s", r.code, r.out, r.stderr)
	}
	r = convert(t, "-no-node", file)
	if r.code != 2 || r.out != "" || !strings.Contains(r.stderr, "2:27: bad number") && !strings.Contains(r.stderr, "not a plain object literal") {
		t.Errorf("-no-node: exit %d:\n%s%s", r.code, r.out, r.stderr)
	}
}

// TestRouterRefuses: a binary without the plugins refuses the converted
// configuration: exit 2, nothing printed.
func TestRouterRefuses(t *testing.T) {
	var out, errb bytes.Buffer
	code := etsyconf.Run(context.Background(), registry.New(), []string{"-no-node", "testdata/delete.js"}, &out, &errb)
	if code != 2 || out.Len() > 0 || !strings.HasPrefix(errb.String(), "router convert: testdata/delete.js: ") ||
		!strings.Contains(errb.String(), "the router refuses the converted configuration: ") {
		t.Errorf("exit %d, stdout %q, stderr %s", code, out.String(), errb.String())
	}
}
