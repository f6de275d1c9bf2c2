package runner

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

// Config is the part of an output's configuration its writers use.
type Config struct {
	BatchSize     int           // metrics per Write, at most
	FlushInterval time.Duration // wait this long for a full batch (0 = write at once)
	FlushIdle     time.Duration // ... but no longer than this after the last metric arrived (0 = off)
	RetryInitial  time.Duration
	RetryMax      time.Duration
	WriteTimeout  time.Duration // bound of one Write call
}

// Runner owns one output id: its Buffer, its counters, and a crew of
// writers (one per plugin instance, the common key `workers`).
type Runner struct {
	Plugin string // "outputs.graphite"
	ID     string
	Spec   string // destination as configured, "" if none

	log     zerolog.Logger
	c       Counters
	buf     Buffer
	opt     Options
	env     Env
	stop    <-chan struct{} // the router's hard deadline
	onFatal func(error)

	up      atomic.Bool // destination healthy, as far as the writers know
	closing atomic.Bool // Close was called (and no Reopen since)
	limit   atomic.Int64
	health  atomic.Pointer[registry.HealthReporter]

	mu      sync.Mutex // Start, Reconfigure, Reopen, Wait
	crew    *crew
	running sync.WaitGroup // every crew's writers
	done    chan struct{}  // closed when drained and released
	left    atomic.Int64

	dropMu     sync.Mutex
	dropLogged uint64
	lastDropAt time.Time
}

// crew is one generation of writers: the plugin instances of one version of
// the output's table.
type crew struct {
	outs   []registry.Output
	cfg    Config
	halt   chan struct{} // closed: hand back what you hold and end
	cancel context.CancelFunc
	wg     sync.WaitGroup
	live   atomic.Int32 // writers that have not decided to end
}

// Env is what a Runner needs from the agent.
type Env struct {
	Log     zerolog.Logger
	Metrics registry.Metrics // the output's scope
	Budget  *Budget
	Stop    <-chan struct{} // closed at the hard deadline
	OnFatal func(error)     // an output's Connect returned registry.ErrFatal
}

// New makes the runner of output id (of plugin "outputs.<name>") with
// buffer options o. It opens nothing: Open opens the buffer (a spool), then
// Start starts the writers.
func New(plugin, id, spec string, o Options, env Env) *Runner {
	r := &Runner{Plugin: plugin, ID: id, Spec: spec, log: env.Log, c: NewCounters(env.Metrics), opt: o, env: env, done: make(chan struct{})}
	r.up.Store(true)
	r.limit.Store(int64(o.Limit))
	return r
}

// Open makes the buffer (opening a spool) and registers the gauges.
func (r *Runner) Open() error {
	env := r.env
	buf, err := NewBuffer(r.opt, r.c, env.Budget, env.Stop, BufferEnv{Log: env.Log, Metrics: env.Metrics})
	if err != nil {
		return err
	}
	r.buf, r.stop, r.onFatal = buf, env.Stop, env.OnFatal
	m := env.Metrics
	m.Gauge("queued", "Metrics in the output's buffer, including the batch being written.", func() float64 { return float64(buf.Len()) })
	m.Gauge("buffer_limit", "Configured buffer_limit.", func() float64 { return float64(r.limit.Load()) })
	m.Gauge("up", "1 if the destination is considered healthy.", func() float64 {
		if r.Healthy() {
			return 1
		}
		return 0
	})
	return nil
}

// Opened tells whether Open succeeded.
func (r *Runner) Opened() bool { return r.buf != nil }

// Counters returns the runner's counters.
func (r *Runner) Counters() Counters { return r.c }

// Options returns the buffer options the runner was made or last
// reconfigured with.
func (r *Runner) Options() Options {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opt
}

// Enqueue hands b to the buffer (see Buffer.Add).
func (r *Runner) Enqueue(ctx context.Context, b metric.Batch) error {
	if r.buf == nil { // its spool could not be opened: the router is stopping
		r.c.Refused.Add(uint64(len(b)))
		return registry.ErrStopped
	}
	return r.buf.Add(ctx, b)
}

// Healthy is read by distributors once per batch.
func (r *Runner) Healthy() bool {
	if !r.up.Load() {
		return false
	}
	h := r.health.Load()
	return h == nil || (*h).Healthy()
}

// Len is the number of metrics the buffer holds in memory.
func (r *Runner) Len() int {
	if r.buf == nil {
		return 0
	}
	return r.buf.Len()
}

// Start starts writers with outs (one per worker) and cfg. ctx ends at the
// hard deadline only: a drain is not cut short by shutdown.
func (r *Runner) Start(ctx context.Context, outs []registry.Output, cfg Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startLocked(ctx, outs, cfg)
}

func (r *Runner) startLocked(ctx context.Context, outs []registry.Output, cfg Config) {
	wctx, cancel := context.WithCancel(ctx)
	c := &crew{outs: outs, cfg: cfg, halt: make(chan struct{}), cancel: cancel}
	r.crew = c
	r.health.Store(nil)
	if h, ok := outs[0].(registry.HealthReporter); ok {
		r.health.Store(&h)
	}
	for _, out := range outs {
		c.wg.Add(1)
		c.live.Add(1)
		r.running.Add(1)
		go func() {
			defer r.running.Done()
			defer c.wg.Done()
			if !r.work(wctx, c, out) {
				c.live.Add(-1)
			}
		}()
	}
}

// Reconfigure replaces the writers (the output's table changed): the
// current ones stop taking batches (a write in progress completes, or fails
// and gives the rest back to the buffer: nothing is cut or written twice),
// the buffer takes the new options, and new writers start with outs on the
// same buffer. The old plugin instances close once their writers are done.
// Only new spool options (size, fsync) wait for the old writers first: the
// spool is reopened.
func (r *Runner) Reconfigure(ctx context.Context, outs []registry.Output, cfg Config, o Options) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.crew
	close(old.halt)
	if o.Dir != "" && (o.MaxBytes != r.opt.MaxBytes || o.Fsync != r.opt.Fsync) {
		old.wg.Wait() // bounded by write_timeout
	}
	err := r.buf.Configure(o)
	if err == nil {
		r.opt = o
		r.limit.Store(int64(o.Limit))
	}
	r.startLocked(ctx, outs, cfg)
	go func() {
		old.wg.Wait()
		old.cancel()
		r.closeOuts(old.outs)
	}()
	return err
}

func (r *Runner) closeOuts(outs []registry.Output) {
	for _, out := range outs {
		if err := out.Close(); err != nil {
			r.log.Warn().Err(err).Msg("close")
		}
	}
}

// Close stops taking batches; the writers drain the buffer, then Wait
// returns. Reopen undoes it if the writers are still at it (false: too
// late, the runner has ended).
func (r *Runner) Close() {
	r.closing.Store(true)
	if r.buf != nil {
		r.buf.Close()
	}
}

// Reopen makes a closed runner take batches again; false when it already
// ended.
func (r *Runner) Reopen() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return false
	default:
	}
	if r.crew == nil || r.crew.live.Load() == 0 {
		return false
	}
	r.closing.Store(false)
	r.buf.Reopen()
	return true
}

// ReopenFiles has the current writers that write to files reopen them
// (registry.Reopener): SIGHUP after logrotate moved the files away.
func (r *Runner) ReopenFiles() error {
	r.mu.Lock()
	c := r.crew
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	var errs []error
	for _, o := range c.outs {
		if ro, ok := o.(registry.Reopener); ok {
			if err := ro.Reopen(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// drained decides, under r.mu (so that Reopen cannot slip in between),
// that a writer of c ends because the runner is closing and its buffer
// is empty.
func (r *Runner) drained(c *crew) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closing.Load() || r.buf.Pending() {
		return false
	}
	c.live.Add(-1)
	return true
}

// Wait waits until the writers have drained the buffer (after Close) or
// the hard deadline passed, then closes the plugin instances and the
// buffer. It returns what was left unsent (a spool keeps its records for
// the next start: those are not counted).
func (r *Runner) Wait() int {
	r.running.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return int(r.left.Load())
	default:
	}
	if r.crew != nil {
		r.crew.cancel()
		r.closeOuts(r.crew.outs)
	}
	left := 0
	if r.buf != nil {
		left = r.buf.Release()
	}
	r.left.Store(int64(left))
	r.logDrops(true)
	close(r.done)
	return left
}

// Done is closed once Wait has released the runner.
func (r *Runner) Done() <-chan struct{} { return r.done }

// Left returns what Wait found unsent.
func (r *Runner) Left() int { return int(r.left.Load()) }

// work is one writer: it takes batches and writes them with out,
// reconnecting and retrying with backoff, until the buffer is closed and
// empty, the crew is halted (Reconfigure) or the hard deadline passes; in
// the last two cases what it holds goes back to the buffer. It returns
// true when it ended because the buffer was drained (see drained).
func (r *Runner) work(ctx context.Context, c *crew, out registry.Output) bool {
	cfg := c.cfg
	connected := false
	backoff := cfg.RetryInitial
	var t Taken
	halted := func() bool {
		select {
		case <-c.halt:
			return true
		case <-r.stop:
			return true
		default:
			return false
		}
	}
	// connect (re)connects; false means the writer must end.
	connect := func(idle bool) bool {
		for {
			cctx, cancel := context.WithTimeout(ctx, connectTimeout(cfg))
			err := out.Connect(cctx)
			cancel()
			if err == nil {
				connected = true
				r.up.Store(true)
				r.c.Connects.Add(1)
				r.log.Info().Msg("connected")
				return true
			}
			if halted() {
				return false
			}
			r.up.Store(false)
			r.c.WriteErrors.Add(1)
			if errors.Is(err, registry.ErrFatal) && r.onFatal != nil {
				r.log.Error().Err(err).Msg("cannot go on")
				r.onFatal(err)
			} else {
				r.log.Warn().Err(err).Dur("retry_in_ms", backoff).Msg("connect failed")
			}
			if !r.sleep(c, &backoff, cfg.RetryMax, idle) {
				return false
			}
			if idle && r.closing.Load() && !r.buf.Pending() {
				return true // closed while idle: nothing to connect for
			}
		}
	}
	for {
		if halted() {
			return false
		}
		pending := r.buf.Pending()
		closing := r.closing.Load()
		if !connected && (pending || !closing) {
			// connect at start and after a failure, before any data
			if !connect(!pending) {
				return false
			}
			continue
		}
		if !pending {
			if closing {
				if r.drained(c) {
					r.wakeOthers()
					return true
				}
				continue
			}
			select {
			case <-r.buf.Ready():
				continue
			case <-c.halt:
				return false
			case <-r.stop:
				return false
			}
		}
		if cfg.FlushInterval > 0 && r.buf.Len() < cfg.BatchSize && !closing {
			r.waitForBatch(c, cfg)
		}
		if !r.buf.Take(&t, cfg.BatchSize) {
			continue
		}
		r.wakeOthers() // more queued: let another writer start on it
		r.write(ctx, c, out, &t, &connected, &backoff, connect)
		r.logDrops(false)
	}
}

// write writes t until it is handled (Done) or the writer must end
// (Return of what is left).
func (r *Runner) write(ctx context.Context, c *crew, out registry.Output, t *Taken, connected *bool, backoff *time.Duration, connect func(bool) bool) {
	cfg := c.cfg
	b := t.B
	off := 0 // t.B[:off] handled
	for {
		if !*connected && !connect(false) {
			r.buf.Return(t, off)
			return
		}
		wctx, cancel := context.WithTimeout(ctx, cfg.WriteTimeout)
		err := out.Write(wctx, b[off:])
		cancel()
		var pw *registry.PartialWriteError
		if errors.As(err, &pw) && pw.Written > 0 && pw.Written <= len(b)-off {
			refused := min(max(pw.Refused, 0), pw.Written)
			r.c.Sent.Add(uint64(pw.Written - refused))
			r.c.Rejected.Add(uint64(refused))
			off += pw.Written
			err = pw.Err
			if err == nil || off == len(b) {
				err = nil
			}
		}
		if err == nil {
			if n := len(b) - off; n > 0 {
				r.c.Sent.Add(uint64(n))
			}
			r.up.Store(true)
			*backoff = cfg.RetryInitial
			r.buf.Done(t)
			return
		}
		if errors.Is(err, registry.ErrRejected) {
			n := len(b) - off
			var part registry.PartlyRejected
			if errors.As(err, &part) && part.Rejected() >= 0 && part.Rejected() < n {
				// only these were refused; the others were written
				r.c.Sent.Add(uint64(n - part.Rejected()))
				n = part.Rejected()
				r.up.Store(true)
				*backoff = cfg.RetryInitial
			}
			r.c.Rejected.Add(uint64(n))
			r.log.Error().Err(err).Int("count", n).Msg("rejected, dropped")
			r.buf.Done(t)
			return
		}
		select {
		case <-c.halt:
			r.buf.Return(t, off) // a new crew takes over
			return
		case <-r.stop:
			r.buf.Return(t, off) // hard deadline: left, counted once
			return
		default:
		}
		r.c.WriteErrors.Add(1)
		r.c.Retries.Add(1)
		r.up.Store(false)
		if errors.Is(err, registry.ErrNotConnected) {
			*connected = false
		}
		r.log.Warn().Err(err).Int("count", len(b)-off).Dur("retry_in_ms", *backoff).Msg("write failed, will retry")
		if !r.sleep(c, backoff, cfg.RetryMax, false) {
			r.buf.Return(t, off)
			return
		}
	}
}

// waitForBatch waits up to flush_interval for a full batch; the input
// going quiet for flush_idle also ends the wait, so a burst's tail does not
// sit for a whole interval.
func (r *Runner) waitForBatch(c *crew, cfg Config) {
	t := time.NewTimer(cfg.FlushInterval)
	defer t.Stop()
	var quietC <-chan time.Time
	var quiet *time.Timer
	if idle := cfg.FlushIdle; idle > 0 && idle < cfg.FlushInterval {
		quiet = time.NewTimer(idle)
		defer quiet.Stop()
		quietC = quiet.C
	}
	for {
		select {
		case <-r.buf.Ready():
			if r.buf.Len() >= cfg.BatchSize || r.closing.Load() {
				return
			}
			if quiet != nil {
				quiet.Reset(cfg.FlushIdle)
			}
		case <-quietC:
			return
		case <-t.C:
			return
		case <-c.halt:
			return
		case <-r.stop:
			return
		}
	}
}

// wakeOthers passes the Ready signal on to another writer.
func (r *Runner) wakeOthers() {
	if q, ok := r.buf.(interface{ wake() }); ok {
		q.wake()
	}
}

// sleep waits for the backoff (with ±20 % jitter) and doubles it. It
// returns false if the crew was halted or the hard deadline came first.
// With idle set, closing the runner cuts the wait short (nothing is waiting
// to be written).
func (r *Runner) sleep(c *crew, backoff *time.Duration, maxBackoff time.Duration, idle bool) bool {
	d := *backoff
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	t := time.NewTimer(j)
	defer t.Stop()
	*backoff = min(2*d, maxBackoff)
	var ready <-chan struct{}
	if idle {
		ready = r.buf.Ready()
	}
	select {
	case <-t.C:
		return true
	case <-ready:
		r.wakeOthers()
		return true
	case <-c.halt:
		return false
	case <-r.stop:
		return false
	}
}

// logDrops logs dropped metrics at most every 10 s (one aggregated warning).
func (r *Runner) logDrops(final bool) {
	r.dropMu.Lock()
	defer r.dropMu.Unlock()
	d := r.c.Dropped.Load()
	if d == r.dropLogged {
		return
	}
	if !final && time.Since(r.lastDropAt) < 10*time.Second {
		return
	}
	r.log.Warn().Uint64("dropped", d-r.dropLogged).Uint64("dropped_total", d).Int64("buffer_limit", r.limit.Load()).Msg("buffer full, metrics dropped")
	r.dropLogged = d
	r.lastDropAt = time.Now()
}

func connectTimeout(c Config) time.Duration {
	if c.WriteTimeout > 0 {
		return c.WriteTimeout
	}
	return 10 * time.Second
}
