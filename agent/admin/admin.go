// Package admin serves the router's administration endpoints that [agent]
// enables: stats_addr (/metrics, /healthz, GET /api/destinations and, with
// pprof, /debug/pprof/), api_addr (Polymur's destination API: line commands
// and HTTP /api/destinations), management_addr (the StatsD proxies'
// management commands) and runstats_addr (Polymur's runtime statistics).
// It reads and changes the running router through Router.
package admin

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/metrics"
)

// Router is what the administration endpoints read and change of a running
// router (package agent implements it).
type Router interface {
	// Healthy reports whether every input runs and every top-level
	// output has a healthy destination.
	Healthy() bool
	// Config returns the configuration that runs.
	Config() *config.Config
	// Outputs returns the running leaf outputs (distributors' targets
	// included), in id order.
	Outputs() []OutputStatus
	// Inputs returns the running inputs, in id order.
	Inputs() []InputStatus
	// DistributorIDs returns the ids of the top-level distributors.
	DistributorIDs() []string
	// Destinations returns the destinations of the top-level distributor
	// id, as written ("host:port[:instance]"), in ring order; an error
	// wrapping ErrNoSuchOutput if there is no such distributor.
	Destinations(id string) ([]string, error)
	// SetDestinations gives the top-level distributor id these
	// destinations, until the next reload.
	SetDestinations(id string, dests []string) error
}

// OutputStatus is a leaf output as the management interface and the
// destination API show it.
type OutputStatus struct {
	ID      string
	Spec    string // the destination as written, or ""
	Healthy bool
	Sent    uint64
	Dropped uint64
	Queued  int
}

// InputStatus is an input as the management interface shows it.
type InputStatus struct {
	ID       string
	Received uint64 // metrics emitted into the pipeline
}

// ErrNoSuchOutput is returned for an unknown output id or one that does not
// distribute (it has no destinations to change).
var ErrNoSuchOutput = errors.New("no distributing output with that id")

// Start starts the control and statistics servers cfg enables, for router
// r, and returns what stops them. reg holds the self-metrics /metrics
// serves (control_refused_total is added to it).
func Start(cfg config.Agent, r Router, reg *metrics.Registry, log zerolog.Logger) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	ctl, err := newControl(cfg, reg.Scope("agent", "agent").Counter("control_refused_total",
		"Requests to api_addr or management_addr refused: no or bad token, foreign Host, cross-site."), log)
	if err != nil {
		return nil, err
	}
	// draining is set by the management command "health down": /healthz
	// and "health" then report down, so load balancers move traffic away.
	draining := new(atomic.Bool)
	started := time.Now() // management's uptime and runstats' start-time
	if addr := cfg.ManagementAddr; addr != "" {
		ms, err := startManagement(addr, &management{r: r, ctl: ctl, draining: draining, started: started, log: log})
		if err != nil {
			return nil, err
		}
		stops = append(stops, ms.close)
	}
	dapi := newDestAPI(r, log)
	if addr := cfg.APIAddr; addr != "" {
		ds, err := startAPI(addr, dapi, ctl, log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, ds.close)
	}
	if addr := cfg.StatsAddr; addr != "" {
		healthy := func() bool { return !draining.Load() && r.Healthy() }
		ss, err := startStatsServer(addr, reg, healthy, cfg.Pprof, dapi.handleReadOnly, log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, ss.close)
	}
	if addr := cfg.RunstatsAddr; addr != "" {
		rs, err := startRunstats(addr, started, log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, rs.close)
	}
	return stop, nil
}
