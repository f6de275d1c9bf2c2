package registry

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// TestConverters: AddConverter registers the convert command once, which
// dispatches on the format, lists the formats, and refuses unknown ones.
func TestConverters(t *testing.T) {
	r := New()
	var got []string
	conv := func(name string) func(context.Context, []string, io.Reader, io.Writer, io.Writer) int {
		return func(_ context.Context, args []string, _ io.Reader, stdout, _ io.Writer) int {
			got = append([]string{name}, args...)
			io.WriteString(stdout, name)
			return 7
		}
	}
	r.AddConverter("go-statsd-proxy", "[-ms] FILE.json", conv("gsp"))
	r.AddConverter("carbon-c-relay", "FILE.conf", conv("ccr"))
	c, ok := r.LookupCommand("convert")
	if !ok || len(r.Commands()) != 1 {
		t.Fatalf("commands: %+v", r.Commands())
	}
	if c.Summary != "convert carbon-c-relay|go-statsd-proxy FILE: print the equivalent router TOML" {
		t.Errorf("summary %q", c.Summary)
	}
	if cs := r.Converters(); len(cs) != 2 || cs[0].Name != "carbon-c-relay" || cs[1].Name != "go-statsd-proxy" {
		t.Errorf("converters %+v", cs)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := c.Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run("carbon-c-relay", "-x", "f.conf"); code != 7 || out != "ccr" || strings.Join(got, " ") != "ccr -x f.conf" {
		t.Errorf("dispatch: exit %d, %q, %q", code, out, got)
	}
	if code, out, _ := run("-h"); code != 0 || !strings.Contains(out, "router convert carbon-c-relay FILE.conf\n  router convert go-statsd-proxy [-ms] FILE.json\n") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
	if code, out, errs := run(); code != 2 || out != "" || !strings.HasPrefix(errs, "usage: router convert FORMAT") {
		t.Errorf("no format: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs := run("polymur"); code != 2 || !strings.Contains(errs, `unknown format "polymur" (this binary converts: carbon-c-relay, go-statsd-proxy)`) {
		t.Errorf("unknown: exit %d, %q", code, errs)
	}
	for name, f := range map[string]func(){
		"duplicate": func() { r.AddConverter("carbon-c-relay", "", conv("x")) },
		"bad name":  func() { r.AddConverter("Carbon", "", conv("x")) },
		"nil run":   func() { r.AddConverter("x", "", nil) },
		"convert taken": func() {
			o := New()
			o.AddCommand(Command{Name: "convert", Run: conv("x")})
			o.AddConverter("x", "", conv("x"))
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
