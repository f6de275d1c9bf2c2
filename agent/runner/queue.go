package runner

import (
	"context"
	"sync"
	"time"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// queue is the in-memory FIFO of batches both buffers use: the whole
// buffer of a memory output, the cache in front of a spool.
type queue struct {
	opt    Options
	c      Counters
	budget *Budget
	stop   <-chan struct{}

	mu       sync.Mutex
	q        []qent // queued batches, oldest first
	qHead    int    // q[qHead:] is the queue
	queued   int    // metrics in q
	inflight int    // metrics taken, not yet Done or Returned
	closed   bool
	space    chan struct{} // closed (and replaced) when room appears
	data     chan struct{} // cap 1: data or close arrived

	// onDrop, if set, learns which spool records the overflow policy
	// dropped from memory (called without q.mu).
	onDrop  func([]part)
	dropped []part // collected under q.mu for onDrop
}

// qent is a queued batch and, with a spool, the record that holds it (0:
// in memory only).
type qent struct {
	b     metric.Batch
	seq   uint64
	bytes int64 // accounted against the budget
}

// batchBytes is what b costs the memory budget: what its metrics keep alive
// (the inputs never let a metric keep a read buffer much larger than its
// line).
func batchBytes(b metric.Batch) int64 { return metric.RetainedBytes(b) }

func (q *queue) overBytes(nb int64) bool {
	return q.budget != nil && q.budget.used.Load()+nb > q.budget.Max
}

// add queues b in memory under the overflow policy: with "block" it waits
// for room (an empty queue always takes one batch, however large, so that a
// batch larger than the limit cannot wedge); with "drop_oldest" it drops
// the oldest metrics, then from b, and counts them.
func (q *queue) add(ctx context.Context, b metric.Batch) error {
	n := len(b)
	var nb int64
	if q.budget != nil {
		nb = batchBytes(b)
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.c.Refused.Add(uint64(n))
		return registry.ErrStopped
	}
	limit := q.opt.Limit
	if q.opt.Block {
		for q.queued+q.inflight > 0 && (q.queued+q.inflight+n > limit || q.overBytes(nb)) {
			ch := q.space
			q.mu.Unlock()
			if err := q.waitForRoom(ctx, ch, n); err != nil {
				return err
			}
			q.mu.Lock()
			if q.closed {
				q.mu.Unlock()
				q.c.Refused.Add(uint64(n))
				return registry.ErrStopped
			}
			limit = q.opt.Limit
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
		for q.queued+q.inflight+n > limit && q.queued > 0 {
			need := q.queued + q.inflight + n - limit
			drop += q.dropHead(need)
		}
		// the memory budget: drop whole batches, oldest first
		for q.overBytes(nb) && q.queued > 0 {
			drop += q.dropHead(len(q.q[q.qHead].b))
		}
		if q.queued+q.inflight+n > limit || q.overBytes(nb) {
			// what is being written holds the room: drop from the new batch
			k := n
			if q.queued+q.inflight+n > limit && !q.overBytes(nb) {
				k = q.queued + q.inflight + n - limit
			}
			b = b[k:]
			n -= k
			drop += k
			if nb > 0 {
				nb = batchBytes(b)
			}
		}
		if drop > 0 {
			q.c.Dropped.Add(uint64(drop))
		}
		if n == 0 {
			q.unlockDropped()
			return nil
		}
	}
	q.push(b, 0, nb)
	q.unlockDropped()
	q.wake()
	return nil
}

// unlockDropped releases q.mu and tells onDrop what was dropped.
func (q *queue) unlockDropped() {
	var d []part
	if len(q.dropped) > 0 {
		d = q.dropped
		q.dropped = nil
	}
	q.mu.Unlock()
	if d != nil && q.onDrop != nil {
		q.onDrop(d)
	}
}

// dropHead drops up to need metrics from the head batch and returns how
// many; q.mu is held.
func (q *queue) dropHead(need int) int {
	head := q.q[q.qHead]
	if head.seq != 0 {
		q.dropped = append(q.dropped, part{head.seq, min(need, len(head.b))})
	}
	if len(head.b) <= need {
		q.queued -= len(head.b)
		q.release(head.bytes)
		q.q[q.qHead] = qent{}
		q.qHead++
		return len(head.b)
	}
	cut := head.bytes * int64(need) / int64(len(head.b))
	q.q[q.qHead].b = head.b[need:]
	q.q[q.qHead].bytes -= cut
	q.release(cut)
	q.queued -= need
	return need
}

// waitForRoom waits, with overflow = "block", until ch (nil: never) says
// room appeared, or 50 ms passed (room can also come from bytes other
// outputs freed). If ctx ends or the router stops first, the n metrics that
// waited are counted as refused and the error says why.
func (q *queue) waitForRoom(ctx context.Context, ch <-chan struct{}, n int) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
		q.c.Refused.Add(uint64(n))
		return ctx.Err()
	case <-q.stop:
		q.c.Refused.Add(uint64(n))
		return registry.ErrStopped
	}
	return nil
}

// release returns bytes to the memory budget.
func (q *queue) release(n int64) {
	if q.budget != nil && n != 0 {
		q.budget.used.Add(-n)
	}
}

// push appends to the queue; q.mu is held.
func (q *queue) push(b metric.Batch, seq uint64, bytes int64) {
	if q.qHead > 0 && q.qHead == len(q.q) {
		q.q = q.q[:0]
		q.qHead = 0
	}
	q.q = append(q.q, qent{b: b, seq: seq, bytes: bytes})
	q.queued += len(b)
	if q.budget != nil {
		q.budget.used.Add(bytes)
	}
}

// pushFront puts entries back at the head, in order; q.mu is held.
func (q *queue) pushFront(es []qent) {
	if len(es) == 0 {
		return
	}
	if q.qHead >= len(es) {
		q.qHead -= len(es)
		copy(q.q[q.qHead:], es)
	} else {
		nq := make([]qent, 0, len(es)+len(q.q)-q.qHead+8)
		nq = append(nq, es...)
		nq = append(nq, q.q[q.qHead:]...)
		q.q, q.qHead = nq, 0
	}
	for _, e := range es {
		q.queued += len(e.b)
		if q.budget != nil {
			q.budget.used.Add(e.bytes)
		}
	}
}

// take removes up to max metrics from the head; q.mu is held. One batch is
// handed over without copying; several small ones are copied into scratch.
func (q *queue) take(t *Taken, max int) bool {
	t.B, t.bytes, t.parts, t.copy = nil, 0, t.parts[:0], false
	if q.queued == 0 {
		return false
	}
	head := q.q[q.qHead]
	if len(head.b) >= max || q.qHead+1 == len(q.q) {
		b := head.b
		if len(b) > max {
			cut := head.bytes * int64(max) / int64(len(b))
			q.q[q.qHead].b = b[max:]
			q.q[q.qHead].bytes -= cut
			t.bytes = cut
			b = b[:max:max]
		} else {
			t.bytes = head.bytes
			q.q[q.qHead] = qent{}
			q.qHead++
		}
		q.queued -= len(b)
		q.inflight += len(b)
		t.B = b
		t.parts = append(t.parts, part{head.seq, len(b)})
		return true
	}
	out := t.scratch[:0]
	for q.qHead < len(q.q) {
		e := q.q[q.qHead]
		room := max - len(out)
		if room == 0 {
			break
		}
		if len(e.b) > room {
			cut := e.bytes * int64(room) / int64(len(e.b))
			out = append(out, e.b[:room]...)
			q.q[q.qHead].b = e.b[room:]
			q.q[q.qHead].bytes -= cut
			t.bytes += cut
			t.parts = append(t.parts, part{e.seq, room})
			break
		}
		out = append(out, e.b...)
		t.bytes += e.bytes
		t.parts = append(t.parts, part{e.seq, len(e.b)})
		q.q[q.qHead] = qent{}
		q.qHead++
	}
	t.scratch = out
	q.queued -= len(out)
	q.inflight += len(out)
	t.B, t.copy = out, true
	return true
}

// finish ends n in-flight metrics and wakes blocked senders.
func (q *queue) finish(t *Taken) {
	q.mu.Lock()
	q.inflight -= len(t.B)
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
	q.release(t.bytes)
}

// giveBack puts t.B[from:] back at the head, split by the records it came
// from; it returns the parts of t.B[:from], which were handled.
func (q *queue) giveBack(t *Taken, from int) []part {
	var handled []part
	var es []qent
	off := 0
	for _, p := range t.parts {
		lo, hi := off, off+p.n
		off = hi
		if hi <= from {
			handled = append(handled, p)
			continue
		}
		if lo < from {
			handled = append(handled, part{p.seq, from - lo})
			lo = from
		}
		b := t.B[lo:hi]
		if t.copy {
			b = append(metric.Batch(nil), b...) // scratch is the writer's
		}
		es = append(es, qent{b: b, seq: p.seq, bytes: batchBytes(b)})
	}
	q.mu.Lock()
	q.inflight -= len(t.B)
	q.pushFront(es)
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
	q.release(t.bytes)
	q.wake()
	return handled
}

// wake signals Ready.
func (q *queue) wake() {
	select {
	case q.data <- struct{}{}:
	default:
	}
}

func (q *queue) Ready() <-chan struct{} { return q.data }

func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued + q.inflight
}

func (q *queue) setClosed(c bool) {
	q.mu.Lock()
	q.closed = c
	close(q.space)
	q.space = make(chan struct{})
	q.mu.Unlock()
	q.wake()
}

// drain empties the queue and returns what it held in memory only (not in
// a spool record).
func (q *queue) drain() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.inflight
	for _, e := range q.q[q.qHead:] {
		if e.seq == 0 {
			n += len(e.b)
		}
		q.release(e.bytes)
	}
	q.q, q.qHead, q.queued = nil, 0, 0
	return n
}

// memBuffer is the buffer of an output without a spool.
type memBuffer struct{ *queue }

func (m *memBuffer) Add(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	m.c.Received.Add(uint64(len(b)))
	return m.add(ctx, b)
}

func (m *memBuffer) Take(t *Taken, max int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.take(t, max)
}

func (m *memBuffer) Done(t *Taken)             { m.finish(t) }
func (m *memBuffer) Return(t *Taken, from int) { m.giveBack(t, from) }

func (m *memBuffer) Pending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queued > 0
}

func (m *memBuffer) Configure(o Options) error {
	m.mu.Lock()
	m.opt = o
	close(m.space)
	m.space = make(chan struct{})
	m.mu.Unlock()
	return nil
}

func (m *memBuffer) Close()       { m.setClosed(true) }
func (m *memBuffer) Reopen()      { m.setClosed(false) }
func (m *memBuffer) Release() int { return m.drain() }
