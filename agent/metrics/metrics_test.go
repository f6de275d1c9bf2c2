package metrics

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// scrapeText does GET /metrics on r's Handler and returns the body.
func scrapeText(t testing.TB, r *Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	return rec.Body.String()
}

// scrape parses GET /metrics with expfmt's text parser (legacy names only).
func scrape(t testing.TB, r *Registry) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	body := scrapeText(t, r)
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return mfs, body
}

// find returns the value of family name's series with labels plugin and id.
func find(mfs map[string]*dto.MetricFamily, name, plugin, id string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.Metric {
		if labelValue(m, labelPlugin) == plugin && labelValue(m, labelID) == id {
			return value(m), true
		}
	}
	return 0, false
}

func TestExposition(t *testing.T) {
	r := New()
	out := r.Scope("outputs.graphite", "carbon")
	out.Counter("sent_total", "Metrics written to the output.").Add(42)
	out.Counter("dropped_total", "Metrics dropped.").Add(1234567)
	out.Gauge("queued", "Metrics in the queue.", func() float64 { return 7.5 })
	r.Scope("inputs.graphite", "graphite-1").Counter("received_total", "Metrics received.").Add(3)
	r.Scope("agent", "agent").Gauge("buffered_bytes", "Bytes all outputs hold in memory.", func() float64 { return 1024 })

	mfs, body := scrape(t, r)
	for _, tc := range []struct {
		name, plugin, id, help string
		typ                    dto.MetricType
		want                   float64
	}{
		{"router_sent_total", "outputs.graphite", "carbon", "Metrics written to the output.", dto.MetricType_COUNTER, 42},
		{"router_dropped_total", "outputs.graphite", "carbon", "Metrics dropped.", dto.MetricType_COUNTER, 1234567},
		{"router_queued", "outputs.graphite", "carbon", "Metrics in the queue.", dto.MetricType_GAUGE, 7.5},
		{"router_received_total", "inputs.graphite", "graphite-1", "Metrics received.", dto.MetricType_COUNTER, 3},
		{"router_buffered_bytes", "agent", "agent", "Bytes all outputs hold in memory.", dto.MetricType_GAUGE, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mf := mfs[tc.name]
			if mf == nil {
				t.Fatalf("no family %s in:\n%s", tc.name, body)
			}
			if mf.GetType() != tc.typ || mf.GetHelp() != tc.help {
				t.Errorf("%s: type %v help %q, want %v %q", tc.name, mf.GetType(), mf.GetHelp(), tc.typ, tc.help)
			}
			if v, ok := find(mfs, tc.name, tc.plugin, tc.id); !ok || v != tc.want {
				t.Errorf("%s{plugin=%q,id=%q} = %v %v, want %v", tc.name, tc.plugin, tc.id, v, ok, tc.want)
			}
			for _, m := range mf.Metric {
				if len(m.Label) != 2 {
					t.Errorf("%s: labels %v, want plugin and id", tc.name, m.Label)
				}
			}
		})
	}
	// Today's text, line for line: HELP, TYPE, labels plugin then id.
	for _, want := range []string{
		"# HELP router_sent_total Metrics written to the output.\n# TYPE router_sent_total counter\n" +
			`router_sent_total{plugin="outputs.graphite",id="carbon"} 42` + "\n",
		"# TYPE router_queued gauge\n" + `router_queued{plugin="outputs.graphite",id="carbon"} 7.5` + "\n",
		`router_buffered_bytes{plugin="agent",id="agent"} 1024` + "\n",
		"# TYPE router_uptime_seconds gauge\nrouter_uptime_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in:\n%s", want, body)
		}
	}
	// The runtime and process families come from client_golang, once.
	for _, name := range []string{
		"router_uptime_seconds", "go_goroutines", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes",
		"go_memstats_sys_bytes", "go_memstats_mallocs_total", "go_gc_duration_seconds",
		"process_start_time_seconds", "process_resident_memory_bytes",
	} {
		if mfs[name] == nil {
			t.Errorf("no family %s", name)
		}
		if n := strings.Count(body, "# TYPE "+name+" "); n != 1 {
			t.Errorf("%s: %d TYPE lines, want 1", name, n)
		}
	}
	if up := mfs["router_uptime_seconds"]; up != nil && (up.GetType() != dto.MetricType_GAUGE || len(up.Metric) != 1 || len(up.Metric[0].Label) != 0) {
		t.Errorf("router_uptime_seconds: %v", up)
	}
	// Series of a family are sorted by plugin, then id.
	r.Scope("outputs.graphite", "a").Counter("sent_total", "")
	r.Scope("inputs.statsd", "z").Counter("sent_total", "")
	mfs, _ = scrape(t, r)
	var got []string
	for _, m := range mfs["router_sent_total"].Metric {
		got = append(got, labelValue(m, labelPlugin)+"/"+labelValue(m, labelID))
	}
	if want := []string{"inputs.statsd/z", "outputs.graphite/a", "outputs.graphite/carbon"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestScope(t *testing.T) {
	r := New()
	s := r.Scope("outputs.graphite", "carbon")
	if r.Scope("outputs.graphite", "carbon") != s {
		t.Fatal("Scope: another *Scope for the same plugin and id")
	}
	if r.Scope("outputs.graphite", "other") == s || r.Scope("outputs.statsd", "carbon") == s {
		t.Fatal("Scope: the same *Scope for another plugin or id")
	}
	c := s.Counter("sent_total", "h")
	if s.Counter("sent_total", "h") != c {
		t.Fatal("Counter: a second counter for the same name")
	}
	c.Add(5)
	if v, ok := r.Value("outputs.graphite", "carbon", "sent_total"); !ok || v != 5 {
		t.Errorf("Value(sent_total) = %v %v", v, ok)
	}
	s.Gauge("queued", "h", func() float64 { return 1 })
	s.Gauge("queued", "h", func() float64 { return 2 }) // a reload: replaces
	if v, ok := r.Value("outputs.graphite", "carbon", "queued"); !ok || v != 2 {
		t.Errorf("Value(queued) = %v %v", v, ok)
	}
	if _, ok := r.Value("outputs.graphite", "carbon", "nope"); ok {
		t.Error("Value of an unknown series")
	}
	if _, ok := r.Value("outputs.graphite", "nobody", "sent_total"); ok {
		t.Error("Value of an unknown scope")
	}
	mfs, _ := scrape(t, r)
	if n := len(mfs["router_queued"].Metric); n != 1 {
		t.Errorf("router_queued: %d series after replacing the gauge", n)
	}
	s.Gauge("queued", "h", nil)
	if _, ok := r.Value("outputs.graphite", "carbon", "queued"); ok {
		t.Error("a nil gauge did not remove the series")
	}
	if mfs, _ := scrape(t, r); mfs["router_queued"] != nil {
		t.Error("router_queued still exported")
	}
}

func TestRemove(t *testing.T) {
	r := New()
	old := r.Scope("outputs.graphite", "retired")
	oldC := old.Counter("sent_total", "Metrics sent.")
	oldC.Add(9)
	old.Gauge("queued", "Queued.", func() float64 { return 3 })
	old.Counter("only_retired_total", "A name only the retired instance has.").Add(1)
	keep := r.Scope("outputs.graphite", "kept")
	keep.Counter("sent_total", "Metrics sent.").Add(4)

	r.Remove("outputs.graphite", "retired")
	r.Remove("outputs.graphite", "never-existed") // no-op

	mfs, body := scrape(t, r)
	if strings.Contains(body, `"retired"`) {
		t.Errorf("a removed id is still exported:\n%s", body)
	}
	if mfs["router_only_retired_total"] != nil || mfs["router_queued"] != nil {
		t.Error("a family with no series left is still exported")
	}
	if v, ok := find(mfs, "router_sent_total", "outputs.graphite", "kept"); !ok || v != 4 {
		t.Errorf("the other scope's series: %v %v", v, ok)
	}
	for _, n := range []string{"sent_total", "queued"} {
		if _, ok := r.Value("outputs.graphite", "retired", n); ok {
			t.Errorf("Value(%s) of a removed scope", n)
		}
	}
	if g := string(r.AppendGraphite(nil, "p", 1)); strings.Contains(g, "retired") {
		t.Errorf("Graphite lines of a removed scope:\n%s", g)
	}

	// The retired instance may still hold its scope: harmless, exported nowhere.
	oldC.Add(1)
	if old.Counter("sent_total", "") != oldC {
		t.Error("a removed scope forgot its counter")
	}
	old.Counter("late_total", "").Add(1)
	old.Gauge("late_gauge", "", func() float64 { return 1 })
	if _, body := scrape(t, r); strings.Contains(body, "retired") || strings.Contains(body, "late_") {
		t.Errorf("a removed scope registered again:\n%s", body)
	}

	// The same id comes back from zero.
	s := r.Scope("outputs.graphite", "retired")
	if s == old {
		t.Fatal("Scope after Remove returned the removed scope")
	}
	if c := s.Counter("sent_total", ""); c == oldC || c.Load() != 0 {
		t.Errorf("a counter after Remove: %d, same pointer %v", c.Load(), c == oldC)
	}
	mfs, _ = scrape(t, r)
	if v, ok := find(mfs, "router_sent_total", "outputs.graphite", "retired"); !ok || v != 0 {
		t.Errorf("the new scope's counter: %v %v", v, ok)
	}
}

// TestRemoveReleasesGauge: a gauge closure keeps what it references alive
// until Remove, and no longer, even if the retired instance still holds its
// Scope.
func TestRemoveReleasesGauge(t *testing.T) {
	r := New()
	s := r.Scope("outputs.graphite", "big")
	wp := registerBig(s)
	scrape(t, r)
	r.AppendGraphite(nil, "p", 1)
	if collected(wp) {
		t.Fatal("collected while registered: the test proves nothing")
	}
	r.Remove("outputs.graphite", "big")
	if !collected(wp) {
		t.Fatal("a removed gauge's closure is still reachable")
	}
	runtime.KeepAlive(s)
}

type bigObject struct {
	buf [1 << 20]byte
	n   float64
}

//go:noinline
func registerBig(s *Scope) weak.Pointer[bigObject] {
	b := &bigObject{n: 1}
	s.Gauge("big_bytes", "", func() float64 { return b.n + float64(len(b.buf)) })
	return weak.Make(b)
}

func collected(wp weak.Pointer[bigObject]) bool {
	for range 5 {
		runtime.GC()
		if wp.Value() == nil {
			return true
		}
	}
	return false
}

// TestInconsistentRegistration: whatever the scopes register, /metrics
// answers 200 with an exposition that parses, and nothing panics.
func TestInconsistentRegistration(t *testing.T) {
	r := New()
	a, b := r.Scope("outputs.graphite", "a"), r.Scope("outputs.statsd", "b")
	a.Counter("sent_total", "First help.").Add(1)
	b.Counter("sent_total", "Another help.").Add(2)                // one help per family: the first
	b.Gauge("errors_total", "", func() float64 { return 5 })       // a gauge first ...
	a.Counter("errors_total", "Errors.").Add(6)                    // ... fixes the type; the first non-empty help
	a.Gauge("mixed", "Mixed.", func() float64 { return 1 })        // a gauge ...
	a.Counter("mixed", "Mixed.").Add(2)                            // ... replaced by a counter of that name
	a.Counter("bad-name", "Not a Prometheus name.").Add(3)         // kept for Value, not exported
	a.Gauge("panics", "Panics.", func() float64 { panic("boom") }) // NaN
	a.Gauge("nan", "Not a number.", func() float64 { return math.NaN() })
	a.Counter("uptime_seconds", "Clashes with the runtime gauge.").Add(7) // exported as a gauge
	a.Counter("help_escapes", "back\\slash\nnewline \xff").Add(1)
	r.Scope("inputs.graphite", "bad\xffutf8").Counter("sent_total", "").Add(8)
	r.Scope("inputs.graphite", "quote\"d\\id\n").Counter("sent_total", "").Add(9)

	if _, err := r.gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	mfs, body := scrape(t, r)
	checks := []struct {
		family, plugin, id, help string
		typ                      dto.MetricType
		want                     float64
	}{
		{"router_sent_total", "outputs.graphite", "a", "First help.", dto.MetricType_COUNTER, 1},
		{"router_sent_total", "outputs.statsd", "b", "First help.", dto.MetricType_COUNTER, 2},
		{"router_sent_total", "inputs.graphite", "bad\uFFFDutf8", "First help.", dto.MetricType_COUNTER, 8},
		{"router_sent_total", "inputs.graphite", "quote\"d\\id\n", "First help.", dto.MetricType_COUNTER, 9},
		{"router_errors_total", "outputs.statsd", "b", "Errors.", dto.MetricType_GAUGE, 5},
		{"router_errors_total", "outputs.graphite", "a", "Errors.", dto.MetricType_GAUGE, 6},
		{"router_mixed", "outputs.graphite", "a", "Mixed.", dto.MetricType_GAUGE, 2},
		{"router_uptime_seconds", "outputs.graphite", "a", uptimeHelp, dto.MetricType_GAUGE, 7},
		{"router_help_escapes", "outputs.graphite", "a", "back\\slash\nnewline \uFFFD", dto.MetricType_COUNTER, 1},
	}
	for _, c := range checks {
		mf := mfs[c.family]
		if mf == nil {
			t.Errorf("no family %s in:\n%s", c.family, body)
			continue
		}
		if mf.GetType() != c.typ || mf.GetHelp() != c.help {
			t.Errorf("%s: %v %q, want %v %q", c.family, mf.GetType(), mf.GetHelp(), c.typ, c.help)
		}
		if v, ok := find(mfs, c.family, c.plugin, c.id); !ok || v != c.want {
			t.Errorf("%s{plugin=%q,id=%q} = %v %v, want %v", c.family, c.plugin, c.id, v, ok, c.want)
		}
	}
	for _, name := range []string{"router_panics", "router_nan"} {
		if v, ok := find(mfs, name, "outputs.graphite", "a"); !ok || !math.IsNaN(v) {
			t.Errorf("%s = %v %v, want NaN", name, v, ok)
		}
	}
	if strings.Contains(body, "bad-name") || strings.Contains(body, "bad_name") {
		t.Errorf("an invalid name is exported:\n%s", body)
	}
	if v, ok := r.Value("outputs.graphite", "a", "bad-name"); !ok || v != 3 {
		t.Errorf("Value(bad-name) = %v %v", v, ok)
	}
	if v, ok := r.Value("outputs.graphite", "a", "panics"); !ok || !math.IsNaN(v) {
		t.Errorf("Value(panics) = %v %v", v, ok)
	}

	// Two ids that differ only by invalid UTF-8 make the same series:
	// client_golang refuses the second one, the rest is still served.
	r.Scope("inputs.graphite", "bad\xfeutf8").Counter("sent_total", "").Add(10)
	if _, err := r.gather(); err == nil {
		t.Error("gather: no error for a duplicate series")
	}
	mfs, body = scrape(t, r)
	if v, ok := find(mfs, "router_sent_total", "outputs.graphite", "a"); !ok || v != 1 {
		t.Errorf("after a duplicate series: router_sent_total{a} = %v %v in:\n%s", v, ok, body)
	}
	if mfs["go_goroutines"] == nil {
		t.Error("after a duplicate series: no go_goroutines")
	}
	if n := len(mfs["router_sent_total"].Metric); n != 4 {
		t.Errorf("router_sent_total: %d series, want 4", n)
	}
	if g := r.AppendGraphite(nil, "p", 1); !strings.Contains(string(g), "p.outputs.graphite.a.sent_total 1 1\n") {
		t.Errorf("Graphite after a duplicate series:\n%s", g)
	}
}

// TestRegistriesIndependent: each Registry has its own prometheus.Registry.
func TestRegistriesIndependent(t *testing.T) {
	r1, r2 := New(), New()
	r1.Scope("agent", "agent").Counter("one_total", "").Add(1)
	r2.Scope("agent", "agent").Counter("two_total", "").Add(2)
	m1, _ := scrape(t, r1)
	m2, _ := scrape(t, r2)
	if m1["router_one_total"] == nil || m1["router_two_total"] != nil || m2["router_two_total"] == nil || m2["router_one_total"] != nil {
		t.Error("registries share series")
	}
}

// todaysGraphite renders one series as agent/selfmetrics.go does today:
// metric.NewGraphite(path, v, now) appended by the Graphite codec.
func todaysGraphite(prefix, plugin, id, name string, v float64, ts int64) string {
	kind, pname, _ := strings.Cut(plugin, ".")
	path := prefix + "." + GraphiteSafe(kind)
	if pname != "" {
		path += "." + GraphiteSafe(pname)
	}
	if id != kind {
		path += "." + GraphiteSafe(id)
	}
	path += "." + name
	m := metric.NewGraphite(path, v, time.Unix(ts, 0))
	return string(graphite.Append(nil, &m, 0))
}

func TestAppendGraphite(t *testing.T) {
	const prefix, ts = "carbon.relays.web1", int64(1700000000)
	r := New()
	type ser struct {
		plugin, id, name string
		v                float64
		gauge            bool
	}
	all := []ser{
		{"outputs.graphite", "caches/10.0.0.1:2003", "sent_total", 42, false},
		{"outputs.graphite", "caches/10.0.0.1:2003", "queued", 7, true},
		{"agent", "agent", "buffered_bytes", 1024, true},
		{"agent", "self_metrics", "emitted_total", 12345678901, false},
		{"inputs.statsd", "statsd-1", "fill_ratio", 0.125, true},
		{"inputs.statsd", "statsd-1", "tiny", 1e-7, true},
		{"outputs.consistent_hash", "ring a.b", "sent_total", 1 << 53, false},
		{"processors.prefix", "processors", "negative", -2.5, true},
	}
	// a NaN gauge is left out (carbon drops NaN datapoints)
	r.Scope("inputs.https_batch", "gw").Gauge("nan", "", math.NaN)
	for _, s := range all {
		sc := r.Scope(s.plugin, s.id)
		if s.gauge {
			v := s.v
			sc.Gauge(s.name, "", func() float64 { return v })
		} else {
			sc.Counter(s.name, "").Store(uint64(s.v))
		}
	}
	r.Scope("outputs.graphite", "gone").Counter("sent_total", "").Add(1)
	r.Remove("outputs.graphite", "gone")
	runtime.GC()

	got := string(r.AppendGraphite([]byte("kept\n"), prefix, ts))
	body, ok := strings.CutPrefix(got, "kept\n")
	if !ok {
		t.Fatalf("AppendGraphite did not append to dst: %q", got)
	}
	lines := strings.SplitAfter(body, "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("no final newline: %q", body)
	}
	lines = lines[:len(lines)-1]

	// The plugins' series: byte for byte as today.
	var want []string
	for _, s := range all {
		want = append(want, todaysGraphite(prefix, s.plugin, s.id, s.name, s.v, ts))
	}
	golden := []string{ // the naming, spelled out
		"carbon.relays.web1.agent.buffered_bytes 1024 1700000000\n",
		"carbon.relays.web1.agent.self_metrics.emitted_total 12345678901 1700000000\n",
		"carbon.relays.web1.inputs.statsd.statsd-1.fill_ratio 0.125 1700000000\n",
		"carbon.relays.web1.inputs.statsd.statsd-1.tiny 0.0000001 1700000000\n",
		"carbon.relays.web1.outputs.consistent_hash.ring_a_b.sent_total 9007199254740992 1700000000\n",
		"carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.queued 7 1700000000\n",
		"carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.sent_total 42 1700000000\n",
		"carbon.relays.web1.processors.prefix.negative -2.5 1700000000\n", // id == kind: left out
	}
	slices.Sort(want)
	if !slices.Equal(want, golden) {
		t.Fatalf("the golden lines disagree with today's rendering:\n%s\nvs\n%s", strings.Join(want, ""), strings.Join(golden, ""))
	}
	var plugins []string
	runtimeVals := map[string]float64{}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, prefix+".runtime."); ok {
			f := strings.Fields(rest)
			v, err := strconv.ParseFloat(f[1], 64)
			if len(f) != 3 || err != nil || f[2] != "1700000000" {
				t.Errorf("runtime line %q", l)
			}
			if _, dup := runtimeVals[f[0]]; dup {
				t.Errorf("runtime %s twice", f[0])
			}
			runtimeVals[f[0]] = v
			continue
		}
		plugins = append(plugins, l)
	}
	if !slices.Equal(plugins, golden) {
		t.Errorf("plugin lines:\n%s\nwant:\n%s", strings.Join(plugins, ""), strings.Join(golden, ""))
	}
	for _, n := range []string{"goroutines", "heap_alloc_bytes", "sys_bytes", "gc_cycles_total", "uptime_seconds"} {
		if _, ok := runtimeVals[n]; !ok {
			t.Errorf("no runtime.%s in:\n%s", n, body)
		}
	}
	if len(runtimeVals) != 5 {
		t.Errorf("runtime lines: %v", runtimeVals)
	}
	if runtimeVals["goroutines"] < 1 || runtimeVals["heap_alloc_bytes"] <= 0 || runtimeVals["sys_bytes"] <= 0 ||
		runtimeVals["gc_cycles_total"] < 1 || runtimeVals["uptime_seconds"] < 0 {
		t.Errorf("runtime values: %v", runtimeVals)
	}
	// Every line is a Graphite line the codec parses, and the order is sorted.
	var paths []string
	for _, l := range lines {
		var m metric.Metric
		if err := graphite.Parse([]byte(strings.TrimSuffix(l, "\n")), &m); err != nil {
			t.Errorf("not a Graphite line: %q: %v", l, err)
		}
		paths = append(paths, strings.Fields(l)[0])
	}
	if !slices.IsSorted(paths) {
		t.Errorf("not sorted:\n%s", body)
	}
	if again := r.AppendGraphite(nil, prefix, ts); len(strings.Split(string(again), "\n")) != len(lines)+1 {
		t.Errorf("a second call has another number of lines")
	}
}

// TestConcurrent: registration, removal, reads and scrapes at once (-race).
func TestConcurrent(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	const workers, rounds = 4, 200
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				plugin, id := "outputs.graphite", fmt.Sprintf("w%d-%d", w, i%5)
				s := r.Scope(plugin, id)
				s.Counter("sent_total", "Sent.").Add(1)
				s.Counter(fmt.Sprintf("c%d_total", i%3), "").Add(1)
				s.Gauge("queued", "Queued.", func() float64 { return float64(i) })
				r.Value(plugin, id, "queued")
				if i%7 == 0 {
					r.Remove(plugin, id)
					s.Counter("after_total", "").Add(1)
					s.Gauge("after", "", func() float64 { return 1 })
				}
			}
		})
	}
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			rec := httptest.NewRecorder()
			r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("scrape: %d", rec.Code)
				return
			}
			p := expfmt.NewTextParser(model.LegacyValidation)
			if _, err := p.TextToMetricFamilies(rec.Body); err != nil {
				t.Errorf("scrape does not parse: %v", err)
				return
			}
		}
	})
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = r.AppendGraphite(nil, "p", 1)
		}
	})
	wg.Wait()
	close(stop)
	scrapes.Wait()
	if _, err := r.gather(); err != nil {
		t.Fatal(err)
	}
}

// discard is a ResponseWriter that throws the body away.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// fill gives r scopes × 15 series: 10 counters and 5 gauges each.
func fill(r *Registry, scopes int) {
	for i := range scopes {
		s := r.Scope("outputs.graphite", "dest-"+strconv.Itoa(i))
		for j := range 10 {
			s.Counter("counter_"+strconv.Itoa(j)+"_total", "A counter.").Add(uint64(i * j))
		}
		for j := range 5 {
			v := float64(i + j)
			s.Gauge("gauge_"+strconv.Itoa(j), "A gauge.", func() float64 { return v })
		}
	}
}

// BenchmarkScrape: GET /metrics with 1,000 scopes × 15 series (plus the
// runtime and process collectors), body discarded.
func BenchmarkScrape(b *testing.B) {
	r := New()
	fill(r, 1000)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w := &discard{h: http.Header{}}
	h := r.Handler()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkAppendGraphite: the self-metrics emitter's read of the same.
func BenchmarkAppendGraphite(b *testing.B) {
	r := New()
	fill(r, 1000)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendGraphite(buf[:0], "carbon.relays.web1", 1700000000)
	}
}
