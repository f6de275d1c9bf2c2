package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/agent/spool"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// spoolConfig is the spool part of an output's configuration.
type spoolConfig struct {
	Dir        string // this output's own directory
	MaxBytes   int64
	Fsync      string
	ReplayRate int // metrics per second read back from disk; 0 = no limit
}

// spooled is a runner's disk spool, used as a write-ahead log: every batch
// is appended (one record) before enqueue returns, so what a sender was told
// is queued survives a crash. Batches are also kept in memory while there is
// room; when the memory buffer is full, new records stay on disk only ("disk
// mode") and writers read them back, in order, once memory has been written.
// Records are acknowledged once written; a restart replays what was not.
type spooled struct {
	sp  *spool.Spool
	cfg spoolConfig

	// guarded by runner.mu
	disk     bool   // records from diskFrom on are on disk only
	diskFrom uint64 // first record not in memory
	newRead  bool   // a reader at diskFrom is needed

	readMu  sync.Mutex // one reader at a time
	reader  *spool.Reader
	tokens  float64 // replay rate limiter
	tokenAt time.Time

	ackMu   sync.Mutex
	next    uint64         // lowest record not yet acknowledged
	pending map[uint64]int // record -> metrics not yet written
	doneSet map[uint64]bool
	acked   uint64 // persisted
	ackedAt time.Time

	replayed, spoolDropped, spoolErrors *atomic.Uint64
}

func openSpool(r *runner, cfg spoolConfig, m registry.Metrics) (*spooled, error) {
	sp, err := spool.Open(cfg.Dir, spool.Options{MaxBytes: cfg.MaxBytes, Fsync: cfg.Fsync})
	if err != nil {
		return nil, err
	}
	s := &spooled{sp: sp, cfg: cfg, pending: map[uint64]int{}, doneSet: map[uint64]bool{}}
	s.acked = sp.Acked()
	s.next = s.acked + 1
	if sp.LastSeq() > s.acked {
		// records of a previous run: replay them first
		s.disk, s.diskFrom, s.newRead = true, s.next, true
		st := sp.Stats()
		r.log.Info().Uint64("records", sp.LastSeq()-s.acked).Int64("bytes", st.Bytes).Msg("spool: replaying what a previous run left")
	}
	s.replayed = m.Counter("spool_replayed_total", "Metrics read back from the disk spool.")
	s.spoolDropped = m.Counter("spool_dropped_total", "Metrics dropped from a full spool (overflow = \"drop_oldest\"), also in dropped_total.")
	s.spoolErrors = m.Counter("spool_errors_total", "Spool write errors (the batch then stays in memory only).")
	m.Gauge("spool_bytes", "Bytes in the disk spool.", func() float64 { return float64(sp.Stats().Bytes) })
	m.Gauge("spool_records", "Records in the disk spool not yet acknowledged.", func() float64 {
		st := sp.Stats()
		return float64(st.LastSeq - st.AckedSeq)
	})
	m.Gauge("spool_corrupt_records", "Corrupt spool records skipped.", func() float64 { return float64(sp.Stats().CorruptRecords) })
	return s, nil
}

// spoolDir is the directory of one output: <spool_dir>/<id>, the id made
// safe as a file name.
func spoolDir(base, id string) string {
	safe := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, id)
	return filepath.Join(base, safe)
}

// encodeBatch renders b as spool record data: per metric a format byte
// ('g' Graphite, 's' StatsD), its line, '\n'.
func encodeBatch(dst []byte, b metric.Batch, now int64) []byte {
	for i := range b {
		m := &b[i]
		if m.Format() == metric.StatsD {
			dst = append(dst, 's')
			dst = statsd.Append(dst, m, metric.Untyped)
		} else {
			dst = append(dst, 'g')
			dst = graphite.Append(dst, m, now)
		}
	}
	return dst
}

// decodeBatch parses record data back into metrics (which keep data).
func decodeBatch(data []byte, count int) metric.Batch {
	b := make(metric.Batch, 0, count)
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
		if len(line) < 2 {
			continue
		}
		b = append(b, metric.Metric{})
		var err error
		if line[0] == 's' {
			err = statsd.Parse(line[1:], &b[len(b)-1])
		} else {
			err = graphite.Parse(line[1:], &b[len(b)-1])
		}
		if err != nil {
			b = b[:len(b)-1]
		}
	}
	return b
}

// enqueueSpooled appends b to the spool, then keeps it in memory if there is
// room. The overflow policy applies when the spool is full.
func (r *runner) enqueueSpooled(ctx context.Context, b metric.Batch) error {
	s := r.sp
	data := encodeBatch(make([]byte, 0, 64*len(b)), b, time.Now().Unix())
	n := len(b)
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			r.refused.Add(uint64(n))
			return registry.ErrStopped
		}
		seq, err := s.sp.Append(n, data)
		switch {
		case err == nil:
			s.track(seq, n)
			var nb int64
			if r.budget != nil {
				nb = batchBytes(b)
			}
			room := r.budget == nil || r.budget.used.Load()+nb <= r.budget.max
			if !s.disk && r.queued+r.inflight+n <= r.cfg.BufferLimit && room {
				r.push(b, seq, nb)
			} else if !s.disk {
				s.disk, s.diskFrom, s.newRead = true, seq, true
			}
			r.mu.Unlock()
			r.wake()
			return nil
		case errors.Is(err, spool.ErrFull) && !r.cfg.Block:
			_, count, derr := s.sp.DropOldest()
			r.mu.Unlock()
			if derr != nil {
				r.dropped.Add(uint64(n))
				return nil
			}
			r.dropped.Add(uint64(count))
			s.spoolDropped.Add(uint64(count))
			s.forgetDropped()
			continue
		case errors.Is(err, spool.ErrFull):
			r.mu.Unlock()
			// room appears when records are acknowledged
			if err := r.waitForRoom(ctx, nil, n); err != nil {
				return err
			}
			continue
		case errors.Is(err, spool.ErrTooLarge):
			r.mu.Unlock()
			r.dropped.Add(uint64(n))
			r.log.Error().Err(err).Int("count", n).Msg("batch too large for the spool, dropped")
			return nil
		default:
			// the disk failed: keep the batch in memory, as without a spool
			s.spoolErrors.Add(1)
			r.mu.Unlock()
			r.log.Error().Err(err).Msg("spool append failed; batch kept in memory only")
			r.mu.Lock()
			r.push(b, 0, 0)
			r.mu.Unlock()
			r.wake()
			return nil
		}
	}
}

// read returns the next batch read back from disk, or nil when the reader has
// caught up (disk mode ends then) or on an error.
func (s *spooled) read(r *runner, parts *[]part) metric.Batch {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	r.mu.Lock()
	if !s.disk {
		r.mu.Unlock()
		return nil
	}
	if s.newRead || s.reader == nil {
		if s.reader != nil {
			s.reader.Close()
		}
		s.reader = s.sp.NewReader(s.diskFrom)
		s.newRead = false
	}
	rd := s.reader
	r.mu.Unlock()
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			// Appends happen under r.mu: with it held, a second EOF means
			// the reader has caught up and new batches can go to memory.
			r.mu.Lock()
			rec, err = rd.Next()
			if errors.Is(err, io.EOF) {
				s.disk = false
				r.mu.Unlock()
				return nil
			}
			r.mu.Unlock()
		}
		if err != nil {
			r.log.Warn().Err(err).Msg("spool read")
			time.Sleep(50 * time.Millisecond)
			return nil
		}
		if rec.Seq < s.ackedNext() {
			continue // written before a restart
		}
		data := append([]byte(nil), rec.Data...)
		b := decodeBatch(data, rec.Count)
		s.track(rec.Seq, len(b))
		s.throttle(len(b), r.stopNow)
		s.replayed.Add(uint64(len(b)))
		r.mu.Lock()
		r.inflight += len(b)
		r.mu.Unlock()
		*parts = append((*parts)[:0], part{rec.Seq, len(b)})
		if len(b) == 0 {
			s.done(*parts)
			continue
		}
		return b
	}
}

// throttle keeps replay under spool_replay_rate metrics per second.
func (s *spooled) throttle(n int, stop <-chan struct{}) {
	rate := float64(s.cfg.ReplayRate)
	if rate <= 0 {
		return
	}
	now := time.Now()
	if s.tokenAt.IsZero() {
		s.tokenAt, s.tokens = now, rate
	}
	s.tokens = min(rate, s.tokens+now.Sub(s.tokenAt).Seconds()*rate)
	s.tokenAt = now
	s.tokens -= float64(n)
	if s.tokens < 0 {
		select {
		case <-time.After(time.Duration(-s.tokens / rate * float64(time.Second))):
		case <-stop:
		}
	}
}

func (s *spooled) ackedNext() uint64 {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return s.next
}

// track registers record seq with n metrics to write.
func (s *spooled) track(seq uint64, n int) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if seq < s.next {
		return
	}
	if _, ok := s.pending[seq]; !ok && !s.doneSet[seq] {
		s.pending[seq] = n
	}
}

// done marks written parts and acknowledges the records written in full,
// in order, at most every 200 ms (a crash then re-sends at most that much).
func (s *spooled) done(parts []part) {
	s.ackMu.Lock()
	for _, p := range parts {
		if p.seq == 0 || p.seq < s.next {
			continue
		}
		left, ok := s.pending[p.seq]
		if !ok {
			continue
		}
		left -= p.n
		if left > 0 {
			s.pending[p.seq] = left
			continue
		}
		delete(s.pending, p.seq)
		s.doneSet[p.seq] = true
	}
	for s.doneSet[s.next] {
		delete(s.doneSet, s.next)
		s.next++
	}
	ack := s.next - 1
	due := ack > s.acked && time.Since(s.ackedAt) > 200*time.Millisecond
	if due {
		s.acked, s.ackedAt = ack, time.Now()
	}
	s.ackMu.Unlock()
	if due {
		_ = s.sp.Ack(ack)
	}
}

// forgetDropped: records DropOldest removed are no longer waited for.
func (s *spooled) forgetDropped() {
	first := s.sp.Stats().FirstSeq
	s.ackMu.Lock()
	for s.next < first {
		delete(s.pending, s.next)
		delete(s.doneSet, s.next)
		s.next++
	}
	s.ackMu.Unlock()
}

// close acknowledges what was written and closes the spool.
func (s *spooled) close(r *runner) {
	s.ackMu.Lock()
	ack := s.next - 1
	s.ackMu.Unlock()
	if ack > s.sp.Acked() {
		_ = s.sp.Ack(ack)
	}
	if s.reader != nil {
		s.reader.Close()
	}
	if left := s.sp.LastSeq() - s.sp.Acked(); left > 0 {
		r.log.Warn().Uint64("records", left).Str("dir", s.cfg.Dir).Msg("spool: records kept on disk for the next start")
	}
	if err := s.sp.Close(); err != nil {
		r.log.Warn().Err(err).Msg("spool close")
	}
}
