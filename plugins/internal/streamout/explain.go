package streamout

import (
	"errors"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Explain calls explain for the metrics of b that a write returning err left
// out: the N of a *Refused, which gets the reason explain returns as its
// Reason, or the Refused of a *registry.PartialWriteError, among the metrics
// it wrote. An output's explain counts and logs them.
func Explain(b metric.Batch, err error, explain func(b metric.Batch, n int) (reason error)) {
	var r *Refused
	var p *registry.PartialWriteError
	switch {
	case errors.As(err, &r):
		r.Reason = explain(b, r.N)
	case errors.As(err, &p) && p.Refused > 0:
		explain(b[:p.Written], p.Refused)
	}
}

// CountRefused counts the metrics of b that the destination's format cannot
// carry (refused, the codec's check, returns why), and returns the first of
// them with its reason.
func CountRefused(b metric.Batch, refused func(m *metric.Metric) error) (n int, first *metric.Metric, reason error) {
	for i := range b {
		if err := refused(&b[i]); err != nil {
			n++
			if first == nil {
				first, reason = &b[i], err
			}
		}
	}
	return n, first, reason
}

// LogName is a metric name cut for a log line: names can be as long as a
// line.
func LogName(name []byte) []byte { return name[:min(len(name), 200)] }
