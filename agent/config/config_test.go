package config

import (
	"context"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "alpha", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct{ in, want, err string }{
		{"x = \"${A}\"\n", "x = \"alpha\"\n", ""},
		{"x = \"${B:-beta}\"\n", "x = \"beta\"\n", ""},
		{"x = \"${EMPTY:-def}\"\n", "x = \"def\"\n", ""},
		{"x = \"${A:-def}-${A}\"\n", "x = \"alpha-alpha\"\n", ""},
		{"# ${UNSET} in a comment\n", "# ${UNSET} in a comment\n", ""},
		{"x = \"$A\"\n", "x = \"$A\"\n", ""},
		{"a = 1\nx = \"${UNSET}\"\n", "", "2: environment variable UNSET is not set"},
		{"x = \"${A\"\n", "", "unterminated"},
		{"x = \"${1BAD}\"\n", "", "bad variable name"},
	}
	for _, c := range cases {
		got, err := ExpandEnv(c.in, lookup)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestParseDestination(t *testing.T) {
	cases := []struct{ in, host, port, inst string }{
		{"127.0.0.1:2003", "127.0.0.1", "2003", ""},
		{"10.0.0.1:2003:a", "10.0.0.1", "2003", "a"},
		{"cache-1.example:2004:ba603c36", "cache-1.example", "2004", "ba603c36"},
		{"[::1]:2003", "::1", "2003", ""},
		{"[::1]:2003:x", "::1", "2003", "x"},
	}
	for _, c := range cases {
		h, p, i, err := ParseDestination(c.in)
		if err != nil || h != c.host || p != c.port || i != c.inst {
			t.Errorf("%q: got %q %q %q %v", c.in, h, p, i, err)
		}
	}
	for _, bad := range []string{"", "host", ":2003", "host:", "host:port", "h:1:a:b", "[::1"} {
		if _, _, _, err := ParseDestination(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// fake plugins for a registry of our own
type fakeIn struct {
	Listen string `toml:"listen"`
}

func (f *fakeIn) Run(ctx context.Context, _ registry.Emitter) error { <-ctx.Done(); return nil }

func TestProcessorOrderAndIDs(t *testing.T) {
	reg := registry.New()
	reg.Add(registry.Inputs, "in", func() any { return &fakeIn{} }, "# fake input\n")
	reg.Add(registry.Processors, "p", func() any { return &procP{} }, "# p\n")
	reg.Add(registry.Processors, "q", func() any { return &procP{} }, "# q\n")
	reg.Add(registry.Outputs, "out", func() any { return &fakeOut{} }, "# out\n")
	cfg, err := Parse(reg, "t.toml", `
[[inputs.in]]
[[processors.q]]
  tag = "1"
[[processors.p]]
  tag = "2"
  id = "second"
[[processors.q]]
  tag = "3"
[[outputs.out]]
[[outputs.out]]
  id = "named"
`, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var tags, ids []string
	for _, p := range cfg.Processors {
		tags = append(tags, p.Plugin.(*procP).Tag)
		ids = append(ids, p.ID)
	}
	if strings.Join(tags, ",") != "1,2,3" {
		t.Errorf("processors in order %v, want file order 1,2,3", tags)
	}
	if strings.Join(ids, ",") != "q-1,second,q-2" {
		t.Errorf("ids %v", ids)
	}
	if cfg.Outputs[0].ID != "out-1" || cfg.Outputs[1].ID != "named" {
		t.Errorf("output ids %q %q", cfg.Outputs[0].ID, cfg.Outputs[1].ID)
	}
	if cfg.Outputs[0].Out.BufferLimit != defBufferLimit || cfg.Outputs[0].Out.Overflow != "drop_oldest" {
		t.Errorf("defaults not applied: %+v", cfg.Outputs[0].Out)
	}
}

type procP struct {
	Tag string `toml:"tag"`
}

func (p *procP) Process(b metric.Batch) metric.Batch { return b }

func TestWorkerDefaults(t *testing.T) {
	for _, c := range []struct {
		want   int // default of the plugin
		config string
		got    int
	}{
		{8, "", 8},
		{8, "workers = 3", 3},
		{0, "", 1},
		{1000, "", maxWorkers},
	} {
		reg := registry.New()
		reg.Add(registry.Inputs, "in", func() any { return &fakeIn{} }, "# fake input\n")
		// an output that wants more writers than the agent's default
		reg.AddPlugin(registry.Plugin{Kind: registry.Outputs, Name: "rt", New: func() any { return &fakeOut{} }, Sample: "# rt\n",
			Output: registry.OutputSpec{Workers: c.want}})
		reg.Add(registry.Outputs, "out", func() any { return &fakeOut{} }, "# out\n")
		cfg, err := Parse(reg, "t.toml", "[[inputs.in]]\n[[outputs.rt]]\n"+c.config+"\n[[outputs.out]]\n",
			func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		if w := cfg.Outputs[0].Out.Workers; w != c.got {
			t.Errorf("plugin default %d, %q: workers %d, want %d", c.want, c.config, w, c.got)
		}
		if w := cfg.Outputs[1].Out.Workers; w != 1 {
			t.Errorf("an output without WorkerDefaults: workers %d, want 1", w)
		}
	}
}

// fakeOut accepts everything.
type fakeOut struct {
	Address string `toml:"address"`
}

func (f *fakeOut) Connect(context.Context) error             { return nil }
func (f *fakeOut) Write(context.Context, metric.Batch) error { return nil }
func (f *fakeOut) Close() error                              { return nil }
func (f *fakeOut) Destination() string                       { return f.Address }
