package hashring

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// jumpRing is carbon-c-relay's jump_fnv1a_ch: order[b] is the member index
// of bucket b.
type jumpRing struct {
	order []int32
}

// NewJump builds carbon-c-relay's jump_fnv1a_ch: members with an instance
// first, ordered by instance (as numbers when both parse fully as integers,
// else bytewise), then members without instance in configuration order; a
// key goes to bucket jump(fnv1a64(key), N) of that order. Further replicas
// scramble the hash with xorshift, move the last candidate into the chosen
// bucket and jump again over one bucket fewer.
//
// Instances that carbon-c-relay's comparison cannot order consistently (equal
// ones, such as "1" and "01", or a cycle from mixing numbers and names, such
// as "10" < "2a" < "3" < "10") are refused, since its order would then depend
// on its sort routine.
func NewJump(members []Member) (Ring, error) {
	ports, err := checkMembers(members)
	if err != nil {
		return nil, fmt.Errorf("jump_fnv1a_ch: %w", err)
	}
	if err := uniqueHostPort(members, ports); err != nil {
		return nil, fmt.Errorf("jump_fnv1a_ch: %w", err)
	}
	order := make([]int32, len(members))
	for i := range order {
		order[i] = int32(i)
	}
	cmp := func(a, b int32) int { return cmpJump(int(a), int(b), members) }
	sort.SliceStable(order, func(i, j int) bool { return cmp(order[i], order[j]) < 0 })
	for i := range order {
		for j := i + 1; j < len(order); j++ {
			if cmp(order[i], order[j]) >= 0 || cmp(order[j], order[i]) <= 0 {
				a, b := members[order[i]], members[order[j]]
				return nil, fmt.Errorf("jump_fnv1a_ch: members %s and %s: instances %q and %q cannot be ordered consistently", a, b, a.Instance, b.Instance)
			}
		}
	}
	return &jumpRing{order: order}, nil
}

// cmpJump is carbon-c-relay's entrycmp_jump_fnv1a for members a and b.
func cmpJump(a, b int, members []Member) int {
	ia, ib := members[a].Instance, members[b].Instance
	switch {
	case ia == "" && ib == "":
		return a - b
	case ia == "":
		return 1
	case ib == "":
		return -1
	}
	if va, ok := strtol(ia); ok {
		if vb, ok := strtol(ib); ok {
			// C: (int)(val_l - val_r) on 64-bit longs.
			return int(int32(va - vb))
		}
	}
	return strings.Compare(ia, ib)
}

// Strtol is strtol for packages that read carbon-c-relay's numbers as it does.
func Strtol(s string) (int64, bool) { return strtol(s) }

// strtol reports C strtol(s, &end, 10) and whether *end == '\0': leading
// white space, an optional sign, decimal digits, saturating on overflow.
func strtol(s string) (int64, bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] >= '\t' && s[i] <= '\r') {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v uint64
	over := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (1<<64-1-d)/10 {
			over = true
			continue
		}
		v = v*10 + d
	}
	if i == start {
		// No digits: end is s itself.
		return 0, len(s) == 0
	}
	if i != len(s) {
		return 0, false
	}
	switch {
	case neg && (over || v > 1<<63):
		return -1 << 63, true
	case neg:
		return -int64(v), true
	case over || v > 1<<63-1:
		return 1<<63 - 1, true
	}
	return int64(v), true
}

// jumpBucket is Lamping and Veach's jump consistent hash with carbon-c-relay's
// double arithmetic.
func jumpBucket(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// xorshift scrambles the hash between replicas, as carbon-c-relay does.
func xorshift(h uint64) uint64 {
	h ^= h >> 12
	h ^= h << 25
	h ^= h >> 27
	return h * 2685821657736338717
}

// Lookup implements Ring. Replicas and dead members follow one sequence:
// carbon-c-relay's scramble-and-remove procedure, continued past dead
// members, so a dead member's share moves to the member its keys would have
// had as next replica and every other key stays where it is.
func (r *jumpRing) Lookup(key []byte, n int, up []bool, dst []int) []int {
	n = min(n, len(r.order))
	if n <= 0 {
		return dst
	}
	h := fnv1a64Signed(key)
	if up == nil && n == 1 {
		return append(dst, int(r.order[jumpBucket(h, len(r.order))]))
	}
	var c candidates
	c.base = r.order
	found := 0
	for cnt := len(r.order); cnt > 0; {
		j := jumpBucket(h, cnt)
		m := int(c.get(j))
		if up == nil || up[m] {
			dst = append(dst, m)
			found++
			if found == n {
				break
			}
		}
		h = xorshift(h)
		cnt--
		c.set(j, c.get(cnt))
	}
	c.release()
	return dst
}

// overlayCap is how many buckets candidates tracks before it copies the
// whole candidate list.
const overlayCap = 16

// candidates is carbon-c-relay's shrinking candidate list (bcklst), kept as
// the few buckets changed so far over the immutable order, so a lookup
// copies nothing until more than overlayCap buckets have changed.
type candidates struct {
	base  []int32
	n     int
	slot  [overlayCap]int32
	val   [overlayCap]int32
	spill *[]int32
}

var spillPool sync.Pool

func (c *candidates) get(j int) int32 {
	if c.spill != nil {
		return (*c.spill)[j]
	}
	for k := range c.n {
		if int(c.slot[k]) == j {
			return c.val[k]
		}
	}
	return c.base[j]
}

func (c *candidates) set(j int, v int32) {
	if c.spill != nil {
		(*c.spill)[j] = v
		return
	}
	for k := range c.n {
		if int(c.slot[k]) == j {
			c.val[k] = v
			return
		}
	}
	if c.n < overlayCap {
		c.slot[c.n], c.val[c.n] = int32(j), v
		c.n++
		return
	}
	p, _ := spillPool.Get().(*[]int32)
	if p == nil {
		p = new([]int32)
	}
	s := append((*p)[:0], c.base...)
	for k := range c.n {
		s[c.slot[k]] = c.val[k]
	}
	s[j] = v
	*p = s
	c.spill = p
}

func (c *candidates) release() {
	if c.spill != nil {
		spillPool.Put(c.spill)
		c.spill = nil
	}
}
