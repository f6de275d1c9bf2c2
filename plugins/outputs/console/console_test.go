package console

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// recorder is an io.Writer that keeps each write apart.
type recorder struct {
	writes []string
	err    error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	if r.err != nil {
		return 0, r.err
	}
	return len(p), nil
}

func TestFactoryAndSample(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Outputs, "console")
	if !ok {
		t.Fatal("outputs.console is not registered")
	}
	c := p.New().(*Console)
	if c.Format != "native" || c.w != os.Stdout {
		t.Fatalf("factory: format %q, writer %v; want native on stdout", c.Format, c.w)
	}
	var s Console
	if err := plugintest.DecodeSample(p.Sample, "outputs", "console", &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Init(registry.Env{}); err != nil {
		t.Fatalf("the sample does not pass Init: %v", err)
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		format string
		ok     bool
	}{
		{"native", true},
		{"graphite", true},
		{"statsd", true},
		{"", false},
		{"json", false},
		{"Graphite", false},
	} {
		name := tc.format
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			c := &Console{Format: tc.format}
			err := c.Init(registry.Env{})
			if (err == nil) != tc.ok {
				t.Fatalf("Init(format %q) = %v, want ok %v", tc.format, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), strconv.Quote(tc.format)) {
				t.Fatalf("error %q does not name the format", err)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	in := []string{
		"graphite:a.b;dc=eu  1.50\t1700000000",
		"statsd:hits,host=a:+3|c|@0.5|#env:prod,bare|x-ext",
		"statsd:users:alice|s",
		"graphite:renamed 2 1700000001",
	}
	modify := func(b metric.Batch) { b[3].SetPath([]byte("new.name")) }
	for _, tc := range []struct {
		format  string
		want    []string // "{now}" stands for the write time
		refused int      // metrics the format cannot carry: left out, reported
	}{
		{"native", []string{
			"a.b;dc=eu  1.50\t1700000000", // untouched: byte for byte
			"hits,host=a:+3|c|@0.5|#env:prod,bare|x-ext",
			"users:alice|s",
			"new.name 2 1700000001", // modified: rendered
		}, 0},
		{"graphite", []string{
			"a.b;dc=eu  1.50\t1700000000",
			"hits;env=prod;host=a +3 {now}",
			"new.name 2 1700000001", // users:alice|s: a set member is not a number
		}, 1},
		{"statsd", []string{
			"a.b:1.50|g|#dc:eu",
			"hits,host=a:+3|c|@0.5|#env:prod,bare|x-ext",
			"users:alice|s",
			"new.name:2|g",
		}, 0},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var rec recorder
			c := &Console{Format: tc.format, w: &rec}
			if err := c.Init(registry.Env{}); err != nil {
				t.Fatal(err)
			}
			b := plugintest.Batch(t, in...)
			modify(b)
			from := time.Now().Unix()
			err := c.Write(t.Context(), b)
			var part registry.PartlyRejected
			switch {
			case tc.refused == 0 && err != nil:
				t.Fatalf("Write: %v", err)
			case tc.refused > 0 && (!errors.As(err, &part) || part.Rejected() != tc.refused || !errors.Is(err, registry.ErrRejected)):
				t.Fatalf("Write = %v, want %d refused", err, tc.refused)
			}
			to := time.Now().Unix()
			if len(rec.writes) != 1 {
				t.Fatalf("%d writes for one batch, want 1", len(rec.writes))
			}
			got := strings.Split(strings.TrimSuffix(rec.writes[0], "\n"), "\n")
			if len(got) != len(tc.want) || !strings.HasSuffix(rec.writes[0], "\n") {
				t.Fatalf("got %q, want %q", rec.writes[0], tc.want)
			}
			for i, w := range tc.want {
				if before, after, ok := strings.Cut(w, "{now}"); ok {
					ts, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(got[i], before), after), 10, 64)
					if !strings.HasPrefix(got[i], before) || err != nil || ts < from || ts > to {
						t.Errorf("line %d = %q, want %q with a time in [%d, %d]", i, got[i], w, from, to)
					}
					continue
				}
				if got[i] != w {
					t.Errorf("line %d = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}

// TestWriteReusesBuffer: a second batch does not carry bytes of the first.
func TestWriteReusesBuffer(t *testing.T) {
	var rec recorder
	c := &Console{Format: "native", w: &rec}
	for _, l := range []string{"graphite:first.long.metric.name 1 1", "graphite:b 2 2", "statsd:c:1|c"} {
		if err := c.Write(t.Context(), plugintest.Batch(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"first.long.metric.name 1 1\n", "b 2 2\n", "c:1|c\n"}; strings.Join(rec.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes %q, want %q", rec.writes, want)
	}
}

func TestWriteError(t *testing.T) {
	broken := errors.New("broken pipe")
	c := &Console{Format: "native", w: &recorder{err: broken}}
	if err := c.Write(t.Context(), plugintest.Batch(t, "a 1 1")); !errors.Is(err, broken) {
		t.Fatalf("Write = %v, want the writer's error", err)
	}
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("Connect = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

func BenchmarkWrite(b *testing.B) {
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = "bench.console.path." + strconv.Itoa(i) + " 1 1700000000"
	}
	batch := plugintest.Batch(b, lines...)
	var out bytes.Buffer
	c := &Console{Format: "native", w: &out}
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := c.Write(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
}
