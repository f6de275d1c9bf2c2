package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/metrics"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
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
	reg    *metrics.Registry
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
	return strings.ReplaceAll(p, "{host}", metrics.GraphiteSafe(h))
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

// collect renders every series of the registry as Graphite metrics at time
// now.
func (s *selfMetrics) collect(now time.Time) metric.Batch {
	text := s.reg.AppendGraphite(nil, s.prefix, now.Unix())
	b := make(metric.Batch, 0, bytes.Count(text, []byte{'\n'}))
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte{'\n'})
		text = rest
		b = append(b, metric.Metric{})
		if err := graphite.Parse(line, &b[len(b)-1]); err != nil {
			b = b[:len(b)-1]
			s.log.Warn().Err(err).Bytes("line", line).Msg("self-metric not emitted")
		}
	}
	return b
}
