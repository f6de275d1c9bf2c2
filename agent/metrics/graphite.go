package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// runtimeName maps the gathered families that the Graphite self-metrics
// carry to their names under <prefix>.runtime, as the router has always
// named them.
func runtimeName(family string) (string, bool) {
	switch family {
	case "go_goroutines":
		return "goroutines", true
	case "go_memstats_alloc_bytes":
		return "heap_alloc_bytes", true
	case "go_memstats_sys_bytes":
		return "sys_bytes", true
	case "go_gc_duration_seconds": // the summary's count: completed GC cycles
		return "gc_cycles_total", true
	case Prefix + uptimeName: // the series without labels
		return "uptime_seconds", true
	}
	return "", false
}

// AppendGraphite appends every series as a Graphite plaintext line
// "<prefix>.<name> <value> <ts>\n" to dst, sorted by path, for the
// self-metrics emitter. It reads the families /metrics serves (one Gather):
//
//   - a scope's series: <prefix>.<kind>.<plugin>.<id>.<name>, where plugin
//     "outputs.graphite" gives kind "outputs" and plugin "graphite", the id is
//     left out when it equals the kind (plugin "agent", id "agent"), and kind,
//     plugin and id have every byte but [A-Za-z0-9_-] made '_';
//     e.g. carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.sent_total;
//   - the runtime: <prefix>.runtime.{goroutines, heap_alloc_bytes, sys_bytes,
//     gc_cycles_total, uptime_seconds}.
//
// Values are written as strconv.FormatFloat(v, 'f', -1, 64), as
// metric.NewGraphite does; ts is Unix seconds. A NaN value (a gauge that
// cannot tell) is left out: carbon would drop it.
func (r *Registry) AppendGraphite(dst []byte, prefix string, ts int64) []byte {
	mfs, _ := r.gather() // partial families on error, as /metrics serves them
	type line struct {
		path string
		v    float64
	}
	var lines []line
	for _, mf := range mfs {
		name := mf.GetName()
		if rn, ok := runtimeName(name); ok {
			for _, m := range mf.Metric {
				if len(m.Label) == 0 {
					lines = append(lines, line{prefix + ".runtime." + rn, value(m)})
				}
			}
		}
		short, ok := strings.CutPrefix(name, Prefix)
		if !ok {
			continue
		}
		for _, m := range mf.Metric {
			if len(m.Label) == 0 {
				continue
			}
			lines = append(lines, line{graphitePath(prefix, labelValue(m, labelPlugin), labelValue(m, labelID), short), value(m)})
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return cmp.Compare(a.path, b.path) })
	ts10 := strconv.AppendInt(nil, ts, 10)
	for _, l := range lines {
		if math.IsNaN(l.v) {
			continue // carbon drops NaN datapoints; the router's parser too
		}
		dst = append(dst, l.path...)
		dst = append(dst, ' ')
		dst = strconv.AppendFloat(dst, l.v, 'f', -1, 64)
		dst = append(dst, ' ')
		dst = append(dst, ts10...)
		dst = append(dst, '\n')
	}
	return dst
}

// graphitePath is agent/selfmetrics.go's naming of a scope's series.
func graphitePath(prefix, plugin, id, name string) string {
	kind, pname, _ := strings.Cut(plugin, ".")
	var b strings.Builder
	b.Grow(len(prefix) + len(plugin) + len(id) + len(name) + 4)
	b.WriteString(prefix)
	b.WriteByte('.')
	b.WriteString(GraphiteSafe(kind))
	if pname != "" {
		b.WriteByte('.')
		b.WriteString(GraphiteSafe(pname))
	}
	if id != kind {
		b.WriteByte('.')
		b.WriteString(GraphiteSafe(id))
	}
	b.WriteByte('.')
	b.WriteString(name)
	return b.String()
}

// GraphiteSafe keeps [A-Za-z0-9_-] and makes everything else '_'.
func GraphiteSafe(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '_'
	}, s)
}

// value is the value of a counter, a gauge, an untyped metric, or the count
// of a summary or histogram.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
