package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

// The running state is reconciled against a desired state, by id. The
// desired state is plain data: the file's configuration with the
// destination overlays applied (see desired). reconcile diffs it against
// what runs:
//
//   - an output whose table is unchanged keeps running untouched;
//   - one whose table changed keeps its buffer (queue and spool belong to
//     the id) and gets new writers with new plugin instances
//     (runner.Reconfigure); only a change of where the buffer lives
//     (memory, or which spool directory) makes a new runner, and the old
//     one then drains and closes;
//   - distributors and processors are rebuilt when their table changed
//     (they hold no connections);
//   - an input whose table changed is replaced: the new instance takes
//     over the old one's sockets and client connections (netx.Hold);
//   - the pipeline is swapped once, after everything new is ready; removed
//     outputs drain once no Emit uses the old pipeline, then close.
//
// Reload, the destination API and service discovery all update a layer
// and call reconcile.

// state is what runs, by id.
type state struct {
	outs   map[string]*outRun   // leaf outputs (distributor targets included)
	dists  map[string]*distNode // distributors
	inputs map[string]*inputRun
	aggs   map[string]*aggRun // aggregators
}

// outRun is a running leaf output.
type outRun struct {
	inst  *config.Instance
	print string // fingerprint, with the overflow a distributor forces
	r     *runner.Runner
}

// plan is a prepared reconcile: everything new is initialised (and spools
// are open) but nothing is started or swapped yet.
type plan struct {
	cfg    *config.Config
	pipe   *pipeline
	st     state
	starts []*start  // runners to start (new) or reconfigure (kept buffer)
	fresh  []*outRun // runners made by this plan (closed again on abort)
	revive []*runner.Runner
	ins    []*inputRun // new input instances (replacing one with the same id, or new)
	aggs   []*aggRun   // new aggregator instances
	kept   struct{ outs, inputs, aggs int }
	// atStart: the router's first commit (an input failing at once stops it)
	atStart bool
}

type start struct {
	o     *outRun
	outs  []registry.Output
	cfg   runner.Config
	opts  runner.Options
	reuse bool // Reconfigure an existing runner
}

// reconcile makes desired run; on an error nothing changes. a.applyMu is
// held.
func (a *Agent) reconcile(desired *config.Config, why string) error {
	began := time.Now()
	p, err := a.prepare(desired)
	if err != nil {
		return err
	}
	a.commit(p, why, began)
	return nil
}

// prepare initialises what desired needs beyond what runs.
func (a *Agent) prepare(desired *config.Config) (p *plan, err error) {
	pl := &plan{cfg: desired, pipe: newPipeline(), st: state{outs: map[string]*outRun{}, dists: map[string]*distNode{}, inputs: map[string]*inputRun{}, aggs: map[string]*aggRun{}}}
	p = pl
	defer func() {
		if err != nil {
			pl.abort(a) // p itself is nil on the error returns
		}
	}()
	// every instance is prepared, so that one error does not hide the next
	var errs []error
	for _, pi := range desired.Processors {
		v, err := a.initFresh(desired, pi)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		proc := v.(registry.Processor)
		if pi.Sel != nil {
			proc = &selProc{p: proc, sel: pi.Sel}
		}
		p.pipe.procs = append(p.pipe.procs, proc)
	}
	for _, ai := range desired.Aggregators {
		r := a.st.aggs[ai.ID]
		if r != nil && r.inst.Fingerprint == ai.Fingerprint {
			p.kept.aggs++
		} else {
			var err error
			if r, err = a.newAggRun(desired, ai); err != nil {
				errs = append(errs, err)
				continue
			}
			p.aggs = append(p.aggs, r)
		}
		p.st.aggs[ai.ID] = r
		p.pipe.aggs = append(p.pipe.aggs, r)
	}
	for _, oi := range desired.Outputs {
		n, err := a.prepareOutput(p, oi, false)
		if err != nil {
			errs = append(errs, config.List(err)...)
			continue
		}
		p.pipe.outs = append(p.pipe.outs, n)
	}
	if len(errs) == 0 {
		a.wireRules(p.pipe, desired)
	}
	for _, ii := range desired.Inputs {
		if cur := a.st.inputs[ii.ID]; cur != nil && cur.inst.Fingerprint == ii.Fingerprint {
			p.st.inputs[ii.ID] = cur
			p.kept.inputs++
			continue
		}
		ir, err := a.newInputRun(desired, ii)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.st.inputs[ii.ID] = ir
		p.ins = append(p.ins, ir)
	}
	if len(errs) > 0 {
		config.SortErrors(errs)
		if len(errs) == 1 {
			return nil, errs[0]
		}
		return nil, config.Errors(errs)
	}
	return p, nil
}

// abort closes what a plan opened; revived runners go back to draining.
func (p *plan) abort(a *Agent) {
	for _, o := range p.fresh {
		o.r.Close()
		o.r.Wait()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range p.revive {
		a.retired[r.ID] = append(a.retired[r.ID], r)
		r.Close()
	}
}

// prepareOutput prepares the node of output oi (a runner or a distributor
// over its targets). bestEffort: a mirror's secondary target, which never
// pushes back.
func (a *Agent) prepareOutput(p *plan, oi *config.Instance, bestEffort bool) (node, error) {
	if _, ok := oi.Plugin.(registry.Distributor); ok {
		n, err := a.prepareDist(p, oi)
		if err != nil {
			return nil, err
		}
		return a.selWrap(oi, n), nil
	}
	print := oi.Fingerprint
	if bestEffort {
		print += "|best-effort"
	}
	cur := a.st.outs[oi.ID]
	if cur != nil && cur.print == print {
		p.st.outs[oi.ID] = cur
		p.kept.outs++
		return a.selWrap(oi, peerWrap(oi, cur.r)), nil
	}
	outs, err := a.initOutputs(p.cfg, oi)
	if err != nil {
		return nil, err
	}
	o := oi.Out
	cfg := runner.Config{
		BatchSize:     o.BatchSize,
		FlushInterval: o.FlushInterval.D(),
		FlushIdle:     o.FlushIdle.D(),
		RetryInitial:  o.RetryInitial.D(),
		RetryMax:      o.RetryMax.D(),
		WriteTimeout:  o.WriteTimeout.D(),
	}
	opts := runner.Options{Limit: o.BufferLimit, Block: o.Overflow == "block" && !bestEffort}
	if o.SpoolDir != "" {
		opts.Dir, opts.MaxBytes, opts.Fsync, opts.ReplayRate = spoolDir(o.SpoolDir, oi.ID), o.SpoolMaxBytes, o.SpoolFsync, o.SpoolReplayRate
	}
	or := &outRun{inst: oi, print: print}
	st := &start{o: or, outs: outs, cfg: cfg, opts: opts}
	switch {
	case cur != nil && cur.inst.Name == oi.Name && cur.r.Options().Dir == opts.Dir:
		// same buffer, new writers
		or.r, st.reuse = cur.r, true
	default:
		if cur == nil {
			if r := a.revive(oi.ID, opts.Dir); r != nil {
				// removed, still draining, and back: it keeps its buffer
				or.r, st.reuse = r, true
				p.revive = append(p.revive, r)
			}
		}
		if or.r == nil {
			r := runner.New("outputs."+oi.Name, oi.ID, oi.Spec(), opts, a.runnerEnv(oi))
			if a.running {
				// a change of a running router: a spool that cannot be
				// opened refuses the change (at start, commit opens it)
				if err := r.Open(); err != nil {
					return nil, fmt.Errorf("%s: spool %s: %w", oi.Label(), opts.Dir, err)
				}
			}
			or.r = r
			p.fresh = append(p.fresh, or)
		}
	}
	p.st.outs[oi.ID] = or
	p.starts = append(p.starts, st)
	return a.selWrap(oi, peerWrap(oi, or.r)), nil
}

// prepareDist prepares a distributor over its targets' nodes; it is kept
// when neither its table nor any target changed.
func (a *Agent) prepareDist(p *plan, oi *config.Instance) (node, error) {
	var spec registry.DistributorSpec
	if oi.Registered.Distributor != nil {
		spec = *oi.Registered.Distributor
	}
	targets := make([]node, len(oi.Targets))
	var errs []error
	for i, t := range oi.Targets {
		n, err := a.prepareOutput(p, t, spec.BestEffortFrom > 0 && i >= spec.BestEffortFrom)
		if err != nil {
			errs = append(errs, config.List(err)...)
			continue
		}
		targets[i] = n
	}
	if len(errs) > 0 {
		return nil, config.Errors(errs)
	}
	if cur := a.st.dists[oi.ID]; cur != nil && cur.print == oi.Fingerprint && slices.Equal(cur.targets, targets) {
		p.st.dists[oi.ID] = cur
		return cur, nil
	}
	m := a.metrics.Scope("outputs."+oi.Name, oi.ID)
	dn := &distNode{id: oi.ID, name: oi.Name, print: oi.Fingerprint, targets: targets,
		routed: m.Counter("routed_total", "Metrics routed to at least one target."),
		unrout: m.Counter("unroutable_total", "Metrics no target was found for (counted, not queued).")}
	if len(oi.Targets) > 0 {
		v, err := oi.Fresh()
		if err != nil {
			return nil, err
		}
		if ts, ok := v.(registry.TargetSetter); ok {
			if err := ts.SetTargets(oi.TargetList()); err != nil {
				return nil, &config.Error{File: p.cfg.File, Line: oi.Line, Table: oi.Table, Msg: err.Error()}
			}
		}
		if err := a.initPlugin(p.cfg, oi, v); err != nil {
			return nil, err
		}
		dn.d = v.(registry.Distributor)
		dn.fanout = spec.Fanout
	}
	p.st.dists[oi.ID] = dn
	return dn, nil
}

// initOutputs makes one fresh, initialised plugin value per worker.
func (a *Agent) initOutputs(cfg *config.Config, oi *config.Instance) ([]registry.Output, error) {
	outs := make([]registry.Output, 0, oi.Out.Workers)
	for range max(oi.Out.Workers, 1) {
		v, err := a.initFresh(cfg, oi)
		if err != nil {
			return nil, err
		}
		outs = append(outs, v.(registry.Output))
	}
	return outs, nil
}

// initFresh decodes a new plugin value of in and initialises it.
func (a *Agent) initFresh(cfg *config.Config, in *config.Instance) (any, error) {
	v, err := in.Fresh()
	if err != nil {
		return nil, &config.Error{File: cfg.File, Line: in.Line, Table: in.Table, Msg: err.Error()}
	}
	return v, a.initPlugin(cfg, in, v)
}

func (a *Agent) runnerEnv(oi *config.Instance) runner.Env {
	return runner.Env{Log: a.pluginLog(oi), Metrics: a.metrics.Scope("outputs."+oi.Name, oi.ID), Budget: a.budget, Stop: a.stopNow, OnFatal: a.fatalf}
}

// commit starts a prepared plan: runners first, then the pipeline swap,
// then inputs; removed outputs drain in the background.
func (a *Agent) commit(p *plan, why string, began time.Time) {
	restarted := 0
	for _, s := range p.starts {
		if s.reuse {
			restarted++
			if err := s.o.r.Reconfigure(a.rctx, s.outs, s.cfg, s.opts); err != nil {
				a.log.Error().Err(err).Str("id", s.o.inst.ID).Msg("output reconfigured without its new buffer options")
			}
		} else {
			if !s.o.r.Opened() {
				if err := s.o.r.Open(); err != nil {
					a.fatalf(fmt.Errorf("%s: spool %s: %w", s.o.inst.Label(), s.opts.Dir, err))
					continue
				}
			}
			s.o.r.Start(a.rctx, s.outs, s.cfg)
		}
	}
	old := a.pipe.Swap(p.pipe)
	if old != nil {
		a.dropRuleSeries(old.chain, p.pipe.chain)
	}
	for _, r := range p.aggs {
		a.startAggRun(r)
	}
	if why == "reload" {
		// certificates: new handshakes use the files as they are now
		for _, err := range registry.ReloadTLS() {
			a.log.Error().Err(err).Msg("TLS files not reloaded; the ones read before stay in use")
		}
		for id, o := range p.st.outs {
			if err := o.r.ReopenFiles(); err != nil {
				a.log.Error().Err(err).Str("id", id).Msg("files not reopened; writing on to the open ones")
			}
		}
	}
	a.mu.Lock()
	prev := a.st
	a.st, a.cfg = p.st, p.cfg
	var removed []*runner.Runner
	var aggsGone []*aggRun
	for id, r := range prev.aggs {
		if p.st.aggs[id] != r {
			aggsGone = append(aggsGone, r)
		}
	}
	for id, o := range prev.outs {
		if n := p.st.outs[id]; n == nil || n.r != o.r {
			removed = append(removed, o.r)
			a.retired[id] = append(a.retired[id], o.r)
		}
	}
	a.mu.Unlock()
	// Inputs: removed ones stop first (their sockets close, an input with
	// another id may take the address); then a replaced instance hands its
	// sockets and client connections over to its successor, under a hold.
	stopped := 0
	for id, ir := range prev.inputs {
		if p.st.inputs[id] == nil {
			a.stopInput(ir)
			a.metrics.Remove("inputs."+ir.inst.Name, id)
			stopped++
		}
	}
	hold := netx.Hold()
	for _, ir := range p.ins {
		cur := prev.inputs[ir.inst.ID]
		a.startInput(ir, p.atStart)
		if cur != nil {
			a.stopInput(cur)
			if cur.inst.Name != ir.inst.Name {
				a.metrics.Remove("inputs."+cur.inst.Name, cur.inst.ID)
			}
		}
	}
	hold.Release()
	for id, dn := range prev.dists {
		if n := p.st.dists[id]; n == nil && p.st.outs[id] == nil {
			a.metrics.Remove("outputs."+dn.name, id)
		}
	}
	if old != nil {
		a.aggsRetiring.Add(1)
		go a.retire(old, removed, aggsGone)
	}
	a.log.Info().Str("cause", why).Dur("elapsed_ms", time.Since(began)).
		Int("destinations_kept", p.kept.outs).Int("destinations_started", len(p.starts)-restarted).Int("destinations_restarted", restarted).Int("destinations_removed", len(removed)).
		Int("inputs_kept", p.kept.inputs).Int("inputs_started", len(p.ins)).Int("inputs_stopped", stopped).
		Int("aggregators_kept", p.kept.aggs).Int("aggregators_started", len(p.aggs)).Int("aggregators_stopped", len(aggsGone)).Int("rules", len(p.cfg.Rules)).
		Msg("configuration applied")
}

// retire waits until no Emit uses the old pipeline (bounded: a blocked Emit
// gives up at its own deadline), then drains and closes the removed
// runners and unregisters their metrics unless their id runs again.
func (a *Agent) retire(old *pipeline, removed []*runner.Runner, aggsGone []*aggRun) {
	t := time.NewTimer(10 * time.Second)
	select {
	case <-old.retire():
	case <-t.C:
		a.log.Warn().Msg("a sender kept the previous pipeline busy for 10s; closing its removed outputs anyway")
	}
	t.Stop()
	// what removed or changed aggregators hold goes out through the new
	// pipeline, before the removed outputs close
	for _, r := range aggsGone {
		a.finishAggRun(r)
		if cur := a.currentAgg(r.inst.ID); cur == nil || cur.inst.Name != r.inst.Name {
			a.metrics.Remove("aggregators."+r.inst.Name, r.inst.ID)
		}
	}
	a.aggsRetiring.Done()
	for _, r := range removed {
		go func() {
			a.mu.Lock()
			still := slices.Contains(a.retired[r.ID], r)
			if still {
				r.Close()
			}
			a.mu.Unlock()
			if !still {
				return // revived meanwhile
			}
			r.Wait()
			// applyMu: no reconcile between its prepare (which registers
			// a new runner's series under the same id) and its commit
			a.applyMu.Lock()
			defer a.applyMu.Unlock()
			a.mu.Lock()
			defer a.mu.Unlock()
			if !slices.Contains(a.retired[r.ID], r) {
				return // revived while it drained: it runs on
			}
			a.dropRetired(r)
			o := a.st.outs[r.ID]
			if running := o != nil && "outputs."+o.inst.Name == r.Plugin; !running {
				a.metrics.Remove(r.Plugin, r.ID)
			}
		}()
	}
}

// revive takes a removed runner of id whose buffer lives in dir off the
// retired list and makes it take batches again, if it is still draining.
func (a *Agent) revive(id, dir string) *runner.Runner {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.retired[id] {
		if r.Options().Dir == dir && r.Reopen() {
			a.dropRetired(r)
			return r
		}
	}
	return nil
}

// dropRetired removes r from a.retired; a.mu is held.
func (a *Agent) dropRetired(r *runner.Runner) {
	list := a.retired[r.ID]
	for i, x := range list {
		if x == r {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(a.retired, r.ID)
	} else {
		a.retired[r.ID] = list
	}
}

// errNotRunning: the router has not started yet (or has stopped).
var errNotRunning = errors.New("the router is not running")

// spoolDir is the directory of one output: <spool_dir>/<id>, the id made
// safe as a file name.
func spoolDir(base, id string) string {
	safe := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, id)
	return filepath.Join(base, safe)
}
