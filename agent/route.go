package agent

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/metricsrouter/router/agent/runner"
	"github.com/metricsrouter/router/plugins/metric"
)

// routeMode prints where metrics would go, like carbon-c-relay's test mode,
// without opening any socket. name "-" reads names from in, one per line.
func routeMode(a *Agent, name string, in io.Reader, out io.Writer) error {
	cfg, outs := a.file, a.initial.pipe.outs
	w := bufio.NewWriter(out)
	defer w.Flush()
	if name != "-" {
		m := routeMetric(name)
		for i, o := range cfg.Outputs {
			if len(cfg.Outputs) > 1 {
				fmt.Fprintf(w, "# outputs.%s %s\n", o.Name, o.ID)
			}
			dests := routeSpecs(outs[i], &m)
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
		for _, o := range outs {
			dests = append(dests, routeSpecs(o, &m)...)
		}
		fmt.Fprintf(w, "%s -> %s\n", n, strings.Join(dests, " "))
	}
	return sc.Err()
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
	case *runner.Runner:
		if n.Spec != "" {
			return []string{n.Spec}
		}
		return nil
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
