// Package registry declares the plugin interfaces of the router and keeps the
// plugins a binary was built with, by kind and name.
//
// A plugin package registers itself from init():
//
//	//go:embed sample.toml
//	var sample string
//
//	func init() {
//		registry.AddOutput("graphite", func() registry.Output { return &Graphite{Timeout: defTimeout} }, sample, registry.OutputSpec{})
//	}
//
// The name is the TOML table name ([[outputs.graphite]]) and the directory
// name, in lower snake_case. The factory returns a fresh pointer with defaults
// and no side effects: configuration is decoded into it, then Init validates
// it. Nothing may open a socket or a file before Run or Connect.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
)

// Input produces metrics.
//
// Run blocks until ctx is cancelled or a fatal error occurs. Before it returns
// it has closed its listeners, emitted everything it read, and ended every
// goroutine it started. It passes batches to out.Emit; on shutdown it emits
// the rest with a context that is not cancelled (context.WithoutCancel), the
// agent bounds that wait with its own deadline. Run returns nil after a
// cancellation and an error only when it cannot go on (e.g. a listener
// failed to bind).
type Input interface {
	Run(ctx context.Context, out Emitter) error
}

// Emitter takes batches from inputs.
//
// Emit runs the processors and hands the batch to every output's queue; when
// it returns nil the batch is safely queued (the point at which a gateway may
// acknowledge it). It blocks while an output with overflow = "block" is full,
// and returns ctx.Err() if ctx ends first, or ErrStopped when the agent gave up
// waiting at shutdown. The batch belongs to the emitter once Emit is called:
// the input must not reuse its metrics or the bytes they point to.
// Emit is safe for concurrent use.
type Emitter interface {
	Emit(ctx context.Context, b metric.Batch) error
}

// Processor transforms batches in memory. It is pure: no I/O, no goroutines,
// and safe for concurrent use (inputs call it from their own goroutines). It
// may modify metrics in place and filter by returning a shorter slice of b.
// After the last processor, metrics are read-only.
type Processor interface {
	Process(b metric.Batch) metric.Batch
}

// Aggregator takes metrics out of the pipeline and puts back, every
// Interval, what it computed from them (a StatsD server's flush). The agent
// hands it every batch after the processors, from the inputs' goroutines,
// and calls Flush from one goroutine of its own: an aggregator locks what
// Take and Flush share. It does no I/O.
type Aggregator interface {
	// Take keeps the metrics of b it aggregates and returns the others in
	// their order; like a processor it may reuse b's array. The metrics
	// are read-only and live only for the call: it copies what it keeps.
	Take(b metric.Batch) metric.Batch
	// Flush hands emit what the interval that ends at now produced, in
	// batches (a few thousand metrics each keeps memory reused from one
	// flush to the next), and starts the next interval. emit queues each
	// batch before it returns (it may wait for room: hold no lock Take
	// needs while calling it). final is the last call, once the inputs
	// have stopped (shutdown, or the aggregator removed by a reload).
	Flush(now time.Time, final bool, emit func(metric.Batch))
	// Interval is how often Flush is called (a multiple of it is a
	// wall-clock boundary: the flushes of several routers line up).
	Interval() time.Duration
}

// Output writes metrics to a destination. Its runner calls Connect, Write and
// Close from one goroutine, so an output needs no locks.
//
// Write returns nil when every metric is accepted; an error wrapping
// ErrNotConnected (batch kept, reconnect with backoff); one wrapping
// ErrRejected (batch dropped and counted, e.g. HTTP 400; if the error is
// also a PartlyRejected, only that many metrics were refused and the others
// written, e.g. metrics the destination's format cannot carry); any other
// error (batch kept, retried with backoff). A Write that got part of the
// batch out before failing says so with a *PartialWriteError: the runner
// then retries only the rest. Write honours ctx. Close releases
// resources; the runner has written everything it could before calling it.
type Output interface {
	Connect(ctx context.Context) error
	Write(ctx context.Context, b metric.Batch) error
	Close() error
}

// PartialWriteError is the error of a Write that took only the first
// Written metrics of its batch before Err stopped it: those were written,
// except Refused of them that the destination's format cannot carry (left
// out for good, see PartlyRejected). The runner counts them, then handles
// b[Written:] by Err as it would a whole batch (retry, reconnect, reject).
// Outputs keep no state about failed batches: the retry is a new Write of
// the rest.
type PartialWriteError struct {
	Written int
	Refused int
	Err     error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("%d metrics written, then: %v", e.Written, e.Err)
}

func (e *PartialWriteError) Unwrap() error { return e.Err }

// PartlyRejected is implemented by an ErrRejected error of an Output's Write
// that refused only some metrics of the batch and wrote the others.
type PartlyRejected interface {
	error
	Rejected() int
}

// Initializer is implemented by plugins that validate their configuration or
// prepare state. Init opens nothing: `router -check` calls it, and it is the
// place for configuration errors.
type Initializer interface {
	Init(env Env) error
}

// Distributor is an output that spreads metrics over target outputs (declared
// inline as [[outputs.<name>.to.<output>]] tables or as a destinations
// shorthand). Route appends to dst the indexes of the targets m goes to,
// primary first, and returns it. up[i] tells whether target i is healthy.
// Route is called concurrently and must not allocate.
type Distributor interface {
	Route(m *metric.Metric, up []bool, dst []int) []int
}

// Target describes one target of a Distributor, in configuration order.
type Target struct {
	ID       string // instance id of the target output
	Plugin   string // output plugin name, e.g. "graphite"
	Address  string // "host:port" as configured ("" if the output has none)
	Host     string // Address split at its last ':'
	Port     string
	Instance string // carbon instance ("" = none)
	Spec     string // host:port[:instance] exactly as written, for -route
}

// TargetSetter is implemented by distributors that need to know their targets
// (a hash ring does). The agent calls SetTargets before Init.
type TargetSetter interface {
	SetTargets(targets []Target) error
}

// Shorthand is implemented by distributors that accept
// `destinations = ["host:port[:instance]", ...]` with `protocol = "graphite"`:
// the agent creates one target output of plugin Protocol per destination.
type Shorthand interface {
	Shorthand() (protocol string, destinations []string)
}

// OutputSpec says how the agent runs an output; it is registered with the
// plugin (AddOutput). The zero value takes the agent's defaults.
type OutputSpec struct {
	// BatchSize and FlushInterval are this output's defaults of the common
	// keys batch_size and flush_interval (0: the agent's).
	BatchSize     int
	FlushInterval Duration
	// Workers is the default of the common key workers: outputs whose
	// writes wait on a round trip (a request and its answer) want more
	// than the agent's one writer (0: one).
	Workers int
}

// DistributorSpec says how the agent feeds a distributor's targets; it is
// registered with the plugin (AddDistributor).
type DistributorSpec struct {
	// Fanout: every metric goes to every target (broadcast, mirror); the
	// agent passes the batch itself to each target without calling Route.
	Fanout bool
	// BestEffortFrom: targets from this index on must never push back
	// (mirror's copies: 1); the agent forces overflow = "drop_oldest" on
	// them and counts their drops. 0: none.
	BestEffortFrom int
}

// Addresser is implemented by outputs that send to one network address; a
// distributor's ring uses it to identify the target (host, port).
type Addresser interface {
	Destination() string
}

// Placer is implemented by outputs that place each metric themselves
// within their destination (a Kafka topic's partitions). Route mode
// (-route) prints Place's answer as the metric's destination; it is called
// on an initialised value that is never connected.
type Placer interface {
	Place(m *metric.Metric) string
}

// HealthReporter is implemented by outputs that know their destination's health
// beyond connection errors (e.g. a StatsD admin health check). The runner
// combines it with its own state.
type HealthReporter interface {
	Healthy() bool
}

// Sentinel errors.
var (
	// ErrNotConnected: the output lost (or never had) its connection; the
	// runner keeps the batch and calls Connect again with backoff.
	ErrNotConnected = errors.New("not connected")
	// ErrRejected: the destination refused the batch for good (HTTP 4xx):
	// the runner drops it and counts it as rejected.
	ErrRejected = errors.New("rejected by destination")
	// ErrStopped: the agent stopped waiting for room at shutdown.
	ErrStopped = errors.New("router stopping")
	// ErrFatal: returned (wrapped) by Connect when retrying cannot help, e.g.
	// the destination refuses our credentials: the router stops with an error.
	ErrFatal = errors.New("fatal")
)

// Env is what a plugin instance gets from the agent at Init.
type Env struct {
	ID      string         // instance id (from `id = ...` or generated)
	Plugin  string         // "outputs.graphite"
	Log     zerolog.Logger // already carries plugin and id fields
	Metrics Metrics        // per-instance self-metrics
}

// Metrics registers self-metrics of one plugin instance; they appear on
// /metrics labelled with plugin and id. Names are lower snake_case without
// the "router_" prefix, e.g. Counter("parse_errors_total").
type Metrics interface {
	Counter(name, help string) *atomic.Uint64
	Gauge(name, help string, f func() float64)
}

// Kind is a plugin kind.
type Kind string

// Plugin kinds, as spelled in TOML.
const (
	Inputs      Kind = "inputs"
	Processors  Kind = "processors"
	Aggregators Kind = "aggregators"
	Outputs     Kind = "outputs"
)

// Kinds are the plugin kinds in the order a batch meets them.
var Kinds = []Kind{Inputs, Processors, Aggregators, Outputs}

// Plugin describes one registered plugin.
type Plugin struct {
	Kind   Kind
	Name   string
	Sample string // the plugin's documented sample.toml
	New    func() any
	// Output: how the agent runs an output (outputs only).
	Output OutputSpec
	// Distributor is set for a distributor (an output that spreads
	// metrics over target outputs).
	Distributor *DistributorSpec
}

// Summary returns the first comment line of the sample, without "# ".
func (p Plugin) Summary() string {
	for _, l := range strings.Split(p.Sample, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			return strings.TrimSpace(strings.TrimLeft(l, "#"))
		}
	}
	return ""
}

// Registry holds plugins by kind and name. Its zero value is not usable; use New.
type Registry struct {
	plugins  map[Kind]map[string]Plugin
	commands map[string]Command
}

// New returns an empty registry (tests build their own with fakes).
func New() *Registry {
	return &Registry{plugins: map[Kind]map[string]Plugin{Inputs: {}, Processors: {}, Aggregators: {}, Outputs: {}}}
}

// Default is the registry the built-in and third-party plugins register with
// from init(). It is written only by init functions.
var Default = New()

// Add registers a plugin with no spec (tests register fakes this way). It
// panics on an empty or badly spelled name, a nil factory, an unknown kind
// or a duplicate within a kind.
func (r *Registry) Add(kind Kind, name string, factory func() any, sample string) {
	r.AddPlugin(Plugin{Kind: kind, Name: name, New: factory, Sample: sample})
}

// AddPlugin registers p, with the checks of Add.
func (r *Registry) AddPlugin(p Plugin) {
	m, ok := r.plugins[p.Kind]
	if !ok {
		panic(fmt.Sprintf("registry: unknown plugin kind %q", p.Kind))
	}
	if !validName(p.Name) {
		panic(fmt.Sprintf("registry: bad plugin name %q (want lower snake_case)", p.Name))
	}
	if p.New == nil {
		panic(fmt.Sprintf("registry: %s.%s has a nil factory", p.Kind, p.Name))
	}
	if _, dup := m[p.Name]; dup {
		panic(fmt.Sprintf("registry: %s.%s registered twice", p.Kind, p.Name))
	}
	m[p.Name] = p
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Lookup returns the plugin kind.name.
func (r *Registry) Lookup(kind Kind, name string) (Plugin, bool) {
	p, ok := r.plugins[kind][name]
	return p, ok
}

// Names returns the sorted plugin names of a kind.
func (r *Registry) Names(kind Kind) []string {
	names := make([]string, 0, len(r.plugins[kind]))
	for n := range r.plugins[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns every plugin, sorted by kind then name.
func (r *Registry) All() []Plugin {
	var out []Plugin
	for _, k := range Kinds {
		for _, n := range r.Names(k) {
			out = append(out, r.plugins[k][n])
		}
	}
	return out
}

// AddInput registers an input with Default; call it only from init().
func AddInput(name string, factory func() Input, sample string) {
	Default.Add(Inputs, name, func() any { return factory() }, sample)
}

// AddProcessor registers a processor with Default; call it only from init().
func AddProcessor(name string, factory func() Processor, sample string) {
	Default.Add(Processors, name, func() any { return factory() }, sample)
}

// AddAggregator registers an aggregator with Default; call it only from init().
func AddAggregator(name string, factory func() Aggregator, sample string) {
	Default.Add(Aggregators, name, func() any { return factory() }, sample)
}

// AddOutput registers an output with Default; call it only from init().
func AddOutput(name string, factory func() Output, sample string, spec OutputSpec) {
	Default.AddPlugin(Plugin{Kind: Outputs, Name: name, Sample: sample, New: func() any { return factory() }, Output: spec})
}

// AddDistributor registers a distributor with Default; call it only from
// init(). It is configured as an output ([[outputs.<name>]]) and spreads
// metrics over its target outputs.
func AddDistributor(name string, factory func() Distributor, sample string, spec DistributorSpec) {
	Default.AddPlugin(Plugin{Kind: Outputs, Name: name, Sample: sample, New: func() any { return factory() }, Distributor: &spec})
}
