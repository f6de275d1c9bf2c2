// Package statsdagg aggregates StatsD lines the way Etsy statsd 0.9.0
// (stats.js, lib/process_metrics.js) does and renders each flush as the
// Graphite plaintext lines its graphite backend (backends/graphite.js) writes:
// the same names, the same values, formatted as JavaScript numbers.
//
// A State is the daemon's memory between flushes: counters, timers with their
// sample-rate-weighted counts, gauges (with +N/-N deltas) and sets. Flush
// writes one line per statistic and resets the state as Etsy does: counters
// to 0, timers and sets emptied, gauges kept, or, with the delete options
// (deleteCounters, deleteTimers, deleteSets, deleteGauges with gaugesMaxTTL),
// idle keys forgotten. Timer histograms (Etsy's histogram setting) are
// written as process_metrics.js counts and names them. DogStatsD tags
// ("|#k:v,k2:v2") become ";k=v;k2=v2" in the key, in the order given (Etsy
// does not sort them), each tag's first ';' made '_' and first ':' '='.
//
// Of Etsy's own statistics, Flush writes the counters
// <prefixStats>.bad_lines_seen, .packets_received and .metrics_received, the
// gauge <prefixStats>.timestamp_lag, the numStats line and processing_time,
// under the names graphite.js gives them (legacy namespace:
// <prefixStats>.numStats and stats.<prefixStats>.processing_time, else
// <globalPrefix>.<prefixStats>.numStats and .processing_time, each with the
// global suffix). processing_time is the flush's own computation time in
// whole milliseconds, so its value is not Etsy's. Left out are the
// graphite backend's graphiteStats.calculationtime (its time to build the
// lines of each flush) and graphiteStats.last_exception, .last_flush,
// .flush_time and .flush_length (written when the connection to carbon is
// up, with the values of the previous send): they measure the backend and
// its connection, not the aggregation.
//
// Beyond Etsy, for the router's StatsD server: TimerTypes (DogStatsD's "h"
// and "d" as timers), Influx-style tags in the key (Telegraf's
// "name,k1=v1,k2=v2:1|c" becomes "name;k1=v1;k2=v2", before any DogStatsD
// tags, when every ','-separated part after the name is a k=v with both
// sides non-empty once sanitized; otherwise the key is Etsy's, which drops
// the ','), AddPackets, MaxSeries, and Lines (where each line of a flush
// is, so that a caller builds metrics without parsing them).
//
// Not reproduced: calculatedTimerMetrics, keyNameSanitize=false, keyFlush,
// the pickle protocol, flush order of integer-like keys (JavaScript lists
// them first), keys named after Object.prototype properties ("__proto__",
// "constructor", ...), set members that are not valid UTF-8 (compared as
// bytes, where Etsy compares their decoded text), and sample rates on which
// Etsy's daemon throws and exits (such as "@+1", "@ 1" or "@Infinity"): Add
// reports those lines as bad.
//
// A State is not safe for concurrent use.
package statsdagg

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Config holds the settings of Etsy statsd that change what a flush writes.
// DefaultConfig returns Etsy's defaults.
type Config struct {
	// FlushInterval is Etsy's flushInterval: counters and timer counts are
	// divided by it (in seconds) for their per-second rates.
	FlushInterval time.Duration
	// PercentThreshold is percentThreshold: nil means Etsy's default [90],
	// an empty non-nil slice means no percentile lines. Negative values
	// give the "top" percentiles (lower_topN).
	PercentThreshold []float64
	// LegacyNamespace is graphite.legacyNamespace (Etsy's default: true).
	// When true the prefixes below are ignored except GlobalSuffix and
	// PrefixStats.
	LegacyNamespace bool
	// GlobalPrefix, PrefixCounter, PrefixTimer, PrefixGauge and PrefixSet are
	// graphite.globalPrefix ("stats"), prefixCounter ("counters"),
	// prefixTimer ("timers"), prefixGauge ("gauges") and prefixSet ("sets").
	// An empty one is left out of the name.
	GlobalPrefix, PrefixCounter, PrefixTimer, PrefixGauge, PrefixSet string
	// GlobalSuffix is graphite.globalSuffix; empty means unset (Etsy then
	// appends nothing, while a set suffix is appended after a dot).
	GlobalSuffix string
	// PrefixStats is prefixStats ("statsd"), the namespace of Etsy's own
	// statistics.
	PrefixStats string
	// FlushCounts is flush_counts (Etsy's default: true): also write each
	// counter's raw count, not only its rate.
	FlushCounts bool
	// DeleteCounters, DeleteTimers and DeleteSets are deleteCounters,
	// deleteTimers and deleteSets: after a flush the keys are forgotten
	// instead of being reset (so a key idle for a whole interval writes
	// nothing). Counters whose key contains "packets_received",
	// "metrics_received" or "bad_lines_seen" are zeroed instead, as Etsy
	// does. Etsy's deleteIdleStats is the default of the four; resolving
	// it is the caller's (ResolveDeleteIdle).
	DeleteCounters, DeleteTimers, DeleteSets bool
	// DeleteGauges is deleteGauges: every gauge update sets the gauge's
	// TTL to GaugesMaxTTL, every flush (after writing) takes one from each
	// TTL and forgets the gauges whose TTL is then below 1. The
	// timestamp_lag gauge has no TTL unless a line updates it. As Etsy,
	// GaugesMaxTTL below 2 counts as 1 (forgotten after one idle flush).
	DeleteGauges bool
	GaugesMaxTTL int
	// Histogram is Etsy's histogram setting: the bins of the timers whose
	// key contains Metric (the first entry that matches, even with no
	// Bins). A bin counts the values below its bound not counted by an
	// earlier bin; +Inf stands for Etsy's 'inf' (every value left). Its
	// line is <timer>.histogram.bin_<bound>; bounds of the same name
	// write one line, at the first one's place, with the last one's count.
	// NaN bounds are refused.
	Histogram []Histogram
	// TimerTypes are type tokens aggregated as timers, in addition to
	// "ms" (always one), and validated as Etsy validates "ms" (a number
	// >= 0). nil: Etsy's ["ms"] alone; Etsy adds every other type, "h" and
	// "d" included, to counters. "g", "s", "" and types with white space
	// around or with '|', ':' or '\n' are refused.
	TimerTypes []string
	// MaxSeries bounds the keys held: counters, timers, gauges and sets,
	// not Etsy's three own counters nor its timestamp_lag gauge. A value
	// of a new key past it is dropped and counted (Refused); keys the
	// Delete options forget make room. 0: no limit; negative is refused.
	MaxSeries int
}

// ResolveDeleteIdle returns the four Delete options as Etsy's stats.js
// resolves deleteIdleStats: each one set (non-nil) is kept, each one unset
// takes deleteIdle.
func ResolveDeleteIdle(deleteIdle bool, counters, timers, gauges, sets *bool) (dc, dt, dg, ds bool) {
	get := func(p *bool) bool {
		if p != nil {
			return *p
		}
		return deleteIdle
	}
	return get(counters), get(timers), get(gauges), get(sets)
}

// Histogram is one entry of Config.Histogram.
type Histogram struct {
	Metric string
	Bins   []float64
}

// DefaultConfig returns Etsy statsd 0.9.0's defaults.
func DefaultConfig() Config {
	return Config{
		FlushInterval:   10 * time.Second,
		LegacyNamespace: true,
		GlobalPrefix:    "stats",
		PrefixCounter:   "counters",
		PrefixTimer:     "timers",
		PrefixGauge:     "gauges",
		PrefixSet:       "sets",
		PrefixStats:     "statsd",
		FlushCounts:     true,
		GaugesMaxTTL:    1,
	}
}

// pctName is one percentile of Config.PercentThreshold with the suffixes of
// its five lines.
type pctName struct {
	pct                                 float64
	count, mean, bound, sum, sumSquares string
}

// counter, timer, gauge and set hold one key's value and its output names.
type counter struct {
	key                 string // as in counterIdx
	rateName, countName string
	value               float64
}

type timer struct {
	base, tail string // base + "." + statistic + tail
	values     []float64
	count      float64
	bins       []bin // the histogram, if one matches the key
}

type bin struct {
	bound float64
	name  string // "histogram.bin_<bound>"
	// slot is the index of the first bin of the same name: JavaScript
	// keeps one property per name, at the first one's place, with the last
	// one's value
	slot int
}

type gauge struct {
	key   string // as in gaugeIdx
	name  string
	value float64
	ttl   int // flushes left without an update (DeleteGauges); -1: none
}

type set struct {
	name    string
	members map[string]struct{}
}

// State aggregates StatsD lines between two flushes.
type State struct {
	cfg                          Config
	secs                         float64 // flushInterval / 1000, as JavaScript computes it
	pcts                         []pctName
	suffix                       string
	globalNS, counterNS, timerNS []string
	gaugeNS, setNS               []string
	counters                     []counter
	counterIdx                   map[string]int
	timers                       []timer
	timerIdx                     map[string]int
	gauges                       []gauge
	gaugeIdx                     map[string]int
	sets                         []set
	setIdx                       map[string]int
	badLines, packets, metrics   int // indexes in counters
	lagKey, numStatsName         string
	prevTs                       int64
	key                          []byte
	cum, cumSq                   []float64
	freqs                        []float64 // of one timer's histogram bins
	timerNames                   int       // the length of the statistics' names of a timer with values, bins aside
	hists                        [][]bin   // of each Config.Histogram entry
	timerTypes                   map[string]bool
	lines                        []Line // of the last Flush
	procName                     string // processing_time
	refused                      uint64
}

// New returns an empty State for cfg, with Etsy's own counters at 0.
func New(cfg Config) (*State, error) {
	if cfg.FlushInterval <= 0 {
		return nil, errors.New("statsdagg: FlushInterval must be positive")
	}
	s := &State{
		cfg:        cfg,
		secs:       float64(cfg.FlushInterval) / float64(time.Millisecond) / 1000,
		counterIdx: map[string]int{},
		timerIdx:   map[string]int{},
		gaugeIdx:   map[string]int{},
		setIdx:     map[string]int{},
	}
	if cfg.GlobalSuffix != "" {
		s.suffix = "." + cfg.GlobalSuffix
	}
	pcts := cfg.PercentThreshold
	if pcts == nil {
		pcts = []float64{90}
	}
	seen := map[string]bool{}
	for _, p := range pcts {
		if p != p {
			return nil, fmt.Errorf("statsdagg: percentThreshold %v is not a number", p)
		}
		clean := strings.Replace(strings.Replace(jsNumber(p), ".", "_", 1), "-", "top", 1)
		if seen[clean] {
			// The same number again writes the same lines to the same keys.
			continue
		}
		seen[clean] = true
		bound := "lower_" + clean
		if p > 0 {
			bound = "upper_" + clean
		}
		s.pcts = append(s.pcts, pctName{pct: p, count: "count_" + clean, mean: "mean_" + clean,
			bound: bound, sum: "sum_" + clean, sumSquares: "sum_squares_" + clean})
		s.timerNames += len("count_mean_upper_sum_sum_squares_") + 5*len(clean)
	}
	if cfg.LegacyNamespace {
		s.globalNS = []string{"stats"}
		s.counterNS = []string{"stats"}
		s.timerNS = []string{"stats", "timers"}
		s.gaugeNS = []string{"stats", "gauges"}
		s.setNS = []string{"stats", "sets"}
		s.numStatsName = cfg.PrefixStats + ".numStats" + s.suffix
	} else {
		add := func(ns []string, p string) []string {
			if p != "" {
				ns = append(ns, p)
			}
			return ns
		}
		s.globalNS = add(nil, cfg.GlobalPrefix)
		s.counterNS = add(add(nil, cfg.GlobalPrefix), cfg.PrefixCounter)
		s.timerNS = add(add(nil, cfg.GlobalPrefix), cfg.PrefixTimer)
		s.gaugeNS = add(add(nil, cfg.GlobalPrefix), cfg.PrefixGauge)
		s.setNS = add(add(nil, cfg.GlobalPrefix), cfg.PrefixSet)
		s.numStatsName = s.format(s.globalNS, cfg.PrefixStats, "numStats")
	}
	s.badLines = s.counter(cfg.PrefixStats + ".bad_lines_seen")
	s.packets = s.counter(cfg.PrefixStats + ".packets_received")
	s.metrics = s.counter(cfg.PrefixStats + ".metrics_received")
	s.lagKey = cfg.PrefixStats + ".timestamp_lag"
	if cfg.LegacyNamespace {
		s.procName = "stats." + cfg.PrefixStats + ".processing_time" + s.suffix
	} else {
		s.procName = s.format(s.globalNS, cfg.PrefixStats, "processing_time")
	}
	s.timerNames += len("stdupperlowercountcount_pssumsum_squaresmeanmedian")
	s.timerTypes = map[string]bool{"ms": true}
	for _, t := range cfg.TimerTypes {
		// a type is matched as written, then trimmed (as Etsy does with
		// "ms"), so one with white space around could never aggregate
		if t == "" || t != jsTrim(t) || strings.ContainsAny(t, "|:\n") || t == "g" || t == "s" {
			return nil, fmt.Errorf("statsdagg: timer type %q: want a StatsD type other than \"g\" and \"s\"", t)
		}
		s.timerTypes[t] = true
	}
	if cfg.MaxSeries < 0 {
		return nil, fmt.Errorf("statsdagg: MaxSeries %d is negative", cfg.MaxSeries)
	}
	if s.cfg.GaugesMaxTTL < 1 {
		s.cfg.GaugesMaxTTL = 1
	}
	s.hists = make([][]bin, len(cfg.Histogram))
	for i, h := range cfg.Histogram {
		bins := make([]bin, len(h.Bins))
		slot := map[string]int{}
		for j, b := range h.Bins {
			if b != b {
				return nil, fmt.Errorf("statsdagg: histogram %q: a bin is NaN", h.Metric)
			}
			// process_metrics.js: 'bin_' + bound.toString().replace('.', '_')
			text := "inf"
			if !math.IsInf(b, 1) {
				text = jsNumber(b)
			}
			name := "histogram.bin_" + strings.Replace(text, ".", "_", 1)
			if _, ok := slot[name]; !ok {
				slot[name] = j
			}
			bins[j] = bin{bound: b, name: name, slot: slot[name]}
		}
		s.hists[i] = bins
	}
	return s, nil
}

// Series returns the number of keys held, as MaxSeries counts them.
func (s *State) Series() int {
	n := len(s.counters) - 3 + len(s.timers) + len(s.gauges) + len(s.sets)
	if _, ok := s.gaugeIdx[s.lagKey]; ok {
		n--
	}
	return n
}

// Refused returns how many values of new keys MaxSeries refused since New.
func (s *State) Refused() uint64 { return s.refused }

// full reports whether a new key is refused (and counts the value).
func (s *State) full() bool {
	if s.cfg.MaxSeries > 0 && s.Series() >= s.cfg.MaxSeries {
		s.refused++
		return true
	}
	return false
}

// AddPackets counts n datagrams in packets_received, without lines (for a
// caller that gets the lines of datagrams one by one).
func (s *State) AddPackets(n int) { s.counters[s.packets].value += float64(n) }

// format is the graphite backend's name: the namespace, the key up to its
// first ';', the further parts, joined by dots, then the global suffix, then
// the key's tags (from its first ';' on).
func (s *State) format(ns []string, key string, parts ...string) string {
	name, tags := key, ""
	if i := strings.IndexByte(key, ';'); i >= 0 {
		name, tags = key[:i], key[i:]
	}
	all := make([]string, 0, len(ns)+1+len(parts))
	all = append(all, ns...)
	all = append(all, name)
	all = append(all, parts...)
	return strings.Join(all, ".") + s.suffix + tags
}

// counter returns the index of key's counter, creating it at 0.
func (s *State) counter(key string) int {
	if i, ok := s.counterIdx[key]; ok {
		return i
	}
	c := counter{key: key}
	if s.cfg.LegacyNamespace {
		c.rateName = s.format(s.counterNS, key)
		c.countName = s.format([]string{"stats_counts"}, key)
	} else {
		c.rateName = s.format(s.counterNS, key, "rate")
		c.countName = s.format(s.counterNS, key, "count")
	}
	s.counters = append(s.counters, c)
	s.counterIdx[key] = len(s.counters) - 1
	return len(s.counters) - 1
}

// ErrBadLine is wrapped by the errors of Add and AddPacket for the lines
// Etsy counts in bad_lines_seen.
var ErrBadLine = errors.New("bad line")

// AddPacket adds one datagram: its lines, split at '\n' as Etsy splits them
// (empty lines are skipped), and one packets_received. It returns the first
// line's error; the other lines are added all the same.
func (s *State) AddPacket(p []byte) error {
	s.counters[s.packets].value++
	var first error
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		if err := s.Add(line); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Add adds one StatsD line (without its '\n'): key:value|type[|@rate][|#tags],
// or several values for the key (key:v1|t1:v2|t2). An empty line is ignored;
// each other line counts in metrics_received. Values Etsy rejects count in
// bad_lines_seen and make Add return an error wrapping ErrBadLine; the other
// values of the line are added all the same.
func (s *State) Add(line []byte) error {
	if len(line) == 0 {
		return nil
	}
	s.counters[s.metrics].value++
	// str aliases line for the length of the call: keys and set members
	// are copied before they are kept.
	str := unsafe.String(unsafe.SliceData(line), len(line))
	body, tagPart := str, ""
	if i := strings.Index(str, "|#"); i >= 0 {
		body = str[:i]
		rest := str[i+2:]
		if j := strings.Index(rest, "|#"); j >= 0 {
			rest = rest[:j]
		}
		tagPart = rest
	}
	keyRaw, values, hasValues := strings.Cut(body, ":")
	s.key = s.key[:0]
	if name, tags, ok := influxTags(keyRaw); ok {
		// Telegraf's form: the tags become Graphite tags before any
		// DogStatsD ones (Etsy would drop the ',' and '=' from the name)
		s.key = appendSanitizedPart(s.key, name)
		for tags != "" {
			var t string
			t, tags, _ = strings.Cut(tags, ",")
			s.key = append(s.key, ';')
			start := len(s.key)
			s.key = appendSanitizedPart(s.key, t)
			// a ';' would split the tag in two
			for j := start; j < len(s.key); j++ {
				if s.key[j] == ';' {
					s.key[j] = '_'
				}
			}
		}
		if tagPart != "" {
			s.key = appendSanitized(s.key, "", tagPart)
		}
	} else {
		s.key = appendSanitized(s.key, keyRaw, tagPart)
	}
	if !hasValues {
		// Etsy reads "key" alone as "key:1", which has no type: a bad line.
		values = "1"
	}
	var first error
	for {
		v, more, found := strings.Cut(values, ":")
		if err := s.addValue(v); err != nil {
			s.counters[s.badLines].value++
			if first == nil {
				first = fmt.Errorf("statsdagg: %w: %q: %v", ErrBadLine, string(line), err)
			}
		}
		if !found {
			break
		}
		values = more
	}
	return first
}

// influxTags splits an Influx-style key "name,k1=v1,k2=v2" into the name and
// "k1=v1,k2=v2"; ok is false unless every part after the name is a k=v with
// both sides non-empty once sanitized (Graphite refuses an empty tag name
// or value).
func influxTags(key string) (name, tags string, ok bool) {
	name, tags, found := strings.Cut(key, ",")
	if !found || name == "" {
		return "", "", false
	}
	for rest := tags; ; {
		t, more, again := strings.Cut(rest, ",")
		k, v, eq := strings.Cut(t, "=")
		if !eq || !survives(k) || !survives(v) {
			return "", "", false
		}
		if !again {
			break
		}
		rest = more
	}
	return name, tags, true
}

// survives reports whether sanitizing leaves anything of s.
func survives(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.',
			r == ';', r == '=', r == '/', isJSSpace(r):
			return true
		}
	}
	return false
}

// appendSanitized appends Etsy's key for raw and tags: the tags (split at ',')
// are appended as ";tag" with the first ';' of each replaced by '_' and its
// first ':' by '='; then runs of white space become '_', '/' becomes '-' and
// any byte but [a-zA-Z0-9_.;=-] is dropped.
func appendSanitized(dst []byte, raw, tags string) []byte {
	dst = appendSanitizedPart(dst, raw)
	if tags == "" {
		return dst
	}
	for {
		t, more, found := strings.Cut(tags, ",")
		dst = append(dst, ';')
		// The replacements run before sanitizing: ';' -> '_' then ':' -> '='
		// (first occurrence each); a ':' kept this way survives as '='.
		semi := strings.IndexByte(t, ';')
		var buf [64]byte
		b := append(buf[:0], t...)
		if semi >= 0 {
			b[semi] = '_'
		}
		if colon := strings.IndexByte(string(b), ':'); colon >= 0 {
			b[colon] = '='
		}
		dst = appendSanitizedPart(dst, string(b))
		if !found {
			break
		}
		tags = more
	}
	return dst
}

// appendSanitizedPart appends s sanitized. The white-space run state does not
// cross parts because every part boundary is a ';', which is kept.
func appendSanitizedPart(dst []byte, s string) []byte {
	inSpace := false
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		size := 1
		if c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		i += size
		if isJSSpace(r) {
			if !inSpace {
				dst = append(dst, '_')
				inSpace = true
			}
			continue
		}
		inSpace = false
		switch {
		case r == '/':
			dst = append(dst, '-')
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '_', r == '-', r == '.', r == ';', r == '=':
			dst = append(dst, byte(r))
		}
	}
	return dst
}

// isNumber is Etsy's isNumber (lib/helpers.js): a non-empty string that Number() does not make NaN.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	_, ok := jsToNumber(s)
	return ok
}

// addValue adds one value|type[|@rate] of the current key (s.key).
func (s *State) addValue(v string) error {
	value, rest, found := strings.Cut(v, "|")
	if !found {
		return errors.New("no type")
	}
	typ, rateField, hasRate := strings.Cut(rest, "|")
	if hasRate {
		if i := strings.IndexByte(rateField, '|'); i >= 0 {
			rateField = rateField[:i]
		}
	}
	rate := 1.0
	if hasRate {
		if len(rateField) < 2 || rateField[0] != '@' || !isNumber(rateField[1:]) || rateField[1] == '-' {
			return fmt.Errorf("bad sample rate %q", rateField)
		}
		// Etsy reads the rate as the longest run of digits and dots after
		// the '@' ("@0.5e1" is 0.5, "@0x2" is 0); with none it throws.
		j := 1
		for j < len(rateField) && (rateField[j] == '.' || rateField[j] >= '0' && rateField[j] <= '9') {
			j++
		}
		if j == 1 {
			return fmt.Errorf("sample rate %q makes Etsy statsd throw", rateField)
		}
		rate, _ = jsToNumber(rateField[1:j])
	}
	// Etsy validates with the type as written and then acts on it trimmed.
	var num float64
	switch {
	case typ == "s":
	case s.timerTypes[typ]:
		n, ok := jsToNumber(value)
		if value == "" || !ok || !(n >= 0) {
			return fmt.Errorf("bad timer value %q", value)
		}
		num = n
	default:
		n, ok := jsToNumber(value)
		if value == "" || !ok {
			return fmt.Errorf("bad value %q", value)
		}
		num = n
	}
	switch typ = jsTrim(typ); {
	case s.timerTypes[typ]:
		i, ok := s.timerIdx[string(s.key)]
		if !ok {
			if s.full() {
				return nil
			}
			key := string(s.key)
			name, tags := key, ""
			if k := strings.IndexByte(key, ';'); k >= 0 {
				name, tags = key[:k], key[k:]
			}
			s.timers = append(s.timers, timer{
				base: strings.Join(append(slices.Clone(s.timerNS), name), "."),
				tail: s.suffix + tags,
				bins: s.binsFor(key),
			})
			i = len(s.timers) - 1
			s.timerIdx[key] = i
		}
		t := &s.timers[i]
		t.values = append(t.values, num)
		t.count += 1 / rate
	case typ == "g":
		i, ok := s.gaugeIdx[string(s.key)]
		if !ok {
			if s.full() {
				return nil
			}
			key := string(s.key)
			s.gauges = append(s.gauges, gauge{key: key, name: s.format(s.gaugeNS, key), ttl: -1})
			i = len(s.gauges) - 1
			s.gaugeIdx[key] = i
		}
		g := &s.gauges[i]
		if s.cfg.DeleteGauges {
			g.ttl = s.cfg.GaugesMaxTTL
		}
		// A delta applies only to a truthy (non-zero, non-NaN) gauge.
		if ok && g.value != 0 && g.value == g.value && value != "" && (value[0] == '+' || value[0] == '-') {
			g.value += num
		} else {
			g.value = num
		}
	case typ == "s":
		i, ok := s.setIdx[string(s.key)]
		if !ok {
			if s.full() {
				return nil
			}
			key := string(s.key)
			s.sets = append(s.sets, set{name: s.format(s.setNS, key, "count"), members: map[string]struct{}{}})
			i = len(s.sets) - 1
			s.setIdx[key] = i
		}
		if value == "" {
			value = "0"
		}
		if value != "__proto__" { // a JavaScript object ignores this key
			m := s.sets[i].members
			if _, ok := m[value]; !ok {
				m[strings.Clone(value)] = struct{}{}
			}
		}
	default:
		i, ok := s.counterIdx[string(s.key)]
		if !ok {
			if s.full() {
				return nil
			}
			i = s.counter(string(s.key))
		}
		c := &s.counters[i]
		if c.value == 0 || c.value != c.value {
			c.value = 0
		}
		c.value += float64(num * (1 / rate))
	}
	return nil
}

// binsFor returns the histogram bins of the first Histogram entry whose
// Metric key contains (process_metrics.js: key.indexOf(metric) > -1); an
// entry without bins matches all the same, and gives none.
func (s *State) binsFor(key string) []bin {
	for i, h := range s.cfg.Histogram {
		if strings.Contains(key, h.Metric) {
			return s.hists[i]
		}
	}
	return nil
}

// Line is where one line of the last Flush is in what it appended (offsets
// from the start of the appended text): the path is [Start, PathEnd), the
// value (JavaScript's text of Value) [PathEnd+1, ValueEnd), the line
// without its '\n' [Start, End).
// A flush is far below 4 GiB (max_series bounds it).
type Line struct {
	Start, PathEnd, ValueEnd, End uint32
	Value                         float64
}

// Lines returns the lines of the last Flush; valid until the next one.
func (s *State) Lines() []Line { return s.lines }

// Flush appends the Graphite plaintext lines ("name value ts\n") Etsy's
// graphite backend writes for a flush at Unix time ts, then resets the state
// for the next interval.
func (s *State) Flush(ts int64, dst []byte) []byte {
	began := time.Now()
	base := len(dst)
	s.lines = s.lines[:0]
	if s.prevTs > 0 {
		i, ok := s.gaugeIdx[s.lagKey]
		if !ok {
			s.gauges = append(s.gauges, gauge{key: s.lagKey, name: s.format(s.gaugeNS, s.lagKey)})
			i = len(s.gauges) - 1
			s.gaugeIdx[s.lagKey] = i
			s.gauges[i].ttl = -1
		}
		s.gauges[i].value = float64(ts-s.prevTs) - s.secs
	}
	s.prevTs = ts
	var tsText [24]byte
	tsb := strconv.AppendInt(tsText[:0], ts, 10)
	// One allocation at most, of the size the flush needs, rather than
	// the copies of growing by append (a flush of a million keys is
	// hundreds of megabytes); make, unlike slices.Grow, leaves fresh
	// memory untouched, so the room reserved and not written costs no
	// page.
	// An eighth more leaves room for the next flushes' new keys.
	nLines, nBytes := s.size(len(tsb))
	if cap(s.lines) < nLines {
		s.lines = make([]Line, 0, nLines+nLines/8)
	}
	if cap(dst)-len(dst) < nBytes {
		d := make([]byte, len(dst), len(dst)+nBytes+nBytes/8)
		copy(d, dst)
		dst = d
	}
	line := func(name string, v float64) {
		start := len(dst)
		dst = append(dst, name...)
		pathEnd := len(dst)
		dst = append(dst, ' ')
		dst = appendJSNumber(dst, v)
		valueEnd := len(dst)
		dst = append(dst, ' ')
		dst = append(dst, tsb...)
		s.lines = append(s.lines, Line{Start: uint32(start - base), PathEnd: uint32(pathEnd - base), ValueEnd: uint32(valueEnd - base), End: uint32(len(dst) - base), Value: v})
		dst = append(dst, '\n')
	}
	for i := range s.counters {
		c := &s.counters[i]
		line(c.rateName, c.value/s.secs)
		if s.cfg.FlushCounts {
			line(c.countName, c.value)
		}
	}
	for i := range s.timers {
		dst = s.flushTimer(&s.timers[i], dst, tsb, base)
	}
	for i := range s.gauges {
		line(s.gauges[i].name, s.gauges[i].value)
	}
	for i := range s.sets {
		line(s.sets[i].name, float64(len(s.sets[i].members)))
	}
	line(s.numStatsName, float64(len(s.counters)+len(s.timers)+len(s.gauges)+len(s.sets)))
	// Etsy's graphiteStats.calculationtime is left out; processing_time is
	// its last line (the one statistic of metrics.statsd_metrics)
	line(s.procName, float64(time.Since(began).Milliseconds()))
	s.reset()
	return dst
}

// valueRoom is the room a flush reserves for each value's text: the
// longest a JavaScript number takes, "-1.2345678901234567e-300", is 24.
const valueRoom = 20

// size returns the number of lines of the coming flush and the bytes they
// take, their values counted as valueRoom bytes each.
func (s *State) size(tsLen int) (lines, bytes int) {
	per := 1 + valueRoom + 1 + tsLen + 1 // " value ts\n"
	for i := range s.counters {
		c := &s.counters[i]
		lines++
		bytes += len(c.rateName) + per
		if s.cfg.FlushCounts {
			lines++
			bytes += len(c.countName) + per
		}
	}
	for i := range s.timers {
		t := &s.timers[i]
		n, names := 2, len("countcount_ps")
		if len(t.values) > 0 {
			n, names = 9+5*len(s.pcts), s.timerNames
			for j, b := range t.bins {
				if b.slot == j {
					n++
					names += len(b.name)
				}
			}
		}
		lines += n
		bytes += n*(len(t.base)+1+len(t.tail)+per) + names
	}
	for i := range s.gauges {
		lines++
		bytes += len(s.gauges[i].name) + per
	}
	for i := range s.sets {
		lines++
		bytes += len(s.sets[i].name) + per
	}
	return lines + 2, bytes + len(s.numStatsName) + len(s.procName) + 2*per
}

// reset prepares the next interval as Etsy's clear_metrics does after the
// backends flushed: counters zeroed (or deleted), timers and sets emptied
// (or deleted), gauges kept (or deleted once idle for GaugesMaxTTL flushes).
func (s *State) reset() {
	if s.cfg.DeleteCounters {
		// Etsy keeps (and zeroes) every counter whose key contains one of
		// the names of its own three, whatever its prefix
		n := 0
		for _, c := range s.counters {
			if !strings.Contains(c.key, "packets_received") && !strings.Contains(c.key, "metrics_received") &&
				!strings.Contains(c.key, "bad_lines_seen") {
				delete(s.counterIdx, c.key)
				continue
			}
			s.counters[n] = c
			s.counterIdx[c.key] = n
			n++
		}
		clear(s.counters[n:])
		s.counters = s.counters[:n]
		s.badLines = s.counterIdx[s.cfg.PrefixStats+".bad_lines_seen"]
		s.packets = s.counterIdx[s.cfg.PrefixStats+".packets_received"]
		s.metrics = s.counterIdx[s.cfg.PrefixStats+".metrics_received"]
	}
	for i := range s.counters {
		s.counters[i].value = 0
	}
	if s.cfg.DeleteTimers {
		for i := range s.timers {
			s.timers[i] = timer{}
		}
		s.timers = s.timers[:0]
		clear(s.timerIdx)
	}
	if s.cfg.DeleteSets {
		for i := range s.sets {
			s.sets[i] = set{}
		}
		s.sets = s.sets[:0]
		clear(s.setIdx)
	} else {
		for i := range s.sets {
			clear(s.sets[i].members)
		}
	}
	if s.cfg.DeleteGauges {
		dead := false
		for i := range s.gauges {
			if g := &s.gauges[i]; g.ttl > 0 {
				if g.ttl--; g.ttl < 1 {
					dead = true
				}
			}
		}
		if dead {
			n := 0
			for _, g := range s.gauges {
				if g.ttl == 0 {
					delete(s.gaugeIdx, g.key)
					continue
				}
				s.gauges[n] = g
				s.gaugeIdx[g.key] = n
				n++
			}
			clear(s.gauges[n:])
			s.gauges = s.gauges[:n]
		}
	}
}

// flushTimer appends the lines of one timer (lib/process_metrics.js) and
// empties it.
func (s *State) flushTimer(t *timer, dst, tsb []byte, base int) []byte {
	line := func(stat string, v float64) {
		start := len(dst)
		dst = append(dst, t.base...)
		dst = append(dst, '.')
		dst = append(dst, stat...)
		dst = append(dst, t.tail...)
		pathEnd := len(dst)
		dst = append(dst, ' ')
		dst = appendJSNumber(dst, v)
		valueEnd := len(dst)
		dst = append(dst, ' ')
		dst = append(dst, tsb...)
		s.lines = append(s.lines, Line{Start: uint32(start - base), PathEnd: uint32(pathEnd - base), ValueEnd: uint32(valueEnd - base), End: uint32(len(dst) - base), Value: v})
		dst = append(dst, '\n')
	}
	defer func() {
		t.values = t.values[:0]
		t.count = 0
	}()
	if len(t.values) == 0 {
		line("count", 0)
		line("count_ps", 0)
		return dst
	}
	values := t.values
	slices.Sort(values)
	count := len(values)
	minV, maxV := values[0], values[count-1]
	s.cum = append(s.cum[:0], minV)
	s.cumSq = append(s.cumSq[:0], float64(minV*minV))
	for i := 1; i < count; i++ {
		s.cum = append(s.cum, values[i]+s.cum[i-1])
		s.cumSq = append(s.cumSq, float64(values[i]*values[i])+s.cumSq[i-1])
	}
	// at is JavaScript's array read: out of range is undefined.
	at := func(a []float64, i float64) (float64, bool) {
		if i >= 0 && i < float64(len(a)) {
			return a[int(i)], true
		}
		return math.NaN(), false
	}
	sum, sumSq, mean, bound := minV, float64(minV*minV), minV, maxV
	sumOK, sumSqOK, boundOK := true, true, true
	fc := float64(count)
	for _, p := range s.pcts {
		n := fc
		if count > 1 {
			n = jsRound(math.Abs(p.pct) / 100 * fc)
			if n == 0 {
				continue
			}
			if p.pct > 0 {
				bound, boundOK = at(values, n-1)
				sum, sumOK = at(s.cum, n-1)
				sumSq, sumSqOK = at(s.cumSq, n-1)
			} else {
				bound, boundOK = at(values, fc-n)
				// number - undefined is NaN, a number.
				lo, _ := at(s.cum, fc-n-1)
				sum, sumOK = s.cum[count-1]-lo, true
				loSq, _ := at(s.cumSq, fc-n-1)
				sumSq, sumSqOK = s.cumSq[count-1]-loSq, true
			}
			mean = sum / n // undefined / n is NaN
		}
		line(p.count, n)
		line(p.mean, mean)
		// The graphite backend skips undefined values.
		if boundOK {
			line(p.bound, bound)
		}
		if sumOK {
			line(p.sum, sum)
		}
		if sumSqOK {
			line(p.sumSquares, sumSq)
		}
	}
	sum = s.cum[count-1]
	sumSq = s.cumSq[count-1]
	mean = sum / fc
	diffs := 0.0
	for _, v := range values {
		diffs += float64((v - mean) * (v - mean))
	}
	mid := count / 2
	median := values[mid]
	if count%2 == 0 {
		median = (values[mid-1] + values[mid]) / 2
	}
	line("std", math.Sqrt(diffs/fc))
	line("upper", maxV)
	line("lower", minV)
	line("count", t.count)
	line("count_ps", t.count/s.secs)
	line("sum", sum)
	line("sum_squares", sumSq)
	line("mean", mean)
	line("median", median)
	// histogram bins: values below each bound not in an earlier bin
	if len(t.bins) > 0 {
		s.freqs = slices.Grow(s.freqs[:0], len(t.bins))[:len(t.bins)]
		i := 0
		for _, b := range t.bins {
			freq := 0
			for ; i < count && (math.IsInf(b.bound, 1) || values[i] < b.bound); i++ {
				freq++
			}
			s.freqs[b.slot] = float64(freq)
		}
		for j, b := range t.bins {
			if b.slot == j {
				line(b.name, s.freqs[j])
			}
		}
	}
	return dst
}

func decodeRune(s string) (rune, int)     { return utf8.DecodeRuneInString(s) }
func decodeLastRune(s string) (rune, int) { return utf8.DecodeLastRuneInString(s) }
