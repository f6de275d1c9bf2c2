package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/spool"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// BufferEnv is what a spool needs from its output: a logger and the
// output's metrics scope (for the spool's own counters and gauges).
type BufferEnv struct {
	Log     zerolog.Logger
	Metrics registry.Metrics
}

// ackEvery is how often acknowledgements are persisted at most; one that
// waits is persisted this long after it was due, traffic or not, so that a
// crash after an idle period re-sends nothing already delivered.
const ackEvery = 200 * time.Millisecond

// diskBuffer is a spool used as a write-ahead log: every batch is appended
// (one record) before Add returns, so what a sender was told is queued
// survives a crash. Batches are also kept in memory while there is room;
// when memory is full, new records stay on disk only ("disk mode") and
// writers read them back, in order, once memory has been written. Records
// are acknowledged once written; a restart replays what was not.
//
// When the disk fails (ENOSPC, EIO), batches go to the memory queue under
// buffer_limit and the overflow policy, as without a spool: memory stays
// bounded and every drop is counted. The failure and the recovery are
// logged.
type diskBuffer struct {
	*queue
	log zerolog.Logger

	sp atomic.Pointer[spool.Spool] // replaced only by Configure

	// guarded by queue.mu
	disk     bool   // records from diskFrom on are on disk only
	diskFrom uint64 // first record not in memory
	newRead  bool   // a reader at diskFrom is needed
	failing  error  // the last append error while the disk fails, else nil

	readMu  sync.Mutex // one reader at a time
	reader  *spool.Reader
	tokens  float64 // replay rate limiter
	tokenAt time.Time

	ackMu    sync.Mutex
	next     uint64         // lowest record not yet acknowledged
	pending  map[uint64]int // record -> metrics not yet handled
	doneSet  map[uint64]bool
	acked    uint64 // persisted
	ackedAt  time.Time
	ackTimer *time.Timer

	replayed, spoolDropped, spoolErrors, memOnly *atomic.Uint64
	undecodable                                  atomic.Uint64 // records with lines that did not decode
}

func openDisk(q *queue, env BufferEnv) (*diskBuffer, error) {
	d := &diskBuffer{queue: q, log: env.Log}
	// a spooled batch dropped from memory by the overflow policy (while
	// the disk fails) is handled: its record must not hold acks back
	q.onDrop = d.done
	if err := d.open(); err != nil {
		return nil, err
	}
	m := env.Metrics
	d.replayed = m.Counter("spool_replayed_total", "Metrics read back from the disk spool.")
	d.spoolDropped = m.Counter("spool_dropped_total", "Metrics dropped from a full spool (overflow = \"drop_oldest\"), also in dropped_total.")
	d.spoolErrors = m.Counter("spool_errors_total", "Spool appends that failed (disk full or broken); those batches went to the memory buffer.")
	d.memOnly = m.Counter("spool_memory_only_total", "Metrics held in memory only (under buffer_limit and the overflow policy) because the spool could not take them.")
	m.Gauge("spool_bytes", "Bytes in the disk spool.", func() float64 { return float64(d.stats().Bytes) })
	m.Gauge("spool_records", "Records in the disk spool not yet acknowledged.", func() float64 {
		st := d.stats()
		return float64(st.LastSeq - st.AckedSeq)
	})
	m.Gauge("spool_corrupt_records", "Spool records skipped as corrupt or that did not decode (their metrics are counted dropped).", func() float64 {
		return float64(d.stats().CorruptRecords + d.undecodable.Load())
	})
	return d, nil
}

// open opens the spool at d.opt.Dir; q.mu is held or d is not shared yet.
func (d *diskBuffer) open() error {
	sp, err := spool.Open(d.opt.Dir, spool.Options{MaxBytes: d.opt.MaxBytes, Fsync: d.opt.Fsync})
	if err != nil {
		return err
	}
	d.sp.Store(sp)
	d.ackMu.Lock()
	d.pending, d.doneSet = map[uint64]int{}, map[uint64]bool{}
	d.acked = sp.Acked()
	d.next = d.acked + 1
	d.ackMu.Unlock()
	d.disk, d.newRead = false, false
	if sp.LastSeq() > d.acked {
		// records of a previous run: replay them first
		d.disk, d.diskFrom, d.newRead = true, d.next, true
		d.log.Info().Uint64("records", sp.LastSeq()-d.acked).Int64("bytes", sp.Stats().Bytes).Msg("spool: replaying what a previous run left")
	}
	return nil
}

func (d *diskBuffer) stats() spool.Stats { return d.sp.Load().Stats() }

// Add appends b to the spool, then keeps it in memory if there is room.
// The overflow policy applies when the spool is full.
func (d *diskBuffer) Add(ctx context.Context, b metric.Batch) error {
	n := len(b)
	if n == 0 {
		return nil
	}
	d.c.Received.Add(uint64(n))
	data := encodeBatch(make([]byte, 0, 64*n), b, time.Now().Unix())
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			d.c.Refused.Add(uint64(n))
			return registry.ErrStopped
		}
		seq, err := d.sp.Load().Append(n, data)
		switch {
		case err == nil:
			if d.failing != nil {
				d.failing = nil
				d.log.Info().Msg("spool: appends succeed again; batches are spooled as before")
			}
			d.track(seq, n)
			var nb int64
			if d.budget != nil {
				nb = batchBytes(b)
			}
			if !d.disk && d.queued+d.inflight+n <= d.opt.Limit && !d.overBytes(nb) {
				d.push(b, seq, nb)
			} else if !d.disk {
				d.disk, d.diskFrom, d.newRead = true, seq, true
			}
			d.mu.Unlock()
			d.wake()
			return nil
		case errors.Is(err, spool.ErrFull) && !d.opt.Block:
			_, count, derr := d.sp.Load().DropOldest()
			d.mu.Unlock()
			if derr != nil {
				d.c.Dropped.Add(uint64(n))
				return nil
			}
			d.c.Dropped.Add(uint64(count))
			d.spoolDropped.Add(uint64(count))
			d.forgetDropped()
			continue
		case errors.Is(err, spool.ErrFull):
			d.mu.Unlock()
			// room appears when records are acknowledged
			if err := d.waitForRoom(ctx, nil, n); err != nil {
				return err
			}
			continue
		case errors.Is(err, spool.ErrTooLarge):
			d.mu.Unlock()
			d.c.Dropped.Add(uint64(n))
			d.log.Error().Err(err).Int("count", n).Msg("batch too large for the spool, dropped")
			return nil
		default:
			// the disk failed: the memory buffer takes the batch, bounded
			first := d.failing == nil
			d.failing = err
			d.mu.Unlock()
			d.spoolErrors.Add(1)
			if first {
				d.log.Error().Err(err).Int("buffer_limit", d.opt.Limit).
					Msg("spool: append failed; batches are held in memory under buffer_limit and the overflow policy until the disk recovers")
			}
			d.memOnly.Add(uint64(n))
			return d.add(ctx, b)
		}
	}
}

// Take takes from memory first, then reads the spool back.
func (d *diskBuffer) Take(t *Taken, max int) bool {
	d.mu.Lock()
	ok := d.take(t, max)
	d.mu.Unlock()
	if ok {
		return true
	}
	return d.read(t)
}

func (d *diskBuffer) Done(t *Taken) {
	d.finish(t)
	d.done(t.parts)
}

func (d *diskBuffer) Return(t *Taken, from int) {
	d.done(d.giveBack(t, from))
}

func (d *diskBuffer) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queued > 0 || d.disk
}

// read fills t with the next batch read back from disk; false when the
// reader has caught up (disk mode ends then) or on an error.
func (d *diskBuffer) read(t *Taken) bool {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	d.mu.Lock()
	if !d.disk {
		d.mu.Unlock()
		return false
	}
	if d.newRead || d.reader == nil {
		if d.reader != nil {
			d.reader.Close()
		}
		d.reader = d.sp.Load().NewReader(d.diskFrom)
		d.newRead = false
	}
	rd := d.reader
	d.mu.Unlock()
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			// Appends happen under d.mu: with it held, a second EOF means
			// the reader has caught up and new batches can go to memory.
			d.mu.Lock()
			rec, err = rd.Next()
			if errors.Is(err, io.EOF) {
				d.disk = false
				d.mu.Unlock()
				return false
			}
			d.mu.Unlock()
		}
		if err != nil {
			d.log.Warn().Err(err).Msg("spool read")
			time.Sleep(50 * time.Millisecond)
			return false
		}
		if rec.Seq < d.ackedNext() {
			continue // written before a restart
		}
		b, bad := decodeBatch(append([]byte(nil), rec.Data...), rec.Count)
		if bad > 0 {
			d.undecodable.Add(1)
			d.c.Dropped.Add(uint64(bad))
			d.log.Error().Uint64("seq", rec.Seq).Int("lines", bad).Msg("spool: record lines that do not decode, dropped and counted")
		}
		d.track(rec.Seq, len(b))
		d.throttle(len(b))
		d.replayed.Add(uint64(len(b)))
		t.B, t.bytes, t.copy = b, 0, false
		t.parts = append(t.parts[:0], part{rec.Seq, len(b)})
		if len(b) == 0 {
			d.done(t.parts)
			continue
		}
		d.mu.Lock()
		d.inflight += len(b)
		d.mu.Unlock()
		return true
	}
}

// throttle keeps replay under spool_replay_rate metrics per second.
func (d *diskBuffer) throttle(n int) {
	rate := float64(d.opt.ReplayRate)
	if rate <= 0 {
		return
	}
	now := time.Now()
	if d.tokenAt.IsZero() {
		d.tokenAt, d.tokens = now, rate
	}
	d.tokens = min(rate, d.tokens+now.Sub(d.tokenAt).Seconds()*rate)
	d.tokenAt = now
	d.tokens -= float64(n)
	if d.tokens < 0 {
		t := time.NewTimer(time.Duration(-d.tokens / rate * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-d.stop:
		}
	}
}

func (d *diskBuffer) ackedNext() uint64 {
	d.ackMu.Lock()
	defer d.ackMu.Unlock()
	return d.next
}

// track registers record seq with n metrics to handle.
func (d *diskBuffer) track(seq uint64, n int) {
	d.ackMu.Lock()
	defer d.ackMu.Unlock()
	if seq < d.next {
		return
	}
	if _, ok := d.pending[seq]; !ok && !d.doneSet[seq] {
		d.pending[seq] = n
	}
}

// done marks handled parts and acknowledges the records handled in full,
// in order. Acknowledgements are persisted at most every ackEvery; one
// that has to wait is persisted by a timer.
func (d *diskBuffer) done(parts []part) {
	d.ackMu.Lock()
	for _, p := range parts {
		if p.seq == 0 || p.seq < d.next {
			continue
		}
		left, ok := d.pending[p.seq]
		if !ok {
			continue
		}
		left -= p.n
		if left > 0 {
			d.pending[p.seq] = left
			continue
		}
		delete(d.pending, p.seq)
		d.doneSet[p.seq] = true
	}
	for d.doneSet[d.next] {
		delete(d.doneSet, d.next)
		d.next++
	}
	ack := d.next - 1
	due := false
	if ack > d.acked {
		if wait := ackEvery - time.Since(d.ackedAt); wait <= 0 {
			due = true
			d.acked, d.ackedAt = ack, time.Now()
		} else if d.ackTimer == nil {
			d.ackTimer = time.AfterFunc(wait, d.flushAck)
		}
	}
	d.ackMu.Unlock()
	if due {
		d.persistAck(ack)
	}
}

// flushAck persists the acknowledgement a recent one held back.
func (d *diskBuffer) flushAck() {
	d.ackMu.Lock()
	d.ackTimer = nil
	ack := d.next - 1
	due := ack > d.acked
	if due {
		d.acked, d.ackedAt = ack, time.Now()
	}
	d.ackMu.Unlock()
	if due {
		d.persistAck(ack)
	}
}

func (d *diskBuffer) persistAck(ack uint64) {
	if err := d.sp.Load().Ack(ack); err != nil && !errors.Is(err, spool.ErrClosed) {
		d.log.Warn().Err(err).Msg("spool ack")
	}
}

// forgetDropped: records DropOldest removed are no longer waited for.
func (d *diskBuffer) forgetDropped() {
	first := d.stats().FirstSeq
	d.ackMu.Lock()
	for d.next < first {
		delete(d.pending, d.next)
		delete(d.doneSet, d.next)
		d.next++
	}
	d.ackMu.Unlock()
}

// Configure applies new limits. Spool options (size, fsync) reopen the
// spool: the caller has stopped the writers, so nothing is taken; what is
// on disk is replayed from the acknowledged position, memory-only batches
// stay queued.
func (d *diskBuffer) Configure(o Options) error {
	if o.Dir != d.opt.Dir {
		return fmt.Errorf("spool directory %s cannot change to %s in place", d.opt.Dir, o.Dir)
	}
	d.readMu.Lock()
	defer d.readMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	reopen := o.MaxBytes != d.opt.MaxBytes || o.Fsync != d.opt.Fsync
	old := d.opt
	d.opt = o
	close(d.space)
	d.space = make(chan struct{})
	if !reopen {
		return nil
	}
	d.closeSpool()
	// cached batches are on disk: they will be read back from there
	keep := d.q[:0:0]
	for _, e := range d.q[d.qHead:] {
		if e.seq == 0 {
			keep = append(keep, e)
			continue
		}
		d.queued -= len(e.b)
		d.release(e.bytes)
	}
	d.q, d.qHead = keep, 0
	if err := d.open(); err != nil {
		d.opt = old
		if err2 := d.open(); err2 != nil {
			return fmt.Errorf("reopen spool: %w (and with the old options: %v)", err, err2)
		}
		return fmt.Errorf("reopen spool with the new options: %w (kept the old ones)", err)
	}
	return nil
}

// closeSpool persists the acknowledged position and closes the files;
// d.mu and d.readMu are held.
func (d *diskBuffer) closeSpool() {
	d.ackMu.Lock()
	ack := d.next - 1
	if d.ackTimer != nil {
		d.ackTimer.Stop()
		d.ackTimer = nil
	}
	d.acked = ack
	d.ackMu.Unlock()
	sp := d.sp.Load()
	if ack > sp.Acked() {
		if err := sp.Ack(ack); err != nil {
			d.log.Warn().Err(err).Msg("spool ack")
		}
	}
	if d.reader != nil {
		d.reader.Close()
		d.reader = nil
	}
	if left := sp.LastSeq() - sp.Acked(); left > 0 {
		d.log.Info().Uint64("records", left).Str("dir", d.opt.Dir).Msg("spool: records kept on disk")
	}
	if err := sp.Close(); err != nil {
		d.log.Warn().Err(err).Msg("spool close")
	}
}

func (d *diskBuffer) Close()  { d.setClosed(true) }
func (d *diskBuffer) Reopen() { d.setClosed(false) }

// Release acknowledges what was written and closes the spool; what is on
// disk is sent after the next start. Batches held in memory only are lost
// and counted by the caller.
func (d *diskBuffer) Release() int {
	d.readMu.Lock()
	d.mu.Lock()
	d.closeSpool()
	d.mu.Unlock()
	d.readMu.Unlock()
	return d.drain()
}

// encodeBatch renders b as spool record data: per metric a format byte
// ('g' Graphite, 's' StatsD, 'o' a StatsD line passed on unparsed), its
// line, '\n'.
func encodeBatch(dst []byte, b metric.Batch, now int64) []byte {
	for i := range b {
		m := &b[i]
		if m.Opaque() {
			dst = append(dst, 'o')
			dst = statsd.Append(dst, m, metric.Untyped)
		} else if m.Format() == metric.StatsD {
			dst = append(dst, 's')
			dst = statsd.Append(dst, m, metric.Untyped)
		} else {
			dst = append(dst, 'g')
			dst = graphite.Append(dst, m, now)
		}
	}
	return dst
}

// decodeBatch parses record data back into metrics (which keep data) and
// says how many lines did not decode.
func decodeBatch(data []byte, count int) (metric.Batch, int) {
	b := make(metric.Batch, 0, count)
	bad := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		line := data[:i:i]
		if i < len(data) {
			data = data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		b = append(b, metric.Metric{})
		var err error
		switch {
		case len(line) < 2:
			err = errors.New("short line")
		case line[0] == 's':
			err = statsd.Parse(line[1:], &b[len(b)-1])
		case line[0] == 'o':
			err = statsd.ParseOpaque(line[1:], &b[len(b)-1])
		case line[0] == 'g':
			err = graphite.Parse(line[1:], &b[len(b)-1])
		default:
			err = errors.New("unknown format byte")
		}
		if err != nil {
			b = b[:len(b)-1]
			bad++
		}
	}
	return b, bad
}
