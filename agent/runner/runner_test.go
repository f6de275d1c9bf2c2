package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// fakeOut records what it is given; failNext makes the next writes fail.
type fakeOut struct {
	mu       sync.Mutex
	got      []string
	writes   int
	connects int
	failNext []error // consumed one per Write
	gate     chan struct{}
}

func (f *fakeOut) Connect(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	return nil
}

func (f *fakeOut) Write(ctx context.Context, b metric.Batch) error {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		return err
	}
	for i := range b {
		f.got = append(f.got, string(b[i].Raw()))
	}
	return nil
}

func (f *fakeOut) Close() error { return nil }

func (f *fakeOut) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func batchOf(t testing.TB, from, n int) metric.Batch {
	t.Helper()
	b := make(metric.Batch, n)
	for i := range b {
		line := []byte(fmt.Sprintf("m.%d %d 1700000000", from+i, from+i))
		if err := graphite.Parse(line, &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// rc is a test's runner configuration: writers' and buffer's in one.
type rc struct {
	BufferLimit, BatchSize                           int
	FlushInterval, FlushIdle, RetryInitial, RetryMax time.Duration
	WriteTimeout                                     time.Duration
	Block                                            bool
}

// harness drives a Runner the way the agent does.
type harness struct {
	*Runner
	cfg  Config
	outs []registry.Output
	stop chan struct{}
}

func (h *harness) run(ctx context.Context)                           { h.Start(ctx, h.outs, h.cfg) }
func (h *harness) enqueue(ctx context.Context, b metric.Batch) error { return h.Enqueue(ctx, b) }
func (h *harness) close()                                            { h.Close() }

func testRunner(t *testing.T, out registry.Output, c rc) (*harness, *plugintest.Metrics) {
	t.Helper()
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = time.Millisecond
		c.RetryMax = 5 * time.Millisecond
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Second
	}
	m := plugintest.NewMetrics()
	h := &harness{cfg: Config{BatchSize: c.BatchSize, FlushInterval: c.FlushInterval, FlushIdle: c.FlushIdle,
		RetryInitial: c.RetryInitial, RetryMax: c.RetryMax, WriteTimeout: c.WriteTimeout},
		outs: []registry.Output{out}, stop: make(chan struct{})}
	h.Runner = New("outputs.fake", "t", "", Options{Limit: c.BufferLimit, Block: c.Block}, Env{Log: plugintest.Logger(t), Metrics: m, Stop: h.stop})
	if err := h.Open(); err != nil {
		t.Fatal(err)
	}
	return h, m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunnerRetriesUntilWritten(t *testing.T) {
	out := &fakeOut{failNext: []error{registry.ErrNotConnected, errors.New("boom"), registry.ErrNotConnected}}
	r, m := testRunner(t, out, rc{BufferLimit: 1000})
	r.run(context.Background())
	if err := r.enqueue(t.Context(), batchOf(t, 0, 10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "10 lines written", func() bool { return len(out.lines()) == 10 })
	r.close()
	r.Wait()
	if got := m.Get("sent_total"); got != 10 {
		t.Errorf("sent_total = %d, want 10", got)
	}
	if got := m.Get("retries_total"); got != 3 {
		t.Errorf("retries_total = %d, want 3", got)
	}
	if out.connects != 3 { // initial + after each ErrNotConnected
		t.Errorf("connects = %d, want 3", out.connects)
	}
	if r.Left() != 0 {
		t.Errorf("left = %d", r.Left())
	}
}

func TestRunnerRejectedIsCountedNotRetried(t *testing.T) {
	out := &fakeOut{failNext: []error{fmt.Errorf("http 400: %w", registry.ErrRejected)}}
	r, m := testRunner(t, out, rc{BufferLimit: 1000})
	r.run(context.Background())
	r.enqueue(t.Context(), batchOf(t, 0, 7))
	waitFor(t, "rejection", func() bool { return m.Get("rejected_total") == 7 })
	r.enqueue(t.Context(), batchOf(t, 7, 3))
	waitFor(t, "second batch", func() bool { return len(out.lines()) == 3 })
	r.close()
	r.Wait()
	if m.Get("rejected_total") != 7 || m.Get("sent_total") != 3 {
		t.Fatalf("rejected %d sent %d, want 7 and 3", m.Get("rejected_total"), m.Get("sent_total"))
	}
}

// partial is an ErrRejected error that refused only n metrics.
type partial struct{ n int }

func (p partial) Error() string { return fmt.Sprintf("%d refused: %v", p.n, registry.ErrRejected) }
func (p partial) Unwrap() error { return registry.ErrRejected }
func (p partial) Rejected() int { return p.n }

// TestRunnerPartlyRejected: an output that wrote a batch but for a few
// metrics it cannot carry reports those as rejected, the rest as sent, and
// received = sent + rejected stays exact.
func TestRunnerPartlyRejected(t *testing.T) {
	out := &fakeOut{failNext: []error{partial{2}}}
	r, m := testRunner(t, out, rc{BufferLimit: 1000})
	r.run(context.Background())
	r.enqueue(t.Context(), batchOf(t, 0, 7))
	waitFor(t, "partial rejection", func() bool { return m.Get("rejected_total") == 2 })
	r.close()
	r.Wait()
	if m.Get("rejected_total") != 2 || m.Get("sent_total") != 5 || m.Get("received_total") != 7 {
		t.Fatalf("received %d rejected %d sent %d, want 7, 2 and 5", m.Get("received_total"), m.Get("rejected_total"), m.Get("sent_total"))
	}
}

func TestRunnerDropOldest(t *testing.T) {
	out := &fakeOut{gate: make(chan struct{})}
	r, m := testRunner(t, out, rc{BufferLimit: 100, BatchSize: 10})
	r.run(context.Background())
	// first batch is taken by the writer and held at the gate (in flight)
	r.enqueue(t.Context(), batchOf(t, 0, 10))
	waitFor(t, "batch in flight", func() bool { return r.Len() == 10 && !r.buf.Pending() })
	for i := 1; i < 30; i++ {
		if err := r.enqueue(t.Context(), batchOf(t, i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// 300 offered, room for 100 (10 in flight + 90 queued): 200 dropped, oldest first
	if got := m.Get("dropped_total"); got != 200 {
		t.Fatalf("dropped_total = %d, want 200", got)
	}
	close(out.gate)
	r.close()
	r.Wait()
	got := out.lines()
	if len(got) != 100 {
		t.Fatalf("written %d, want 100", len(got))
	}
	if got[0] != "m.0 0 1700000000" || got[10] != "m.210 210 1700000000" || got[99] != "m.299 299 1700000000" {
		t.Fatalf("wrong survivors: %q %q %q", got[0], got[10], got[99])
	}
}

func TestRunnerDropOldestHugeBatch(t *testing.T) {
	out := &fakeOut{}
	r, m := testRunner(t, out, rc{BufferLimit: 50, BatchSize: 10})
	r.enqueue(t.Context(), batchOf(t, 0, 80)) // before the writer runs: keeps the newest 50
	if m.Get("dropped_total") != 30 {
		t.Fatalf("dropped_total = %d, want 30", m.Get("dropped_total"))
	}
	r.run(context.Background())
	r.close()
	r.Wait()
	got := out.lines()
	if len(got) != 50 || got[0] != "m.30 30 1700000000" {
		t.Fatalf("got %d lines starting %q", len(got), got[0])
	}
}

func TestRunnerBlockPushesBack(t *testing.T) {
	out := &fakeOut{gate: make(chan struct{})}
	r, m := testRunner(t, out, rc{BufferLimit: 20, BatchSize: 10, Block: true})
	r.run(context.Background())
	r.enqueue(t.Context(), batchOf(t, 0, 10))
	r.enqueue(t.Context(), batchOf(t, 10, 10))
	// full: the next enqueue must wait, and give up when its ctx ends
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := r.enqueue(ctx, batchOf(t, 20, 10)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enqueue on a full block queue: %v, want deadline exceeded", err)
	}
	if m.Get("refused_total") != 10 || m.Get("dropped_total") != 0 {
		t.Fatalf("refused %d dropped %d", m.Get("refused_total"), m.Get("dropped_total"))
	}
	// a blocked sender proceeds once the writer makes room
	errc := make(chan error)
	go func() { errc <- r.enqueue(t.Context(), batchOf(t, 30, 10)) }()
	select {
	case err := <-errc:
		t.Fatalf("enqueue returned %v while the queue was full", err)
	case <-time.After(30 * time.Millisecond):
	}
	close(out.gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	r.close()
	r.Wait()
	if n := len(out.lines()); n != 30 {
		t.Fatalf("written %d, want 30", n)
	}
}

func TestRunnerCoalescesSmallBatches(t *testing.T) {
	out := &fakeOut{}
	r, _ := testRunner(t, out, rc{BufferLimit: 1000, BatchSize: 100})
	for i := 0; i < 50; i++ {
		r.enqueue(t.Context(), batchOf(t, i*3, 3))
	}
	r.run(context.Background())
	r.close()
	r.Wait()
	if len(out.lines()) != 150 {
		t.Fatalf("written %d", len(out.lines()))
	}
	if out.writes != 2 { // 150 metrics in batches of at most 100
		t.Fatalf("writes = %d, want 2", out.writes)
	}
}

func TestRunnerHardStopLeavesCount(t *testing.T) {
	out := &fakeOut{failNext: []error{errors.New("down"), errors.New("down"), errors.New("down"), errors.New("down"), errors.New("down"), errors.New("down")}}
	r, _ := testRunner(t, out, rc{BufferLimit: 1000, BatchSize: 10, RetryInitial: 20 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	r.run(ctx)
	r.enqueue(t.Context(), batchOf(t, 0, 25))
	r.close()
	time.Sleep(30 * time.Millisecond)
	close(r.stop)
	cancel()
	r.Wait()
	if r.Left() != 25 {
		t.Fatalf("left = %d, want 25", r.Left())
	}
	if err := r.enqueue(t.Context(), batchOf(t, 0, 1)); !errors.Is(err, registry.ErrStopped) {
		t.Fatalf("enqueue after close: %v", err)
	}
}

func TestRunnerFlushInterval(t *testing.T) {
	out := &fakeOut{}
	r, _ := testRunner(t, out, rc{BufferLimit: 1000, BatchSize: 100, FlushInterval: 200 * time.Millisecond})
	r.run(context.Background())
	start := time.Now()
	r.enqueue(t.Context(), batchOf(t, 0, 5))
	waitFor(t, "flush", func() bool { return len(out.lines()) == 5 })
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("small batch written after %v, before flush_interval", el)
	}
	// a full batch does not wait
	start = time.Now()
	r.enqueue(t.Context(), batchOf(t, 5, 100))
	waitFor(t, "full batch", func() bool { return len(out.lines()) == 105 })
	if el := time.Since(start); el > 150*time.Millisecond {
		t.Fatalf("full batch waited %v", el)
	}
	r.close()
	r.Wait()
}

// TestRunnerFlushIdle: while a steady trickle keeps arriving, a partial
// batch waits (for flush_interval or a full batch); once the input has been
// quiet for flush_idle it is written without waiting out the interval.
func TestRunnerFlushIdle(t *testing.T) {
	out := &fakeOut{}
	r, _ := testRunner(t, out, rc{BufferLimit: 10000, BatchSize: 1000, FlushInterval: 10 * time.Second, FlushIdle: 200 * time.Millisecond})
	r.run(context.Background())
	// a trickle: one metric every 10 ms for a second, never a full batch
	for i := range 100 {
		r.enqueue(t.Context(), batchOf(t, i, 1))
		time.Sleep(10 * time.Millisecond)
	}
	quietFrom := time.Now()
	waitFor(t, "flush after the input went quiet", func() bool { return len(out.lines()) == 100 })
	if el := time.Since(quietFrom); el > 5*time.Second {
		t.Fatalf("written %v after the input went quiet: flush_idle did not apply", el)
	}
	out.mu.Lock()
	writes := out.writes
	out.mu.Unlock()
	// one write; two if the scheduler stalled the trickle for flush_idle
	if writes > 2 {
		t.Fatalf("%d writes for a steady trickle: the quiet timer did not restart on new data", writes)
	}
	r.close()
	r.Wait()
}

func TestRunnerWorkersShareOneQueue(t *testing.T) {
	outs := []*fakeOut{{}, {}, {}}
	r, m := testRunner(t, outs[0], rc{BufferLimit: 100000, BatchSize: 50})
	r.outs = []registry.Output{outs[0], outs[1], outs[2]}
	for i := 0; i < 200; i++ {
		r.enqueue(t.Context(), batchOf(t, i*10, 10))
	}
	r.run(context.Background())
	r.close()
	r.Wait()
	seen := map[string]bool{}
	for _, o := range outs {
		for _, l := range o.lines() {
			if seen[l] {
				t.Fatalf("%q written twice", l)
			}
			seen[l] = true
		}
	}
	if len(seen) != 2000 || m.Get("sent_total") != 2000 || r.Left() != 0 {
		t.Fatalf("written %d, sent_total %d, left %d", len(seen), m.Get("sent_total"), r.Left())
	}
}
