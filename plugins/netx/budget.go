package netx

import "sync/atomic"

// Budget bounds the bytes that requests in flight hold together (an HTTP
// input's max_inflight_bytes): a request takes what it is about to allocate
// before allocating it, and gives it back when done. Take never waits: a
// request that does not fit is refused (503) rather than parked holding what
// it already has, so requests cannot deadlock on one another.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of max bytes; max <= 0 means no bound.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Take reserves n bytes and reports whether they fit.
func (b *Budget) Take(n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if b.max > 0 && u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Release gives back n bytes taken before.
func (b *Budget) Release(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

// Used returns the bytes taken now (a gauge).
func (b *Budget) Used() int64 { return b.used.Load() }

// Max returns the bound (<= 0: none).
func (b *Budget) Max() int64 { return b.max }
