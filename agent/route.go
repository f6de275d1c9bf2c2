package agent

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// routeMode prints where metrics would go, like carbon-c-relay's test mode,
// without opening any socket. name "-" reads names from in, one per line.
func routeMode(cfg *Config, name string, in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	if name != "-" {
		m := routeMetric(name)
		for _, o := range cfg.Outputs {
			if len(cfg.Outputs) > 1 {
				fmt.Fprintf(w, "# outputs.%s %s\n", o.Name, o.ID)
			}
			dests := routeSpecs(o, &m)
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
		for _, o := range cfg.Outputs {
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

// routeSpecs returns the destinations of m under output o, primary first, as
// written in the configuration. Every target is considered healthy.
func routeSpecs(o *instance, m *metric.Metric) []string {
	d, ok := o.Plugin.(registry.Distributor)
	if !ok {
		if o.Target.Spec != "" {
			return []string{o.Target.Spec}
		}
		if a, ok := o.Plugin.(registry.Addresser); ok {
			return []string{a.Destination()}
		}
		return nil
	}
	if len(o.Targets) == 0 {
		return nil // destinations come from a catalog at start
	}
	up := make([]bool, len(o.Targets))
	for i := range up {
		up[i] = true
	}
	var idx []int
	if f, ok := o.Plugin.(registry.Fanout); ok && f.Fanout() {
		for i := range o.Targets {
			idx = append(idx, i)
		}
	} else {
		idx = d.Route(m, up, nil)
	}
	var out []string
	for _, i := range idx {
		out = append(out, routeSpecs(o.Targets[i], m)...)
	}
	return out
}
