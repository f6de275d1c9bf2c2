package agent

import (
	"errors"
	"fmt"
	"slices"

	"github.com/metricsrouter/router/agent/admin"
	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"
)

// Destinations returns the destinations of the top-level distributor id, as
// written ("host:port[:instance]"), in ring order.
func (a *Agent) Destinations(id string) ([]string, error) {
	oi := distributor(a.Config(), id)
	if oi == nil {
		return nil, fmt.Errorf("%q: %w", id, admin.ErrNoSuchOutput)
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
	for _, o := range a.Config().Outputs {
		if _, ok := o.Plugin.(registry.Distributor); ok {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

func distributor(cfg *config.Config, id string) *config.Instance {
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
		return fmt.Errorf("%q: %w", id, admin.ErrNoSuchOutput)
	}
	if err := a.setLayer(a.apiDest, id, dests, "destination api"); err != nil {
		return err
	}
	a.log.Info().Str("id", id).Strs("destinations", dests).Msg("destinations changed (until the next reload)")
	return nil
}

// setLayer sets the destinations of distributor id in layer (a.apiDest or
// a.found) and reconciles the running router, for cause; if that fails, it
// puts the layer back as it was. applyMu is held.
func (a *Agent) setLayer(layer map[string][]string, id string, dests []string, cause string) error {
	prev, had := layer[id]
	layer[id] = slices.Clone(dests)
	desired, err := a.desired()
	if err == nil {
		err = a.reconcile(desired, cause)
	}
	if err != nil {
		if had {
			layer[id] = prev
		} else {
			delete(layer, id)
		}
	}
	return err
}

// desired is the desired state: the file's configuration with the
// destination overlays applied (the API's over the catalog's). It is plain
// data; applyMu is held.
func (a *Agent) desired() (*config.Config, error) {
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
		ni, err := config.WithDestinations(a.registry(), a.file.File, oi, dests)
		if err != nil {
			return nil, err
		}
		c.Outputs[i] = ni
	}
	return &c, nil
}
