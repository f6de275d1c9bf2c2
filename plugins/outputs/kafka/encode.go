package kafka

import (
	"errors"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/jsonmetric"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/kafkaopt"
	"github.com/metricsrouter/router/plugins/metric"
)

// ErrTooLarge: one metric is longer than max_record_bytes.
var ErrTooLarge = errors.New("kafka: metric larger than max_record_bytes")

// refusedRec is the record of a metric that was refused.
const refusedRec = -1

// rec is one record: buf[start:end], to partition part.
type rec struct {
	start, end int
	part       int32
}

// encoder turns a batch into record values, all in one buffer; every
// slice is reused from batch to batch.
type encoder struct {
	format   string
	lines    int
	maxBytes int

	buf   []byte
	recs  []rec
	recOf []int32 // per metric of the batch: its record, or refusedRec
	parts []int32 // per metric: its partition
	order []int32 // the batch's indexes grouped by partition, in batch order within each
	count []int32 // per partition: metrics, then the start of its group in order
	acked []bool

	refused int
	why     error
}

// encode fills e.recs from b, metrics grouped by the partition partOf
// gives (of nparts; nil: all in partition 0), at most lines per record,
// no record longer than maxBytes.
func (e *encoder) encode(b metric.Batch, nparts int, partOf func(*metric.Metric) int) {
	e.buf, e.recs = e.buf[:0], e.recs[:0]
	e.refused, e.why = 0, nil
	n := len(b)
	e.recOf = grow(e.recOf, n)
	e.order = grow(e.order, n)
	if partOf == nil {
		for i := range n {
			e.order[i] = int32(i)
		}
		e.parts = grow(e.parts, n)
		clear(e.parts)
	} else {
		e.parts = grow(e.parts, n)
		e.count = grow(e.count, nparts+1)
		clear(e.count)
		for i := range b {
			p := int32(partOf(&b[i]))
			e.parts[i] = p
			e.count[p+1]++
		}
		for p := 1; p <= nparts; p++ {
			e.count[p] += e.count[p-1]
		}
		for i := range n {
			p := e.parts[i]
			e.order[e.count[p]] = int32(i)
			e.count[p]++
		}
	}
	now := time.Now().Unix()
	open, cnt, start := false, 0, 0
	var part int32
	for _, i := range e.order {
		p := e.parts[i]
		if open && (p != part || cnt == e.lines) {
			e.recs = append(e.recs, rec{start, len(e.buf), part})
			open = false
		}
		s := len(e.buf)
		if open {
			e.buf = append(e.buf, '\n')
		}
		ls := len(e.buf)
		var err error
		e.buf, err = e.appendLine(e.buf, &b[i], now)
		if err == nil && len(e.buf)-ls > e.maxBytes {
			err = ErrTooLarge
		}
		if err != nil {
			e.buf = e.buf[:s]
			e.recOf[i] = refusedRec
			if e.refused++; e.why == nil {
				e.why = err
			}
			continue
		}
		if open && len(e.buf)-start > e.maxBytes {
			// the line does not fit the open record: it starts the next
			e.recs = append(e.recs, rec{start, s, part})
			open = false
		}
		if !open {
			open, cnt, start, part = true, 0, ls, p
		}
		cnt++
		e.recOf[i] = int32(len(e.recs))
	}
	if open {
		e.recs = append(e.recs, rec{start, len(e.buf), part})
	}
}

// appendLine appends m in the format, without a line terminator.
func (e *encoder) appendLine(dst []byte, m *metric.Metric, now int64) ([]byte, error) {
	switch e.format {
	case kafkaopt.FormatStatsD:
		if err := statsd.Refused(m, metric.Untyped); err != nil {
			return dst, err
		}
		return trimNL(statsd.Append(dst, m, metric.Untyped)), nil
	case kafkaopt.FormatJSON:
		return jsonmetric.Append(dst, m)
	default:
		if err := graphite.Refused(m); err != nil {
			return dst, err
		}
		return trimNL(graphite.Append(dst, m, now)), nil
	}
}

func trimNL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		return b[:n-1]
	}
	return b
}

// grow returns s with length n, reallocated only when too short.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}
