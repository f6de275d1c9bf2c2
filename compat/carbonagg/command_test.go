package carbonagg_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/metricsrouter/router/compat/carbonagg"
	"github.com/metricsrouter/router/registry"
)

// TestCommand: `router convert carbon-aggregator` as registered, next to
// the other formats.
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
	code, out, errs := run("carbon-aggregator", "testdata/sample.conf")
	if code != 0 || !strings.HasPrefix(out, "# Converted from the carbon-aggregator rules testdata/sample.conf by\n#   router convert carbon-aggregator testdata/sample.conf\n") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if code, out, errs := run("-h"); code != 0 || !strings.Contains(out, "router convert carbon-aggregator [-o OUTPUT_ID] [-max-intervals N] FILE") || !strings.Contains(out, "router convert carbon-c-relay") {
		t.Errorf("-h: exit %d: %s %s", code, out, errs)
	}
	if code, _, errs := run("carbon-aggregator", "-h"); code != 0 || !strings.Contains(errs, "usage: router convert carbon-aggregator") {
		t.Errorf("carbon-aggregator -h: exit %d, %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"carbon-aggregator"}, "usage"},
		{[]string{"carbon-aggregator", "a", "b"}, "usage"},
		{[]string{"carbon-aggregator", "-x", "a"}, "usage"},
		{[]string{"carbon-aggregator", "-max-intervals", "0", "a"}, "-max-intervals 0: want 1 to 1000"},
		{[]string{"carbon-aggregator", "-o", "", "a"}, `-o "": want an output id`},
		{[]string{"carbon-aggregator", "-o", "blackhole", "a"}, `-o "blackhole": want an output id`},
	} {
		if code, out, errs := run(c.args...); code != 2 || out != "" || !strings.Contains(errs, c.msg) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", c.args, code, out, errs)
		}
	}
	if code, out, errs := run("carbon-aggregator", "testdata/missing.conf"); code != 1 || out != "" || errs != "router convert: open testdata/missing.conf: no such file or directory\n" {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}

// TestRouterRefuses: what the router's loader refuses in the converted
// configuration fails the conversion with exit status 2 (here: a binary
// without the graphite plugins), and nothing is printed.
func TestRouterRefuses(t *testing.T) {
	var out, errb bytes.Buffer
	code := carbonagg.Run(registry.New(), []string{"testdata/sample.conf"}, &out, &errb)
	if code != 2 || out.Len() > 0 || !strings.HasPrefix(errb.String(), "router convert: testdata/sample.conf") ||
		!strings.Contains(errb.String(), "the router refuses the converted configuration: ") {
		t.Errorf("exit %d, stdout %q, stderr %s", code, out.String(), errb.String())
	}
}
