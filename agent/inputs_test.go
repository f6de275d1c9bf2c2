package agent

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"
)

// flakyState is shared by every instance of a flaky input (the factory
// hands it to each): the agent restarts a failed input as a new instance.
type flakyState struct {
	runs    atomic.Int32
	fail    chan error // the first run returns what it receives
	running chan int32 // each run sends its number when it starts
}

type flakyIn struct {
	Name string `toml:"name"`
	st   *flakyState
}

func (f *flakyIn) Run(ctx context.Context, _ registry.Emitter) error {
	n := f.st.runs.Add(1)
	f.st.running <- n
	if n == 1 {
		select {
		case err := <-f.st.fail:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// steadyIn runs until stopped and records that.
type steadyIn struct {
	stopped *atomic.Bool
}

func (s *steadyIn) Run(ctx context.Context, _ registry.Emitter) error {
	<-ctx.Done()
	s.stopped.Store(true)
	return nil
}

func inputTestAgent(t *testing.T, st *flakyState, steadyStopped *atomic.Bool, times inputTimes) *Agent {
	t.Helper()
	reg := registry.New()
	reg.Add(registry.Inputs, "flaky", func() any { return &flakyIn{st: st} }, "# flaky\n")
	reg.Add(registry.Inputs, "steady", func() any { return &steadyIn{stopped: steadyStopped} }, "# steady\n")
	reg.Add(registry.Outputs, "out", func() any { return &fakeOut{} }, "# out\n")
	cfg, err := config.Parse(reg, "t.toml", `
[[inputs.flaky]]
  name = "x"
[[inputs.steady]]
[[outputs.out]]
`, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAgent(t, reg, cfg)
	a.inTimes = times
	return a
}

// TestFailedInputIsRestarted (issue #16, item 1): an input that fails once
// the router runs is restarted, as a new instance, with backoff; the other
// inputs keep running; the failure is counted; /healthz is down until the
// input is back.
func TestFailedInputIsRestarted(t *testing.T) {
	st := &flakyState{fail: make(chan error, 1), running: make(chan int32, 4)}
	var steadyStopped atomic.Bool
	a := inputTestAgent(t, st, &steadyStopped, inputTimes{grace: time.Millisecond, retryMin: 300 * time.Millisecond, retryMax: time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, 0) }()
	if n := <-st.running; n != 1 {
		t.Fatalf("run %d", n)
	}
	time.Sleep(5 * time.Millisecond) // past the start grace
	st.fail <- errors.New("listen tcp: address lost")
	// down until the restart
	deadline := time.Now().Add(5 * time.Second)
	for a.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("/healthz stayed up with a failed input")
		}
		time.Sleep(time.Millisecond)
	}
	if v, _ := a.metrics.Value("inputs.flaky", "flaky-1", "input_up"); v != 0 {
		t.Fatalf("input_up = %v while down", v)
	}
	select {
	case n := <-st.running:
		if n != 2 {
			t.Fatalf("run %d", n)
		}
	case err := <-done:
		t.Fatalf("the router stopped: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the input was not restarted")
	}
	for deadline := time.Now().Add(5 * time.Second); !a.Healthy(); {
		if time.Now().After(deadline) {
			t.Fatal("/healthz down after the restart")
		}
		time.Sleep(time.Millisecond)
	}
	if v, _ := a.metrics.Value("inputs.flaky", "flaky-1", "input_failures_total"); v != 1 {
		t.Fatalf("input_failures_total = %v", v)
	}
	if steadyStopped.Load() {
		t.Fatal("the other input was stopped")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if !steadyStopped.Load() {
		t.Fatal("the other input did not stop at shutdown")
	}
}

// TestInputFailingAtStartStopsRouter: at start, an input that fails at once
// (a port in use) stops the router with its error, as before.
func TestInputFailingAtStartStopsRouter(t *testing.T) {
	st := &flakyState{fail: make(chan error, 1), running: make(chan int32, 4)}
	st.fail <- errors.New("listen tcp :2003: address already in use")
	var steadyStopped atomic.Bool
	a := inputTestAgent(t, st, &steadyStopped, inputTimes{grace: time.Minute, retryMin: time.Millisecond, retryMax: time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- a.run(t.Context(), 0) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the router did not stop")
	}
	if st.runs.Load() != 1 {
		t.Fatalf("%d runs: an input failing at start was restarted", st.runs.Load())
	}
}
