package etsyconf

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metricsrouter/router/registry"
)

// Error is what the converter reports about a key of the configuration.
type Error struct {
	File string
	// Key is the key's path ("graphite.globalSuffix", "servers[1].socket");
	// empty for the file as a whole.
	Key string
	Msg string
	// Unsupported: not converted (exit status 2), rather than a value Etsy
	// statsd fails on (1).
	Unsupported bool
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.File + ": " + e.Msg
	}
	return e.File + ": " + e.Key + ": " + e.Msg
}

// IsUnsupported implements registry.ConvertError.
func (e *Error) IsUnsupported() bool { return e.Unsupported }

// Server is one of Etsy's servers as an [[inputs.statsd]].
type Server struct {
	Key      string // "servers[0]", or "" for the top-level keys
	Module   string // "./servers/udp" or "./servers/tcp"
	Listen   string
	Protocol string // "udp" or "tcp"
}

// Histogram is one entry of histogram: bins are float64 or "inf".
type Histogram struct {
	Metric string
	Bins   []any
}

// Settings are the values Etsy statsd 0.9.0 uses for a configuration, with
// its defaults applied, in the router's terms.
type Settings struct {
	Servers          []Server
	FlushInterval    time.Duration
	PercentThreshold []float64
	LegacyNamespace  bool
	GlobalPrefix     string
	PrefixCounter    string
	PrefixTimer      string
	PrefixGauge      string
	PrefixSet        string
	GlobalSuffix     string
	PrefixStats      string
	FlushCounts      bool
	DeleteIdleStats  bool
	DeleteCounters   bool
	DeleteTimers     bool
	DeleteGauges     bool
	DeleteSets       bool
	GaugesMaxTTL     int
	Histogram        []Histogram
	// Graphite is graphiteHost:graphitePort when the graphite backend is
	// loaded and graphiteHost is set; empty otherwise.
	Graphite string
	Console  bool

	// from says which Etsy key each router key comes from, or that it is
	// Etsy's default.
	from map[string]string
}

// Output is the converted configuration; Origin[i] is the Etsy key TOML
// line i+1 comes from ("" for the rest).
type Output struct {
	TOML   string
	Origin []string
}

// conv collects what Convert finds.
type conv struct {
	file  string
	cfg   *Object
	errs  []*Error
	notes []string
	used  map[string]bool // top-level keys looked at
}

func (c *conv) unsupported(key, format string, a ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Key: key, Msg: fmt.Sprintf(format, a...), Unsupported: true})
}

func (c *conv) invalid(key, format string, a ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Key: key, Msg: fmt.Sprintf(format, a...)})
}

func (c *conv) note(key, format string, a ...any) {
	c.notes = append(c.notes, key+": "+fmt.Sprintf(format, a...))
}

func (c *conv) get(key string) (any, bool) {
	c.used[key] = true
	return c.cfg.Get(key)
}

// truthy is JavaScript's ToBoolean.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case float64:
		return v != 0 && !math.IsNaN(v)
	case string:
		return v != ""
	}
	return true
}

// module normalises a require() path of a bundled server or backend.
func module(v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	return strings.TrimSuffix(s, ".js"), true
}

// Resolve computes the settings Etsy statsd 0.9.0 (stats.js, lib/config.js,
// servers/*.js, backends/graphite.js and console.js) uses for cfg, and
// reports each key it cannot convert or that Etsy fails on.
func Resolve(file string, cfg *Object) (*Settings, []string, []*Error) {
	c := &conv{file: file, cfg: cfg, used: map[string]bool{}}
	s := &Settings{from: map[string]string{}}
	c.servers(s)
	c.aggregation(s)
	c.backends(s)
	c.others()
	for _, k := range cfg.Keys {
		if !c.used[k] {
			c.unsupported(k, "unknown to Etsy statsd 0.9.0 and its bundled servers and backends; not converted")
		}
	}
	// in the order of the file's keys
	pos := func(key string) int {
		if i := strings.IndexAny(key, ".[:"); i >= 0 {
			key = key[:i]
		}
		return slices.Index(cfg.Keys, key)
	}
	slices.SortStableFunc(c.errs, func(a, b *Error) int { return pos(a.Key) - pos(b.Key) })
	slices.SortStableFunc(c.notes, func(a, b string) int { return pos(a) - pos(b) })
	return s, c.notes, c.errs
}

// servers: servers[], else the top-level server, address, address_ipv6,
// port (stats.js: config.servers || [config]).
func (c *conv) servers(s *Settings) {
	top := []string{"server", "address", "address_ipv6", "port", "socket", "socket_mod"}
	list, ok := c.get("servers")
	if !ok {
		c.server(s, "", c.cfg, true)
		return
	}
	for _, k := range top {
		if _, set := c.get(k); set {
			c.note(k, "ignored by Etsy statsd when servers is set")
		}
	}
	arr, ok := list.([]any)
	if !ok {
		c.invalid("servers", "want an array of server objects, not %s", describe(list))
		return
	}
	if len(arr) == 0 {
		c.unsupported("servers", "empty: Etsy listens nowhere, the router needs an input")
	}
	for i, e := range arr {
		key := fmt.Sprintf("servers[%d]", i)
		o, ok := e.(*Object)
		if !ok {
			c.invalid(key, "want a server object, not %s", describe(e))
			continue
		}
		for _, k := range o.Keys {
			known := false
			for _, t := range top {
				known = known || k == t
			}
			if !known {
				c.unsupported(key+"."+k, "unknown to Etsy's servers; not converted")
			}
		}
		c.server(s, key, o, false)
	}
}

// server converts one server configuration (servers/udp.js, tcp.js).
func (c *conv) server(s *Settings, key string, o *Object, top bool) {
	at := func(k string) string {
		if key == "" {
			return k
		}
		return key + "." + k
	}
	get := func(k string) (any, bool) {
		if top {
			return c.get(k)
		}
		return o.Get(k)
	}
	mod := "./servers/udp"
	if v, ok := get("server"); ok && truthy(v) {
		m, ok := module(v)
		if !ok || m != "./servers/udp" && m != "./servers/tcp" {
			c.unsupported(at("server"), "%s is not one of Etsy's servers \"./servers/udp\", \"./servers/tcp\"; not converted", describe(v))
			return
		}
		mod = m
	}
	port := 8125
	if v, ok := get("port"); ok && truthy(v) {
		p, ok := portNumber(v)
		if !ok {
			c.invalid(at("port"), "%s is not a port (node refuses it)", describe(v))
			return
		}
		port = p
	}
	var host string
	if v, ok := get("address"); ok && truthy(v) {
		h, ok := v.(string)
		if !ok {
			c.invalid(at("address"), "want a string, not %s", describe(v))
			return
		}
		host = h
	}
	v6, _ := get("address_ipv6")
	sock, _ := get("socket")
	get("socket_mod")
	srv := Server{Key: key, Module: mod}
	if mod == "./servers/tcp" {
		srv.Protocol = "tcp"
		if truthy(sock) {
			c.unsupported(at("socket"), "a unix socket: inputs.statsd listens on TCP and UDP ports only; not converted")
			return
		}
		// net.Server.listen without a host: every address, IPv6 and IPv4
	} else {
		srv.Protocol = "udp"
		if truthy(sock) {
			c.note(at("socket"), "ignored by Etsy's UDP server")
		}
		if host == "" && !truthy(v6) {
			host = "0.0.0.0" // a udp4 socket bound without an address
		}
		// a udp6 socket without an address: every address, IPv6 and IPv4
	}
	srv.Listen = net.JoinHostPort(host, strconv.Itoa(port))
	s.Servers = append(s.Servers, srv)
}

// portNumber reads a port as node's listen and bind take it: a number or a
// string of digits, 0 to 65535 (0 is truthy only as a string: any port).
func portNumber(v any) (int, bool) {
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) && v > 0 && v <= 65535 {
			return int(v), true
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil && n > 0 && n <= 65535 {
			return n, true
		}
	}
	return 0, false
}

// aggregation: stats.js and backends/graphite.js.
func (c *conv) aggregation(s *Settings) {
	from := func(routerKey, etsyKey string, set bool) {
		if set {
			s.from[routerKey] = etsyKey
		} else {
			s.from[routerKey] = "Etsy's default"
		}
	}
	// flushInterval = Number(config.flushInterval || 10000)
	ms := 10000.0
	v, set := c.get("flushInterval")
	if set && truthy(v) {
		switch v := v.(type) {
		case float64:
			ms = v
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				c.invalid("flushInterval", "%s is not a number of milliseconds", describe(v))
			}
			ms = f
		default:
			c.invalid("flushInterval", "%s is not a number of milliseconds", describe(v))
		}
	}
	if ms < 1000 || ms != math.Trunc(ms/1000)*1000 || ms > 1e12 {
		c.unsupported("flushInterval", "%s ms: flush_interval is whole seconds; not converted", jsNumber(ms))
		ms = 10000
	}
	s.FlushInterval = time.Duration(ms) * time.Millisecond
	from("flush_interval", "flushInterval (ms)", set && truthy(v))

	// pctThreshold = config.percentThreshold || 90, listified
	s.PercentThreshold = []float64{90}
	v, set = c.get("percentThreshold")
	if set && truthy(v) {
		list, isArr := v.([]any)
		if !isArr {
			list = []any{v}
		}
		s.PercentThreshold = []float64{}
		for i, p := range list {
			f, ok := p.(float64)
			if !ok {
				k := "percentThreshold"
				if isArr {
					k = fmt.Sprintf("percentThreshold[%d]", i)
				}
				c.unsupported(k, "%s: want a number; not converted", describe(p))
				continue
			}
			s.PercentThreshold = append(s.PercentThreshold, f)
		}
	}
	from("percent_threshold", "percentThreshold", set && truthy(v))

	// backends/graphite.js: config.graphite, each key !== undefined or its default
	g := &Object{}
	gv, gset := c.get("graphite")
	if gset && gv != nil {
		o, ok := gv.(*Object)
		if !ok {
			c.invalid("graphite", "want an object, not %s", describe(gv))
		} else {
			g = o
		}
	}
	known := map[string]bool{}
	str := func(etsy, routerKey, def string, dst *string) {
		known[etsy] = true
		*dst = def
		v, ok := g.Get(etsy)
		from(routerKey, "graphite."+etsy, ok)
		if !ok {
			return
		}
		sv, isStr := v.(string)
		if !isStr {
			c.unsupported("graphite."+etsy, "%s: want a string; not converted", describe(v))
			return
		}
		*dst = sv
	}
	known["legacyNamespace"] = true
	lv, lset := g.Get("legacyNamespace")
	s.LegacyNamespace = !lset || lv != false // legacyNamespace === false
	from("legacy_namespace", "graphite.legacyNamespace", lset)
	str("globalPrefix", "global_prefix", "stats", &s.GlobalPrefix)
	str("prefixCounter", "prefix_counter", "counters", &s.PrefixCounter)
	str("prefixTimer", "prefix_timer", "timers", &s.PrefixTimer)
	str("prefixGauge", "prefix_gauge", "gauges", &s.PrefixGauge)
	str("prefixSet", "prefix_set", "sets", &s.PrefixSet)
	str("globalSuffix", "global_suffix", "", &s.GlobalSuffix)
	if v, ok := g.Get("globalSuffix"); ok && v == "" {
		c.unsupported("graphite.globalSuffix", "\"\": Etsy then ends every name with a dot, which global_suffix cannot write; not converted")
	}
	for _, k := range g.Keys {
		if !known[k] {
			c.unsupported("graphite."+k, "unknown to Etsy's graphite backend; not converted")
		}
	}
	s.PrefixStats = "statsd"
	v, set = c.get("prefixStats")
	from("prefix_stats", "prefixStats", set)
	if set {
		if sv, ok := v.(string); ok {
			s.PrefixStats = sv
		} else {
			c.unsupported("prefixStats", "%s: want a string; not converted", describe(v))
		}
	}
	// flush_counts = typeof(config.flush_counts) === "undefined" ? true : config.flush_counts
	v, set = c.get("flush_counts")
	s.FlushCounts = !set || truthy(v)
	from("flush_counts", "flush_counts", set)

	// deleteIdleStats sets the defaults of the four others
	v, set = c.get("deleteIdleStats")
	s.DeleteIdleStats = truthy(v)
	from("delete_idle_stats", "deleteIdleStats", set)
	for _, d := range []struct {
		etsy, key string
		dst       *bool
	}{
		{"deleteCounters", "delete_counters", &s.DeleteCounters},
		{"deleteTimers", "delete_timers", &s.DeleteTimers},
		{"deleteGauges", "delete_gauges", &s.DeleteGauges},
		{"deleteSets", "delete_sets", &s.DeleteSets},
	} {
		v, set := c.get(d.etsy)
		if set {
			*d.dst = truthy(v)
			s.from[d.key] = d.etsy
		} else {
			*d.dst = s.DeleteIdleStats
			s.from[d.key] = "deleteIdleStats"
			if !s.DeleteIdleStats {
				s.from[d.key] = "Etsy's default"
			}
		}
	}
	// gaugesMaxTTL: an integer above 1, else 1
	s.GaugesMaxTTL = 1
	v, set = c.get("gaugesMaxTTL")
	from("gauges_max_ttl", "gaugesMaxTTL", set)
	if f, ok := v.(float64); ok && f == math.Trunc(f) && f > 1 {
		if f > math.MaxInt32 {
			c.unsupported("gaugesMaxTTL", "%s: too large; not converted", jsNumber(f))
		} else {
			s.GaugesMaxTTL = int(f)
		}
	} else if set && !(ok && f == 1) {
		c.note("gaugesMaxTTL", "%s is not an integer above 1: Etsy uses 1", describe(v))
	}

	// histogram: [{metric, bins}], the first entry whose metric is in the name
	v, set = c.get("histogram")
	if set && truthy(v) {
		list, ok := v.([]any)
		if !ok {
			c.unsupported("histogram", "%s: want an array of {metric, bins}; not converted", describe(v))
			return
		}
		for i, e := range list {
			key := fmt.Sprintf("histogram[%d]", i)
			o, ok := e.(*Object)
			if !ok {
				c.unsupported(key, "%s: want {metric, bins}; not converted", describe(e))
				continue
			}
			for _, k := range o.Keys {
				if k != "metric" && k != "bins" {
					c.unsupported(key+"."+k, "unknown to Etsy's histograms; not converted")
				}
			}
			m, _ := o.Get("metric")
			metric, ok := m.(string)
			if !ok {
				c.unsupported(key+".metric", "%s: want a string; not converted", describe(m))
				continue
			}
			if metric == "" {
				c.unsupported(key+".metric", "\"\" matches every timer in Etsy; the router's histogram needs a metric; entry not converted")
				continue
			}
			b, _ := o.Get("bins")
			bins, ok := b.([]any)
			if !ok {
				c.unsupported(key+".bins", "%s: want an array; entry not converted", describe(b))
				continue
			}
			if len(bins) == 0 {
				c.unsupported(key+".bins", "[] keeps the timers it matches out of later entries in Etsy; the router's bins cannot be empty; entry not converted")
				continue
			}
			h := Histogram{Metric: metric}
			good := true
			for j, bin := range bins {
				switch bv := bin.(type) {
				case float64:
					h.Bins = append(h.Bins, bv)
				case string:
					if bv == "inf" {
						h.Bins = append(h.Bins, bv)
						continue
					}
					good = false
					c.unsupported(fmt.Sprintf("%s.bins[%d]", key, j), "%s: want a number or \"inf\"; entry not converted", describe(bin))
				default:
					good = false
					c.unsupported(fmt.Sprintf("%s.bins[%d]", key, j), "%s: want a number or \"inf\"; entry not converted", describe(bin))
				}
			}
			if good {
				s.Histogram = append(s.Histogram, h)
			}
		}
	}
}

// backends: backends[] (default ["./backends/graphite"]) and their keys.
func (c *conv) backends(s *Settings) {
	graphite, console, repeater := false, false, false
	v, set := c.get("backends")
	if !set {
		graphite = true
	} else {
		list, ok := v.([]any)
		if !ok {
			c.invalid("backends", "want an array of module paths, not %s", describe(v))
		}
		for i, b := range list {
			key := fmt.Sprintf("backends[%d]", i)
			m, _ := module(b)
			switch m {
			case "./backends/graphite":
				graphite = true
			case "./backends/console":
				console = true
			case "./backends/repeater":
				repeater = true
				c.unsupported(key, "the repeater backend forwards every packet raw; the StatsD server consumes the StatsD metrics (use a separate [[outputs.statsd]] in a proxy configuration); not converted")
			default:
				c.unsupported(key, "%s: a backend the router does not have; not converted", describe(b))
			}
		}
	}
	host, hset := c.get("graphiteHost")
	pv, pset := c.get("graphitePort")
	proto, _ := c.get("graphiteProtocol")
	_, ppset := c.get("graphitePicklePort")
	switch {
	case !graphite:
		for _, k := range []string{"graphiteHost", "graphitePort", "graphiteProtocol", "graphitePicklePort", "graphite"} {
			if _, ok := c.cfg.Get(k); ok {
				c.note(k, "unused: backends does not load ./backends/graphite")
			}
		}
	case !truthy(host):
		c.note("graphiteHost", "not set: Etsy's graphite backend aggregates and discards every flush (outputs.file to /dev/null)")
	default:
		h, ok := host.(string)
		if !ok {
			c.invalid("graphiteHost", "want a host name or address, not %s", describe(host))
			break
		}
		port := 2003
		if pset && truthy(pv) {
			p, ok := portNumber(pv)
			if !ok {
				c.invalid("graphitePort", "%s is not a port (node refuses it)", describe(pv))
				break
			}
			port = p
		}
		if proto == "pickle" {
			c.unsupported("graphiteProtocol", "\"pickle\": outputs.graphite writes the plaintext protocol; not converted")
		} else if ppset {
			c.note("graphitePicklePort", "unused with graphiteProtocol text")
		}
		s.Graphite = net.JoinHostPort(h, strconv.Itoa(port))
	}
	_ = hset
	s.Console = console
	if cv, ok := c.get("console"); ok {
		o, isObj := cv.(*Object)
		switch {
		case !console:
			c.note("console", "unused: backends does not load ./backends/console")
		case !isObj:
			c.note("console", "%s: Etsy's console backend reads no option from it", describe(cv))
		default:
			for _, k := range o.Keys {
				if k != "prettyprint" {
					c.unsupported("console."+k, "unknown to Etsy's console backend; not converted")
				}
			}
			if p, _ := o.Get("prettyprint"); truthy(p) {
				c.unsupported("console.prettyprint", "outputs.console writes the flushed Graphite lines, not Etsy's dump of its state; not converted")
			}
		}
	}
	for _, k := range []string{"repeater", "repeaterProtocol"} {
		if _, ok := c.get(k); ok && !repeater {
			c.note(k, "unused: backends does not load ./backends/repeater")
		}
	}
}

// others: the keys of stats.js without an equivalent.
func (c *conv) others() {
	if _, ok := c.get("mgmt_port"); ok {
		c.unsupported("mgmt_port", "Etsy's management interface (its counters, timers, gauges and del* commands) has no equivalent; [agent] management_addr answers health, stats and config; not converted")
	}
	if _, ok := c.get("mgmt_address"); ok {
		c.unsupported("mgmt_address", "Etsy's management interface has no equivalent (see [agent] management_addr); not converted")
	}
	if v, ok := c.get("debug"); ok && truthy(v) {
		c.unsupported("debug", "Etsy's debug logging has no equivalent ([agent] log_level = \"debug\" logs other things); not converted")
	}
	if v, ok := c.get("dumpMessages"); ok && truthy(v) {
		c.unsupported("dumpMessages", "the router does not log the lines it receives (outputs.console prints metrics); not converted")
	}
	if v, ok := c.get("keyFlush"); ok {
		if o, isObj := v.(*Object); isObj {
			if iv, _ := o.Get("interval"); truthy(iv) {
				c.unsupported("keyFlush", "logging the most frequent keys has no equivalent; not converted")
			} else {
				c.note("keyFlush", "no effect without interval")
			}
		} else if truthy(v) {
			c.note("keyFlush", "%s: no effect without interval", describe(v))
		}
	}
	if v, ok := c.get("log"); ok {
		if o, isObj := v.(*Object); !isObj || len(o.Keys) > 0 {
			c.unsupported("log", "the router logs JSON to standard error ([agent] log_level); Etsy's log settings have no equivalent; not converted")
		}
	}
	// fs.watch reloads unless automaticConfigReload != false
	if v, ok := c.get("automaticConfigReload"); ok && !looseFalse(v) {
		c.unsupported("automaticConfigReload", "the router does not watch its configuration file (it reloads on SIGHUP); not converted")
	}
	if v, ok := c.get("keyNameSanitize"); ok && !truthy(v) {
		c.unsupported("keyNameSanitize", "%s: the StatsD server always sanitizes names as Etsy does by default; not converted", describe(v))
	}
	if v, ok := c.get("calculatedTimerMetrics"); ok {
		if list, isArr := v.([]any); isArr && len(list) > 0 {
			c.unsupported("calculatedTimerMetrics", "the StatsD server writes every timer statistic; not converted")
		}
	}
	if v, ok := c.get("title"); ok && truthy(v) {
		c.unsupported("title", "%s: the process title has no equivalent; not converted", describe(v))
	}
	if v, ok := c.get("healthStatus"); ok && v != "up" {
		c.unsupported("healthStatus", "%s: the router starts healthy; not converted", describe(v))
	}
}

// looseFalse: v == false in JavaScript.
func looseFalse(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return strings.TrimSpace(v) == "" || err == nil && f == 0
	}
	return false
}

// Convert writes the router configuration for s: an [[inputs.statsd]] per
// server, the [[aggregators.statsd]], and the outputs of the backends.
// notes and errs (the keys not converted) are listed in its header.
func Convert(file string, s *Settings, notes []string, errs []*Error) *Output {
	w := &writer{}
	w.line("# Converted from the Etsy statsd configuration %s by", comment(file))
	w.line("#   router convert statsd-config %s", comment(file))
	w.line("# Run it with: router -config THIS_FILE.toml (check it first with -check).")
	w.line("# The values are what Etsy statsd 0.9.0 uses, its defaults included.")
	for _, e := range errs {
		w.at = e.Key
		msg := e.Msg
		if e.Key != "" {
			msg = e.Key + ": " + msg
		}
		w.line("# NOT CONVERTED: %s", comment(msg))
	}
	w.at = ""
	for _, n := range notes {
		w.line("# NOTE: %s", comment(n))
	}
	for _, srv := range s.Servers {
		w.at = srv.Key
		w.line("")
		w.line("[[inputs.statsd]]")
		what := "the top-level port, address, address_ipv6"
		if srv.Key != "" {
			what = srv.Key
		}
		w.line("  # Etsy's server %s (%s)", basic(srv.Module), what)
		w.line("  listen = %s", basic(srv.Listen))
		w.line("  protocol = %s", basic(srv.Protocol))
	}
	w.at = ""
	w.line("")
	w.line("[[aggregators.statsd]]")
	from := func(key string) string { return "  # " + s.from[key] }
	w.line("  flush_interval = %s%s", basic(formatDuration(s.FlushInterval)), from("flush_interval"))
	pcts := make([]string, len(s.PercentThreshold))
	for i, p := range s.PercentThreshold {
		pcts[i] = number(p)
	}
	w.line("  percent_threshold = [%s]%s", strings.Join(pcts, ", "), from("percent_threshold"))
	w.line(`  ## Etsy statsd 0.9.0 aggregates only "ms" as timers: it adds "h" and "d" to counters.`)
	w.line(`  timer_types = ["ms"]`)
	w.line("  legacy_namespace = %t%s", s.LegacyNamespace, from("legacy_namespace"))
	if s.LegacyNamespace {
		w.line("  ## With legacy_namespace = true the prefixes below are not used (the suffix is).")
	}
	w.line("  global_prefix = %s%s", basic(s.GlobalPrefix), from("global_prefix"))
	w.line("  prefix_counter = %s%s", basic(s.PrefixCounter), from("prefix_counter"))
	w.line("  prefix_timer = %s%s", basic(s.PrefixTimer), from("prefix_timer"))
	w.line("  prefix_gauge = %s%s", basic(s.PrefixGauge), from("prefix_gauge"))
	w.line("  prefix_set = %s%s", basic(s.PrefixSet), from("prefix_set"))
	w.line("  global_suffix = %s%s", basic(s.GlobalSuffix), from("global_suffix"))
	w.line("  prefix_stats = %s%s", basic(s.PrefixStats), from("prefix_stats"))
	w.line("  flush_counts = %t%s", s.FlushCounts, from("flush_counts"))
	w.line("  delete_idle_stats = %t%s", s.DeleteIdleStats, from("delete_idle_stats"))
	w.line("  delete_counters = %t%s", s.DeleteCounters, from("delete_counters"))
	w.line("  delete_timers = %t%s", s.DeleteTimers, from("delete_timers"))
	w.line("  delete_gauges = %t%s", s.DeleteGauges, from("delete_gauges"))
	w.line("  delete_sets = %t%s", s.DeleteSets, from("delete_sets"))
	w.line("  gauges_max_ttl = %d%s", s.GaugesMaxTTL, from("gauges_max_ttl"))
	if len(s.Histogram) > 0 {
		w.at = "histogram"
		w.line("  # histogram: the first entry whose metric is part of a timer's name")
		w.line("  histogram = [")
		for _, h := range s.Histogram {
			bins := make([]string, len(h.Bins))
			for i, b := range h.Bins {
				if f, ok := b.(float64); ok {
					bins[i] = number(f)
				} else {
					bins[i] = `"inf"`
				}
			}
			w.line("    { metric = %s, bins = [%s] },", registry.QuoteTOMLLiteral(h.Metric), strings.Join(bins, ", "))
		}
		w.line("  ]")
		w.at = ""
	}
	if s.Graphite != "" {
		w.at = "graphiteHost"
		w.line("")
		w.line("[[outputs.graphite]]")
		w.line("  # Etsy's graphite backend: graphiteHost, graphitePort (default 2003). Etsy")
		w.line("  # connects once per flush; the router keeps a connection and retries.")
		w.line("  address = %s", basic(s.Graphite))
	}
	if s.Console {
		w.at = "backends"
		w.line("")
		w.line("[[outputs.console]]")
		w.line("  # Etsy's console backend: the router prints the flushed Graphite lines (Etsy")
		w.line("  # prints its state as a JavaScript object).")
		w.line(`  format = "native"`)
	}
	if s.Graphite == "" && !s.Console {
		w.at = "graphiteHost"
		w.line("")
		w.line("[[outputs.file]]")
		w.line("  # Etsy's graphite backend without graphiteHost: flushes are computed and")
		w.line("  # discarded. Replace this output with [[outputs.graphite]] to keep them.")
		w.line(`  id = "discard"`)
		w.line(`  files = ["/dev/null"]`)
	}
	return &Output{TOML: w.b.String(), Origin: w.origin}
}

type writer struct {
	b      strings.Builder
	origin []string
	at     string
}

func (w *writer) line(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	for _, l := range strings.Split(s, "\n") {
		w.b.WriteString(l)
		w.b.WriteByte('\n')
		w.origin = append(w.origin, w.at)
	}
}

// number writes f as a TOML integer when it is one, else as a float.
func number(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// formatDuration writes d as time.ParseDuration reads it, without zero
// units ("10s", "1m", "1h30m").
func formatDuration(d time.Duration) string { return registry.FormatDuration(d) }

// basic quotes s as a TOML basic string.
func basic(s string) string { return registry.QuoteTOML(s) }

// comment keeps s on one comment line.
func comment(s string) string { return registry.TOMLComment(s) }
