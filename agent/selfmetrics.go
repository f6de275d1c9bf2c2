package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// selfMetrics emits the router's own counters as Graphite metrics into the
// pipeline every [agent] metrics_flush, as carbon-c-relay
// (carbon.relays.<host>.*) and Polymur (<host>.polymur.*) do, so they reach
// the same carbon-caches as everything else.
//
// Names: <metrics_prefix>.<kind>.<plugin>.<id>.<counter>, e.g.
// carbon.relays.web1.outputs.graphite.caches_10_0_0_1_2003.sent_total, and
// <metrics_prefix>.runtime.<gauge> for the Go runtime.
type selfMetrics struct {
	stats  *stats
	prefix string
	every  time.Duration
	em     *emitter
	log    zerolog.Logger
}

// expandPrefix replaces {host} with the short host name, dots made '_'.
func expandPrefix(p string) string {
	h, _ := os.Hostname()
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	if h == "" {
		h = "unknown"
	}
	return strings.ReplaceAll(p, "{host}", graphiteSafe(h))
}

// graphiteSafe keeps [A-Za-z0-9_-] and makes everything else '_'.
func graphiteSafe(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '_'
	}, s)
}

func (s *selfMetrics) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b := s.collect(now)
			if err := s.em.Emit(ctx, b); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn().Err(err).Msg("self-metrics not queued")
			}
		}
	}
}

// collect renders every counter and gauge as Graphite metrics at time now.
func (s *selfMetrics) collect(now time.Time) metric.Batch {
	s.stats.mu.Lock()
	list := append([]*series(nil), s.stats.series...)
	s.stats.mu.Unlock()
	b := make(metric.Batch, 0, len(list)+8)
	for _, se := range list {
		kind, name, _ := strings.Cut(se.plugin, ".")
		path := s.prefix + "." + graphiteSafe(kind)
		if name != "" {
			path += "." + graphiteSafe(name)
		}
		if se.id != kind {
			path += "." + graphiteSafe(se.id)
		}
		path += "." + se.name
		var v float64
		if se.counter != nil {
			v = float64(se.counter.Load())
		} else {
			v = se.gauge()
		}
		b = append(b, metric.NewGraphite(path, v, now))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for _, g := range []struct {
		n string
		v float64
	}{
		{"goroutines", float64(runtime.NumGoroutine())},
		{"heap_alloc_bytes", float64(ms.HeapAlloc)},
		{"sys_bytes", float64(ms.Sys)},
		{"gc_cycles_total", float64(ms.NumGC)},
		{"uptime_seconds", time.Since(s.stats.start).Seconds()},
	} {
		b = append(b, metric.NewGraphite(s.prefix+".runtime."+g.n, g.v, now))
	}
	return b
}

// runstats is Polymur's statistics port ([agent] runstats_addr): the command
// "stats" answers the Go runtime's memory statistics as indented JSON; any
// other line answers "Not a command: <line>". One command per connection.
func startRunstats(addr string, log zerolog.Logger) (*tcpService, error) {
	return startTCPService(addr, "runstats_addr", 64, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReaderSize(c, 512).ReadString('\n')
		if err != nil && line == "" {
			return
		}
		cmd := strings.TrimSpace(line)
		if cmd != "stats" {
			fmt.Fprintf(c, "Not a command: %s\n", cmd)
			return
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		out, _ := json.MarshalIndent(ms, "", "  ")
		c.Write(append(out, '\n'))
	}, log)
}

var _ registry.Emitter = (*emitter)(nil)
