package agent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/metricsrouter/router/registry"
)

// ErrNoSuchOutput is returned for an unknown output id or one that does not
// distribute (it has no destinations to change).
var ErrNoSuchOutput = errors.New("no distributing output with that id")

// Destinations returns the destinations of the top-level distributor id, as
// written ("host:port[:instance]"), in ring order.
func (a *Agent) Destinations(id string) ([]string, error) {
	oi := a.distributor(a.config(), id)
	if oi == nil {
		return nil, fmt.Errorf("%q: %w", id, ErrNoSuchOutput)
	}
	out := make([]string, len(oi.Targets))
	for i, t := range oi.Targets {
		out[i] = t.Target.Spec
	}
	return out, nil
}

// DistributorIDs returns the ids of the top-level distributors.
func (a *Agent) DistributorIDs() []string {
	var ids []string
	for _, o := range a.config().Outputs {
		if _, ok := o.Plugin.(registry.Distributor); ok {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

func (a *Agent) distributor(cfg *Config, id string) *instance {
	for _, o := range cfg.Outputs {
		if _, ok := o.Plugin.(registry.Distributor); ok && o.ID == id {
			return o
		}
	}
	return nil
}

// SetDestinations gives the top-level distributor id these destinations
// ("host:port[:instance]", in ring order), with the same effect as editing
// the file and reloading: targets that stay keep their queue and
// connection, new ones start, removed ones drain, and the ring is swapped
// atomically. The change lasts until the next reload. Used by the runtime
// destination API and by service discovery.
func (a *Agent) SetDestinations(id string, dests []string) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	if !a.running.Load() {
		return errors.New("the router is not running yet")
	}
	start := time.Now()
	cfg := a.config()
	oi := a.distributor(cfg, id)
	if oi == nil {
		return fmt.Errorf("%q: %w", id, ErrNoSuchOutput)
	}
	if len(dests) == 0 {
		return errors.New("no destinations: a distributor needs at least one")
	}
	proto := ""
	if sh, ok := oi.Plugin.(registry.Shorthand); ok {
		proto, _ = sh.Shorthand()
	}
	if proto == "" && len(oi.Targets) > 0 {
		proto = oi.Targets[0].Name
	}
	if proto == "" {
		return fmt.Errorf("%q: no protocol to build destinations with", id)
	}
	l := &loader{reg: a.registry(), file: cfg.File, count: map[string]int{}, ids: map[string]string{}}
	old := map[string]*instance{}
	for _, t := range oi.Targets {
		old[t.Target.Spec] = t
	}
	ni := *oi
	ni.Targets = nil
	for _, d := range dests {
		if t, ok := old[d]; ok {
			ni.Targets = append(ni.Targets, t) // unchanged: same runner
			continue
		}
		t, err := l.shorthandTarget(oi, proto, d)
		if err != nil {
			return err
		}
		ni.Targets = append(ni.Targets, t)
	}
	targets := make([]registry.Target, len(ni.Targets))
	for i, t := range ni.Targets {
		targets[i] = t.Target
	}
	ni.Plugin = clonePlugin(oi.Plugin)
	if ts, ok := ni.Plugin.(registry.TargetSetter); ok {
		if err := ts.SetTargets(targets); err != nil {
			return err
		}
	}
	ni.Fingerprint = fingerprint(&ni)
	nc := *cfg
	nc.Outputs = slices.Clone(cfg.Outputs)
	for i, o := range nc.Outputs {
		if o == oi {
			nc.Outputs[i] = &ni
		}
	}
	g, err := a.build(&nc, true)
	if err != nil {
		return err
	}
	a.apply(g, start)
	a.log.Info().Str("id", id).Strs("destinations", dests).Msg("destinations changed (until the next reload)")
	return nil
}
