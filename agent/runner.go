package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// runnerConfig is the part of an output's configuration its runner uses.
type runnerConfig struct {
	BufferLimit   int           // metrics held in memory, queued plus in flight
	BatchSize     int           // metrics per Write, at most
	FlushInterval time.Duration // wait this long for a full batch (0 = write at once)
	FlushIdle     time.Duration // ... but no longer than this after the last metric arrived (0 = off)
	Block         bool          // overflow = "block"
	RetryInitial  time.Duration
	RetryMax      time.Duration
	WriteTimeout  time.Duration // bound of one Write call
	Spool         *spoolConfig  // nil: memory only
}

// runner owns one output: a bounded queue of batches, the goroutine that
// writes them, reconnects and retries with backoff, and the output's counters.
type runner struct {
	cfg     runnerConfig
	outs    []registry.Output       // one per worker
	health  registry.HealthReporter // nil unless the output reports health
	onFatal func(error)             // called when Connect reports registry.ErrFatal
	log     zerolog.Logger
	id      string
	spec    string // destination as configured, "" if none
	print   string // the output's fingerprint

	mu       sync.Mutex
	q        []qent        // queued batches, oldest first
	qHead    int           // q[qHead:] is the queue
	queued   int           // metrics in q
	inflight int           // metrics taken by writers, not yet written
	closed   bool          // no more Enqueue
	space    chan struct{} // closed (and replaced) when room appears
	data     chan struct{} // cap 1: data or close arrived

	stopNow  chan struct{} // closed at the hard deadline: give up waiting and writing
	closedCh chan struct{} // closed by close()
	done     chan struct{} // closed when the loop has ended and Close was called

	up atomic.Bool // destination healthy, as far as the runner knows

	received, sent, dropped, rejected, refused *atomic.Uint64
	retries, reconnects, writeErrors           *atomic.Uint64
	left                                       atomic.Int64 // set at shutdown

	dropMu     sync.Mutex
	dropLogged uint64
	lastDropAt time.Time

	budget  *budget          // nil: no byte bound
	sp      *spooled         // nil unless spool_dir is set
	metrics registry.Metrics // for the spool's gauges
}

// qent is a queued batch and, with a spool, the record that holds it.
type qent struct {
	b     metric.Batch
	seq   uint64
	bytes int64 // accounted against the agent's max_buffered_bytes
}

// budget bounds the bytes all runners hold in memory ([agent] max_buffered_bytes).
type budget struct {
	max  int64
	used atomic.Int64
}

// batchBytes is what b costs the memory budget: what its metrics keep alive
// (metric.RetainedBytes: the inputs never let a metric keep a read buffer
// much larger than its line).
func batchBytes(b metric.Batch) int64 { return metric.RetainedBytes(b) }

// part says that n metrics of spool record seq are in a taken batch.
type part struct {
	seq uint64
	n   int
}

func newRunner(id string, outs []registry.Output, cfg runnerConfig, log zerolog.Logger, m registry.Metrics) *runner {
	r := &runner{
		cfg:      cfg,
		outs:     outs,
		log:      log,
		id:       id,
		space:    make(chan struct{}),
		data:     make(chan struct{}, 1),
		stopNow:  make(chan struct{}),
		closedCh: make(chan struct{}),
		done:     make(chan struct{}),
	}
	if h, ok := outs[0].(registry.HealthReporter); ok {
		r.health = h
	}
	r.up.Store(true)
	r.received = m.Counter("received_total", "Metrics offered to this output.")
	r.sent = m.Counter("sent_total", "Metrics written to the destination.")
	r.dropped = m.Counter("dropped_total", "Metrics dropped by the overflow policy (buffer full) or left at shutdown.")
	r.rejected = m.Counter("rejected_total", "Metrics the destination refused for good (e.g. HTTP 4xx).")
	r.refused = m.Counter("refused_total", "Metrics not queued because the sender's wait ended (shutdown or timeout); the sender was told.")
	r.retries = m.Counter("retries_total", "Write attempts that failed and were retried.")
	r.reconnects = m.Counter("connects_total", "Successful (re)connections.")
	r.writeErrors = m.Counter("write_errors_total", "Failed writes and connection attempts.")
	m.Gauge("queued", "Metrics in the output's buffer, including the batch being written.", func() float64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return float64(r.queued + r.inflight)
	})
	m.Gauge("buffer_limit", "Configured buffer_limit.", func() float64 { return float64(cfg.BufferLimit) })
	m.Gauge("up", "1 if the destination is considered healthy.", func() float64 {
		if r.healthy() {
			return 1
		}
		return 0
	})
	return r
}

// healthy is read by distributors once per batch.
func (r *runner) healthy() bool {
	if !r.up.Load() {
		return false
	}
	return r.health == nil || r.health.Healthy()
}

// enqueue adds b to the queue. It implements node.
func (r *runner) enqueue(ctx context.Context, b metric.Batch) error {
	n := len(b)
	if n == 0 {
		return nil
	}
	r.received.Add(uint64(n))
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.refused.Add(uint64(n))
		return registry.ErrStopped
	}
	if r.sp != nil {
		r.mu.Unlock()
		return r.enqueueSpooled(ctx, b)
	}
	limit := r.cfg.BufferLimit
	var nb int64
	if r.budget != nil {
		nb = batchBytes(b)
	}
	overBytes := func() bool {
		return r.budget != nil && r.budget.used.Load()+nb > r.budget.max
	}
	if r.cfg.Block {
		// Wait until the batch fits. An empty queue always takes one batch,
		// however large, so that a batch larger than the limit cannot wedge.
		for r.queued+r.inflight > 0 && (r.queued+r.inflight+n > limit || overBytes()) {
			ch := r.space
			r.mu.Unlock()
			if err := r.waitForRoom(ctx, ch, n); err != nil {
				return err
			}
			r.mu.Lock()
			if r.closed {
				r.mu.Unlock()
				r.refused.Add(uint64(n))
				return registry.ErrStopped
			}
		}
	} else {
		var drop int
		if n > limit {
			drop = n - limit
			b = b[drop:]
			n = limit
			if nb > 0 {
				nb = batchBytes(b)
			}
		}
		for r.queued+r.inflight+n > limit && r.queued > 0 {
			need := r.queued + r.inflight + n - limit
			head := r.q[r.qHead]
			if len(head.b) <= need {
				drop += len(head.b)
				r.queued -= len(head.b)
				r.release(head.bytes)
				r.q[r.qHead] = qent{}
				r.qHead++
			} else {
				cut := head.bytes * int64(need) / int64(len(head.b))
				r.q[r.qHead].b = head.b[need:]
				r.q[r.qHead].bytes -= cut
				r.release(cut)
				r.queued -= need
				drop += need
			}
		}
		// the memory budget: drop whole batches, oldest first
		for overBytes() && r.queued > 0 {
			head := r.q[r.qHead]
			drop += len(head.b)
			r.queued -= len(head.b)
			r.release(head.bytes)
			r.q[r.qHead] = qent{}
			r.qHead++
		}
		if r.queued+r.inflight+n > limit || overBytes() {
			// what is being written holds the room: drop from the new batch
			k := n
			if r.queued+r.inflight+n > limit && !overBytes() {
				k = r.queued + r.inflight + n - limit
			}
			b = b[k:]
			n -= k
			drop += k
			if nb > 0 {
				nb = batchBytes(b)
			}
		}
		if drop > 0 {
			r.dropped.Add(uint64(drop))
		}
		if n == 0 {
			r.mu.Unlock()
			return nil
		}
	}
	r.push(b, 0, nb)
	r.mu.Unlock()
	r.wake()
	return nil
}

// release returns bytes to the memory budget.
func (r *runner) release(n int64) {
	if r.budget != nil && n != 0 {
		r.budget.used.Add(-n)
	}
}

// push appends to the memory queue; r.mu is held.
func (r *runner) push(b metric.Batch, seq uint64, bytes int64) {
	if r.qHead > 0 && r.qHead == len(r.q) {
		r.q = r.q[:0]
		r.qHead = 0
	}
	r.q = append(r.q, qent{b: b, seq: seq, bytes: bytes})
	r.queued += len(b)
	if r.budget != nil {
		r.budget.used.Add(bytes)
	}
}

// waitForRoom waits, with overflow = "block", until ch (nil: never) says
// room appeared in the queue, or 50 ms passed (room can also come from
// bytes other outputs freed). If ctx ends or the runner stops first, the n
// metrics that waited are counted as refused and the error says why.
func (r *runner) waitForRoom(ctx context.Context, ch <-chan struct{}, n int) error {
	select {
	case <-ch:
	case <-time.After(50 * time.Millisecond):
	case <-ctx.Done():
		r.refused.Add(uint64(n))
		return ctx.Err()
	case <-r.stopNow:
		r.refused.Add(uint64(n))
		return registry.ErrStopped
	}
	return nil
}

// take removes up to BatchSize metrics from the head of the queue. When
// several small batches are queued they are copied into the worker's scratch
// batch, so that one Write (one flush, one syscall) covers them. parts gets
// the spool records the batch comes from.
func (r *runner) take(scratch *metric.Batch, parts *[]part, taken *int64) metric.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	*parts = (*parts)[:0]
	*taken = 0
	if r.queued == 0 {
		return nil
	}
	max := r.cfg.BatchSize
	head := r.q[r.qHead]
	if len(head.b) >= max || r.qHead+1 == len(r.q) {
		// one batch: hand it over without copying
		b := head.b
		if len(b) > max {
			cut := head.bytes * int64(max) / int64(len(b))
			r.q[r.qHead].b = b[max:]
			r.q[r.qHead].bytes -= cut
			*taken = cut
			b = b[:max:max]
		} else {
			*taken = head.bytes
			r.q[r.qHead] = qent{}
			r.qHead++
		}
		r.queued -= len(b)
		r.inflight += len(b)
		*parts = append(*parts, part{head.seq, len(b)})
		return b
	}
	out := (*scratch)[:0]
	for r.qHead < len(r.q) {
		e := r.q[r.qHead]
		room := max - len(out)
		if room == 0 {
			break
		}
		if len(e.b) > room {
			cut := e.bytes * int64(room) / int64(len(e.b))
			out = append(out, e.b[:room]...)
			r.q[r.qHead].b = e.b[room:]
			r.q[r.qHead].bytes -= cut
			*taken += cut
			*parts = append(*parts, part{e.seq, room})
			break
		}
		out = append(out, e.b...)
		*taken += e.bytes
		*parts = append(*parts, part{e.seq, len(e.b)})
		r.q[r.qHead] = qent{}
		r.qHead++
	}
	*scratch = out
	r.queued -= len(out)
	r.inflight += len(out)
	return out
}

// finish marks n in-flight metrics as done and wakes blocked senders.
func (r *runner) finish(n int) {
	r.mu.Lock()
	r.inflight -= n
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()
}

func (r *runner) queuedNow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queued + r.inflight
}

// queueLen returns what is waiting: queued metrics in memory (plus one when
// spooled records wait on disk) and whether the runner is closed.
func (r *runner) queueLen() (queued int, closed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queued
	if q == 0 && r.sp != nil && r.sp.disk {
		q = 1
	}
	return q, r.closed
}

// run starts one writer per output instance (the common key `workers`) and
// returns when all have ended, after closing the outputs. ctx is not
// cancelled by shutdown: it ends at the hard deadline only (stopNow), so the
// final flush is not cut short.
func (r *runner) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, out := range r.outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, out)
		}()
	}
	wg.Wait()
	r.stop()
	close(r.done)
}

// work is one writer: it takes batches and writes them with out, reconnecting
// and retrying with backoff, until the queue is closed and empty or the hard
// deadline passes (then what it holds is left).
func (r *runner) work(ctx context.Context, out registry.Output) {
	connected := false
	backoff := r.cfg.RetryInitial
	var scratch metric.Batch
	var parts []part
	var taken int64
	// connect (re)connects; it reports false when the worker must end.
	connect := func(idle bool) bool {
		for {
			cctx, cancel := context.WithTimeout(ctx, connectTimeout(r.cfg))
			err := out.Connect(cctx)
			cancel()
			if err == nil {
				connected = true
				r.up.Store(true)
				r.reconnects.Add(1)
				r.log.Info().Msg("connected")
				return true
			}
			r.up.Store(false)
			r.writeErrors.Add(1)
			if errors.Is(err, registry.ErrFatal) && r.onFatal != nil {
				r.log.Error().Err(err).Msg("cannot go on")
				r.onFatal(err)
			} else {
				r.log.Warn().Err(err).Dur("retry_in", backoff).Msg("connect failed")
			}
			if !r.sleep(&backoff, idle) {
				return false
			}
			if q, c := r.queueLen(); c && (idle || q == 0) {
				return true // closed while idle: nothing to connect for
			}
		}
	}
	for {
		queued, closed := r.queueLen()
		if !connected && !(closed && queued == 0) {
			// connect at start and after a failure, before any data
			if !connect(queued == 0) {
				return
			}
			continue
		}
		if queued == 0 {
			if closed {
				r.wake()
				return
			}
			select {
			case <-r.data:
				continue
			case <-r.stopNow:
				return
			}
		}
		if r.cfg.FlushInterval > 0 && queued < r.cfg.BatchSize && !closed {
			t := time.NewTimer(r.cfg.FlushInterval)
			// The input going quiet also ends the wait: a burst's tail
			// does not sit for a whole flush_interval.
			var quiet *time.Timer
			var quietC <-chan time.Time
			if idle := r.cfg.FlushIdle; idle > 0 && idle < r.cfg.FlushInterval {
				quiet = time.NewTimer(idle)
				quietC = quiet.C
			}
		wait:
			for {
				select {
				case <-r.data:
					if q, c := r.queueLen(); q >= r.cfg.BatchSize || c {
						break wait
					}
					if quiet != nil {
						quiet.Reset(r.cfg.FlushIdle)
					}
				case <-quietC:
					break wait
				case <-t.C:
					break wait
				case <-r.stopNow:
					break wait
				}
			}
			t.Stop()
			if quiet != nil {
				quiet.Stop()
			}
		}
		b := r.take(&scratch, &parts, &taken)
		if b == nil && r.sp != nil {
			b = r.sp.read(r, &parts)
		}
		if b == nil {
			continue
		}
		r.wake() // more queued: let another worker start on it
		for {
			if !connected && !connect(false) {
				break
			}
			wctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
			err := out.Write(wctx, b)
			cancel()
			if err == nil {
				r.sent.Add(uint64(len(b)))
				r.up.Store(true)
				backoff = r.cfg.RetryInitial
				break
			}
			if errors.Is(err, registry.ErrRejected) {
				n := len(b)
				var part registry.PartlyRejected
				if errors.As(err, &part) && part.Rejected() >= 0 && part.Rejected() < n {
					// only these were refused; the others were written
					n = part.Rejected()
					r.sent.Add(uint64(len(b) - n))
					r.up.Store(true)
					backoff = r.cfg.RetryInitial
				}
				r.rejected.Add(uint64(n))
				r.log.Error().Err(err).Int("count", n).Msg("rejected, dropped")
				break
			}
			r.writeErrors.Add(1)
			r.retries.Add(1)
			r.up.Store(false)
			if errors.Is(err, registry.ErrNotConnected) {
				connected = false
			}
			r.log.Warn().Err(err).Int("count", len(b)).Dur("retry_in", backoff).Msg("write failed, will retry")
			if !r.sleep(&backoff, false) {
				break
			}
		}
		select {
		case <-r.stopNow:
			return // hard deadline: what this worker holds is left
		default:
		}
		r.finish(len(b))
		r.release(taken)
		if r.sp != nil {
			r.sp.done(parts)
		}
		r.logDrops(false)
	}
}

// wake nudges another worker waiting for data.
func (r *runner) wake() {
	select {
	case r.data <- struct{}{}:
	default:
	}
}

func (r *runner) stop() {
	r.mu.Lock()
	left := r.queued + r.inflight
	r.mu.Unlock()
	if r.sp != nil {
		// what is left is on disk and will be sent after a restart
		r.sp.close(r)
		left = 0
	}
	r.left.Store(int64(left))
	r.logDrops(true)
	for _, out := range r.outs {
		if err := out.Close(); err != nil {
			r.log.Warn().Err(err).Msg("close")
		}
	}
}

// sleep waits for the backoff (with ±20 % jitter) and doubles it. It
// returns false if the hard deadline came first. With idle set, closing the
// runner cuts the wait short (nothing is waiting to be written).
func (r *runner) sleep(backoff *time.Duration, idle bool) bool {
	d := *backoff
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	t := time.NewTimer(j)
	defer t.Stop()
	*backoff = min(2*d, r.cfg.RetryMax)
	var closed <-chan struct{}
	if idle {
		closed = r.closedCh
	}
	select {
	case <-t.C:
		return true
	case <-closed:
		return true
	case <-r.stopNow:
		return false
	}
}

// logDrops logs dropped metrics at most every 10 s (one aggregated warning).
func (r *runner) logDrops(final bool) {
	r.dropMu.Lock()
	defer r.dropMu.Unlock()
	d := r.dropped.Load()
	if d == r.dropLogged {
		return
	}
	if !final && time.Since(r.lastDropAt) < 10*time.Second {
		return
	}
	r.log.Warn().Uint64("dropped", d-r.dropLogged).Uint64("dropped_total", d).Int("buffer_limit", r.cfg.BufferLimit).Msg("buffer full, metrics dropped")
	r.dropLogged = d
	r.lastDropAt = time.Now()
}

// close stops accepting batches; the loop drains the queue and ends.
func (r *runner) close() {
	r.mu.Lock()
	if !r.closed {
		close(r.closedCh)
	}
	r.closed = true
	close(r.space)
	r.space = make(chan struct{})
	r.mu.Unlock()
	select {
	case r.data <- struct{}{}:
	default:
	}
}

func connectTimeout(c runnerConfig) time.Duration {
	if c.WriteTimeout > 0 {
		return c.WriteTimeout
	}
	return 10 * time.Second
}
