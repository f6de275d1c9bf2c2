package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// feedIn emits one metric per tick until stopped, and counts instances.
type feedIn struct {
	Tag  string `toml:"tag"`
	runs *atomic.Int32
}

func (f *feedIn) Run(ctx context.Context, em registry.Emitter) error {
	f.runs.Add(1)
	<-ctx.Done()
	return nil
}

// countOut counts what it writes, and its instances (Connect calls).
type countOut struct {
	Address  string `toml:"address"`
	Slow     bool   `toml:"slow"`
	written  *atomic.Int64
	connects *atomic.Int32
}

func (c *countOut) Connect(context.Context) error { c.connects.Add(1); return nil }
func (c *countOut) Write(ctx context.Context, b metric.Batch) error {
	c.written.Add(int64(len(b)))
	return nil
}
func (c *countOut) Close() error        { return nil }
func (c *countOut) Destination() string { return c.Address }

type reconcileFixture struct {
	a        *Agent
	file     string
	runs     atomic.Int32
	written  atomic.Int64
	connects atomic.Int32
	done     chan error
	cancel   context.CancelFunc
}

// newTestAgent is an agent of cfg whose plugins come from reg.
func newTestAgent(t *testing.T, reg *registry.Registry, cfg *config.Config) *Agent {
	t.Helper()
	a, err := New(cfg, plugintest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.reg = reg
	return a
}

func newReconcileFixture(t *testing.T, text string) *reconcileFixture {
	t.Helper()
	f := &reconcileFixture{file: filepath.Join(t.TempDir(), "r.toml"), done: make(chan error, 1)}
	reg := registry.New()
	reg.Add(registry.Inputs, "feed", func() any { return &feedIn{runs: &f.runs} }, "# feed\n")
	reg.Add(registry.Outputs, "count", func() any { return &countOut{written: &f.written, connects: &f.connects} }, "# count\n")
	if err := os.WriteFile(f.file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(reg, f.file)
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, reg, cfg)
	f.a = a
	ctx, cancel := context.WithCancel(t.Context())
	f.cancel = cancel
	go func() { f.done <- a.run(ctx, 0) }()
	waitUntil(t, "running", func() bool { return f.runs.Load() == 1 && f.connects.Load() >= 1 })
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

func (f *reconcileFixture) reload(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(f.file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f.a.reload()
}

func (f *reconcileFixture) emit(t *testing.T, n int) {
	t.Helper()
	b := make(metric.Batch, n)
	for i := range b {
		if err := graphite.Parse(fmt.Appendf(nil, "r.%d %d 1700000000", i, i), &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	em := &emitter{p: &f.a.pipe, received: new(atomic.Uint64)}
	if err := em.Emit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestReconcileByID (issue #17): a reload that changes nothing restarts
// nothing; a changed table restarts only its own plugin and keeps the
// output's buffer; a removed output drains and its series are gone.
func TestReconcileByID(t *testing.T) {
	spool := t.TempDir()
	base := fmt.Sprintf(`
[[inputs.feed]]
  tag = "a"
[[outputs.count]]
  id = "x"
  address = "127.0.0.1:1"
  batch_size = 5000
  spool_dir = %q
[[outputs.count]]
  id = "y"
  address = "127.0.0.1:2"
`, spool)
	f := newReconcileFixture(t, base)
	a := f.a
	x, y := a.st.outs["x"].r, a.st.outs["y"].r
	// both outputs have connected (they do so in the background)
	waitUntil(t, "both outputs connected", func() bool { return f.connects.Load() == 2 })

	// nothing changed: nothing restarts
	f.reload(t, base)
	if a.st.outs["x"].r != x || a.st.outs["y"].r != y || f.runs.Load() != 1 || f.connects.Load() != 2 {
		t.Fatalf("a reload without changes restarted something: runs %d connects %d", f.runs.Load(), f.connects.Load())
	}

	// one key of the spooled output: the same runner (buffer, spool) gets
	// a new plugin instance; the other output and the input are untouched
	changed := base
	for i, kv := range [][2]string{{"batch_size = 5000", "batch_size = 4000"}, {"batch_size = 4000", "batch_size = 3000\n  spool_max_bytes = 2000000"}} {
		next := replaceOnce(t, changed, kv[0], kv[1])
		f.emit(t, 100)
		f.reload(t, next)
		changed = next
		if a.st.outs["x"].r != x || a.st.outs["y"].r != y {
			t.Fatal("a changed output got a new runner: its buffer was not kept")
		}
		// its new writer connects (before the next reload, which would
		// replace it before it did)
		waitUntil(t, "x reconnected", func() bool { return f.connects.Load() == int32(3+i) })
	}
	if f.runs.Load() != 1 {
		t.Fatalf("runs %d: want the input untouched", f.runs.Load())
	}
	f.emit(t, 100)
	waitUntil(t, "all written", func() bool { return f.written.Load() == 2*300 })

	// the input's table: a new instance
	f.reload(t, replaceOnce(t, changed, `tag = "a"`, `tag = "b"`))
	waitUntil(t, "input replaced", func() bool { return f.runs.Load() == 2 })

	// remove y: drained, closed, its series gone
	if _, ok := a.metrics.Value("outputs.count", "y", "sent_total"); !ok {
		t.Fatal("no series for y before the removal")
	}
	f.reload(t, replaceOnce(t, replaceOnce(t, changed, `tag = "a"`, `tag = "b"`), "[[outputs.count]]\n  id = \"y\"\n  address = \"127.0.0.1:2\"\n", ""))
	waitUntil(t, "y's series removed", func() bool { _, ok := a.metrics.Value("outputs.count", "y", "sent_total"); return !ok })
	select {
	case <-y.Done():
	default:
		t.Fatal("y's series are gone but y was not released")
	}
	if _, ok := a.metrics.Value("outputs.count", "x", "sent_total"); !ok {
		t.Fatal("x's series went too")
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q not in config", old)
	}
	return strings.Replace(s, old, new, 1)
}
