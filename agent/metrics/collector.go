package metrics

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// collector exposes the scopes' series to client_golang. It describes
// nothing, which makes it an unchecked collector: the series it yields change
// as plugin instances come and go, and it keeps their consistency itself (one
// help and one type per name, one series per scope and name).
type collector Registry

func (*collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := (*Registry)(c)
	r.mu.RLock()
	snap := make([]sample, r.nseries+1)
	n := 0
	for _, s := range r.scopes {
		for _, se := range s.series {
			if !se.fam.ok {
				continue
			}
			x := &snap[n]
			x.desc, x.gauge, x.labels = se.fam.desc, se.fam.gauge, s.labels
			if se.counter != nil {
				x.v = float64(se.counter.Load())
			} else {
				x.read = se.gauge
			}
			n++
		}
	}
	up := r.families[uptimeName]
	r.mu.RUnlock()

	// router_uptime_seconds has no labels; it shares the family (help, type)
	// a scope would get for that name.
	x := &snap[n]
	x.desc, x.gauge, x.v = up.desc, true, time.Since(r.start).Seconds()
	n++
	for i := range snap[:n] {
		x := &snap[i]
		if x.read != nil {
			x.v, x.read = callGauge(x.read), nil
		}
		if x.gauge {
			x.g.Value = &x.v
		} else {
			x.c.Value = &x.v
		}
		ch <- x
	}
}

// sample is one series as read at a scrape. It implements prometheus.Metric
// without an allocation of its own: Collect allocates all of a scrape's
// samples at once, and Write points into the sample.
type sample struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair // shared with the Scope; never modified
	gauge  bool
	v      float64
	read   func() float64
	c      dto.Counter
	g      dto.Gauge
}

func (x *sample) Desc() *prometheus.Desc { return x.desc }

func (x *sample) Write(m *dto.Metric) error {
	m.Label = x.labels
	if x.gauge {
		m.Gauge = &x.g
	} else {
		m.Counter = &x.c
	}
	return nil
}

// gather is r.prom.Gather with the router's series labelled in today's
// order, plugin then id (client_golang sorts labels by name), and sorted by
// plugin then id within a family.
func (r *Registry) gather() ([]*dto.MetricFamily, error) {
	mfs, err := r.prom.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), Prefix) {
			continue
		}
		// One array for the family's reordered labels. The gathered label
		// slices may be shared with a Scope, so they are replaced, not
		// modified.
		buf := make([]*dto.LabelPair, 0, 2*len(mf.Metric))
		for _, m := range mf.Metric {
			if len(m.Label) == 2 && m.Label[0].GetName() == labelID && m.Label[1].GetName() == labelPlugin {
				buf = append(buf, m.Label[1], m.Label[0])
				m.Label = buf[len(buf)-2 : len(buf) : len(buf)]
			}
		}
		slices.SortStableFunc(mf.Metric, func(a, b *dto.Metric) int {
			if c := cmp.Compare(labelValue(a, labelPlugin), labelValue(b, labelPlugin)); c != 0 {
				return c
			}
			return cmp.Compare(labelValue(a, labelID), labelValue(b, labelID))
		})
	}
	return mfs, err
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
