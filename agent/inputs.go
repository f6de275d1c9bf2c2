package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"
)

// inputRun is one running input instance.
type inputRun struct {
	inst     *config.Instance
	in       registry.Input
	em       *emitter
	log      zerolog.Logger
	cancel   context.CancelFunc
	done     chan struct{}
	failures *atomic.Uint64
	down     atomic.Bool // failed, waiting to be restarted
}

// Restarting a failed input (see startInput): defaults of Agent.inTimes.
const (
	// inputStartGrace: at the router's start, an input that fails within
	// this long of starting (a port in use, a certificate that does not
	// load) stops the router, as a broken configuration should.
	inputStartGrace = 5 * time.Second
	// inputRetryMin and inputRetryMax bound the backoff between restarts.
	inputRetryMin = time.Second
	inputRetryMax = time.Minute
)

// inputTimes are the times of startInput (tests shorten them).
type inputTimes struct{ grace, retryMin, retryMax time.Duration }

// newInputRun makes and initialises a fresh instance of input ii.
func (a *Agent) newInputRun(cfg *config.Config, ii *config.Instance) (*inputRun, error) {
	v, err := a.initFresh(cfg, ii)
	if err != nil {
		return nil, err
	}
	m := a.metrics.Scope("inputs."+ii.Name, ii.ID)
	ir := &inputRun{
		inst:     ii,
		in:       v.(registry.Input),
		em:       &emitter{p: &a.pipe, received: m.Counter("received_total", "Metrics this input emitted into the pipeline."), sel: ii.Sel},
		log:      a.pluginLog(ii),
		failures: m.Counter("input_failures_total", "Times this input stopped with an error; it is restarted with backoff."),
		done:     make(chan struct{}),
	}
	if ii.Sel != nil {
		ir.em.filtered = m.Counter("filtered_total", "Metrics namepass / namedrop / tagpass / tagdrop kept out of the pipeline.")
	}
	return ir, nil
}

// startInput runs an input until the agent stops it. An input that fails
// (its Run returns an error) is counted, logged and restarted as a fresh
// instance, with backoff, while every other input goes on serving; /healthz
// answers 503 meanwhile. One exception: at the router's start (atStart), an
// input that fails within inputStartGrace stops the router (exit status 1),
// so that a port in use or a bad certificate does not start half a router.
func (a *Agent) startInput(ir *inputRun, atStart bool) {
	a.metrics.Scope("inputs."+ir.inst.Name, ir.inst.ID).Gauge("input_up",
		"1 while this input runs, 0 while it waits to be restarted after a failure.", func() float64 {
			if ir.down.Load() {
				return 0
			}
			return 1
		})
	ctx, cancel := context.WithCancel(a.ictx)
	ir.cancel = cancel
	go func() {
		defer close(ir.done)
		times := a.inTimes
		delay := times.retryMin
		for attempt := 0; ; attempt++ {
			began := time.Now()
			err := ir.in.Run(ctx, ir.em)
			if ctx.Err() != nil {
				return // stopped by the agent
			}
			if err == nil {
				err = errors.New("input stopped without an error")
			}
			ir.failures.Add(1)
			if atStart && attempt == 0 && time.Since(began) < times.grace {
				ir.log.Error().Err(err).Msg("input failed at start")
				select {
				case a.inputErr <- fmt.Errorf("%s: %w", ir.inst.Label(), err):
				default:
				}
				return
			}
			if time.Since(began) > 2*times.retryMax {
				delay = times.retryMin // it had been running fine
			}
			ir.down.Store(true)
			ir.log.Error().Err(err).Dur("retry_in_ms", delay).Msg("input failed: restarting it; the other inputs go on")
			for {
				t := time.NewTimer(delay)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				delay = min(2*delay, times.retryMax)
				v, err := a.initFresh(a.Config(), ir.inst)
				if err == nil {
					ir.in = v.(registry.Input)
					break
				}
				ir.failures.Add(1)
				ir.log.Error().Err(err).Dur("retry_in_ms", delay).Msg("input restart failed")
			}
			ir.down.Store(false)
			ir.log.Info().Msg("input restarted")
		}
	}()
}

// stopInput stops an input and waits until it has emitted what it read.
func (a *Agent) stopInput(ir *inputRun) {
	ir.cancel()
	<-ir.done
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	return keys
}
