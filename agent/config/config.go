// Package config loads a configuration file: it expands ${VAR}, decodes
// [agent] and every plugin table strictly (the agent's common keys and the
// plugin's own, so that a key neither takes is an error), applies the
// defaults of the common output keys, builds distributors' targets and
// fingerprints every instance. It makes plugin values from the registry but
// starts nothing: Init and everything after it are the agent's.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/agent/selector"
	"github.com/metricsrouter/router/registry"
)

// Agent is the [agent] table.
type Agent struct {
	// log_level: trace, debug, info (default), warn, error.
	LogLevel string `toml:"log_level"`
	// log_format: "json" (default; suits journald) or "console" for humans.
	LogFormat string `toml:"log_format"`
	// shutdown_timeout: how long SIGTERM waits for queues to drain (default 30s).
	ShutdownTimeout registry.Duration `toml:"shutdown_timeout"`
	// stats_addr: serve /metrics and /healthz there (e.g. "127.0.0.1:8080"); "" disables.
	StatsAddr string `toml:"stats_addr"`
	// management_addr: the StatsD-proxy style TCP management interface
	// (ping, stats, memstats, help, config, health [up|down], status, quit); "" disables.
	ManagementAddr string `toml:"management_addr"`
	// max_buffered_bytes: bound of the bytes all outputs together hold in
	// memory (queued metrics and their lines); past it the overflow policy of
	// the output being fed applies. 0 = the default, 1 GiB; -1 = no bound.
	MaxBufferedBytes int64 `toml:"max_buffered_bytes"`
	// metrics_flush: every this long, emit the router's own counters as
	// Graphite metrics into the pipeline ("0s" = never).
	MetricsFlush registry.Duration `toml:"metrics_flush"`
	// metrics_prefix: the path they get; {host} is the short host name.
	MetricsPrefix string `toml:"metrics_prefix"`
	// runstats_addr: Polymur's statistics port ("stats" -> JSON); "" disables.
	RunstatsAddr string `toml:"runstats_addr"`
	// api_addr: Polymur's runtime destination API (getdest, putdest,
	// deldest) and its HTTP equivalent (/api/destinations); "" disables.
	APIAddr string `toml:"api_addr"`
	// api_token, api_token_file: the token every request to api_addr
	// needs (HTTP: "Authorization: Bearer TOKEN"; line commands: a first
	// line "auth TOKEN"), as do management_addr's "health up|down"; "" =
	// none. The file's first line is the token.
	APIToken     string `toml:"api_token"`
	APITokenFile string `toml:"api_token_file"`
	// api_allowed_hosts: host names HTTP requests to api_addr may carry in
	// Host besides IP addresses and localhost (DNS rebinding guard).
	APIAllowedHosts []string `toml:"api_allowed_hosts"`
	// pprof: also serve Go's /debug/pprof/ on stats_addr (for profiling; off by default).
	Pprof bool `toml:"pprof"`
	// metrics_send_to: output ids the self-metrics go to, past the rules
	// (carbon-c-relay "statistics ... send to"); empty = the pipeline.
	MetricsSendTo []string `toml:"metrics_send_to"`
}

// InputCommon holds the keys every [[inputs.X]] and [[processors.X]] table may have.
type InputCommon struct {
	ID       string `toml:"id"`
	LogLevel string `toml:"log_level"`
	// Telegraf's metric selectors: glob lists on the metric name, tables
	// of tag -> glob list on its tags.
	NamePass          []string            `toml:"namepass"`
	NameDrop          []string            `toml:"namedrop"`
	NamePassSeparator string              `toml:"namepass_separator"`
	NameDropSeparator string              `toml:"namedrop_separator"`
	TagPass           map[string][]string `toml:"tagpass"`
	TagDrop           map[string][]string `toml:"tagdrop"`
}

// OutputCommon holds the keys every [[outputs.X]] table may have. They belong
// to the agent (the runner), not to the plugin.
type OutputCommon struct {
	ID       string `toml:"id"`
	LogLevel string `toml:"log_level"`
	// Telegraf's metric selectors: the output gets only the metrics that
	// pass them (name lists, tag tables).
	NamePass          []string            `toml:"namepass"`
	NameDrop          []string            `toml:"namedrop"`
	NamePassSeparator string              `toml:"namepass_separator"`
	NameDropSeparator string              `toml:"namedrop_separator"`
	TagPass           map[string][]string `toml:"tagpass"`
	TagDrop           map[string][]string `toml:"tagdrop"`
	BatchSize         int                 `toml:"batch_size"`
	BufferLimit       int                 `toml:"buffer_limit"`
	FlushInterval     registry.Duration   `toml:"flush_interval"`
	FlushIdle         registry.Duration   `toml:"flush_idle"`
	Overflow          string              `toml:"overflow"`
	RetryInitial      registry.Duration   `toml:"retry_initial"`
	RetryMax          registry.Duration   `toml:"retry_max"`
	WriteTimeout      registry.Duration   `toml:"write_timeout"`
	// Workers is the number of concurrent writers, each with its own copy
	// of the output (connection), sharing one queue.
	Workers int `toml:"workers"`
	// The disk spool (write-ahead log) of this output; "" = memory only.
	SpoolDir        string `toml:"spool_dir"`
	SpoolMaxBytes   int64  `toml:"spool_max_bytes"`
	SpoolFsync      string `toml:"spool_fsync"`
	SpoolReplayRate int    `toml:"spool_replay_rate"`
	// Instance is the carbon instance of a distributor's target.
	Instance string `toml:"instance"`
	// To holds a distributor's targets: [[outputs.<dist>.to.<output>]].
	To map[string]toml.Primitive `toml:"to"`

	// flushIntervalSet: flush_interval was written (possibly "0s"), so the
	// output's BatchDefaults do not replace it.
	flushIntervalSet bool
}

// Defaults of the common output keys.
const (
	defBufferLimit     = 1_000_000
	defBatchSize       = 5000
	defFlushIdle       = 10 * time.Millisecond
	maxWorkers         = 256
	defShutdownTimeout = 30 * time.Second
	defRetryInitial    = 100 * time.Millisecond
	defRetryMax        = 30 * time.Second
	defWriteTimeout    = 30 * time.Second
)

// CommonKeys returns the keys the agent takes from plugin tables of a kind;
// plugins must not declare them (a test checks every registered plugin).
func CommonKeys(kind registry.Kind) []string { return slices.Clone(commonKeys[kind]) }

var commonKeys = map[registry.Kind][]string{
	registry.Inputs:      {"id", "log_level", "namepass", "namedrop", "namepass_separator", "namedrop_separator", "tagpass", "tagdrop"},
	registry.Processors:  {"id", "log_level", "namepass", "namedrop", "namepass_separator", "namedrop_separator", "tagpass", "tagdrop"},
	registry.Aggregators: {"id", "log_level", "namepass", "namedrop", "namepass_separator", "namedrop_separator", "tagpass", "tagdrop"},
	registry.Outputs: {"id", "log_level", "namepass", "namedrop", "namepass_separator", "namedrop_separator", "tagpass", "tagdrop", "batch_size", "buffer_limit", "flush_interval", "flush_idle", "overflow",
		"retry_initial", "retry_max", "write_timeout", "workers", "spool_dir", "spool_max_bytes", "spool_fsync",
		"spool_replay_rate", "instance", "to"},
}

// Config is a loaded and validated configuration file.
type Config struct {
	File       string
	Agent      Agent
	Inputs     []*Instance
	Processors []*Instance
	// Aggregators, in file order, take metrics after the processors.
	Aggregators []*Instance
	Outputs     []*Instance
	// Rules is the rule chain in file order ([[rules]]); Chain is it
	// compiled, nil without rules (every metric to every output).
	Rules []rules.Spec
	Chain *rules.Chain
	// Warnings are things -check reports that do not stop a run (rules
	// that can never fire, outputs no rule sends to).
	Warnings []string

	text string // expanded, for the lines of later errors
}

// ErrorAt makes the error of instance in from a plugin's message (its Init
// names the key first: "listen \":99999\": ..."): at the line of that key
// when the table sets it, else at the table's header.
func (c *Config) ErrorAt(in *Instance, msg string) *Error {
	line := in.Line
	key, _, _ := strings.Cut(msg, " ")
	key = strings.TrimSuffix(key, ":")
	if c.text != "" && key != "" {
		l := &loader{text: c.text}
		if k := l.keyLineIn(in, key); k > 0 {
			line = k
		}
	}
	return &Error{File: c.File, Line: line, Table: in.Table, Msg: msg}
}

// Destinations counts what the outputs send to: one per output that is not
// a distributor, one per target of a distributor (recursively). discovered
// is true when a distributor takes its targets from a service catalog at
// start (those are not counted). The run's "router started" log counts the
// same way, after discovery.
func (c *Config) Destinations() (n int, discovered bool) {
	var walk func(in *Instance)
	walk = func(in *Instance) {
		if _, ok := in.Plugin.(registry.Distributor); !ok {
			n++
			return
		}
		if ds, ok := in.Plugin.(registry.DiscoverySource); ok && ds.Service() != "" {
			discovered = true
		}
		for _, t := range in.Targets {
			walk(t)
		}
	}
	for _, o := range c.Outputs {
		walk(o)
	}
	return n, discovered
}

// Output returns the top-level output with id, or nil.
func (c *Config) Output(id string) *Instance {
	for _, o := range c.Outputs {
		if o.ID == id {
			return o
		}
	}
	return nil
}

// Instance is one plugin table, decoded.
type Instance struct {
	Kind    registry.Kind
	Name    string
	ID      string
	Table   string // "[[outputs.graphite]] #2" for messages
	Line    int
	Plugin  any
	In      InputCommon
	Out     OutputCommon
	Targets []*Instance // distributor targets
	Target  registry.Target
	// Sel is the compiled namepass / namedrop / tagpass / tagdrop of the
	// table (nil: every metric).
	Sel    *selector.Selector
	outRaw OutputCommon // output keys as written, before defaults (targets inherit them)
	// Fingerprint identifies the instance's configuration: a reload keeps
	// a running instance whose fingerprint did not change.
	Fingerprint string
	// Registered is the plugin as registered (its spec).
	Registered registry.Plugin
	// fresh decodes the table again into a new plugin value (see Fresh).
	fresh func() (any, error)
}

// Label names the instance in messages: outputs.graphite "carbon-a".
func (in *Instance) Label() string {
	return fmt.Sprintf("%s.%s %q", in.Kind, in.Name, in.ID)
}

// Fresh decodes the table again into a new plugin value. Plugin is the
// configuration as data and is never started; what runs is always a fresh
// value (Init, Run, Connect happen on it).
func (in *Instance) Fresh() (any, error) { return in.fresh() }

// Spec is where an output writes, as written in the configuration: its
// destination as a distributor's target ("host:port[:instance]"), else its
// plugin's address (registry.Addresser), else "".
func (in *Instance) Spec() string {
	if in.Target.Spec != "" {
		return in.Target.Spec
	}
	spec, _ := addressOf(in.Plugin)
	return spec
}

// TargetList returns what a distributor's TargetSetter gets: its targets'
// Target, in ring order.
func (in *Instance) TargetList() []registry.Target {
	t := make([]registry.Target, len(in.Targets))
	for i, ti := range in.Targets {
		t[i] = ti.Target
	}
	return t
}

type fileConfig struct {
	Agent       Agent                     `toml:"agent"`
	Inputs      map[string]toml.Primitive `toml:"inputs"`
	Processors  map[string]toml.Primitive `toml:"processors"`
	Aggregators map[string]toml.Primitive `toml:"aggregators"`
	Outputs     map[string]toml.Primitive `toml:"outputs"`
	Rules       []toml.Primitive          `toml:"rules"`
}

// Error is a configuration error: it names the file, line (where known),
// table and key.
type Error struct {
	File  string
	Line  int    // 0: unknown
	Table string // "[[outputs.graphite]] #2", or ""
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Table != "" {
		b.WriteString(e.Table)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every error found in one file, in the order of their lines.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap gives the errors to errors.Is and errors.As.
func (e Errors) Unwrap() []error { return e }

// List returns the errors err holds: those of an Errors (or of an
// errors.Join), or err itself; nil for nil.
func List(err error) []error {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// SortErrors orders errors by their line (a *Error's Line; errors without
// one keep their place after those with one).
func SortErrors(errs []error) {
	line := func(err error) int {
		var e *Error
		if errors.As(err, &e) && e.Line > 0 {
			return e.Line
		}
		return 1 << 30
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
}

// loader carries the state of one Parse call (or WithDestinations).
type loader struct {
	reg   *registry.Registry
	file  string
	text  string
	md    toml.MetaData
	count map[string]int // instances per kind.name, for default ids
	ids   map[string]string
	// errs collects every error; failed holds the table paths whose
	// decoding failed (their keys stay undecoded: not reported as unknown).
	errs   []error
	failed map[string]bool
	// outFailed: an output table did not decode, so rules and
	// metrics_send_to may name an id that is missing only because of it.
	outFailed bool
}

// fail records an error; it returns false, for "if !l.ok(...)" flows.
func (l *loader) fail(err error) {
	l.errs = append(l.errs, List(err)...)
}

// Load reads, expands, decodes and validates a configuration file with the
// plugins of reg. It makes a value of every plugin but neither initialises
// (Init) nor opens anything.
func Load(reg *registry.Registry, file string) (*Config, error) {
	cfg, err := LoadAll(reg, file)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadAll is Load that, when the file has errors, also returns what could
// be decoded despite them (nil after a syntax error), so that -check can
// report the errors of plugins' Init at the same time. err is an Errors.
func LoadAll(reg *registry.Registry, file string) (*Config, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseAll(reg, file, string(raw), os.LookupEnv)
}

// Parse is Load on text already read; lookup resolves ${VAR}.
func Parse(reg *registry.Registry, file, text string, lookup func(string) (string, bool)) (*Config, error) {
	cfg, err := ParseAll(reg, file, text, lookup)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParseAll is LoadAll on text already read.
func ParseAll(reg *registry.Registry, file, text string, lookup func(string) (string, bool)) (*Config, error) {
	expanded, err := ExpandEnv(text, lookup)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", file, err)
	}
	l := &loader{reg: reg, file: file, text: expanded, count: map[string]int{}, ids: map[string]string{}, failed: map[string]bool{}}
	var fc fileConfig
	md, err := toml.Decode(expanded, &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: syntaxLine(expanded, pe), Msg: pe.Message}
		}
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	l.md = md
	cfg := &Config{File: file, Agent: fc.Agent, text: expanded}
	l.checkAgent(&cfg.Agent)
	// Instances in document order, across plugin names.
	order := map[registry.Kind][]string{}
	tables := map[registry.Kind]int{}
	seen := map[string]int{}
	for _, k := range md.Keys() {
		if len(k) != 2 {
			continue
		}
		kind := registry.Kind(k[0])
		if !slices.Contains(registry.Kinds, kind) {
			continue
		}
		order[kind] = append(order[kind], k[1])
		tables[kind]++
	}
	for _, kind := range registry.Kinds {
		var prims map[string]toml.Primitive
		switch kind {
		case registry.Inputs:
			prims = fc.Inputs
		case registry.Processors:
			prims = fc.Processors
		case registry.Aggregators:
			prims = fc.Aggregators
		default:
			prims = fc.Outputs
		}
		decoded := map[string][]toml.Primitive{}
		for _, name := range order[kind] {
			key := string(kind) + "." + name
			if _, ok := decoded[name]; !ok {
				decoded[name] = nil
				if err := l.checkPlugin(kind, name, []string{string(kind), name}); err != nil {
					l.fail(err)
					l.failed[key] = true
					l.outFailed = l.outFailed || kind == registry.Outputs
					continue
				}
				var arr []toml.Primitive
				if err := md.PrimitiveDecode(prims[name], &arr); err != nil {
					l.fail(l.wrapDecode(fmt.Sprintf("[[%s]]", key), err))
					l.failed[key] = true
					l.outFailed = l.outFailed || kind == registry.Outputs
					continue
				}
				decoded[name] = arr
			}
			i := seen[key]
			seen[key]++
			arr := decoded[name]
			if i >= len(arr) {
				continue
			}
			in, err := l.decodeInstance(kind, name, arr[i], []string{string(kind), name}, nil)
			if err != nil {
				l.fail(err)
				l.outFailed = l.outFailed || kind == registry.Outputs
				continue
			}
			switch kind {
			case registry.Inputs:
				cfg.Inputs = append(cfg.Inputs, in)
			case registry.Processors:
				cfg.Processors = append(cfg.Processors, in)
			case registry.Aggregators:
				cfg.Aggregators = append(cfg.Aggregators, in)
			default:
				cfg.Outputs = append(cfg.Outputs, in)
			}
		}
	}
	if err := l.decodeRules(cfg, fc.Rules); err != nil {
		l.fail(err)
		cfg.Rules = nil
	}
	l.checkUndecoded()
	if err := l.compileRules(cfg); err != nil {
		l.fail(err)
	}
	if tables[registry.Inputs] == 0 {
		l.fail(&Error{File: file, Msg: "no [[inputs.*]] table: nothing would be read"})
	}
	if tables[registry.Outputs] == 0 {
		l.fail(&Error{File: file, Msg: "no [[outputs.*]] table: everything read would be lost"})
	}
	if len(l.errs) > 0 {
		SortErrors(l.errs)
		// what decoded, for checking its plugins' Init; no rules (they
		// may name what did not decode)
		cfg.Rules, cfg.Chain, cfg.Agent.MetricsSendTo = nil, nil, nil
		return cfg, Errors(l.errs)
	}
	return cfg, nil
}

// syntaxLine is the line of a TOML syntax error: the line of its first
// byte (the parser counts a newline it stopped at as the next line's).
func syntaxLine(text string, pe toml.ParseError) int {
	if s := pe.Position.Start; s > 0 && s <= len(text) {
		return strings.Count(text[:s], "\n") + 1
	}
	return pe.Position.Line
}

func (l *loader) checkAgent(a *Agent) {
	bad := func(key, msg string) {
		l.fail(&Error{File: l.file, Line: l.keyLine([]string{"agent"}, key), Table: "[agent]", Msg: msg})
	}
	switch a.LogLevel {
	case "", "trace", "debug", "info", "warn", "error":
	default:
		bad("log_level", fmt.Sprintf("log_level %q: want trace, debug, info, warn or error", a.LogLevel))
	}
	switch a.LogFormat {
	case "", "json", "console":
	default:
		bad("log_format", fmt.Sprintf("log_format %q: want json or console", a.LogFormat))
	}
	if a.MetricsPrefix == "" {
		a.MetricsPrefix = "carbon.relays.{host}"
	}
	if a.MetricsFlush != 0 && a.MetricsFlush.D() < time.Second {
		bad("metrics_flush", "metrics_flush: at least 1s (or 0s for never)")
	}
	if a.MaxBufferedBytes == 0 {
		a.MaxBufferedBytes = 1 << 30
	}
	if a.MaxBufferedBytes < -1 || (a.MaxBufferedBytes > 0 && a.MaxBufferedBytes < 1<<20) {
		bad("max_buffered_bytes", "max_buffered_bytes: at least 1048576, or -1 for no bound")
	}
	if a.ShutdownTimeout == 0 {
		a.ShutdownTimeout = registry.Duration(defShutdownTimeout)
	}
	if a.APIToken != "" && a.APITokenFile != "" {
		bad("api_token_file", "api_token and api_token_file: set one, not both")
	}
	if (a.APIToken != "" || a.APITokenFile != "") && a.APIAddr == "" && a.ManagementAddr == "" {
		bad("api_token", "api_token protects api_addr and management_addr: set one of them, or remove the token")
	}
	for _, k := range []struct {
		key, v string
	}{{"stats_addr", a.StatsAddr}, {"management_addr", a.ManagementAddr}, {"runstats_addr", a.RunstatsAddr}, {"api_addr", a.APIAddr}} {
		if k.v == "" {
			continue
		}
		if err := registry.CheckHostPort(k.key, k.v); err != nil {
			bad(k.key, err.Error())
		}
	}
}

func (l *loader) checkPlugin(kind registry.Kind, name string, path []string) error {
	if _, ok := l.reg.Lookup(kind, name); !ok {
		return &Error{File: l.file, Line: l.headerLine(path), Table: fmt.Sprintf("[[%s]]", strings.Join(path, ".")),
			Msg: fmt.Sprintf("unknown %s plugin %q; this binary has: %s", strings.TrimSuffix(string(kind), "s"), name,
				strings.Join(l.reg.Names(kind), ", "))}
	}
	if t := l.md.Type(path...); t != "ArrayHash" {
		return &Error{File: l.file, Line: l.headerLine(path), Table: strings.Join(path, "."),
			Msg: fmt.Sprintf("write [[%s]] (an array of tables), not a %s", strings.Join(path, "."), strings.ToLower(t))}
	}
	return nil
}

// decodeInstance decodes one plugin table (and, for a distributor, its targets).
func (l *loader) decodeInstance(kind registry.Kind, name string, prim toml.Primitive, path []string, parent *Instance) (*Instance, error) {
	p, _ := l.reg.Lookup(kind, name)
	key := strings.Join(path, ".")
	l.count[key]++
	in := &Instance{Kind: kind, Name: name, Plugin: p.New(), Registered: p, Line: l.headerLineN(path, l.count[key])}
	in.Table = fmt.Sprintf("[[%s]] #%d", key, l.count[key])
	if kind == registry.Outputs {
		if parent != nil {
			in.Out = parent.outRaw // what the parent set, not its defaults
			in.Out.ID, in.Out.Instance, in.Out.To = "", "", nil
			// the distributor filters; its targets select on their own keys
			in.Out.NamePass, in.Out.NameDrop, in.Out.TagPass, in.Out.TagDrop = nil, nil, nil, nil
		}
		if err := l.md.PrimitiveDecode(prim, &in.Out); err != nil {
			l.failed[key] = true
			return nil, l.wrapDecode(in.Table, err)
		}
		var written struct {
			FlushInterval *registry.Duration `toml:"flush_interval"`
		}
		if err := l.md.PrimitiveDecode(prim, &written); err == nil && written.FlushInterval != nil {
			in.Out.flushIntervalSet = true
		}
		in.ID = in.Out.ID
	} else {
		if err := l.md.PrimitiveDecode(prim, &in.In); err != nil {
			l.failed[key] = true
			return nil, l.wrapDecode(in.Table, err)
		}
		in.ID = in.In.ID
	}
	if err := l.md.PrimitiveDecode(prim, in.Plugin); err != nil {
		l.failed[key] = true
		return nil, l.wrapDecode(in.Table, err)
	}
	var err error
	if kind == registry.Outputs {
		o := &in.Out
		in.Sel, err = selector.New(selector.Spec{NamePass: o.NamePass, NamePassSeparator: o.NamePassSeparator,
			NameDrop: o.NameDrop, NameDropSeparator: o.NameDropSeparator, TagPass: o.TagPass, TagDrop: o.TagDrop})
	} else {
		c := &in.In
		in.Sel, err = selector.New(selector.Spec{NamePass: c.NamePass, NamePassSeparator: c.NamePassSeparator,
			NameDrop: c.NameDrop, NameDropSeparator: c.NameDropSeparator, TagPass: c.TagPass, TagDrop: c.TagDrop})
	}
	if err != nil {
		return nil, &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: err.Error()}
	}
	md := l.md
	in.fresh = func() (any, error) {
		v := p.New()
		return v, md.PrimitiveDecode(prim, v)
	}
	if in.ID == "" {
		if parent != nil {
			in.ID = fmt.Sprintf("%s/%s-%d", parent.ID, name, len(parent.Targets)+1)
		} else {
			in.ID = fmt.Sprintf("%s-%d", name, l.count[key])
		}
	} else {
		in.Table = fmt.Sprintf("[[%s]] id %q", key, in.ID)
	}
	idKey := string(kind) + "/" + in.ID
	if prev, dup := l.ids[idKey]; dup {
		return nil, &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: fmt.Sprintf("id %q already used by %s", in.ID, prev)}
	}
	l.ids[idKey] = in.Table
	if kind == registry.Outputs {
		in.outRaw = in.Out
		if err := l.outputDefaults(in); err != nil {
			return nil, err
		}
		if err := l.decodeTargets(in, path); err != nil {
			return nil, err
		}
	}
	if err := l.checkKind(in); err != nil {
		return nil, err
	}
	in.Fingerprint = fingerprint(in)
	return in, nil
}

// fingerprint renders an instance's decoded configuration (before Init:
// exported fields only) and, for a distributor, its targets' fingerprints.
func fingerprint(in *Instance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s.%s|%s|", in.Kind, in.Name, in.ID)
	enc := toml.NewEncoder(&b)
	if err := enc.Encode(in.Plugin); err != nil {
		fmt.Fprintf(&b, "%p", in.Plugin) // not encodable: never equal to another
	}
	if in.Kind == registry.Outputs {
		o := in.Out
		o.To = nil
		if err := enc.Encode(o); err != nil {
			fmt.Fprintf(&b, "%p", in.Plugin)
		}
	} else {
		_ = enc.Encode(in.In)
	}
	for _, t := range in.Targets {
		b.WriteString("|target:")
		b.WriteString(t.Fingerprint)
	}
	return b.String()
}

func (l *loader) outputDefaults(in *Instance) error {
	o := &in.Out
	spec := in.Registered.Output
	if o.BatchSize == 0 {
		o.BatchSize = spec.BatchSize
	}
	if o.FlushInterval == 0 && !o.flushIntervalSet {
		o.FlushInterval = spec.FlushInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = defBatchSize
	}
	if o.FlushIdle == 0 {
		o.FlushIdle = registry.Duration(defFlushIdle)
	}
	if o.BufferLimit == 0 {
		o.BufferLimit = defBufferLimit
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = registry.Duration(defRetryInitial)
	}
	if o.RetryMax == 0 {
		o.RetryMax = registry.Duration(defRetryMax)
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = registry.Duration(defWriteTimeout)
	}
	var errs Errors
	bad := func(key, msg string) {
		line := in.Line
		if k := l.keyLineIn(in, key); k > 0 {
			line = k
		}
		errs = append(errs, &Error{File: l.file, Line: line, Table: in.Table, Msg: key + ": " + msg})
	}
	switch o.Overflow {
	case "":
		o.Overflow = "drop_oldest"
	case "drop_oldest", "block":
	default:
		bad("overflow", fmt.Sprintf("%q: want \"block\" or \"drop_oldest\"", o.Overflow))
	}
	if o.BatchSize < 0 {
		bad("batch_size", "must be positive")
	}
	if o.FlushInterval < 0 {
		bad("flush_interval", "must not be negative")
	}
	if o.FlushIdle < 0 {
		bad("flush_idle", "must not be negative")
	}
	if o.Workers == 0 {
		o.Workers = min(max(spec.Workers, 1), maxWorkers)
	}
	switch o.SpoolFsync {
	case "":
		o.SpoolFsync = "interval"
	case "always", "interval", "never":
	default:
		bad("spool_fsync", fmt.Sprintf("%q: want \"always\", \"interval\" or \"never\"", o.SpoolFsync))
	}
	if o.SpoolMaxBytes == 0 {
		o.SpoolMaxBytes = 1 << 30
	}
	if o.SpoolMaxBytes < 1<<20 || o.SpoolReplayRate < 0 {
		bad("spool_max_bytes", "at least 1048576; spool_replay_rate must not be negative")
	}
	if o.Workers < 0 || o.Workers > maxWorkers {
		bad("workers", fmt.Sprintf("between 1 and %d", maxWorkers))
	}
	if o.BufferLimit < 0 {
		bad("buffer_limit", "must be positive")
	}
	if o.BufferLimit < o.BatchSize {
		o.BatchSize = o.BufferLimit
	}
	if o.RetryMax < o.RetryInitial {
		bad("retry_max", "must be at least retry_initial")
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// decodeTargets builds a distributor's targets from its `to` tables and its
// destinations shorthand.
func (l *loader) decodeTargets(in *Instance, path []string) error {
	_, isDist := in.Plugin.(registry.Distributor)
	if !isDist {
		if len(in.Out.To) > 0 {
			return &Error{File: l.file, Line: in.Line, Table: in.Table,
				Msg: fmt.Sprintf("outputs.%s does not distribute: remove its [[...to.*]] tables", in.Name)}
		}
		if in.Out.Instance != "" && len(path) == 2 {
			return &Error{File: l.file, Line: l.keyLine(path, "instance"), Table: in.Table,
				Msg: "instance: only a distributor's targets ([[outputs.<dist>.to.<output>]]) have an instance"}
		}
		return nil
	}
	names := make([]string, 0, len(in.Out.To))
	for n := range in.Out.To {
		names = append(names, n)
	}
	// targets in document order
	slices.SortFunc(names, func(a, b string) int {
		return l.headerLine(append(slices.Clone(path), "to", a)) - l.headerLine(append(slices.Clone(path), "to", b))
	})
	var errs Errors
	for _, tn := range names {
		tpath := append(slices.Clone(path), "to", tn)
		if err := l.checkPlugin(registry.Outputs, tn, tpath); err != nil {
			errs = append(errs, err)
			l.failed[strings.Join(tpath, ".")] = true
			continue
		}
		var arr []toml.Primitive
		if err := l.md.PrimitiveDecode(in.Out.To[tn], &arr); err != nil {
			errs = append(errs, l.wrapDecode(in.Table, err))
			l.failed[strings.Join(tpath, ".")] = true
			continue
		}
		for _, prim := range arr {
			t, err := l.decodeInstance(registry.Outputs, tn, prim, tpath, in)
			if err != nil {
				errs = append(errs, List(err)...)
				continue
			}
			t.Target = registry.Target{ID: t.ID, Plugin: tn, Instance: t.Out.Instance}
			if a, ok := addressOf(t.Plugin); ok {
				t.Target.Address = a
				t.Target.Host, t.Target.Port = splitHostPort(a)
			}
			t.Target.Spec = t.Target.Address
			if t.Target.Instance != "" {
				t.Target.Spec += ":" + t.Target.Instance
			}
			in.Targets = append(in.Targets, t)
		}
	}
	if sh, ok := in.Plugin.(registry.Shorthand); ok {
		proto, dests := sh.Shorthand()
		if len(dests) > 0 {
			if proto == "" {
				return append(errs, &Error{File: l.file, Line: l.keyLineIn(in, "destinations"), Table: in.Table,
					Msg: "protocol: required with destinations (e.g. \"graphite\")"})
			}
			if _, ok := l.reg.Lookup(registry.Outputs, proto); !ok {
				return append(errs, &Error{File: l.file, Line: l.keyLineIn(in, "protocol"), Table: in.Table,
					Msg: fmt.Sprintf("protocol %q: no such output plugin; this binary has: %s", proto, strings.Join(l.reg.Names(registry.Outputs), ", "))})
			}
		}
		for _, d := range dests {
			t, err := l.shorthandTarget(in, proto, d)
			if err != nil {
				errs = append(errs, List(err)...)
				continue
			}
			in.Targets = append(in.Targets, t)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if len(in.Targets) == 0 {
		if ds, ok := in.Plugin.(registry.DiscoverySource); ok && ds.Service() != "" {
			proto := ""
			if sh, ok := in.Plugin.(registry.Shorthand); ok {
				proto, _ = sh.Shorthand()
			}
			if proto == "" {
				return &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: "protocol: required with consul_service"}
			}
			return nil // the catalog gives the targets at start
		}
		return &Error{File: l.file, Line: in.Line, Table: in.Table,
			Msg: "no targets: set destinations (with protocol), consul_service, or add [[" + strings.Join(path, ".") + ".to.<output>]] tables"}
	}
	if len(in.Targets) > 65535 {
		return &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: "too many targets"}
	}
	if ts, ok := in.Plugin.(registry.TargetSetter); ok {
		if err := ts.SetTargets(in.TargetList()); err != nil {
			return &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: err.Error()}
		}
	}
	return nil
}

// shorthandTarget builds the output for one `destinations` entry
// "host:port[:instance]" by decoding `address = "host:port"` into it.
func (l *loader) shorthandTarget(parent *Instance, proto, dest string) (*Instance, error) {
	host, port, inst, err := ParseDestination(dest)
	if err != nil {
		return nil, &Error{File: l.file, Line: l.keyLineIn(parent, "destinations"), Table: parent.Table, Msg: "destinations: " + err.Error()}
	}
	p, _ := l.reg.Lookup(registry.Outputs, proto)
	addr := joinHostPort(host, port)
	t := &Instance{Kind: registry.Outputs, Name: proto, Plugin: p.New(), Registered: p, Line: parent.Line, Table: parent.Table + " destination " + dest}
	t.Out = parent.outRaw
	t.Out.ID, t.Out.To, t.Out.Instance = parent.ID+"/"+dest, nil, inst
	t.Out.NamePass, t.Out.NameDrop, t.Out.TagPass, t.Out.TagDrop = nil, nil, nil, nil
	t.ID = t.Out.ID
	text := fmt.Sprintf("address = %q\n", addr)
	t.fresh = func() (any, error) {
		v := p.New()
		_, err := toml.Decode(text, v)
		return v, err
	}
	md, err := toml.Decode(text, t.Plugin)
	if err != nil {
		return nil, &Error{File: l.file, Line: parent.Line, Table: parent.Table, Msg: fmt.Sprintf("protocol %q: %v", proto, err)}
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, &Error{File: l.file, Line: parent.Line, Table: parent.Table,
			Msg: fmt.Sprintf("protocol %q: output has no address key; declare it as [[...to.%s]] tables", proto, proto)}
	}
	if err := l.checkKind(t); err != nil {
		return nil, err
	}
	t.outRaw = t.Out
	if err := l.outputDefaults(t); err != nil {
		return nil, err
	}
	t.Target = registry.Target{ID: t.ID, Plugin: proto, Address: addr, Host: host, Port: port, Instance: inst, Spec: dest}
	t.Fingerprint = fingerprint(t)
	return t, nil
}

// WithDestinations returns a copy of distributor in whose targets are
// dests ("host:port[:instance]", in ring order): a destination in already
// has keeps its target, the others are built as the destinations shorthand
// would, with the common output keys in's table sets. The copy's Plugin is
// a fresh value that has taken the new targets; file names the
// configuration in errors.
func WithDestinations(reg *registry.Registry, file string, in *Instance, dests []string) (*Instance, error) {
	proto := ""
	if sh, ok := in.Plugin.(registry.Shorthand); ok {
		proto, _ = sh.Shorthand()
	}
	if proto == "" && len(in.Targets) > 0 {
		proto = in.Targets[0].Name
	}
	if proto == "" {
		return nil, fmt.Errorf("%q: no protocol to build destinations with", in.ID)
	}
	l := &loader{reg: reg, file: file, count: map[string]int{}, ids: map[string]string{}}
	old := map[string]*Instance{}
	for _, t := range in.Targets {
		old[t.Target.Spec] = t
	}
	ni := *in
	ni.Targets = nil
	for _, d := range dests {
		if t, ok := old[d]; ok {
			ni.Targets = append(ni.Targets, t)
			continue
		}
		t, err := l.shorthandTarget(in, proto, d)
		if err != nil {
			return nil, err
		}
		ni.Targets = append(ni.Targets, t)
	}
	// a value of its own, to check the targets on (in.Plugin is the file's)
	v, err := in.Fresh()
	if err != nil {
		return nil, err
	}
	if ts, ok := v.(registry.TargetSetter); ok {
		if err := ts.SetTargets(ni.TargetList()); err != nil {
			return nil, err
		}
	}
	ni.Plugin = v
	ni.Fingerprint = fingerprint(&ni)
	return &ni, nil
}

// ParseDestination splits "host:port[:instance]" (IPv6 hosts in brackets).
func ParseDestination(s string) (host, port, instance string, err error) {
	rest := s
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", "", fmt.Errorf("%q: missing ']'", s)
		}
		host, rest = rest[1:end], rest[end+1:]
		if !strings.HasPrefix(rest, ":") {
			return "", "", "", fmt.Errorf("%q: want [host]:port[:instance]", s)
		}
		rest = rest[1:]
	} else {
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", "", "", fmt.Errorf("%q: want host:port[:instance]", s)
		}
		host, rest = rest[:i], rest[i+1:]
	}
	port, instance, _ = strings.Cut(rest, ":")
	if host == "" || port == "" {
		return "", "", "", fmt.Errorf("%q: want host:port[:instance]", s)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", "", "", fmt.Errorf("%q: port %q is not a number", s, port)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", "", fmt.Errorf("%q: port %s: want 1-65535", s, port)
	}
	if strings.Contains(instance, ":") {
		return "", "", "", fmt.Errorf("%q: want host:port[:instance]", s)
	}
	return host, port, instance, nil
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func splitHostPort(a string) (string, string) {
	h, p, _, err := ParseDestination(a)
	if err != nil {
		return a, ""
	}
	return h, p
}

// addressOf reads an output's address through registry.Addresser.
func addressOf(p any) (string, bool) {
	if a, ok := p.(registry.Addresser); ok {
		return a.Destination(), true
	}
	return "", false
}

// checkKind verifies the decoded plugin value implements its kind's interface.
func (l *loader) checkKind(in *Instance) error {
	var ok bool
	switch in.Kind {
	case registry.Inputs:
		_, ok = in.Plugin.(registry.Input)
	case registry.Processors:
		_, ok = in.Plugin.(registry.Processor)
	case registry.Aggregators:
		_, ok = in.Plugin.(registry.Aggregator)
	case registry.Outputs:
		_, o := in.Plugin.(registry.Output)
		_, d := in.Plugin.(registry.Distributor)
		ok = o || d
	}
	if !ok {
		return &Error{File: l.file, Line: in.Line, Table: in.Table, Msg: fmt.Sprintf("plugin %s.%s does not implement its interface (a bug in the plugin)", in.Kind, in.Name)}
	}
	return nil
}

func (l *loader) wrapDecode(table string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	line := 0
	if m := reLineKey.FindStringSubmatch(msg); m != nil {
		fmt.Sscanf(m[1], "%d", &line)
		msg = "key " + m[2] + ": " + msg[len(m[0]):]
	} else if m := reLastKey.FindStringSubmatch(msg); m != nil {
		msg = "key " + m[1] + ": " + msg[len(m[0]):]
	}
	return &Error{File: l.file, Line: line, Table: table, Msg: msg}
}

var (
	reLineKey = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): `)
	reLastKey = regexp.MustCompile(`^\(last key "([^"]*)"\): `)
)

// checkUndecoded reports every key no struct took (a typo, or an option
// this build does not have) with the keys its table takes and the nearest.
func (l *loader) checkUndecoded() {
	for _, k := range l.md.Undecoded() {
		if len(k) == 0 {
			continue
		}
		if l.underFailed(k) {
			continue
		}
		key := k[len(k)-1]
		table := "[" + strings.Join(k[:len(k)-1], ".") + "]"
		if len(k) >= 3 {
			table = "[" + table + "]"
		}
		if len(k) == 2 && k[0] == "rules" {
			table = "[[rules]]"
		}
		var msg string
		if len(k) == 1 {
			msg = fmt.Sprintf("unknown top-level key or table %q; want [agent], [[inputs.*]], [[processors.*]], [[aggregators.*]], [[outputs.*]], [[rules]]", k.String())
			table = "(top level)"
		} else {
			msg = fmt.Sprintf("unknown key %q (typo, or not in this build)", key)
			if valid := l.validKeys(k[:len(k)-1]); len(valid) > 0 {
				if near := nearest(key, valid); near != "" {
					msg += fmt.Sprintf("; did you mean %q?", near)
				}
				msg += " " + table + " takes: " + strings.Join(valid, ", ")
			}
		}
		l.fail(&Error{File: l.file, Line: l.keyLine(k[:len(k)-1], key), Table: table, Msg: msg})
	}
}

// underFailed reports whether key path k is inside a table whose decoding
// failed (its keys are undecoded because of that error, already reported).
func (l *loader) underFailed(k toml.Key) bool {
	for n := 1; n < len(k); n++ {
		if l.failed[strings.Join(k[:n], ".")] {
			return true
		}
	}
	return false
}

// validKeys returns the keys the table at path takes, sorted; nil when
// path is not a table the loader knows.
func (l *loader) validKeys(path []string) []string {
	var keys []string
	switch {
	case len(path) == 1 && path[0] == "agent":
		keys = structKeys(reflect.TypeOf(Agent{}))
	case len(path) == 1 && path[0] == "rules":
		keys = slices.Clone(rules.Keys)
	case len(path) == 2 && path[0] == "rules" && path[1] == "aggregate":
		keys = slices.Clone(aggregate.Keys)
	case len(path) == 3 && path[0] == "rules" && path[1] == "aggregate" && path[2] == "compute":
		keys = structKeys(reflect.TypeOf(aggregate.ComputeSpec{}))
	case len(path) == 2 || (len(path) == 4 && path[0] == string(registry.Outputs) && path[2] == "to"):
		kind := registry.Kind(path[0])
		p, ok := l.reg.Lookup(kind, path[len(path)-1])
		if !ok {
			return nil
		}
		keys = append(structKeys(reflect.TypeOf(p.New())), commonKeys[kind]...)
		if _, dist := p.New().(registry.Distributor); !dist {
			keys = slices.DeleteFunc(keys, func(k string) bool { return k == "to" })
		}
		if len(path) == 2 {
			keys = slices.DeleteFunc(keys, func(k string) bool { return k == "instance" })
		}
	default:
		return nil
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// structKeys returns the TOML keys of a struct type (through pointers and
// embedded structs): each field's toml tag, or its lower-cased name.
func structKeys(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			keys = append(keys, structKeys(f.Type)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		keys = append(keys, tag)
	}
	return keys
}

// nearest returns the candidate closest to key: the same letters without
// '_' or '-', else an edit distance of at most 2 (1 for short keys); "" if
// none is that close.
func nearest(key string, candidates []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if norm(c) == norm(key) {
			return c
		}
		if d := editDistance(strings.ToLower(key), c); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(key) <= 4 {
		limit = 1
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// headerLine returns the line of the first [path] or [[path]] header, or 0.
func (l *loader) headerLine(path []string) int { return l.headerLineN(path, 1) }

// headerLineN returns the line of the n-th [[path]] header (1-based), or 0.
func (l *loader) headerLineN(path []string, n int) int {
	want := strings.Join(path, ".")
	for i, line := range strings.Split(l.text, "\n") {
		if h, ok := tableHeader(line); ok && h == want {
			n--
			if n == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// keyLine returns the first line that sets key inside a table at path.
func (l *loader) keyLine(path []string, key string) int {
	want := strings.Join(path, ".")
	cur := ""
	for i, line := range strings.Split(l.text, "\n") {
		if h, ok := tableHeader(line); ok {
			cur = h
			continue
		}
		t := strings.TrimSpace(line)
		k, _, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		full := k
		if cur != "" {
			full = cur + "." + k
		}
		if full == want+"."+key || (want == "" && k == key) {
			return i + 1
		}
	}
	return 0
}

// keyLineIn returns the line that sets key in the table of instance in
// (from its header to the next one), or 0.
func (l *loader) keyLineIn(in *Instance, key string) int {
	if in.Line <= 0 {
		return 0
	}
	lines := strings.Split(l.text, "\n")
	for i := in.Line; i < len(lines); i++ {
		if _, ok := tableHeader(lines[i]); ok {
			break
		}
		k, _, ok := strings.Cut(strings.TrimSpace(lines[i]), "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return i + 1
		}
	}
	return 0
}

// tableHeader parses "[a.b]" or "[[a.b]]" (whitespace and quotes tolerated).
func tableHeader(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, "[") {
		return "", false
	}
	if i := strings.Index(t, "#"); i > 0 {
		t = strings.TrimSpace(t[:i])
	}
	t = strings.TrimPrefix(strings.TrimPrefix(t, "["), "[")
	t = strings.TrimSuffix(strings.TrimSuffix(t, "]"), "]")
	parts := strings.Split(t, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"'`)
	}
	return strings.Join(parts, "."), true
}

// ExpandEnv replaces ${VAR} and ${VAR:-default} outside comment lines, as
// the configuration loader does (tools reading a configuration use it too).
// An unset variable without a default is an error naming it and its line. A
// bare $VAR is left alone.
func ExpandEnv(text string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(text, "${") {
		return text, nil
	}
	lines := strings.SplitAfter(text, "\n")
	var b strings.Builder
	b.Grow(len(text))
	for n, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") || !strings.Contains(line, "${") {
			b.WriteString(line)
			continue
		}
		for {
			i := strings.Index(line, "${")
			if i < 0 {
				b.WriteString(line)
				break
			}
			j := strings.IndexByte(line[i:], '}')
			if j < 0 {
				return "", fmt.Errorf("%d: unterminated ${ in %q", n+1, strings.TrimSpace(line))
			}
			expr := line[i+2 : i+j]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf("%d: bad variable name in ${%s}", n+1, expr)
			}
			val, ok := lookup(name)
			if !ok || (hasDef && val == "") {
				if !hasDef {
					return "", fmt.Errorf("%d: environment variable %s is not set (use ${%s:-default} for a default)", n+1, name, name)
				}
				val = def
			}
			b.WriteString(line[:i])
			b.WriteString(val)
			line = line[i+j+1:]
		}
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// decodeRules decodes the [[rules]] tables in file order.
func (l *loader) decodeRules(cfg *Config, prims []toml.Primitive) error {
	if len(prims) == 0 {
		if t := l.md.Type("rules"); t != "" && t != "ArrayHash" {
			return &Error{File: l.file, Line: l.headerLine([]string{"rules"}), Table: "rules",
				Msg: fmt.Sprintf("write [[rules]] (an array of tables), not a %s", strings.ToLower(t))}
		}
		return nil
	}
	lines := l.headerLines("rules")
	for i, p := range prims {
		var s rules.Spec
		if i < len(lines) {
			s.Line = lines[i]
		}
		s.File = l.file
		if err := l.md.PrimitiveDecode(p, &s); err != nil {
			return &Error{File: l.file, Line: s.Line, Table: fmt.Sprintf("[[rules]] #%d", i+1), Msg: err.Error()}
		}
		cfg.Rules = append(cfg.Rules, s)
	}
	return nil
}

// compileRules compiles the chain against the top-level outputs and checks
// metrics_send_to; it reports every rule error at once.
func (l *loader) compileRules(cfg *Config) error {
	ids := map[string]bool{}
	for _, o := range cfg.Outputs {
		ids[o.ID] = true
	}
	known := func(id string) bool { return ids[id] || l.outFailed }
	for _, id := range cfg.Agent.MetricsSendTo {
		if !known(id) {
			return &Error{File: l.file, Line: l.keyLine([]string{"agent"}, "metrics_send_to"), Table: "[agent]",
				Msg: fmt.Sprintf("metrics_send_to: no output with id %q", id)}
		}
	}
	if len(cfg.Rules) == 0 {
		return nil
	}
	ch, err := rules.Compile(cfg.Rules, known)
	if err != nil {
		return fmt.Errorf("%s: [[rules]]:\n  %s", l.file, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	cfg.Chain = ch
	if len(l.errs) > 0 {
		return nil
	}
	cfg.Warnings = append(cfg.Warnings, ch.Unreachable()...)
	named := map[string]bool{}
	for _, id := range ch.Outputs() {
		named[id] = true
	}
	for _, id := range cfg.Agent.MetricsSendTo {
		named[id] = true
	}
	for _, o := range cfg.Outputs {
		if !named[o.ID] {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s (line %d) receives nothing: no rule sends to it", o.Label(), o.Line))
		}
	}
	return nil
}

// headerLines returns the lines of every [[name]] header, in order.
func (l *loader) headerLines(name string) []int {
	var out []int
	for i, line := range strings.Split(l.text, "\n") {
		if h, ok := tableHeader(line); ok && h == name {
			out = append(out, i+1)
		}
	}
	return out
}
