// Package agent loads a configuration, wires inputs, processors and outputs,
// runs them and shuts them down without losing what was accepted.
//
// Wiring: every input gets an Emitter. Emit runs the processors (in file
// order) and hands the batch to each top-level output in the caller's
// goroutine: to a runner's bounded buffer, or to a distributor that splits
// it over its targets' runners. A runner writes its buffer with its own
// goroutines, reconnecting and retrying with backoff. So a batch is queued
// in every output's buffer when Emit returns, which is when a gateway may
// acknowledge.
//
// Changes of the topology (reload, the destination API, service
// discovery) update one layer of the desired state and reconcile it with
// what runs, by id (see reconcile.go).
//
// Around it: agent/config loads the file, agent/runner runs each output
// (buffer, batches, retries, spool), and agent/admin serves stats_addr,
// api_addr, management_addr and runstats_addr, reading and changing the
// agent through admin.Router.
//
// Shutdown: inputs stop reading and emit what they read; runners then drain
// their buffers until empty or until [agent] shutdown_timeout; the summary
// log says what each output wrote, dropped and left. Run exits non-zero if
// anything was left.
package agent

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/admin"
	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/metrics"
	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/registry"
)

// Agent is a running configuration.
type Agent struct {
	log     zerolog.Logger
	metrics *metrics.Registry
	pipe    atomic.Pointer[pipeline]
	stopNow chan struct{}
	invalid invalidLog // validate else = "log"
	fatal   chan error // an output that cannot go on (registry.ErrFatal)
	// aggsRetiring: final flushes of aggregators a reload removed, still
	// to come (shutdown waits for them before the outputs close)
	aggsRetiring sync.WaitGroup

	reg      *registry.Registry
	inTimes  inputTimes
	reloadCh chan struct{}
	budget   *runner.Budget // [agent] max_buffered_bytes, shared by all runners

	// applyMu serialises changes: one reconcile at a time. It guards the
	// layers of the desired state and the initial plan.
	applyMu sync.Mutex
	file    *config.Config      // the configuration file
	apiDest map[string][]string // destination API overlay, by distributor id (until the next reload)
	found   map[string][]string // service-catalog overlay, by distributor id
	initial *plan               // prepared by New, committed by run
	running bool                // run has committed: changes apply at once

	mu      sync.Mutex     // guards what reconcile changes, for readers
	cfg     *config.Config // the desired state that runs
	st      state
	retired map[string][]*runner.Runner // removed outputs still draining, by id

	rctx     context.Context // runners' context: ends at the hard deadline
	ictx     context.Context // inputs' context: ends at shutdown
	inputErr chan error

	aggs aggStates // aggregate rules' state, across reloads
}

// New builds an agent from a loaded configuration: it makes and
// initialises every plugin (and opens spools), but starts nothing.
func New(cfg *config.Config, log zerolog.Logger) (*Agent, error) {
	a := &Agent{log: log, metrics: metrics.New(), stopNow: make(chan struct{}), fatal: make(chan error, 1),
		reloadCh: make(chan struct{}, 1), inputErr: make(chan error, 64), retired: map[string][]*runner.Runner{},
		inTimes: inputTimes{inputStartGrace, inputRetryMin, inputRetryMax},
		file:    cfg, apiDest: map[string][]string{}, found: map[string][]string{}}
	if max := cfg.Agent.MaxBufferedBytes; max > 0 {
		a.budget = &runner.Budget{Max: max}
		a.metrics.Scope("agent", "agent").Gauge("buffered_bytes", "Bytes all outputs hold in memory (bounded by max_buffered_bytes).",
			func() float64 { return float64(a.budget.Used()) })
	}
	p, err := a.prepare(cfg)
	if err != nil {
		return nil, err
	}
	a.initial, a.cfg = p, cfg
	return a, nil
}

// ParseConfig is config.Parse: it loads a configuration from text with the
// plugins of reg; lookup resolves ${VAR}. With New (which calls every
// plugin's Init), it is how plugin tests run a configuration through the
// real loader.
func ParseConfig(reg *registry.Registry, file, text string, lookup func(string) (string, bool)) (*config.Config, error) {
	return config.Parse(reg, file, text, lookup)
}

// ExpandEnv is config.ExpandEnv, for tools that read a configuration file:
// ${VAR} and ${VAR:-default} expanded as the loader does.
func ExpandEnv(text string, lookup func(string) (string, bool)) (string, error) {
	return config.ExpandEnv(text, lookup)
}

func (a *Agent) pluginLog(in *config.Instance) zerolog.Logger {
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

// initPlugin calls v's Init with the Env of instance in.
func (a *Agent) initPlugin(cfg *config.Config, in *config.Instance, v any) error {
	if ini, ok := v.(registry.Initializer); ok {
		env := registry.Env{
			ID:      in.ID,
			Plugin:  string(in.Kind) + "." + in.Name,
			Log:     a.pluginLog(in),
			Metrics: a.metrics.Scope(string(in.Kind)+"."+in.Name, in.ID),
		}
		if err := ini.Init(env); err != nil {
			return cfg.ErrorAt(in, err.Error())
		}
	}
	return nil
}

// requestReload asks a running agent to reload its configuration file
// (what SIGHUP does). It returns at once; the outcome is logged.
func (a *Agent) requestReload() {
	select {
	case a.reloadCh <- struct{}{}:
	default:
	}
}

// run starts everything and blocks until ctx is cancelled (SIGINT/SIGTERM)
// or an input fails. It then shuts down in order and returns an error if
// an input failed or anything was left unsent. With a watch interval (0 =
// none) the configuration file is polled that often and reloaded when it
// changes.
func (a *Agent) run(ctx context.Context, watch time.Duration) error {
	cfg := a.Config()
	stopAdmin, err := admin.Start(cfg.Agent, a, a.metrics, a.log)
	if err != nil {
		a.initial.abort(a)
		return err
	}
	defer stopAdmin()
	rctx, cancelRunners := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRunners()
	ictx, cancelInputs := context.WithCancel(ctx)
	defer cancelInputs()
	a.rctx, a.ictx = rctx, ictx
	// Destinations from service catalogs before anything is read.
	if err := a.startDiscovery(ictx); err != nil {
		a.initial.abort(a)
		return err
	}
	if err := a.begin(); err != nil {
		return err
	}
	a.startAggregates()
	var selfDone chan struct{}
	if every := cfg.Agent.MetricsFlush.D(); every > 0 {
		m := a.metrics.Scope("agent", "self_metrics")
		sm := &selfMetrics{reg: a.metrics, prefix: expandPrefix(cfg.Agent.MetricsPrefix), every: every, log: a.log,
			em: &emitter{p: &a.pipe, self: true, received: m.Counter("received_total", "Self-metrics emitted into the pipeline.")}}
		selfDone = make(chan struct{})
		go func() {
			defer close(selfDone)
			sm.run(ictx)
		}()
	}
	a.mu.Lock()
	nIn, nDest := len(a.st.inputs), len(a.st.outs)
	a.mu.Unlock()
	// counted as -check counts: tables, then what the outputs send to
	a.log.Info().Int("inputs", nIn).Int("processors", len(cfg.Processors)).Int("aggregators", len(cfg.Aggregators)).Int("outputs", len(cfg.Outputs)).
		Int("destinations", nDest).Int("rules", len(cfg.Rules)).Str("config", cfg.File).Msg("router started")

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
		case <-watchC:
			st, err := os.Stat(cfg.File)
			if err == nil && (lastStat == nil || !st.ModTime().Equal(lastStat.ModTime()) || st.Size() != lastStat.Size()) {
				lastStat = st
				a.log.Info().Msg("configuration file changed")
				a.reload()
			}
		}
	}
	return a.shutdown(cfg, cancelInputs, cancelRunners, selfDone, failed)
}

// begin commits the initial plan (prepared again if a catalog changed the
// destinations meanwhile) and starts the inputs; an input that fails at
// once stops the router.
func (a *Agent) begin() error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	p := a.initial
	a.initial = nil
	if len(a.found) > 0 {
		p.abort(a)
		desired, err := a.desired()
		if err != nil {
			return err
		}
		if p, err = a.prepare(desired); err != nil {
			return err
		}
	}
	p.atStart = true
	a.commit(p, "start", time.Now())
	a.running = true
	return nil
}

// shutdown stops the inputs, drains the runners until the hard deadline and
// reports what each output did.
func (a *Agent) shutdown(cfg *config.Config, cancelInputs, cancelRunners context.CancelFunc, selfDone chan struct{}, failed error) error {
	start := time.Now()
	a.applyMu.Lock() // no change any more
	a.running = false
	a.applyMu.Unlock()
	refusedBefore := a.refusedTotal()
	hard := time.AfterFunc(cfg.Agent.ShutdownTimeout.D(), func() {
		a.log.Warn().Dur("shutdown_timeout_ms", cfg.Agent.ShutdownTimeout.D()).Msg("shutdown timeout reached: giving up on what is left")
		close(a.stopNow)
		cancelRunners()
	})
	defer hard.Stop()
	cancelInputs()
	if selfDone != nil {
		<-selfDone
	}
	a.mu.Lock()
	var inputs []*inputRun
	for _, ir := range a.st.inputs {
		inputs = append(inputs, ir)
	}
	runners := a.allRunners()
	a.mu.Unlock()
	for _, ir := range inputs {
		<-ir.done
	}
	// what the inputs read is in the aggregators and the buckets: the
	// aggregators' final flushes (which aggregate rules may take), then
	// every bucket that ended
	a.aggsRetiring.Wait()
	a.stopAggregators()
	a.stopAggregates()
	for _, r := range runners {
		r.Close()
	}
	var left uint64
	for _, r := range runners {
		l := uint64(r.Wait())
		left += l
		c := r.Counters()
		a.log.Info().Str("id", r.ID).Uint64("sent", c.Sent.Load()).Uint64("dropped", c.Dropped.Load()).
			Uint64("rejected", c.Rejected.Load()).Uint64("left", l).Msg("output summary")
	}
	for _, ir := range inputs {
		a.log.Info().Str("plugin", "inputs."+ir.inst.Name).Str("id", ir.inst.ID).Uint64("received", ir.em.received.Load()).Msg("input summary")
	}
	if p := a.pipe.Load(); p != nil && p.chain != nil {
		ch := p.chain
		a.log.Info().Int("rules", len(ch.Specs())).Uint64("unmatched", ch.Unmatched.Load()).Uint64("blackholed", ch.Blackholed.Load()).
			Uint64("validate_dropped", ch.Invalid.Load()).Msg("rules summary: metrics no rule sent anywhere")
	}
	refused := a.refusedTotal() - refusedBefore
	a.log.Info().Dur("elapsed_ms", time.Since(start)).Uint64("left", left).Uint64("refused", refused).Msg("router stopped")
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

// allRunners returns the current and the draining runners, each once, in
// id order; a.mu is held.
func (a *Agent) allRunners() []*runner.Runner {
	seen := map[*runner.Runner]bool{}
	var out []*runner.Runner
	for _, id := range sortedKeys(a.st.outs) {
		r := a.st.outs[id].r
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for _, id := range sortedKeys(a.retired) {
		for _, r := range a.retired[id] {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// reload loads the configuration file again and reconciles; on any error
// what runs stays as it is. Destination-API changes end here; catalog
// destinations stay.
func (a *Agent) reload() {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	old := a.file
	cfg, err := config.Load(a.registry(), old.File)
	if err != nil {
		a.log.Error().Err(err).Msg("reload refused: the running configuration stays")
		return
	}
	if !reflect.DeepEqual(cfg.Agent, old.Agent) {
		a.log.Warn().Msg("reload: [agent] settings take effect only at restart")
	}
	a.file, a.apiDest = cfg, map[string][]string{}
	desired, err := a.desired()
	if err == nil {
		err = a.reconcile(desired, "reload")
	}
	if err != nil {
		a.file = old
		a.log.Error().Err(err).Msg("reload refused: the running configuration stays")
	}
}

// Config returns the configuration that runs (the desired state last
// applied).
func (a *Agent) Config() *config.Config {
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
	for _, r := range a.allRunners() {
		n += r.Counters().Refused.Load()
	}
	return n
}

// fatalf makes run shut down with err (the first one wins).
func (a *Agent) fatalf(err error) {
	select {
	case a.fatal <- err:
	default:
	}
}

// Healthy is /healthz (unless the management interface drains the router):
// every input running (none waiting to be restarted after a failure), and
// every top-level output has a healthy destination.
func (a *Agent) Healthy() bool {
	a.mu.Lock()
	inputs := a.st.inputs
	a.mu.Unlock()
	for _, ir := range inputs {
		if ir.down.Load() {
			return false
		}
	}
	p := a.pipe.Load()
	if p == nil {
		return false
	}
	for _, o := range p.outs {
		if !o.Healthy() {
			return false
		}
	}
	return true
}

// Outputs returns the running leaf outputs in id order, for the
// administration endpoints.
func (a *Agent) Outputs() []admin.OutputStatus {
	a.mu.Lock()
	runners := make([]*runner.Runner, 0, len(a.st.outs))
	for _, id := range sortedKeys(a.st.outs) {
		runners = append(runners, a.st.outs[id].r)
	}
	a.mu.Unlock()
	out := make([]admin.OutputStatus, len(runners))
	for i, r := range runners {
		c := r.Counters()
		out[i] = admin.OutputStatus{ID: r.ID, Spec: r.Spec, Healthy: r.Healthy(), Sent: c.Sent.Load(), Dropped: c.Dropped.Load(), Queued: r.Len()}
	}
	return out
}

// Inputs returns the running inputs in id order, for the administration
// endpoints.
func (a *Agent) Inputs() []admin.InputStatus {
	a.mu.Lock()
	inputs := a.st.inputs
	a.mu.Unlock()
	out := make([]admin.InputStatus, 0, len(inputs))
	for _, id := range sortedKeys(inputs) {
		out = append(out, admin.InputStatus{ID: id, Received: inputs[id].em.received.Load()})
	}
	return out
}

var _ admin.Router = (*Agent)(nil)
