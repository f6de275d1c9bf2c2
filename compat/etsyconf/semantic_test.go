package etsyconf_test

import (
	"encoding/json"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/metricsrouter/router/internal/etsytest"
)

// etsyValues reads the configuration with Etsy statsd's own lib/config.js
// (configFile, which evaluates the file) and derives, from the object it
// hands to stats.js, the values stats.js, servers/udp.js, servers/tcp.js
// and backends/graphite.js go on to use. Each expression repeats the line
// of Etsy statsd 0.9.0 named next to it; helpers.isInteger is Etsy's own.
const etsyValues = `
const [dir, file, out] = process.argv.slice(1);
const config = require(dir + '/lib/config.js');
const helpers = require(dir + '/lib/helpers.js');
config.configFile(file, function (c) {
  const v = {};
  // stats.js configFile callback: gaugesMaxTTL, deleteIdleStats and the delete* defaults
  v.gauges_max_ttl = (helpers.isInteger(c.gaugesMaxTTL) && c.gaugesMaxTTL > 1) ? c.gaugesMaxTTL : 1;
  const idle = c.deleteIdleStats !== undefined ? c.deleteIdleStats : false;
  let dc = c.deleteCounters, dt = c.deleteTimers, ds = c.deleteSets, dg = c.deleteGauges;
  if (idle) {
    dc = dc !== undefined ? dc : true;
    dt = dt !== undefined ? dt : true;
    ds = ds !== undefined ? ds : true;
    dg = dg !== undefined ? dg : true;
  }
  v.delete_idle_stats = !!idle;
  // flushMetrics: conf.deleteX = conf.deleteX || false, then tested
  v.delete_counters = !!(dc || false);
  v.delete_timers = !!(dt || false);
  v.delete_sets = !!(ds || false);
  v.delete_gauges = !!(dg || false);
  v.prefix_stats = c.prefixStats !== undefined ? c.prefixStats : "statsd";
  // stats.js after the servers start: percentThreshold, flushInterval, backends
  let pct = c.percentThreshold || 90;
  if (!Array.isArray(pct)) { pct = [pct]; }
  v.percent_threshold = pct;
  v.flush_interval_ms = Number(c.flushInterval || 10000);
  const backends = c.backends || ['./backends/graphite'];
  v.histogram = c.histogram || [];
  // stats.js: config.servers || [config]; servers/udp.js and tcp.js
  v.servers = (c.servers || [c]).map(s => ({
    module: s.server || './servers/udp',
    port: Number(s.port || 8125),
    address: s.address || '',
    ipv6: !!s.address_ipv6,
  }));
  // backends/graphite.js init
  const g = c.graphite || {};
  v.global_prefix = g.globalPrefix !== undefined ? g.globalPrefix : "stats";
  v.prefix_counter = g.prefixCounter !== undefined ? g.prefixCounter : "counters";
  v.prefix_timer = g.prefixTimer !== undefined ? g.prefixTimer : "timers";
  v.prefix_gauge = g.prefixGauge !== undefined ? g.prefixGauge : "gauges";
  v.prefix_set = g.prefixSet !== undefined ? g.prefixSet : "sets";
  const legacy = g.legacyNamespace !== undefined ? g.legacyNamespace : true;
  v.legacy_namespace = legacy !== false; // if (legacyNamespace === false)
  v.global_suffix = g.globalSuffix !== undefined ? g.globalSuffix : null; // '.' + globalSuffix : ''
  v.flush_counts = !!(typeof(c.flush_counts) === "undefined" ? true : c.flush_counts);
  v.graphite = backends.indexOf('./backends/graphite') >= 0 && c.graphiteHost ?
    { host: c.graphiteHost, port: c.graphitePort || 2003 } : null;
  v.console = backends.indexOf('./backends/console') >= 0;
  require('fs').writeFileSync(out, JSON.stringify(v));
  process.exit(0);
});
`

// etsy is what etsyValues writes.
type etsy struct {
	GaugesMaxTTL     int       `json:"gauges_max_ttl"`
	DeleteIdleStats  bool      `json:"delete_idle_stats"`
	DeleteCounters   bool      `json:"delete_counters"`
	DeleteTimers     bool      `json:"delete_timers"`
	DeleteSets       bool      `json:"delete_sets"`
	DeleteGauges     bool      `json:"delete_gauges"`
	PrefixStats      string    `json:"prefix_stats"`
	PercentThreshold []float64 `json:"percent_threshold"`
	FlushIntervalMS  float64   `json:"flush_interval_ms"`
	Histogram        []struct {
		Metric string `json:"metric"`
		Bins   []any  `json:"bins"`
	} `json:"histogram"`
	Servers []struct {
		Module  string `json:"module"`
		Port    int    `json:"port"`
		Address string `json:"address"`
		IPv6    bool   `json:"ipv6"`
	} `json:"servers"`
	GlobalPrefix    string  `json:"global_prefix"`
	PrefixCounter   string  `json:"prefix_counter"`
	PrefixTimer     string  `json:"prefix_timer"`
	PrefixGauge     string  `json:"prefix_gauge"`
	PrefixSet       string  `json:"prefix_set"`
	LegacyNamespace bool    `json:"legacy_namespace"`
	GlobalSuffix    *string `json:"global_suffix"`
	FlushCounts     bool    `json:"flush_counts"`
	Graphite        *struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"graphite"`
	Console bool `json:"console"`
}

// routerTOML is the converted file, decoded strictly.
type routerTOML struct {
	Inputs struct {
		Statsd []struct {
			Listen   string `toml:"listen"`
			Protocol string `toml:"protocol"`
		} `toml:"statsd"`
	} `toml:"inputs"`
	Aggregators struct {
		Statsd []struct {
			FlushInterval    string    `toml:"flush_interval"`
			PercentThreshold []float64 `toml:"percent_threshold"`
			TimerTypes       []string  `toml:"timer_types"`
			LegacyNamespace  bool      `toml:"legacy_namespace"`
			GlobalPrefix     string    `toml:"global_prefix"`
			PrefixCounter    string    `toml:"prefix_counter"`
			PrefixTimer      string    `toml:"prefix_timer"`
			PrefixGauge      string    `toml:"prefix_gauge"`
			PrefixSet        string    `toml:"prefix_set"`
			GlobalSuffix     string    `toml:"global_suffix"`
			PrefixStats      string    `toml:"prefix_stats"`
			FlushCounts      bool      `toml:"flush_counts"`
			DeleteIdleStats  bool      `toml:"delete_idle_stats"`
			DeleteCounters   bool      `toml:"delete_counters"`
			DeleteTimers     bool      `toml:"delete_timers"`
			DeleteGauges     bool      `toml:"delete_gauges"`
			DeleteSets       bool      `toml:"delete_sets"`
			GaugesMaxTTL     int       `toml:"gauges_max_ttl"`
			Histogram        []struct {
				Metric string `toml:"metric"`
				Bins   []any  `toml:"bins"`
			} `toml:"histogram"`
		} `toml:"statsd"`
	} `toml:"aggregators"`
	Outputs struct {
		Graphite []struct {
			Address string `toml:"address"`
		} `toml:"graphite"`
		Console []struct {
			Format string `toml:"format"`
		} `toml:"console"`
		File []struct {
			ID    string   `toml:"id"`
			Files []string `toml:"files"`
		} `toml:"file"`
	} `toml:"outputs"`
}

// TestSemantics: for each fixture, the values of the converted TOML are
// those Etsy statsd's own configuration reader and the code after it use.
func TestSemantics(t *testing.T) {
	dir := etsytest.StatsdDir(t)
	files, err := filepath.Glob("testdata/*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, js := range files {
		t.Run(filepath.Base(js), func(t *testing.T) {
			abs, err := filepath.Abs(js)
			if err != nil {
				t.Fatal(err)
			}
			outFile := filepath.Join(t.TempDir(), "values.json")
			cmd := exec.Command("node", "-e", etsyValues, dir, abs, outFile)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("node: %v\n%s", err, b)
			}
			raw, err := os.ReadFile(outFile)
			if err != nil {
				t.Fatal(err)
			}
			var e etsy
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			text, err := os.ReadFile(js[:len(js)-3] + ".toml")
			if err != nil {
				t.Fatal(err)
			}
			var r routerTOML
			md, err := toml.Decode(string(text), &r)
			if err != nil {
				t.Fatal(err)
			}
			if u := md.Undecoded(); len(u) > 0 {
				t.Fatalf("keys the test does not know: %v", u)
			}
			compare(t, &e, &r)
		})
	}
}

func compare(t *testing.T, e *etsy, r *routerTOML) {
	t.Helper()
	eq := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: TOML %#v, Etsy %#v", what, got, want)
		}
	}
	if len(r.Aggregators.Statsd) != 1 {
		t.Fatalf("%d aggregators", len(r.Aggregators.Statsd))
	}
	a := r.Aggregators.Statsd[0]
	d, err := time.ParseDuration(a.FlushInterval)
	if err != nil {
		t.Fatal(err)
	}
	eq("flush_interval", d, time.Duration(e.FlushIntervalMS)*time.Millisecond)
	eq("percent_threshold", a.PercentThreshold, e.PercentThreshold)
	eq("timer_types", a.TimerTypes, []string{"ms"})
	eq("legacy_namespace", a.LegacyNamespace, e.LegacyNamespace)
	eq("global_prefix", a.GlobalPrefix, e.GlobalPrefix)
	eq("prefix_counter", a.PrefixCounter, e.PrefixCounter)
	eq("prefix_timer", a.PrefixTimer, e.PrefixTimer)
	eq("prefix_gauge", a.PrefixGauge, e.PrefixGauge)
	eq("prefix_set", a.PrefixSet, e.PrefixSet)
	suffix := ""
	if e.GlobalSuffix != nil {
		suffix = *e.GlobalSuffix
	}
	eq("global_suffix", a.GlobalSuffix, suffix)
	eq("prefix_stats", a.PrefixStats, e.PrefixStats)
	eq("flush_counts", a.FlushCounts, e.FlushCounts)
	eq("delete_idle_stats", a.DeleteIdleStats, e.DeleteIdleStats)
	eq("delete_counters", a.DeleteCounters, e.DeleteCounters)
	eq("delete_timers", a.DeleteTimers, e.DeleteTimers)
	eq("delete_gauges", a.DeleteGauges, e.DeleteGauges)
	eq("delete_sets", a.DeleteSets, e.DeleteSets)
	eq("gauges_max_ttl", a.GaugesMaxTTL, e.GaugesMaxTTL)
	eq("histogram entries", len(a.Histogram), len(e.Histogram))
	for i := range min(len(a.Histogram), len(e.Histogram)) {
		eq("histogram metric", a.Histogram[i].Metric, e.Histogram[i].Metric)
		eq("histogram bins", bins(a.Histogram[i].Bins), bins(e.Histogram[i].Bins))
	}
	eq("servers", len(r.Inputs.Statsd), len(e.Servers))
	for i := range min(len(r.Inputs.Statsd), len(e.Servers)) {
		in, s := r.Inputs.Statsd[i], e.Servers[i]
		proto := map[string]string{"./servers/udp": "udp", "./servers/tcp": "tcp"}[s.Module]
		eq("protocol", in.Protocol, proto)
		host := s.Address
		if host == "" && proto == "udp" && !s.IPv6 {
			host = "0.0.0.0" // dgram udp4 bound without an address
		}
		eq("listen", in.Listen, net.JoinHostPort(host, strconv.Itoa(s.Port)))
	}
	switch {
	case e.Graphite != nil:
		want := []string{net.JoinHostPort(e.Graphite.Host, strconv.Itoa(e.Graphite.Port))}
		var got []string
		for _, g := range r.Outputs.Graphite {
			got = append(got, g.Address)
		}
		eq("outputs.graphite", got, want)
	default:
		eq("outputs.graphite", len(r.Outputs.Graphite), 0)
	}
	eq("outputs.console", len(r.Outputs.Console) == 1, e.Console)
	if e.Graphite == nil && !e.Console {
		eq("outputs.file", len(r.Outputs.File) == 1 && reflect.DeepEqual(r.Outputs.File[0].Files, []string{"/dev/null"}), true)
	}
}

// bins makes numbers float64 and leaves "inf".
func bins(b []any) []any {
	out := make([]any, len(b))
	for i, v := range b {
		switch v := v.(type) {
		case int64:
			out[i] = float64(v)
		case float64:
			out[i] = v
		default:
			out[i] = v
		}
		if f, ok := out[i].(float64); ok && math.IsInf(f, 1) {
			out[i] = "inf"
		}
	}
	return out
}
