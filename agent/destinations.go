package agent

import (
	"errors"
	"fmt"
	"slices"

	"github.com/metricsrouter/router/registry"
)

// ErrNoSuchOutput is returned for an unknown output id or one that does not
// distribute (it has no destinations to change).
var ErrNoSuchOutput = errors.New("no distributing output with that id")

// Destinations returns the destinations of the top-level distributor id, as
// written ("host:port[:instance]"), in ring order.
func (a *Agent) Destinations(id string) ([]string, error) {
	oi := distributor(a.config(), id)
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

func distributor(cfg *Config, id string) *instance {
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
// atomically. The change lasts until the next reload (the runtime
// destination API).
func (a *Agent) SetDestinations(id string, dests []string) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	if !a.running {
		return errNotRunning
	}
	if len(dests) == 0 {
		return errors.New("no destinations: a distributor needs at least one")
	}
	if distributor(a.file, id) == nil {
		return fmt.Errorf("%q: %w", id, ErrNoSuchOutput)
	}
	prev, had := a.apiDest[id]
	a.apiDest[id] = slices.Clone(dests)
	desired, err := a.desired()
	if err == nil {
		err = a.reconcile(desired, "destination api")
	}
	if err != nil {
		if had {
			a.apiDest[id] = prev
		} else {
			delete(a.apiDest, id)
		}
		return err
	}
	a.log.Info().Str("id", id).Strs("destinations", dests).Msg("destinations changed (until the next reload)")
	return nil
}

// desired is the desired state: the file's configuration with the
// destination overlays applied (the API's over the catalog's). It is plain
// data; applyMu is held.
func (a *Agent) desired() (*Config, error) {
	c := *a.file
	c.Outputs = slices.Clone(a.file.Outputs)
	for i, oi := range c.Outputs {
		dests, ok := a.apiDest[oi.ID]
		if !ok {
			dests, ok = a.found[oi.ID]
		}
		if !ok {
			continue
		}
		ni, err := a.withDestinations(oi, dests)
		if err != nil {
			return nil, err
		}
		c.Outputs[i] = ni
	}
	return &c, nil
}

// withDestinations returns a copy of distributor oi whose targets are dests:
// a destination the file also lists keeps its table, the others are built
// as the destinations shorthand would.
func (a *Agent) withDestinations(oi *instance, dests []string) (*instance, error) {
	proto := ""
	if sh, ok := oi.Plugin.(registry.Shorthand); ok {
		proto, _ = sh.Shorthand()
	}
	if proto == "" && len(oi.Targets) > 0 {
		proto = oi.Targets[0].Name
	}
	if proto == "" {
		return nil, fmt.Errorf("%q: no protocol to build destinations with", oi.ID)
	}
	l := &loader{reg: a.registry(), file: a.file.File, count: map[string]int{}, ids: map[string]string{}}
	old := map[string]*instance{}
	for _, t := range oi.Targets {
		old[t.Target.Spec] = t
	}
	ni := *oi
	ni.Targets = nil
	for _, d := range dests {
		if t, ok := old[d]; ok {
			ni.Targets = append(ni.Targets, t)
			continue
		}
		t, err := l.shorthandTarget(oi, proto, d)
		if err != nil {
			return nil, err
		}
		ni.Targets = append(ni.Targets, t)
	}
	// a value of its own, to check the targets on (oi.Plugin is the file's)
	v, err := oi.fresh()
	if err != nil {
		return nil, err
	}
	if ts, ok := v.(registry.TargetSetter); ok {
		if err := ts.SetTargets(targetsOf(&ni)); err != nil {
			return nil, err
		}
	}
	ni.Plugin = v
	ni.Fingerprint = fingerprint(&ni)
	return &ni, nil
}
