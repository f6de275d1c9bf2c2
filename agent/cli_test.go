package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/metricsrouter/router/registry"
)

// fakeIn runs until stopped.
type fakeIn struct {
	Listen string `toml:"listen"`
}

func (f *fakeIn) Run(ctx context.Context, _ registry.Emitter) error { <-ctx.Done(); return nil }

func TestCLIFlags(t *testing.T) {
	reg := registry.New()
	reg.Add(registry.Inputs, "in", func() any { return &fakeIn{} }, "# A fake input\n[[inputs.in]]\n  listen = \":1\"\n")
	reg.Add(registry.Outputs, "in", func() any { return &fakeOut{} }, "# same name, other kind\n")
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := RunWith(context.Background(), reg, args, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	if code, out := run("-list-plugins"); code != 0 || !strings.Contains(out, "inputs.in") || !strings.Contains(out, "A fake input") {
		t.Errorf("-list-plugins: %d %q", code, out)
	}
	if code, out := run("-sample", "inputs.in"); code != 0 || !strings.Contains(out, "[[inputs.in]]") {
		t.Errorf("-sample: %d %q", code, out)
	}
	if code, out := run("-sample", "in"); code == 0 || !strings.Contains(out, "ambiguous") {
		t.Errorf("-sample ambiguous: %d %q", code, out)
	}
	if code, out := run("-version"); code != 0 || !strings.Contains(out, "router ") {
		t.Errorf("-version: %d %q", code, out)
	}
	if code, out := run(); code != 2 || !strings.Contains(out, "-config") {
		t.Errorf("no config: %d %q", code, out)
	}
	if code, _ := run("-h"); code != 0 {
		t.Errorf("-h: %d", code)
	}
}
