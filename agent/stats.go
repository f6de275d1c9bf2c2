package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/netx"
	"github.com/metricsrouter/router/registry"
)

// stats keeps the router's self-metrics. Counters are atomics owned by the
// code that increments them; stats only keeps pointers to read them, so the
// hot path never takes its lock.
type stats struct {
	mu     sync.Mutex
	series []*series
	start  time.Time
}

type series struct {
	name, help     string
	plugin, id     string
	extra          string // more labels, preformatted `k="v"`, or ""
	counter        *atomic.Uint64
	gauge          func() float64
	kind           string // "counter" or "gauge"
	registeredFrom int    // registration order, for a stable output
}

func newStats() *stats { return &stats{start: time.Now()} }

// instanceMetrics is the registry.Metrics of one plugin instance.
type instanceMetrics struct {
	s          *stats
	plugin, id string
}

func (s *stats) forInstance(plugin, id string) *instanceMetrics {
	return &instanceMetrics{s: s, plugin: plugin, id: id}
}

// Counter registers (or returns the already registered) counter name.
func (m *instanceMetrics) Counter(name, help string) *atomic.Uint64 {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for _, se := range m.s.series {
		if se.name == name && se.plugin == m.plugin && se.id == m.id && se.counter != nil {
			return se.counter
		}
	}
	c := new(atomic.Uint64)
	m.s.series = append(m.s.series, &series{name: name, help: help, plugin: m.plugin, id: m.id, counter: c, kind: "counter", registeredFrom: len(m.s.series)})
	return c
}

// Gauge registers a gauge read by calling f at scrape time; it replaces a
// gauge of the same name and instance (a reload re-initialises plugins).
func (m *instanceMetrics) Gauge(name, help string, f func() float64) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for _, se := range m.s.series {
		if se.name == name && se.plugin == m.plugin && se.id == m.id && se.gauge != nil {
			se.gauge = f
			return
		}
	}
	m.s.series = append(m.s.series, &series{name: name, help: help, plugin: m.plugin, id: m.id, gauge: f, kind: "gauge", registeredFrom: len(m.s.series)})
}

var _ registry.Metrics = (*instanceMetrics)(nil)

// get returns the current value of counter name for plugin/id (tests, summaries).
func (s *stats) get(plugin, id, name string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.series {
		if se.name == name && se.plugin == plugin && se.id == id {
			if se.counter != nil {
				return float64(se.counter.Load()), true
			}
			return se.gauge(), true
		}
	}
	return 0, false
}

// writePrometheus writes every series in the Prometheus text format 0.0.4.
func (s *stats) writePrometheus(w io.Writer) error {
	s.mu.Lock()
	list := append([]*series(nil), s.series...)
	s.mu.Unlock()
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].name != list[j].name {
			return list[i].name < list[j].name
		}
		return list[i].registeredFrom < list[j].registeredFrom
	})
	bw := bufio.NewWriter(w)
	last := ""
	for _, se := range list {
		full := "router_" + se.name
		if se.name != last {
			fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", full, se.help, full, se.kind)
			last = se.name
		}
		bw.WriteString(full)
		bw.WriteString(`{plugin="`)
		bw.WriteString(escapeLabel(se.plugin))
		bw.WriteString(`",id="`)
		bw.WriteString(escapeLabel(se.id))
		bw.WriteByte('"')
		if se.extra != "" {
			bw.WriteByte(',')
			bw.WriteString(se.extra)
		}
		bw.WriteString("} ")
		if se.counter != nil {
			bw.WriteString(strconv.FormatUint(se.counter.Load(), 10))
		} else {
			bw.WriteString(formatFloat(se.gauge()))
		}
		bw.WriteByte('\n')
	}
	writeRuntime(bw, s.start)
	return bw.Flush()
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}

func writeRuntime(w *bufio.Writer, start time.Time) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, formatFloat(v))
	}
	c := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %s\n", name, help, name, name, formatFloat(v))
	}
	g("go_goroutines", "Number of goroutines.", float64(runtime.NumGoroutine()))
	g("go_memstats_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	g("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
	g("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", float64(ms.Sys))
	c("go_memstats_mallocs_total", "Cumulative count of heap objects allocated.", float64(ms.Mallocs))
	c("go_gc_cycles_total", "Completed GC cycles.", float64(ms.NumGC))
	g("go_gc_pause_last_seconds", "Duration of the last GC pause.", float64(ms.PauseNs[(ms.NumGC+255)%256])/1e9)
	if rss, ok := residentBytes(); ok {
		g("process_resident_memory_bytes", "Resident memory size in bytes.", float64(rss))
	}
	g("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(start.Unix()))
	g("router_uptime_seconds", "Seconds since the router started.", time.Since(start).Seconds())
}

func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// statsServer serves /metrics and /healthz on [agent] stats_addr.
type statsServer struct {
	srv *http.Server
	ln  net.Listener
}

func startStatsServer(addr string, s *stats, healthy func() bool, withPprof bool, api http.HandlerFunc, log zerolog.Logger) (*statsServer, error) {
	ln, err := netx.Listen(addr, netx.Config{Log: log.With().Str("service", "stats_addr").Logger()})
	if err != nil {
		return nil, fmt.Errorf("stats_addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = s.writePrometheus(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if healthy() {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "degraded\n")
	})
	if api != nil {
		mux.HandleFunc("/api/destinations", api)
		mux.HandleFunc("/api/destinations/", api)
	}
	writeTimeout := 10 * time.Second
	if withPprof {
		writeTimeout = 65 * time.Second // /debug/pprof/profile?seconds=60
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", addr).Msg("stats server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("stats server listening")
	return &statsServer{srv: srv, ln: ln}, nil
}

func (s *statsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
