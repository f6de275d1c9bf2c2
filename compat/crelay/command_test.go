package crelay_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/metricsrouter/router/registry"
)

// TestCommand: `router convert carbon-c-relay` as registered, next to
// go-statsd-proxy.
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
	code, out, errs := run("carbon-c-relay", "testdata/golden/defaults.conf")
	if code != 0 || !strings.HasPrefix(out, "# Converted from the carbon-c-relay configuration testdata/golden/defaults.conf by\n#   router convert carbon-c-relay testdata/golden/defaults.conf\n") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if code, out, errs := run("-h"); code != 0 || !strings.Contains(out, "router convert carbon-c-relay [-H HOST]") || !strings.Contains(out, "router convert go-statsd-proxy [-ms] FILE.json") {
		t.Errorf("-h: exit %d: %s %s", code, out, errs)
	}
	for _, args := range [][]string{{"carbon-c-relay"}, {"carbon-c-relay", "a", "b"}, {"carbon-c-relay", "-x", "a"}, {"carbon-c-relay", "-p", "70000", "a"}} {
		if code, out, errs := run(args...); code != 2 || out != "" || !strings.Contains(errs, "usage") && !strings.Contains(errs, "-p 70000") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if code, _, errs := run("carbon-c-relay", "-h"); code != 0 || !strings.Contains(errs, "usage: router convert carbon-c-relay") {
		t.Errorf("carbon-c-relay -h: exit %d, %s", code, errs)
	}
	if code, out, errs := run("carbon-c-relay", "testdata/missing.conf"); code != 1 || out != "" || errs != "router convert: testdata/missing.conf: unable to stat file 'testdata/missing.conf': no such file or directory\n" {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}

// TestRouterRefuses: what the router's own loader or a plugin's Init
// refuses in the converted configuration fails the conversion (exit 2)
// with the carbon-c-relay statement it comes from.
func TestRouterRefuses(t *testing.T) {
	dir := t.TempDir()
	// carbon-c-relay orders jump_fnv1a_ch members by instance, numerically:
	// "1" and "01" are equal, so its order depends on its sort routine
	code, out, errs := convert(t, dir, "cluster a forward 127.0.0.1:2003;\n\ncluster j jump_fnv1a_ch\n  127.0.0.1:2004=1\n  127.0.0.1:2005=01;\nmatch * send to j;\n")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if !strings.HasPrefix(errs, "router convert: relay.conf:3: the router refuses the converted configuration: ") || !strings.Contains(errs, "cannot be ordered consistently") {
		t.Errorf("stderr: %s", errs)
	}
}
