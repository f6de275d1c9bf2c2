package agent

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
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

// TestLogFormats: the console format writes no ANSI colour codes when its
// output is not a terminal (journald, files, pipes), and durations carry
// their unit in the key.
func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(config.Agent{LogFormat: "console"}, &buf)
	log.Warn().Dur("retry_in_ms", 1500*time.Millisecond).Msg("connect failed")
	out := buf.String()
	if strings.Contains(out, "\x1b[") || !strings.Contains(out, "retry_in_ms=1500") {
		t.Fatalf("console log %q: want no escape codes and retry_in_ms=1500", out)
	}
	buf.Reset()
	log = newLogger(config.Agent{}, &buf)
	log.Info().Dur("elapsed_ms", 250*time.Millisecond).Msg("x")
	if !strings.Contains(buf.String(), `"elapsed_ms":250`) {
		t.Fatalf("json log %q", buf.String())
	}
}
