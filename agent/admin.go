package agent

import "github.com/metricsrouter/router/registry"

// startAdmin starts the control and statistics servers [agent] enables and
// returns what stops them.
func (a *Agent) startAdmin(cfg *Config) (stop func(), err error) {
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
	ctl, err := newControl(cfg.Agent, a.metrics.Scope("agent", "agent").Counter("control_refused_total",
		"Requests to api_addr or management_addr refused: no or bad token, foreign Host, cross-site."), a.log)
	if err != nil {
		return nil, err
	}
	a.ctl = ctl
	if addr := cfg.Agent.ManagementAddr; addr != "" {
		ms, err := startManagement(addr, a)
		if err != nil {
			return nil, err
		}
		stops = append(stops, ms.close)
	}
	dapi := newDestAPI(a)
	if addr := cfg.Agent.APIAddr; addr != "" {
		ds, err := startAPI(addr, dapi, a.ctl, a.log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, ds.close)
	}
	if addr := cfg.Agent.StatsAddr; addr != "" {
		ss, err := startStatsServer(addr, a.metrics, a.healthy, cfg.Agent.Pprof, dapi.handleReadOnly, a.log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, ss.close)
	}
	if addr := cfg.Agent.RunstatsAddr; addr != "" {
		rs, err := startRunstats(addr, a.log)
		if err != nil {
			return nil, err
		}
		stops = append(stops, rs.close)
	}
	return stop, nil
}

// outputs returns the running leaf outputs in id order, for the control
// interfaces.
func (a *Agent) outputs() []*outRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*outRun
	for _, id := range sortedKeys(a.st.outs) {
		out = append(out, a.st.outs[id])
	}
	return out
}

var _ = registry.Outputs
