// Package agent loads a configuration, wires inputs, processors and outputs,
// runs them and shuts them down without losing what was accepted.
//
// Wiring: every input gets an Emitter. Emit runs the processors (in file
// order) and hands the batch to each top-level output in the caller's
// goroutine: to a runner's bounded queue, or to a distributor that splits it
// over its targets' runners. A runner writes its queue with its own goroutine,
// reconnecting and retrying with backoff. So a batch is queued in every
// output's buffer when Emit returns, which is when a gateway may acknowledge.
//
// Shutdown: inputs stop reading and emit what they read; runners then drain
// their queues until empty or until [agent] shutdown_timeout; the summary
// log says what each output wrote, dropped and left. Run exits non-zero if
// anything was left.
package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/registry"
)

// Agent is a running configuration.
type Agent struct {
	cfg     *Config
	log     zerolog.Logger
	stats   *stats
	pipe    atomic.Pointer[pipeline]
	runners []*runner
	inputs  []*inputRun
	stopNow chan struct{}
	fatal   chan error // an output that cannot go on (registry.ErrFatal)
	started time.Time
	// draining is set by the management command "health down": /healthz and
	// "health" then report down, so load balancers move traffic away.
	draining atomic.Bool
}

type inputRun struct {
	inst *instance
	in   registry.Input
	em   *emitter
	log  zerolog.Logger
}

// New builds an agent from a loaded configuration: it creates every plugin's
// Env, calls Init, and wires the runners. It opens nothing.
func New(cfg *Config, log zerolog.Logger) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, stats: newStats(), stopNow: make(chan struct{}), fatal: make(chan error, 1)}
	p := &pipeline{}
	for _, pi := range cfg.Processors {
		if err := a.initPlugin(pi); err != nil {
			return nil, err
		}
		p.procs = append(p.procs, pi.Plugin.(registry.Processor))
	}
	for _, oi := range cfg.Outputs {
		n, err := a.buildOutput(oi)
		if err != nil {
			return nil, err
		}
		p.outs = append(p.outs, n)
	}
	a.pipe.Store(p)
	for _, ii := range cfg.Inputs {
		if err := a.initPlugin(ii); err != nil {
			return nil, err
		}
		m := a.stats.forInstance("inputs."+ii.Name, ii.ID)
		a.inputs = append(a.inputs, &inputRun{
			inst: ii,
			in:   ii.Plugin.(registry.Input),
			em:   &emitter{p: &a.pipe, received: m.Counter("received_total", "Metrics this input emitted into the pipeline.")},
			log:  a.pluginLog(ii),
		})
	}
	return a, nil
}

func (a *Agent) pluginLog(in *instance) zerolog.Logger {
	l := a.log.With().Str("plugin", string(in.Kind)+"."+in.Name).Str("id", in.ID).Logger()
	lvl := in.In.LogLevel
	if in.Kind == registry.Outputs {
		lvl = in.Out.LogLevel
	}
	if lvl != "" {
		if v, err := zerolog.ParseLevel(lvl); err == nil {
			l = l.Level(v)
		}
	}
	return l
}

func (a *Agent) initPlugin(in *instance) error {
	if ini, ok := in.Plugin.(registry.Initializer); ok {
		env := registry.Env{
			ID:      in.ID,
			Plugin:  string(in.Kind) + "." + in.Name,
			Log:     a.pluginLog(in),
			Metrics: a.stats.forInstance(string(in.Kind)+"."+in.Name, in.ID),
		}
		if err := ini.Init(env); err != nil {
			return &configError{file: a.cfg.File, line: in.Line, table: in.Table, msg: err.Error()}
		}
	}
	return nil
}

func (a *Agent) buildOutput(oi *instance) (node, error) {
	// workers > 1: copies of the decoded configuration, made before Init
	var copies []any
	if _, isDist := oi.Plugin.(registry.Distributor); !isDist {
		for i := 1; i < oi.Out.Workers; i++ {
			copies = append(copies, clonePlugin(oi.Plugin))
		}
	}
	if err := a.initPlugin(oi); err != nil {
		return nil, err
	}
	outs := []registry.Output{}
	if o, ok := oi.Plugin.(registry.Output); ok {
		outs = append(outs, o)
	}
	for _, c := range copies {
		ci := *oi
		ci.Plugin = c
		if err := a.initPlugin(&ci); err != nil {
			return nil, err
		}
		outs = append(outs, c.(registry.Output))
	}
	if d, ok := oi.Plugin.(registry.Distributor); ok {
		m := a.stats.forInstance("outputs."+oi.Name, oi.ID)
		dn := &distNode{
			d:      d,
			routed: m.Counter("routed_total", "Metrics routed to at least one target."),
			unrout: m.Counter("unroutable_total", "Metrics no target was found for (counted, not queued)."),
		}
		if f, ok := oi.Plugin.(registry.Fanout); ok && f.Fanout() {
			dn.fanout = true
		}
		be, _ := oi.Plugin.(registry.BestEffort)
		for i, t := range oi.Targets {
			if be != nil && be.BestEffort(i) {
				t.Out.Overflow = "drop_oldest"
			}
			n, err := a.buildOutput(t)
			if err != nil {
				return nil, err
			}
			dn.targets = append(dn.targets, n)
		}
		return dn, nil
	}
	o := oi.Out
	r := newRunner(oi.ID, outs, runnerConfig{
		BufferLimit:   o.BufferLimit,
		BatchSize:     o.BatchSize,
		FlushInterval: o.FlushInterval.D(),
		Block:         o.Overflow == "block",
		RetryInitial:  o.RetryInitial.D(),
		RetryMax:      o.RetryMax.D(),
		WriteTimeout:  o.WriteTimeout.D(),
	}, a.pluginLog(oi), a.stats.forInstance("outputs."+oi.Name, oi.ID))
	r.stopNow = a.stopNow
	r.onFatal = a.fatalf
	r.spec = oi.Target.Spec
	if r.spec == "" {
		r.spec, _ = addressOf(oi.Plugin)
	}
	a.runners = append(a.runners, r)
	return r, nil
}

// Summary is what Run reports per output at exit.
type Summary struct {
	ID                             string
	Sent, Dropped, Rejected, Left  uint64
	Refused                        uint64
	InputsReceived, OutputsOffered uint64
}

// Run starts everything and blocks until ctx is cancelled (SIGINT/SIGTERM)
// or an input fails. It then shuts down in order and returns an error if
// an input failed or anything was left unsent.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	if addr := a.cfg.Agent.ManagementAddr; addr != "" {
		ms, err := startManagement(addr, a)
		if err != nil {
			return err
		}
		defer ms.close()
	}
	var ss *statsServer
	if addr := a.cfg.Agent.StatsAddr; addr != "" {
		var err error
		ss, err = startStatsServer(addr, a.stats, a.healthy, a.cfg.Agent.Pprof, a.log)
		if err != nil {
			return err
		}
		defer ss.close()
	}
	// Runners first, so that nothing is accepted before it has somewhere to go.
	rctx, cancelRunners := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRunners()
	var rwg sync.WaitGroup
	for _, r := range a.runners {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r.run(rctx)
		}()
	}
	ictx, cancelInputs := context.WithCancel(ctx)
	defer cancelInputs()
	var iwg sync.WaitGroup
	inputErr := make(chan error, len(a.inputs))
	for _, ir := range a.inputs {
		iwg.Add(1)
		go func() {
			defer iwg.Done()
			if err := ir.in.Run(ictx, ir.em); err != nil && !errors.Is(err, context.Canceled) {
				ir.log.Error().Err(err).Msg("input failed")
				inputErr <- fmt.Errorf("%s: %w", ir.inst.label(), err)
			}
		}()
	}
	a.log.Info().Int("inputs", len(a.inputs)).Int("outputs", len(a.runners)).Str("config", a.cfg.File).Msg("router started")

	var failed error
	select {
	case <-ctx.Done():
		a.log.Info().Msg("shutting down: stop reading, drain queues")
	case failed = <-inputErr:
		a.log.Error().Err(failed).Msg("shutting down after input failure")
	case failed = <-a.fatal:
		a.log.Error().Err(failed).Msg("shutting down: an output cannot go on")
	}
	start := time.Now()
	refusedBefore := a.refusedTotal()
	hard := time.AfterFunc(a.cfg.Agent.ShutdownTimeout.D(), func() {
		a.log.Warn().Dur("shutdown_timeout", a.cfg.Agent.ShutdownTimeout.D()).Msg("shutdown timeout reached: giving up on what is left")
		close(a.stopNow)
		cancelRunners()
	})
	defer hard.Stop()
	cancelInputs()
	iwg.Wait()
	for _, r := range a.runners {
		r.close()
	}
	rwg.Wait()
	for _, ir := range a.inputs {
		a.log.Info().Str("plugin", "inputs."+ir.inst.Name).Str("id", ir.inst.ID).Uint64("received", ir.em.received.Load()).Msg("input summary")
	}
	var left uint64
	for _, r := range a.runners {
		l := uint64(r.left.Load())
		left += l
		a.log.Info().Str("id", r.id).Uint64("sent", r.sent.Load()).Uint64("dropped", r.dropped.Load()).
			Uint64("rejected", r.rejected.Load()).Uint64("left", l).Msg("output summary")
	}
	refused := a.refusedTotal() - refusedBefore
	a.log.Info().Dur("elapsed", time.Since(start)).Uint64("left", left).Uint64("refused", refused).Msg("router stopped")
	if failed == nil {
		select {
		case failed = <-inputErr:
		default:
		}
	}
	if failed != nil {
		return failed
	}
	if left > 0 || refused > 0 {
		return fmt.Errorf("shutdown left %d metrics unsent and refused %d", left, refused)
	}
	return nil
}

func (a *Agent) refusedTotal() uint64 {
	var n uint64
	for _, r := range a.runners {
		n += r.refused.Load()
	}
	return n
}

// fatalf makes Run shut down with err (the first one wins).
func (a *Agent) fatalf(err error) {
	select {
	case a.fatal <- err:
	default:
	}
}

// clonePlugin copies a decoded plugin value (a pointer to a struct).
func clonePlugin(p any) any {
	v := reflect.ValueOf(p).Elem()
	c := reflect.New(v.Type())
	c.Elem().Set(v)
	return c.Interface()
}

// healthy is /healthz: not draining, and every top-level output has a
// healthy destination.
func (a *Agent) healthy() bool {
	if a.draining.Load() {
		return false
	}
	for _, o := range a.pipe.Load().outs {
		if !o.healthy() {
			return false
		}
	}
	return true
}

// Stats returns the value of a self-metric (e.g. "sent_total") of a plugin
// instance, for tests and tools.
func (a *Agent) Stats(plugin, id, name string) (float64, bool) {
	return a.stats.get(plugin, id, name)
}
