// Package metrics keeps the router's self-metrics and exposes them on
// /metrics through prometheus/client_golang and as Graphite lines for the
// self-metrics emitter.
//
// Counters are plain *atomic.Uint64 owned by the code that increments them:
// the hot path never calls into this package or client_golang. The Registry
// only keeps the pointers, and gauge closures, and reads them at scrape time
// through a custom prometheus.Collector. Every series is "router_" + name with
// the labels plugin and id, one Scope per plugin instance; Remove unregisters
// a retired instance and drops its gauge closures.
package metrics

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/metricsrouter/router/registry"
)

// Prefix starts the name of every series a Scope registers.
const Prefix = "router_"

const (
	labelPlugin = "plugin"
	labelID     = "id"
	uptimeName  = "uptime_seconds"
	uptimeHelp  = "Seconds since the router started."
)

// Registry holds the router's self-metrics, one Scope per plugin instance.
//
// One lock guards the scopes, their series and the families; it is taken when
// a series is registered or removed and, shared, to copy the list at scrape
// time. Gauge closures are called outside it, so a closure may call the
// Registry.
type Registry struct {
	mu       sync.RWMutex
	scopes   map[scopeKey]*Scope
	families map[string]*family // by name without Prefix; never shrinks
	nseries  int                // series of the registered scopes
	start    time.Time

	prom    *prometheus.Registry
	handler http.Handler
}

type scopeKey struct{ plugin, id string }

// family is what Prometheus requires to be the same for every series of one
// name: the help text and the type. The first registration of a name fixes
// its type; its help is the first non-empty help given.
type family struct {
	name  string // without Prefix
	help  string
	gauge bool
	ok    bool             // a valid Prometheus name: exported on /metrics
	desc  *prometheus.Desc // nil unless ok
}

// Scope is the registry.Metrics of one plugin instance.
type Scope struct {
	r          *Registry
	plugin, id string
	labels     []*dto.LabelPair // id, plugin (sorted by name, as client_golang wants); read-only
	series     []*series        // registration order
	index      map[string]*series
	removed    bool
}

type series struct {
	fam     *family
	counter *atomic.Uint64 // a counter, or
	gauge   func() float64 // a gauge
}

// New returns an empty Registry whose Handler also serves the Go runtime and
// process metrics of client_golang's collectors and router_uptime_seconds.
func New() *Registry {
	r := &Registry{
		scopes:   make(map[scopeKey]*Scope),
		families: make(map[string]*family),
		start:    time.Now(),
		prom:     prometheus.NewRegistry(),
	}
	// router_uptime_seconds is a gauge whatever a scope registers under that name.
	r.families[uptimeName] = newFamily(uptimeName, uptimeHelp, true)
	r.prom.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		(*collector)(r),
	)
	r.handler = promhttp.HandlerFor(prometheus.GathererFunc(r.gather), promhttp.HandlerOpts{
		// A series Prometheus refuses (e.g. two ids that differ only by
		// invalid UTF-8) is left out; the rest is still served.
		ErrorHandling: promhttp.ContinueOnError,
	})
	return r
}

// Scope returns the scope of one plugin instance (plugin e.g.
// "outputs.graphite", id e.g. "carbon"), creating it on first use. The same
// (plugin, id) always returns the same *Scope, so counters survive a restart
// of the plugin under the same id, until Remove.
func (r *Registry) Scope(plugin, id string) *Scope {
	k := scopeKey{plugin, id}
	r.mu.RLock()
	s := r.scopes[k]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.scopes[k]; s != nil {
		return s
	}
	s = &Scope{
		r: r, plugin: plugin, id: id,
		labels: []*dto.LabelPair{ // sorted by label name
			{Name: new(labelID), Value: new(strings.ToValidUTF8(id, "\uFFFD"))},
			{Name: new(labelPlugin), Value: new(strings.ToValidUTF8(plugin, "\uFFFD"))},
		},
		index: make(map[string]*series),
	}
	r.scopes[k] = s
	return s
}

// Labeled returns a scope whose series carry the one label name=value
// instead of plugin and id (router_rule_matched_total{rule="3"}). In
// Graphite its series are <prefix>.<name>.<value>.<series>.
func (r *Registry) Labeled(name, value string) *Scope {
	s := r.Scope(name, value)
	r.mu.Lock()
	s.labels = []*dto.LabelPair{{Name: new(name), Value: new(strings.ToValidUTF8(value, "\uFFFD"))}}
	r.mu.Unlock()
	return s
}

// Remove unregisters every series of (plugin, id); a later Scope(plugin, id)
// starts from zero. Its gauge closures are dropped, so the objects they
// reference can be collected even while the retired instance still holds its
// *Scope. Such a removed Scope still hands out counters, which are exported
// nowhere, and ignores Gauge.
func (r *Registry) Remove(plugin, id string) {
	k := scopeKey{plugin, id}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.scopes[k]
	if s == nil {
		return
	}
	delete(r.scopes, k)
	r.nseries -= len(s.series)
	s.removed = true
	for _, se := range s.series {
		se.gauge = nil
		if se.counter == nil {
			delete(s.index, se.fam.name)
		}
	}
	s.series = nil
}

// Value returns the current value of series name (without the "router_"
// prefix) of (plugin, id), and false if there is no such series.
func (r *Registry) Value(plugin, id, name string) (float64, bool) {
	r.mu.RLock()
	var c *atomic.Uint64
	var g func() float64
	s := r.scopes[scopeKey{plugin, id}]
	if s != nil {
		if se := s.index[name]; se != nil {
			c, g = se.counter, se.gauge
		}
	}
	r.mu.RUnlock()
	switch {
	case c != nil:
		return float64(c.Load()), true
	case g != nil:
		return callGauge(g), true
	}
	return 0, false
}

// Handler serves GET /metrics in the Prometheus text format (or what the
// scraper negotiates), from this Registry's own prometheus.Registry: the
// scopes' series, router_uptime_seconds, and client_golang's Go runtime and
// process collectors.
func (r *Registry) Handler() http.Handler { return r.handler }

// Counter registers (or returns the already registered) counter name, lower
// snake_case without "router_". A name is one series per scope: a counter
// registered under the name of a gauge replaces the gauge.
func (s *Scope) Counter(name, help string) *atomic.Uint64 {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	se := s.index[name]
	if se != nil && se.counter != nil {
		return se.counter
	}
	c := new(atomic.Uint64)
	if se != nil {
		se.gauge, se.counter = nil, c
		return c
	}
	s.add(&series{fam: r.family(name, help, false), counter: c})
	return c
}

// Gauge registers a gauge read by calling f at scrape time; it replaces an
// earlier gauge (or counter) of the same name in this scope, as a reload
// re-initialises plugins. A nil f removes the gauge; on a removed Scope,
// Gauge does nothing.
func (s *Scope) Gauge(name, help string, f func() float64) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.removed {
		return
	}
	se := s.index[name]
	switch {
	case f == nil:
		if se != nil && se.gauge != nil {
			s.drop(se)
		}
	case se != nil:
		se.counter, se.gauge = nil, f
	default:
		s.add(&series{fam: r.family(name, help, true), gauge: f})
	}
}

var _ registry.Metrics = (*Scope)(nil)

// add appends se to s; r.mu is held.
func (s *Scope) add(se *series) {
	s.index[se.fam.name] = se
	if s.removed {
		return // counters of a removed scope are kept for their holder only
	}
	s.series = append(s.series, se)
	s.r.nseries++
}

// drop removes se from s; r.mu is held.
func (s *Scope) drop(se *series) {
	delete(s.index, se.fam.name)
	for i, x := range s.series {
		if x == se {
			s.series = append(s.series[:i], s.series[i+1:]...)
			s.r.nseries--
			return
		}
	}
}

// family returns the family of name, creating it; r.mu is held.
func (r *Registry) family(name, help string, gauge bool) *family {
	f := r.families[name]
	if f == nil {
		f = newFamily(name, help, gauge)
		r.families[name] = f
		return f
	}
	if f.help == "" && help != "" {
		// The first non-empty help wins. Families are read under r.mu,
		// so a scrape sees one help for all the series of a name.
		nf := newFamily(name, help, f.gauge)
		*f = *nf
	}
	return f
}

func newFamily(name, help string, gauge bool) *family {
	help = strings.ToValidUTF8(help, "\uFFFD")
	f := &family{name: name, help: help, gauge: gauge, ok: validName(name)}
	if f.ok {
		f.desc = prometheus.NewDesc(Prefix+name, help, []string{labelPlugin, labelID}, nil)
	}
	return f
}

// validName reports whether Prefix+name is a metric name every Prometheus
// version accepts unquoted ([a-zA-Z_:][a-zA-Z0-9_:]*). Other names are kept
// for Value but not exported: client_golang would escape them, and the
// escaped name could collide with another.
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':') {
			return false
		}
	}
	return true
}

// callGauge calls f; a panicking closure reads as NaN instead of taking the
// process down from a scrape.
func callGauge(f func() float64) (v float64) {
	defer func() {
		if recover() != nil {
			v = math.NaN()
		}
	}()
	return f()
}
