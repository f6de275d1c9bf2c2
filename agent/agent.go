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
// Reload (SIGHUP, -watch-config): the new file is loaded and every plugin
// initialised first; any error leaves the running pipeline untouched. Then
// outputs whose configuration is unchanged keep their runner (queue,
// connections), new ones start, the pipeline (processors, rings) is swapped
// atomically, inputs whose table is unchanged keep running (and their
// sockets), and removed outputs drain their queue before they close.
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
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/registry"
)

// Agent is a running configuration.
type Agent struct {
	log     zerolog.Logger
	stats   *stats
	pipe    atomic.Pointer[pipeline]
	stopNow chan struct{}
	fatal   chan error // an output that cannot go on (registry.ErrFatal)
	started time.Time
	// draining is set by the management command "health down": /healthz and
	// "health" then report down, so load balancers move traffic away.
	draining atomic.Bool

	reg      *registry.Registry
	inTimes  inputTimes
	ctl      *control // checks control requests; set by RunWatch
	reloadCh chan struct{}
	applyMu  sync.Mutex  // one reload or destination change at a time
	running  atomic.Bool // runners and inputs are up: changes may start more
	budget   *budget     // [agent] max_buffered_bytes, shared by all runners

	mu      sync.Mutex // guards what reload changes, for the management interface
	cfg     *Config
	runners []*runner            // current runners, configuration order
	byPrint map[string]*runner   // current runners by fingerprint
	dists   map[string]*distNode // current distributor nodes by fingerprint
	retired []*runner            // removed by a reload, draining
	inputs  []*inputRun
	// destinations from service catalogs, by distributor id
	discovered map[string][]string

	// run state
	rctx     context.Context
	rwg      sync.WaitGroup
	ictx     context.Context
	inputErr chan error
}

type inputRun struct {
	inst   *instance
	in     registry.Input
	em     *emitter
	log    zerolog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	// pristine is the plugin as decoded, before Init: a failed input is
	// restarted as a fresh copy of it (a plugin's Run is not run twice).
	pristine any
	failures *atomic.Uint64
	down     atomic.Bool // failed, waiting to be restarted
}

// Restarting a failed input (see startInput): defaults of Agent.inputTimes.
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

// generation is what a configuration builds: the pipeline and the runners
// and inputs it needs, reusing those of the running generation that did not
// change.
type generation struct {
	cfg        *Config
	pipe       *pipeline
	runners    []*runner
	byPrint    map[string]*runner
	dists      map[string]*distNode
	newRunners []*runner
	inputs     []*inputRun
	newInputs  []*inputRun
	shared     bool
}

// New builds an agent from a loaded configuration: it creates every plugin's
// Env, calls Init, and wires the runners. It opens nothing.
func New(cfg *Config, log zerolog.Logger) (*Agent, error) {
	a := &Agent{log: log, stats: newStats(), stopNow: make(chan struct{}), fatal: make(chan error, 1),
		reloadCh: make(chan struct{}, 1), byPrint: map[string]*runner{}, inputErr: make(chan error, 64),
		inTimes: inputTimes{inputStartGrace, inputRetryMin, inputRetryMax}}
	if max := cfg.Agent.MaxBufferedBytes; max > 0 {
		a.budget = &budget{max: max}
		a.stats.forInstance("agent", "agent").Gauge("buffered_bytes", "Bytes all outputs hold in memory (bounded by max_buffered_bytes).",
			func() float64 { return float64(a.budget.used.Load()) })
	}
	g, err := a.build(cfg, false)
	if err != nil {
		return nil, err
	}
	a.cfg, a.runners, a.byPrint, a.dists, a.inputs = g.cfg, g.runners, g.byPrint, g.dists, g.inputs
	a.pipe.Store(g.pipe)
	return a, nil
}

// build makes a generation for cfg. Runners and inputs of the current
// generation with the same fingerprint are reused, not re-initialised. With
// shared set, cfg shares its unchanged instances with the running
// configuration (a destination change): their plugins are in use, so the
// processors and unchanged distributors are reused, not initialised again.
func (a *Agent) build(cfg *Config, shared bool) (*generation, error) {
	g := &generation{cfg: cfg, pipe: &pipeline{}, byPrint: map[string]*runner{}, dists: map[string]*distNode{}, shared: shared}
	if shared {
		g.pipe.procs = a.pipe.Load().procs
	}
	for _, pi := range cfg.Processors {
		if shared {
			break
		}
		if err := a.initPlugin(cfg, pi); err != nil {
			return nil, err
		}
		g.pipe.procs = append(g.pipe.procs, pi.Plugin.(registry.Processor))
	}
	for _, oi := range cfg.Outputs {
		n, err := a.buildOutput(g, oi)
		if err != nil {
			return nil, err
		}
		g.pipe.outs = append(g.pipe.outs, n)
	}
	old := map[string]*inputRun{}
	for _, ir := range a.inputs {
		old[ir.inst.Fingerprint] = ir
	}
	for _, ii := range cfg.Inputs {
		if ir, ok := old[ii.Fingerprint]; ok {
			delete(old, ii.Fingerprint)
			g.inputs = append(g.inputs, ir)
			continue
		}
		pristine := clonePlugin(ii.Plugin)
		if err := a.initPlugin(cfg, ii); err != nil {
			return nil, err
		}
		m := a.stats.forInstance("inputs."+ii.Name, ii.ID)
		ir := &inputRun{
			inst:     ii,
			in:       ii.Plugin.(registry.Input),
			em:       &emitter{p: &a.pipe, received: m.Counter("received_total", "Metrics this input emitted into the pipeline.")},
			log:      a.pluginLog(ii),
			pristine: pristine,
			failures: m.Counter("input_failures_total", "Times this input stopped with an error; it is restarted with backoff."),
		}
		m.Gauge("input_up", "1 while this input runs, 0 while it waits to be restarted after a failure.", func() float64 {
			if ir.down.Load() {
				return 0
			}
			return 1
		})
		g.inputs = append(g.inputs, ir)
		g.newInputs = append(g.newInputs, ir)
	}
	return g, nil
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

func (a *Agent) initPlugin(cfg *Config, in *instance) error {
	if ini, ok := in.Plugin.(registry.Initializer); ok {
		env := registry.Env{
			ID:      in.ID,
			Plugin:  string(in.Kind) + "." + in.Name,
			Log:     a.pluginLog(in),
			Metrics: a.stats.forInstance(string(in.Kind)+"."+in.Name, in.ID),
		}
		if err := ini.Init(env); err != nil {
			return &configError{file: cfg.File, line: in.Line, table: in.Table, msg: err.Error()}
		}
	}
	return nil
}

func (a *Agent) buildOutput(g *generation, oi *instance) (node, error) {
	if d, ok := oi.Plugin.(registry.Distributor); ok {
		if dn, ok := a.dists[oi.Fingerprint]; ok && g.shared {
			// unchanged and in use: keep it with its targets
			g.dists[oi.Fingerprint] = dn
			for _, r := range dn.leaves() {
				g.runners = append(g.runners, r)
				g.byPrint[r.print] = r
			}
			return dn, nil
		}
		m := a.stats.forInstance("outputs."+oi.Name, oi.ID)
		if len(oi.Targets) == 0 {
			// targets come from a catalog at start (inputs wait for them)
			dn := &distNode{d: d, routed: m.Counter("routed_total", "Metrics routed to at least one target."),
				unrout: m.Counter("unroutable_total", "Metrics no target was found for (counted, not queued).")}
			g.dists[oi.Fingerprint] = dn
			return dn, nil
		}
		if err := a.initPlugin(g.cfg, oi); err != nil {
			return nil, err
		}
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
			n, err := a.buildOutput(g, t)
			if err != nil {
				return nil, err
			}
			dn.targets = append(dn.targets, n)
		}
		g.dists[oi.Fingerprint] = dn
		return dn, nil
	}
	if r, ok := a.byPrint[oi.Fingerprint]; ok {
		// unchanged: keep its queue, connections and counters
		g.runners = append(g.runners, r)
		g.byPrint[oi.Fingerprint] = r
		return r, nil
	}
	// workers > 1: copies of the decoded configuration, made before Init
	var copies []any
	for i := 1; i < oi.Out.Workers; i++ {
		copies = append(copies, clonePlugin(oi.Plugin))
	}
	if err := a.initPlugin(g.cfg, oi); err != nil {
		return nil, err
	}
	outs := []registry.Output{oi.Plugin.(registry.Output)}
	for _, c := range copies {
		ci := *oi
		ci.Plugin = c
		if err := a.initPlugin(g.cfg, &ci); err != nil {
			return nil, err
		}
		outs = append(outs, c.(registry.Output))
	}
	o := oi.Out
	r := newRunner(oi.ID, outs, runnerConfig{
		BufferLimit:   o.BufferLimit,
		BatchSize:     o.BatchSize,
		FlushInterval: o.FlushInterval.D(),
		FlushIdle:     o.FlushIdle.D(),
		Block:         o.Overflow == "block",
		RetryInitial:  o.RetryInitial.D(),
		RetryMax:      o.RetryMax.D(),
		WriteTimeout:  o.WriteTimeout.D(),
	}, a.pluginLog(oi), a.stats.forInstance("outputs."+oi.Name, oi.ID))
	if o.SpoolDir != "" {
		r.cfg.Spool = &spoolConfig{Dir: spoolDir(o.SpoolDir, oi.ID), MaxBytes: o.SpoolMaxBytes, Fsync: o.SpoolFsync, ReplayRate: o.SpoolReplayRate}
		r.metrics = a.stats.forInstance("outputs."+oi.Name, oi.ID)
	}
	r.stopNow = a.stopNow
	r.onFatal = a.fatalf
	r.budget = a.budget
	r.print = oi.Fingerprint
	r.spec = oi.Target.Spec
	if r.spec == "" {
		r.spec, _ = addressOf(oi.Plugin)
	}
	g.runners = append(g.runners, r)
	g.newRunners = append(g.newRunners, r)
	g.byPrint[oi.Fingerprint] = r
	return r, nil
}

// Summary is what Run reports per output at exit.
type Summary struct {
	ID                             string
	Sent, Dropped, Rejected, Left  uint64
	Refused                        uint64
	InputsReceived, OutputsOffered uint64
}

// Reload asks a running agent to reload its configuration file (what SIGHUP
// does). It returns at once; the outcome is logged.
func (a *Agent) Reload() {
	select {
	case a.reloadCh <- struct{}{}:
	default:
	}
}

// startRunner opens the runner's spool (a failure stops the router: its
// queue could not be made safe) and starts its writers.
func (a *Agent) startRunner(r *runner) {
	if c := r.cfg.Spool; c != nil && r.sp == nil {
		s, err := openSpool(r, *c, r.metrics)
		if err != nil {
			a.fatalf(fmt.Errorf("%s: spool %s: %w", r.id, c.Dir, err))
		} else {
			r.sp = s
		}
	}
	a.rwg.Add(1)
	go func() {
		defer a.rwg.Done()
		r.run(a.rctx)
	}()
}

// startInput runs an input until the agent stops it. An input that fails
// (its Run returns an error) is counted, logged and restarted as a fresh
// instance, with backoff, while every other input goes on serving; /healthz
// answers 503 meanwhile. One exception: at the router's start (atStart), an
// input that fails within inputStartGrace stops the router (exit status 1),
// so that a port in use or a bad certificate does not start half a router.
func (a *Agent) startInput(ir *inputRun, atStart bool) {
	ctx, cancel := context.WithCancel(a.ictx)
	ir.cancel, ir.done = cancel, make(chan struct{})
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
				case a.inputErr <- fmt.Errorf("%s: %w", ir.inst.label(), err):
				default:
				}
				return
			}
			if time.Since(began) > 2*times.retryMax {
				delay = times.retryMin // it had been running fine
			}
			ir.down.Store(true)
			ir.log.Error().Err(err).Dur("retry_in", delay).Msg("input failed: restarting it; the other inputs go on")
			for {
				t := time.NewTimer(delay)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				delay = min(2*delay, times.retryMax)
				in, err := a.freshInput(ir)
				if err == nil {
					ir.in = in
					break
				}
				ir.failures.Add(1)
				ir.log.Error().Err(err).Dur("retry_in", delay).Msg("input restart failed")
			}
			ir.down.Store(false)
			ir.log.Info().Msg("input restarted")
		}
	}()
}

// freshInput makes a new instance of a failed input from its configuration.
func (a *Agent) freshInput(ir *inputRun) (registry.Input, error) {
	c := *ir.inst
	c.Plugin = clonePlugin(ir.pristine)
	if err := a.initPlugin(a.config(), &c); err != nil {
		return nil, err
	}
	return c.Plugin.(registry.Input), nil
}

// Run starts everything and blocks until ctx is cancelled (SIGINT/SIGTERM)
// or an input fails. It then shuts down in order and returns an error if
// an input failed or anything was left unsent. watch > 0 polls the
// configuration file that often and reloads it when it changes.
func (a *Agent) Run(ctx context.Context) error { return a.RunWatch(ctx, 0) }

// RunWatch is Run with a configuration-file watch interval (0 = none).
func (a *Agent) RunWatch(ctx context.Context, watch time.Duration) error {
	a.started = time.Now()
	cfg := a.config()
	ctl, err := newControl(cfg.Agent, a.stats.forInstance("agent", "agent").Counter("control_refused_total",
		"Requests to api_addr or management_addr refused: no or bad token, foreign Host, cross-site."), a.log)
	if err != nil {
		return err
	}
	a.ctl = ctl
	if addr := cfg.Agent.ManagementAddr; addr != "" {
		ms, err := startManagement(addr, a)
		if err != nil {
			return err
		}
		defer ms.close()
	}
	dapi := newDestAPI(a)
	if addr := cfg.Agent.APIAddr; addr != "" {
		ds, err := startAPI(addr, dapi, a.ctl, a.log)
		if err != nil {
			return err
		}
		defer ds.close()
	}
	if addr := cfg.Agent.StatsAddr; addr != "" {
		ss, err := startStatsServer(addr, a.stats, a.healthy, cfg.Agent.Pprof, dapi.handleReadOnly, a.log)
		if err != nil {
			return err
		}
		defer ss.close()
	}
	if addr := cfg.Agent.RunstatsAddr; addr != "" {
		rs, err := startRunstats(addr, a.log)
		if err != nil {
			return err
		}
		defer rs.close()
	}
	// Runners first, so that nothing is accepted before it has somewhere to go.
	rctx, cancelRunners := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRunners()
	a.rctx = rctx
	for _, r := range a.runners {
		a.startRunner(r)
	}
	ictx, cancelInputs := context.WithCancel(ctx)
	defer cancelInputs()
	a.ictx = ictx
	a.running.Store(true)
	defer a.running.Store(false)
	// Destinations from service catalogs before anything is read.
	if err := a.startDiscovery(ictx); err != nil {
		return err
	}
	for _, ir := range a.inputs {
		a.startInput(ir, true)
	}
	var selfDone chan struct{}
	if every := cfg.Agent.MetricsFlush.D(); every > 0 {
		m := a.stats.forInstance("agent", "self_metrics")
		sm := &selfMetrics{stats: a.stats, prefix: expandPrefix(cfg.Agent.MetricsPrefix), every: every, log: a.log,
			em: &emitter{p: &a.pipe, received: m.Counter("received_total", "Self-metrics emitted into the pipeline.")}}
		selfDone = make(chan struct{})
		go func() {
			defer close(selfDone)
			sm.run(ictx)
		}()
	}
	a.log.Info().Int("inputs", len(a.inputs)).Int("outputs", len(a.runners)).Str("config", cfg.File).Msg("router started")

	var watchC <-chan time.Time
	var lastStat os.FileInfo
	if watch > 0 {
		t := time.NewTicker(watch)
		defer t.Stop()
		watchC = t.C
		lastStat, _ = os.Stat(cfg.File)
	}
	var failed error
wait:
	for {
		select {
		case <-ctx.Done():
			a.log.Info().Msg("shutting down: stop reading, drain queues")
			break wait
		case failed = <-a.inputErr:
			a.log.Error().Err(failed).Msg("shutting down after input failure")
			break wait
		case failed = <-a.fatal:
			a.log.Error().Err(failed).Msg("shutting down: an output cannot go on")
			break wait
		case <-a.reloadCh:
			a.reload()
			a.reapplyDiscovered()
		case <-watchC:
			st, err := os.Stat(a.config().File)
			if err == nil && (lastStat == nil || !st.ModTime().Equal(lastStat.ModTime()) || st.Size() != lastStat.Size()) {
				lastStat = st
				a.log.Info().Msg("configuration file changed")
				a.reload()
				a.reapplyDiscovered()
			}
		}
	}
	start := time.Now()
	refusedBefore := a.refusedTotal()
	hard := time.AfterFunc(cfg.Agent.ShutdownTimeout.D(), func() {
		a.log.Warn().Dur("shutdown_timeout", cfg.Agent.ShutdownTimeout.D()).Msg("shutdown timeout reached: giving up on what is left")
		close(a.stopNow)
		cancelRunners()
	})
	defer hard.Stop()
	cancelInputs()
	if selfDone != nil {
		<-selfDone
	}
	a.mu.Lock()
	inputs := append([]*inputRun(nil), a.inputs...)
	runners := append(append([]*runner(nil), a.runners...), a.retired...)
	a.mu.Unlock()
	for _, ir := range inputs {
		<-ir.done
	}
	for _, r := range runners {
		r.close()
	}
	a.rwg.Wait()
	for _, ir := range inputs {
		a.log.Info().Str("plugin", "inputs."+ir.inst.Name).Str("id", ir.inst.ID).Uint64("received", ir.em.received.Load()).Msg("input summary")
	}
	var left uint64
	for _, r := range runners {
		l := uint64(r.left.Load())
		left += l
		a.log.Info().Str("id", r.id).Uint64("sent", r.sent.Load()).Uint64("dropped", r.dropped.Load()).
			Uint64("rejected", r.rejected.Load()).Uint64("left", l).Msg("output summary")
	}
	refused := a.refusedTotal() - refusedBefore
	a.log.Info().Dur("elapsed", time.Since(start)).Uint64("left", left).Uint64("refused", refused).Msg("router stopped")
	if failed == nil {
		select {
		case failed = <-a.inputErr:
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

// reload loads the configuration file again and switches to it; on any
// error the running pipeline stays as it is.
func (a *Agent) reload() {
	start := time.Now()
	old := a.config()
	cfg, err := LoadConfig(a.registry(), old.File)
	if err != nil {
		a.log.Error().Err(err).Msg("reload refused: the running configuration stays")
		return
	}
	if !reflect.DeepEqual(cfg.Agent, old.Agent) {
		a.log.Warn().Msg("reload: [agent] settings take effect only at restart")
	}
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	g, err := a.build(cfg, false)
	if err != nil {
		a.log.Error().Err(err).Msg("reload refused: the running configuration stays")
		return
	}
	a.apply(g, start)
}

// apply switches the running agent to generation g; a.applyMu is held.
func (a *Agent) apply(g *generation, start time.Time) {
	cfg := g.cfg
	// New runners start before they can receive anything.
	for _, r := range g.newRunners {
		a.startRunner(r)
	}
	oldPipe := a.pipe.Load()
	a.pipe.Store(g.pipe)
	// Emits that still hold the old pipeline finish before anything it
	// feeds is closed (bounded: a blocked Emit gives up at its own ctx).
	deadline := time.Now().Add(10 * time.Second)
	for oldPipe.refs.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Inputs: stop the removed ones (they emit what they read into the new
	// pipeline), start the new ones.
	keep := map[*inputRun]bool{}
	for _, ir := range g.inputs {
		keep[ir] = true
	}
	a.mu.Lock()
	oldInputs := a.inputs
	a.mu.Unlock()
	stopped := 0
	for _, ir := range oldInputs {
		if !keep[ir] {
			ir.cancel()
			<-ir.done
			stopped++
		}
	}
	for _, ir := range g.newInputs {
		a.startInput(ir, false)
	}
	// Outputs no longer used drain their queue, then close.
	inUse := map[*runner]bool{}
	for _, r := range g.runners {
		inUse[r] = true
	}
	a.mu.Lock()
	var removed []*runner
	for _, r := range a.runners {
		if !inUse[r] {
			removed = append(removed, r)
		}
	}
	a.retired = append(a.retired, removed...)
	a.cfg, a.runners, a.byPrint, a.dists, a.inputs = cfg, g.runners, g.byPrint, g.dists, g.inputs
	a.mu.Unlock()
	for _, r := range removed {
		r.close()
	}
	a.log.Info().Dur("elapsed", time.Since(start)).
		Int("outputs_kept", len(g.runners)-len(g.newRunners)).Int("outputs_started", len(g.newRunners)).Int("outputs_removed", len(removed)).
		Int("inputs_kept", len(g.inputs)-len(g.newInputs)).Int("inputs_started", len(g.newInputs)).Int("inputs_stopped", stopped).
		Msg("configuration reloaded")
}

func (a *Agent) config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) registry() *registry.Registry {
	if a.reg != nil {
		return a.reg
	}
	return registry.Default
}

func (a *Agent) refusedTotal() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n uint64
	for _, r := range a.runners {
		n += r.refused.Load()
	}
	for _, r := range a.retired {
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

// healthy is /healthz: not draining, every input running (none waiting
// to be restarted after a failure), and every top-level output has a
// healthy destination.
func (a *Agent) healthy() bool {
	if a.draining.Load() {
		return false
	}
	a.mu.Lock()
	inputs := a.inputs
	a.mu.Unlock()
	for _, ir := range inputs {
		if ir.down.Load() {
			return false
		}
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
