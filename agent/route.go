package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// routeMode prints where metrics would go, like carbon-c-relay's test mode,
// without opening any socket. name "-" reads names from in, one per line;
// asJSON prints one JSON object per line read (see routeJSON).
func routeMode(a *Agent, name string, asJSON bool, in io.Reader, out io.Writer) error {
	cfg, outs := a.file, a.initial.pipe.outs
	w := bufio.NewWriter(out)
	defer w.Flush()
	pl, err := routePlacers(a)
	if err != nil {
		return err
	}
	if asJSON || cfg.Chain != nil {
		return routeRules(a, pl, name, asJSON, in, w)
	}
	if name != "-" {
		m := routeMetric(name)
		for i, o := range cfg.Outputs {
			if len(cfg.Outputs) > 1 {
				fmt.Fprintf(w, "# outputs.%s %s\n", o.Name, o.ID)
			}
			dests := routeSpecs(outs[i], &m)
			if p := pl[o.ID]; p != nil {
				dests = []string{p.Place(&m)}
			}
			if len(dests) == 0 {
				fmt.Fprintf(w, "# outputs.%s %s has no network destination\n", o.Name, o.ID)
			}
			for _, d := range dests {
				fmt.Fprintln(w, d)
			}
		}
		return nil
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n := strings.TrimRight(sc.Text(), "\r")
		if n == "" {
			continue
		}
		m := routeMetric(n)
		var dests []string
		for i, o := range outs {
			if p := pl[cfg.Outputs[i].ID]; p != nil {
				dests = append(dests, p.Place(&m))
				continue
			}
			dests = append(dests, routeSpecs(o, &m)...)
		}
		fmt.Fprintf(w, "%s -> %s\n", n, strings.Join(dests, " "))
	}
	return sc.Err()
}

// routePlacers returns, by output id, an initialised value of each output
// that places metrics itself (registry.Placer): its answer is the metric's
// destination. Init opens nothing.
func routePlacers(a *Agent) (map[string]registry.Placer, error) {
	pl := map[string]registry.Placer{}
	for _, oi := range a.file.Outputs {
		if _, ok := oi.Plugin.(registry.Placer); !ok {
			continue
		}
		v, err := a.initFresh(a.file, oi)
		if err != nil {
			return nil, err
		}
		pl[oi.ID] = v.(registry.Placer)
	}
	return pl, nil
}

// routeMetric is a metric whose path (the hash key of every protocol) is name.
func routeMetric(name string) metric.Metric {
	return metric.NewGraphite(name, 0, time.Unix(0, 0))
}

// routeSpecs returns the destinations of m under output node n, primary
// first, as written in the configuration. Every target is considered
// healthy.
func routeSpecs(n node, m *metric.Metric) []string {
	switch n := n.(type) {
	case *peerNode:
		return routeSpecs(n.node, m)
	case *selNode:
		if !n.sel.PassMetric(m) {
			return nil
		}
		return routeSpecs(n.node, m)
	case *runner.Runner:
		if n.Spec != "" {
			return []string{n.Spec}
		}
		return nil
	case *keyedNode:
		var key metric.Metric
		var arena []byte
		keyMetric(&key, &arena, n.k, m.Path())
		return routeSpecs(n.distNode, &key)
	case *distNode:
		if len(n.targets) == 0 {
			return nil // destinations come from a catalog at start
		}
		up := make([]bool, len(n.targets))
		for i := range up {
			up[i] = true
		}
		var idx []int
		if n.fanout {
			for i := range n.targets {
				idx = append(idx, i)
			}
		} else {
			idx = n.d.Route(m, up, nil)
		}
		var out []string
		for _, i := range idx {
			out = append(out, routeSpecs(n.targets[i], m)...)
		}
		return out
	}
	return nil
}

// routeSend is one destination of a metric in -route -json.
type routeSend struct {
	Output string `json:"output"`
	Dest   string `json:"dest"`
	Name   string `json:"name"`
}

// routeResult is what -route -json prints per line read.
type routeResult struct {
	Metric  string      `json:"metric"`
	Sends   []routeSend `json:"sends"`
	Dropped string      `json:"dropped"`
	// Aggregates are the series the metric feeds (aggregate rules), by the
	// names they produce; absent when none.
	Aggregates []string `json:"aggregates,omitempty"`
}

// routeRules is the route mode of a file with rules, and -json for any file.
// A line read is a bare name or a Graphite line "name value timestamp" (so
// that validate expressions see the value).
func routeRules(a *Agent, pl map[string]registry.Placer, name string, asJSON bool, in io.Reader, w *bufio.Writer) error {
	p := a.initial.pipe
	one := func(text string) (routeResult, *rules.Trace, error) {
		m, err := routeLine(text)
		if err != nil {
			return routeResult{}, nil, err
		}
		res := routeResult{Metric: string(m.Path()), Sends: []routeSend{}}
		var tr *rules.Trace
		type target struct {
			id string
			n  node
			m  metric.Metric
		}
		var targets []target
		if p.chain != nil {
			tr = p.chain.Explain(m)
			for _, s := range tr.Sends {
				targets = append(targets, target{s.Output, p.slots[s.Slot], s.Metric})
			}
			res.Dropped = tr.Dropped
			res.Aggregates = tr.Aggregates
		} else {
			for i, o := range a.file.Outputs {
				targets = append(targets, target{o.ID, p.outs[i], m})
			}
		}
		for _, t := range targets {
			if sn, ok := t.n.(*selNode); ok && !sn.sel.PassMetric(&t.m) {
				continue // the output's namepass / namedrop keep it out
			}
			dests := routeSpecs(t.n, &t.m)
			if oi := a.file.Output(t.id); oi != nil {
				if dl, ok := oi.Plugin.(registry.DestinationLister); ok {
					dests = dl.Destinations() // a file output with several files
				}
			}
			if p := pl[t.id]; p != nil {
				dests = []string{p.Place(&t.m)}
			}
			if len(dests) == 0 {
				dests = []string{""}
			}
			for _, d := range dests {
				res.Sends = append(res.Sends, routeSend{Output: t.id, Dest: hostPort(d), Name: string(t.m.Path())})
			}
		}
		return res, tr, nil
	}
	print := func(text string) error {
		res, tr, err := one(text)
		if err != nil {
			if !asJSON {
				return err
			}
			res = routeResult{Metric: text, Sends: []routeSend{}, Dropped: "invalid"}
		}
		switch {
		case asJSON:
			b, _ := json.Marshal(res)
			w.Write(b)
			w.WriteByte('\n')
		case name != "-":
			if tr != nil {
				w.WriteString(tr.String())
			}
			for _, s := range res.Sends {
				fmt.Fprintf(w, "%s %s %s\n", s.Output, s.Dest, s.Name)
			}
		default:
			var dests []string
			for _, s := range res.Sends {
				if s.Dest != "" {
					dests = append(dests, s.Dest)
				}
			}
			fmt.Fprintf(w, "%s -> %s\n", res.Metric, strings.Join(dests, " "))
		}
		return nil
	}
	if name != "-" {
		return print(name)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(t) == "" {
			continue
		}
		if err := print(t); err != nil {
			return err
		}
	}
	return sc.Err()
}

// routeLine reads a bare name or a Graphite line.
func routeLine(text string) (metric.Metric, error) {
	if !strings.ContainsAny(text, " \t") {
		return routeMetric(text), nil
	}
	var m metric.Metric
	if err := graphite.Parse([]byte(text), &m); err != nil {
		return m, fmt.Errorf("%q: %w", text, err)
	}
	return m, nil
}

// hostPort drops the carbon instance of a "host:port:instance" destination;
// anything else (a file's path) is returned as is.
func hostPort(spec string) string {
	host, port, _, err := config.ParseDestination(spec)
	if err != nil || strings.HasPrefix(spec, "/") {
		return spec
	}
	return net.JoinHostPort(host, port)
}
