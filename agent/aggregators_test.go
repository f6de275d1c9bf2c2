package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// sumAgg takes the metrics named "s.*" and flushes their sum as
// "sum.<tag> <sum> <ts>".
type sumAgg struct {
	Tag   string `toml:"tag"`
	mu    sync.Mutex
	sum   float64
	n     int
	calls *atomic.Int32 // Flush calls, final ones
	final *atomic.Int32
}

func (s *sumAgg) Take(b metric.Batch) metric.Batch {
	rest := b[:0]
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range b {
		if strings.HasPrefix(string(b[i].Name()), "s.") {
			s.sum += b[i].Value()
			s.n++
			continue
		}
		rest = append(rest, b[i])
	}
	return rest
}

func (s *sumAgg) Flush(now time.Time, final bool, emit func(metric.Batch)) {
	s.calls.Add(1)
	if final {
		s.final.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return
	}
	b := make(metric.Batch, 1)
	if err := graphite.Parse(fmt.Appendf(nil, "sum.%s %g %d", s.Tag, s.sum, now.Unix()), &b[0]); err != nil {
		panic(err)
	}
	s.sum, s.n = 0, 0
	emit(b)
}

func (s *sumAgg) Interval() time.Duration { return time.Second }

// lineOut records the names and values it writes.
type lineOut struct {
	Address string `toml:"address"`
	rec     *recorder
}

type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (o *lineOut) Connect(context.Context) error { return nil }
func (o *lineOut) Write(_ context.Context, b metric.Batch) error {
	o.rec.mu.Lock()
	defer o.rec.mu.Unlock()
	for i := range b {
		o.rec.lines = append(o.rec.lines, fmt.Sprintf("%s %g", b[i].Name(), b[i].Value()))
	}
	return nil
}
func (o *lineOut) Close() error        { return nil }
func (o *lineOut) Destination() string { return o.Address }

// TestAggregatorWiring: an aggregator keeps what it takes (the rest goes
// on at once), its flushes reach the outputs, a reload without changes
// keeps its state, a changed table makes the old instance's final flush,
// and shutdown makes one final flush before the outputs drain.
func TestAggregatorWiring(t *testing.T) {
	var calls, final atomic.Int32
	rec := &recorder{}
	reg := registry.New()
	reg.Add(registry.Inputs, "feed", func() any { return &feedIn{runs: new(atomic.Int32)} }, "# feed\n")
	reg.Add(registry.Aggregators, "sum", func() any { return &sumAgg{calls: &calls, final: &final} }, "# sum\n")
	reg.Add(registry.Outputs, "rec", func() any { return &lineOut{rec: rec} }, "# rec\n")
	text := `
[[inputs.feed]]
[[aggregators.sum]]
  id = "s"
  tag = "a"
[[outputs.rec]]
  address = "127.0.0.1:1"
`
	file := filepath.Join(t.TempDir(), "a.toml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(reg, file)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, reg, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, 0) }()
	waitUntil(t, "running", func() bool { return a.currentAgg("s") != nil && a.pipe.Load() != nil })
	emit := func(lines ...string) {
		b := make(metric.Batch, len(lines))
		for i, l := range lines {
			if err := graphite.Parse([]byte(l+" 1700000000"), &b[i]); err != nil {
				t.Fatal(err)
			}
		}
		em := &emitter{p: &a.pipe, received: new(atomic.Uint64)}
		if err := em.Emit(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	has := func(line string) func() bool {
		return func() bool { return slices.Contains(rec.get(), line) }
	}

	emit("s.x 1", "other 5", "s.y 2")
	waitUntil(t, "the metric not taken", has("other 5"))
	waitUntil(t, "a flush", has("sum.a 3"))
	if slices.ContainsFunc(rec.get(), func(l string) bool { return strings.HasPrefix(l, "s.") }) {
		t.Fatalf("a metric the aggregator took reached the output: %q", rec.get())
	}

	// a reload without changes keeps the instance and what it holds
	r := a.currentAgg("s")
	emit("s.x 10")
	if err := os.WriteFile(file, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reload()
	if a.currentAgg("s") != r {
		t.Fatal("a reload without changes replaced the aggregator")
	}
	waitUntil(t, "the kept state flushed", has("sum.a 10"))

	// a changed table: what the old instance holds is flushed (final),
	// the new instance takes what follows
	emit("s.x 100")
	if err := os.WriteFile(file, []byte(strings.Replace(text, `tag = "a"`, `tag = "b"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.reload()
	waitUntil(t, "the old instance's final flush", has("sum.a 100"))
	if final.Load() != 1 {
		t.Fatalf("final flushes %d, want 1", final.Load())
	}
	emit("s.x 1000")
	waitUntil(t, "the new instance's flush", has("sum.b 1000"))

	// shutdown: one final flush, written before run returns
	emit("s.x 7")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !has("sum.b 7")() {
		t.Fatalf("the final flush at shutdown was not written: %q", rec.get())
	}
	if final.Load() != 2 {
		t.Fatalf("final flushes %d, want 2", final.Load())
	}
	if n, _ := a.metrics.Value("aggregators.sum", "s", "flushes_total"); n < 2 {
		t.Fatalf("flushes_total %v", n)
	}
}
