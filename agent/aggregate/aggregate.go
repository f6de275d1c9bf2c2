// Package aggregate is carbon-c-relay's aggregator (aggregator.c, 3.7):
// metrics that match an aggregate rule are put, per compute, into buckets
// of the series their produced name ("write to" with back references)
// names, by their own timestamp; a bucket is emitted once it has expired.
//
// What carbon-c-relay does, and this package does the same:
//
//   - A series is created by its first metric. Its buckets are consecutive
//     intervals; the first starts at ((now - expire) / every) * every, and
//     there are ceil(expire / every) + 2 of them. A metric older than the
//     first bucket is dropped (late), one past the last is dropped (future).
//   - A series gets its own expiry, expire plus a random spread of
//     [0, every) seconds, against a thundering herd of emissions when
//     relays flush their queues at once. A bucket is emitted as soon as
//     start + that expiry < now (whole seconds), if it holds anything; it
//     then makes room for a new bucket at the end. A series whose buckets
//     are all empty is forgotten (a later metric starts it again).
//   - Values: sum, count, max, min, average (sum / count), median (the
//     50th percentile), percentile<N> (nearest rank: the k-th value with
//     k = (int)(N/100 * count + 0.9), of the values sorted as glibc's
//     qsort sorts them with carbon-c-relay's comparator (int)(a - b), which
//     treats values less than 1 apart as equal), variance and stddev (of
//     the population: mean of the squared distances to the average).
//     Printed as C's "%f" (6 decimals; "inf", "nan"), count as an integer;
//     the timestamp is the bucket's start, middle (start + every/2) or end.
//
// Where it differs, on purpose: a series past max_series is refused and
// counted (carbon-c-relay has no bound); a bucket keeps at most
// MaxBucketValues values for median, percentile, variance and stddev (the
// rest are counted and left out of those four; sum, count, min and max
// take every value). A percentile whose rank is 0 (percentile5 of a bucket
// of one value) is 0, which is what carbon-c-relay prints (it reads the
// allocator's header before its array). At shutdown every bucket that has ended is emitted, as
// carbon-c-relay does; the rest can be kept in a state file (Save, Load).
package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/registry"
)

// Spec is [rules.aggregate] as written.
type Spec struct {
	Every     registry.Duration `toml:"every"`
	Expire    registry.Duration `toml:"expire"`
	Timestamp string            `toml:"timestamp"`
	MaxSeries int               `toml:"max_series"`
	SpoolDir  string            `toml:"spool_dir"`
	Compute   []ComputeSpec     `toml:"compute"`
}

// ComputeSpec is one compute of an aggregate.
type ComputeSpec struct {
	Type    string `toml:"type"`
	WriteTo string `toml:"write_to"`
}

// Keys are the keys of [rules.aggregate].
var Keys = []string{"every", "expire", "timestamp", "max_series", "spool_dir", "compute"}

// DefaultMaxSeries is max_series when it is not set.
const DefaultMaxSeries = 1_000_000

// MaxBucketValues bounds the values a bucket keeps for the computes that
// need them all (median, percentile, variance, stddev).
const MaxBucketValues = 1 << 20

// Kind is a compute type.
type Kind uint8

// Compute types.
const (
	Sum Kind = iota
	Count
	Max
	Min
	Average
	Median
	Percentile
	Variance
	Stddev
)

var kindNames = [...]string{"sum", "count", "max", "min", "average", "median", "percentile", "variance", "stddev"}

// When is where in its bucket a produced metric's timestamp is.
type When uint8

// Timestamp positions.
const (
	AtEnd When = iota
	AtStart
	AtMiddle
)

// Compute is one compiled compute.
type Compute struct {
	Kind    Kind
	Pct     int // Percentile: 1..99; Median: 50
	WriteTo string
}

// needsValues reports whether the compute needs every value of a bucket.
func (c *Compute) needsValues() bool {
	return c.Kind == Median || c.Kind == Percentile || c.Kind == Variance || c.Kind == Stddev
}

// ParseCompute parses a compute type: sum, count, max, min, average,
// median, percentile<N> (N 1..99), variance, stddev.
func ParseCompute(t string) (Kind, int, error) {
	for k, n := range kindNames {
		if t == n && Kind(k) != Percentile {
			pct := 0
			if Kind(k) == Median {
				pct = 50
			}
			return Kind(k), pct, nil
		}
	}
	if rest, ok := strings.CutPrefix(t, "percentile"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > 99 || rest != strconv.Itoa(n) {
			return 0, 0, fmt.Errorf("%q: percentile<N> needs N from 1 to 99", t)
		}
		return Percentile, n, nil
	}
	return 0, 0, fmt.Errorf("%q: want sum, count, max, min, average, median, percentile<N>, variance or stddev", t)
}

// Config is a compiled aggregate.
type Config struct {
	Every, Expire int64 // seconds
	When          When
	MaxSeries     int
	SpoolDir      string
	Computes      []Compute
}

// Compile checks a Spec.
func Compile(s *Spec) (*Config, error) {
	c := &Config{Every: int64(s.Every.D() / time.Second), Expire: int64(s.Expire.D() / time.Second), MaxSeries: s.MaxSeries, SpoolDir: s.SpoolDir}
	if s.Every.D()%time.Second != 0 || s.Expire.D()%time.Second != 0 {
		return nil, fmt.Errorf("every and expire are whole seconds")
	}
	if c.Every <= 0 {
		return nil, fmt.Errorf("every: must be at least 1s")
	}
	if c.Expire <= c.Every {
		return nil, fmt.Errorf("expire (%ds) must be greater than every (%ds)", c.Expire, c.Every)
	}
	switch s.Timestamp {
	case "", "end":
		c.When = AtEnd
	case "start":
		c.When = AtStart
	case "middle":
		c.When = AtMiddle
	default:
		return nil, fmt.Errorf("timestamp = %q: want \"start\", \"middle\" or \"end\"", s.Timestamp)
	}
	if c.MaxSeries == 0 {
		c.MaxSeries = DefaultMaxSeries
	}
	if c.MaxSeries < 0 {
		return nil, fmt.Errorf("max_series: must be positive")
	}
	if len(s.Compute) == 0 {
		return nil, fmt.Errorf("compute: at least one { type, write_to }")
	}
	for i, cs := range s.Compute {
		k, pct, err := ParseCompute(cs.Type)
		if err != nil {
			return nil, fmt.Errorf("compute[%d]: type %w", i, err)
		}
		if cs.WriteTo == "" {
			return nil, fmt.Errorf("compute[%d]: write_to is required", i)
		}
		c.Computes = append(c.Computes, Compute{Kind: k, Pct: pct, WriteTo: cs.WriteTo})
	}
	return c, nil
}

// Counters of an aggregate; the agent binds them to its registry.
type Counters struct {
	Received, Late, Future, Refused, ValuesRefused, Emitted, Dropped *atomic.Uint64
}

func newCounters() Counters {
	return Counters{new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64)}
}

// Aggregate holds the series of one aggregate rule. It is safe for
// concurrent use: Put takes its lock once per batch.
type Aggregate struct {
	cfg       Config
	bucketcnt int64
	C         Counters

	mu     sync.Mutex
	series []map[string]*series // per compute
	n      int                  // series, all computes
	due    map[int64][]*series  // second -> series to look at then
	next   int64                // earliest second in due (0: none)
	values int64                // values held, for the gauge
	rnd    *rand.Rand
	now    func() int64
}

type series struct {
	name    string
	comp    int
	expire  int64 // expire + spread
	head    int   // buckets[head] is the oldest
	buckets []bucket
}

type bucket struct {
	start    int64
	cnt      int64
	sum      float64
	min, max float64
	values   []float64
}

// New returns an empty aggregate. now gives the time in Unix seconds (nil:
// the clock); seed seeds the expiry spread.
func New(cfg *Config, now func() int64, seed uint64) *Aggregate {
	if now == nil {
		now = func() int64 { return time.Now().Unix() }
	}
	a := &Aggregate{cfg: *cfg, C: newCounters(), due: map[int64][]*series{}, now: now,
		rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	a.bucketcnt = (cfg.Expire+cfg.Every-1)/cfg.Every + 1 + 1
	a.series = make([]map[string]*series, len(cfg.Computes))
	for i := range a.series {
		a.series[i] = map[string]*series{}
	}
	return a
}

// Config returns the aggregate's configuration.
func (a *Aggregate) Config() *Config { return &a.cfg }

// SetCounters replaces the counters (before use).
func (a *Aggregate) SetCounters(c Counters) { a.C = c }

// Entry is one value for one compute of the aggregate: the produced name
// is Batch.Names[Off:Off+Len].
type Entry struct {
	Comp     int32
	Off, Len int32
	Value    float64
	Time     int64
}

// Batch collects entries for one Put.
type Batch struct {
	Names    []byte
	Entries  []Entry
	Received uint64 // metrics (not entries) that matched
}

// Add appends an entry with name.
func (b *Batch) Add(comp int, name []byte, v float64, ts int64) {
	b.Entries = append(b.Entries, Entry{Comp: int32(comp), Off: int32(len(b.Names)), Len: int32(len(name)), Value: v, Time: ts})
	b.Names = append(b.Names, name...)
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() { b.Names, b.Entries, b.Received = b.Names[:0], b.Entries[:0], 0 }

// Put adds a batch of entries.
func (a *Aggregate) Put(b *Batch) {
	if len(b.Entries) == 0 {
		return
	}
	now := a.now()
	var late, future, refused, vrefused uint64
	a.mu.Lock()
	for i := range b.Entries {
		e := &b.Entries[i]
		name := b.Names[e.Off : e.Off+e.Len]
		m := a.series[e.Comp]
		s := m[string(name)]
		if s == nil {
			if a.n >= a.cfg.MaxSeries {
				refused++
				continue
			}
			s = a.newSeries(int(e.Comp), string(name), now)
			m[s.name] = s
			a.n++
		}
		first := s.buckets[s.head].start
		itime := e.Time - first
		if itime < 0 {
			late++
			continue
		}
		if itime >= a.bucketcnt*a.cfg.Every {
			future++
			continue
		}
		k := (int64(s.head) + itime/a.cfg.Every) % a.bucketcnt
		bk := &s.buckets[k]
		v := e.Value
		if bk.cnt == 0 {
			bk.sum, bk.max, bk.min = v, v, v
		} else {
			bk.sum += v
			if bk.max < v {
				bk.max = v
			}
			if bk.min > v {
				bk.min = v
			}
		}
		if a.cfg.Computes[e.Comp].needsValues() {
			if len(bk.values) < MaxBucketValues {
				bk.values = append(bk.values, v)
				a.values++
			} else {
				vrefused++
			}
		}
		bk.cnt++
	}
	a.mu.Unlock()
	a.C.Received.Add(b.Received)
	if late > 0 {
		a.C.Late.Add(late)
	}
	if future > 0 {
		a.C.Future.Add(future)
	}
	if refused > 0 {
		a.C.Refused.Add(refused)
	}
	if vrefused > 0 {
		a.C.ValuesRefused.Add(vrefused)
	}
}

// newSeries starts a series at now (a.mu held).
func (a *Aggregate) newSeries(comp int, name string, now int64) *series {
	e := a.cfg.Every
	start := ((now - a.cfg.Expire) / e) * e
	s := &series{name: name, comp: comp, expire: a.cfg.Expire + a.rnd.Int64N(e), buckets: make([]bucket, a.bucketcnt)}
	for i := range s.buckets {
		s.buckets[i].start = start + int64(i)*e
	}
	a.schedule(s)
	return s
}

// schedule files s under the first second its oldest bucket expires.
func (a *Aggregate) schedule(s *series) {
	at := s.buckets[s.head].start + s.expire + 1
	a.due[at] = append(a.due[at], s)
	if a.next == 0 || at < a.next {
		a.next = at
	}
}

// Pending returns how many values the buckets hold that no emission has
// taken yet (after a final Expire: those of buckets that have not ended).
func (a *Aggregate) Pending() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n uint64
	for _, m := range a.series {
		for _, s := range m {
			for i := range s.buckets {
				n += uint64(s.buckets[i].cnt)
			}
		}
	}
	return n
}

// Series returns how many series the aggregate holds, and the values
// its buckets keep.
func (a *Aggregate) Series() (n int, values int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n, a.values
}

// Expire appends to dst, as Graphite lines, every bucket that has expired
// at the current time, and returns it. With final (shutdown) it emits
// every bucket that has ended (start + every < now), as carbon-c-relay
// does when it stops.
func (a *Aggregate) Expire(dst []byte, final bool) []byte {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if final {
		for comp, m := range a.series {
			for _, s := range m {
				dst = a.emitSeries(dst, s, comp, func(b *bucket) bool { return b.start+a.cfg.Every < now })
			}
		}
		return dst
	}
	if a.next == 0 || a.next > now {
		return dst
	}
	next := int64(0)
	for at, list := range a.due {
		if at > now {
			if next == 0 || at < next {
				next = at
			}
			continue
		}
		delete(a.due, at)
		for _, s := range list {
			if a.series[s.comp][s.name] != s {
				continue // forgotten
			}
			dst = a.emitSeries(dst, s, s.comp, func(b *bucket) bool { return b.start+s.expire < now })
			if a.empty(s) {
				delete(a.series[s.comp], s.name)
				a.n--
				continue
			}
			at := s.buckets[s.head].start + s.expire + 1
			a.due[at] = append(a.due[at], s)
			if next == 0 || at < next {
				next = at
			}
		}
	}
	a.next = next
	return dst
}

// emitSeries emits and recycles the oldest buckets of s while expired says
// so (a.mu held).
func (a *Aggregate) emitSeries(dst []byte, s *series, comp int, expired func(*bucket) bool) []byte {
	c := &a.cfg.Computes[comp]
	for n := int64(0); n < a.bucketcnt; n++ {
		b := &s.buckets[s.head]
		if !expired(b) {
			break
		}
		if b.cnt > 0 {
			dst = a.format(dst, s.name, c, b)
			a.C.Emitted.Add(1)
		}
		last := &s.buckets[(int64(s.head)+a.bucketcnt-1)%a.bucketcnt]
		a.values -= int64(len(b.values))
		b.start = last.start + a.cfg.Every
		b.cnt, b.values = 0, b.values[:0]
		s.head = (s.head + 1) % int(a.bucketcnt)
	}
	return dst
}

func (a *Aggregate) empty(s *series) bool {
	for i := range s.buckets {
		if s.buckets[i].cnt != 0 {
			return false
		}
	}
	return true
}

// format appends "name value timestamp\n" for bucket b of compute c.
func (a *Aggregate) format(dst []byte, name string, c *Compute, b *bucket) []byte {
	ts := b.start
	switch a.cfg.When {
	case AtMiddle:
		ts += a.cfg.Every / 2
	case AtEnd:
		ts += a.cfg.Every
	}
	dst = append(dst, name...)
	dst = append(dst, ' ')
	switch c.Kind {
	case Sum:
		dst = appendCFloat(dst, b.sum)
	case Count:
		dst = strconv.AppendInt(dst, b.cnt, 10)
	case Max:
		dst = appendCFloat(dst, b.max)
	case Min:
		dst = appendCFloat(dst, b.min)
	case Average:
		dst = appendCFloat(dst, b.sum/float64(b.cnt))
	case Median, Percentile:
		dst = appendCFloat(dst, percentile(b.values, c.Pct, b.cnt))
	case Variance, Stddev:
		v := variance(b.values, b.sum/float64(b.cnt), b.cnt)
		if c.Kind == Stddev {
			v = math.Sqrt(v)
		}
		dst = appendCFloat(dst, v)
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '\n')
}

// appendCFloat formats v as C's printf("%f").
func appendCFloat(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		if math.Signbit(v) {
			return append(dst, "-nan"...)
		}
		return append(dst, "nan"...)
	case math.IsInf(v, 1):
		return append(dst, "inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-inf"...)
	}
	return strconv.AppendFloat(dst, v, 'f', 6, 64)
}

// percentile is carbon-c-relay's nearest rank over the values sorted as it
// sorts them; cnt is the bucket's count (values may hold fewer, see
// MaxBucketValues).
func percentile(values []float64, pct int, cnt int64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	msort(values)
	k := int(float64(pct)/100.0*float64(cnt) + 0.9)
	if k < 1 {
		// carbon-c-relay reads values[-1], the allocator's header, which
		// prints as 0.000000
		return 0
	}
	return values[min(k, len(values))-1]
}

// variance is the population variance around avg, summed in arrival order.
func variance(values []float64, avg float64, cnt int64) float64 {
	var k float64
	for _, v := range values {
		d := v - avg
		k += d * d
	}
	return k / float64(cnt)
}
