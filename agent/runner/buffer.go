// Package runner runs one output: a Buffer (in memory, or a write-ahead
// log on disk) and the writers that take batches from it and write them
// with the output plugin, reconnecting and retrying with backoff.
//
// The Buffer belongs to the output's id, not to its plugin instance: when
// the output's table changes, Reconfigure stops the writers (what they hold
// goes back to the head of the buffer), applies the new limits and starts
// new writers with new plugin instances on the same buffer. A spool is
// therefore opened once per id and never twice.
package runner

import (
	"context"
	"sync/atomic"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Buffer holds an output's metrics between the pipeline and its writers, in
// the shape of Telegraf's models.Buffer: Add, take a batch, then Done
// (handled: written, rejected or dropped) or Return (give the rest back).
type Buffer interface {
	// Add queues b, applying the overflow policy (drops are counted). It
	// returns nil once b is queued (or spooled), ctx.Err() or
	// registry.ErrStopped when a blocked Add gave up, ErrStopped at once
	// after Close.
	Add(ctx context.Context, b metric.Batch) error
	// Take fills t with up to max metrics from the head; false when
	// nothing is ready. Small queued batches are copied into t's scratch
	// so that one Write covers them. They stay accounted for until Done or
	// Return. A writer reuses its Taken.
	Take(t *Taken, max int) bool
	// Done says every metric of t was handled.
	Done(t *Taken)
	// Return says t.B[:from] were handled and puts t.B[from:] back at the
	// head, so that the next Take gets them first.
	Return(t *Taken, from int)
	// Len is the number of metrics held in memory, taken ones included;
	// Pending tells whether anything (memory or disk) waits to be taken.
	Len() int
	Pending() bool
	// Ready is signalled when data arrives or the buffer is closed.
	Ready() <-chan struct{}
	// Configure applies new limits (the output's table changed).
	Configure(o Options) error
	// Close refuses further Adds; what is queued can still be taken.
	Close()
	// Reopen accepts Adds again after Close (a removed output came back
	// before it finished draining).
	Reopen()
	// Release closes the buffer for good and returns how many metrics it
	// held that are lost (a spool keeps its records for the next start).
	Release() int
}

// Taken is a batch a writer took from a Buffer.
type Taken struct {
	B     metric.Batch
	bytes int64  // memory accounted to it
	parts []part // spool records it comes from, in metric order
	copy  bool   // B is the writer's scratch, not a queued batch

	scratch metric.Batch
}

// part says that n metrics of spool record seq are in a taken batch.
type part struct {
	seq uint64
	n   int
}

// Options are the buffer's limits, from the output's common keys.
type Options struct {
	Limit int  // buffer_limit: metrics held in memory, taken ones included
	Block bool // overflow = "block" (else drop_oldest)
	// The spool; Dir "" = memory only.
	Dir        string
	MaxBytes   int64
	Fsync      string
	ReplayRate int
}

// Budget bounds the bytes all outputs hold in memory ([agent]
// max_buffered_bytes). Nil means no bound.
type Budget struct {
	Max  int64
	used atomic.Int64
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Counters are an output's self-metrics that its buffer and writers count.
type Counters struct {
	Received, Sent, Dropped, Rejected, Refused *atomic.Uint64
	Retries, Connects, WriteErrors             *atomic.Uint64
}

// NewCounters registers an output's counters in its metrics scope.
func NewCounters(m registry.Metrics) Counters {
	return Counters{
		Received:    m.Counter("received_total", "Metrics offered to this output."),
		Sent:        m.Counter("sent_total", "Metrics written to the destination."),
		Dropped:     m.Counter("dropped_total", "Metrics dropped by the overflow policy (buffer full) or left at shutdown."),
		Rejected:    m.Counter("rejected_total", "Metrics the destination refused for good (e.g. HTTP 4xx)."),
		Refused:     m.Counter("refused_total", "Metrics not queued because the sender's wait ended (shutdown or timeout); the sender was told."),
		Retries:     m.Counter("retries_total", "Write attempts that failed and were retried."),
		Connects:    m.Counter("connects_total", "Successful (re)connections."),
		WriteErrors: m.Counter("write_errors_total", "Failed writes and connection attempts."),
	}
}

// NewBuffer returns the buffer o describes: a spool when o.Dir is set
// (opened now; an error means it could not be), else memory. stop is
// closed at the router's hard deadline: blocked Adds give up then.
func NewBuffer(o Options, c Counters, budget *Budget, stop <-chan struct{}, env BufferEnv) (Buffer, error) {
	q := &queue{opt: o, c: c, budget: budget, stop: stop, space: make(chan struct{}), data: make(chan struct{}, 1)}
	if o.Dir == "" {
		return &memBuffer{queue: q}, nil
	}
	return openDisk(q, env)
}
