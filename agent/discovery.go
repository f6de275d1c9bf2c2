package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/metricsrouter/router/registry"
)

// startDiscovery gives every distributor configured with a service catalog
// its destinations before the inputs start, then follows the catalog in the
// background (until ctx ends). A distributor with no destinations of its
// own must get some at start, else the router does not start; one with its
// own list keeps it when the catalog cannot be reached. The catalog's
// destinations are a layer of the desired state: a reload keeps them.
func (a *Agent) startDiscovery(ctx context.Context) error {
	for _, oi := range a.Config().Outputs {
		ds, ok := oi.Plugin.(registry.DiscoverySource)
		if !ok || ds.Service() == "" {
			continue
		}
		env := registry.Env{ID: oi.ID, Plugin: "outputs." + oi.Name, Log: a.pluginLog(oi), Metrics: a.metrics.Scope("outputs."+oi.Name, oi.ID)}
		d, err := ds.Discoverer(env)
		if err != nil {
			return fmt.Errorf("%s: %w", oi.Label(), err)
		}
		id, service := oi.ID, ds.Service()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		dests, err := d.Lookup(lctx)
		cancel()
		switch {
		case err == nil && len(dests) > 0:
			if err := a.applyDiscovered(id, dests); err != nil {
				return fmt.Errorf("%s: service %s: %w", oi.Label(), service, err)
			}
		case len(oi.Targets) == 0:
			if err == nil {
				err = fmt.Errorf("no healthy instance")
			}
			return fmt.Errorf("%s: service %s: %w (and no destinations of its own)", oi.Label(), service, err)
		default:
			env.Log.Warn().Err(err).Str("service", service).Msg("catalog: keeping the configured destinations for now")
		}
		go func() {
			_ = d.Watch(ctx, func(dests []string) {
				if len(dests) == 0 {
					env.Log.Warn().Str("service", service).Msg("catalog: no healthy instance; keeping the last destinations")
					return
				}
				if err := a.applyDiscovered(id, dests); err != nil {
					env.Log.Error().Err(err).Str("service", service).Msg("catalog: destinations not applied")
				}
			})
		}()
	}
	return nil
}

// applyDiscovered sets the catalog's layer for distributor id (the latest
// news replaces an API change of the same distributor) and, once the
// router runs, reconciles.
func (a *Agent) applyDiscovered(id string, dests []string) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	prev, had := a.found[id]
	_, api := a.apiDest[id]
	if had && !api && slices.Equal(prev, dests) {
		return nil
	}
	delete(a.apiDest, id)
	if !a.running {
		a.found[id] = slices.Clone(dests)
		return nil // begin prepares with it
	}
	return a.setLayer(a.found, id, dests, "catalog")
}
