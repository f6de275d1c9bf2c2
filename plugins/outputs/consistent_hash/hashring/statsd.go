package hashring

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// statsdWeight and statsdVnodes are what Etsy proxy.js and node hashring
// use: weight 100 for every node, 40 virtual nodes.
const (
	statsdWeight = 100
	statsdVnodes = 40
)

// statsdRing is node hashring 3.2.0 as Etsy statsd proxy.js configures it,
// with proxy.js's server list: the order in which nodes went down and came
// back decides who wins a point two nodes share.
type statsdRing struct {
	members []Member
	// pts holds each member's virtual node points in virtual node order;
	// a ring of N nodes uses the first statsdPoints(N) of each.
	pts [][statsdVnodes]uint32
	// mu is held while a change of the up set is recorded, so that
	// concurrent callers record each change once.
	mu    sync.Mutex
	state atomic.Pointer[statsdState]
}

// statsdState is the ring after the up set changes recorded so far. It is
// never modified once stored.
type statsdState struct {
	up []bool // the last up set recorded (every member up at first)
	// order is proxy.js's server list: the live members, those never
	// down in configuration order, then each in the order it came back.
	order []int
	live  pointRing // the continuum of order (Lookup with up)
	full  pointRing // order then the down members, in configuration order (Lookup with nil up)
}

// NewStatsd builds the ring of Etsy statsd proxy.js: node hashring 3.2.0 with
// nodes "host:port" of weight 100 and one point per virtual node. Each node
// gets floor((100/(100*N))*40*N) virtual nodes, computed in float64 left to
// right (39 rather than 40 for N = 7, 14 or 28); virtual node i is at the
// little-endian uint32 of the first four bytes of MD5("host:port-i"). A key
// goes to the first point at or after the little-endian uint32 of its own
// MD5, wrapping; equal points go to the node earlier in the server list
// (Node's stable sort), which starts in configuration order and changes as
// nodes go down and come back (see Lookup).
//
// Members have no instance. Host and Port are used as written.
func NewStatsd(members []Member) (Ring, error) {
	if _, err := checkMembers(members); err != nil {
		return nil, fmt.Errorf("statsd: %w", err)
	}
	for i, m := range members {
		if m.Instance != "" {
			return nil, fmt.Errorf("statsd: member %d (%s): statsd members have no instance", i, m)
		}
	}
	err := uniqueBy(members, "host:port", func(i int) string { return members[i].Host + ":" + members[i].Port })
	if err != nil {
		return nil, fmt.Errorf("statsd: %w", err)
	}
	r := &statsdRing{members: members, pts: make([][statsdVnodes]uint32, len(members))}
	var k []byte
	for m := range members {
		for i := range statsdVnodes {
			k = append(k[:0], members[m].Host...)
			k = append(k, ':')
			k = append(k, members[m].Port...)
			k = append(k, '-')
			k = strconv.AppendInt(k, int64(i), 10)
			d := md5.Sum(k)
			r.pts[m][i] = binary.LittleEndian.Uint32(d[:4])
		}
	}
	up := make([]bool, len(members))
	order := make([]int, len(members))
	for i := range up {
		up[i] = true
		order[i] = i
	}
	r.state.Store(r.newState(up, order))
	return r, nil
}

// statsdPoints is the number of points node hashring gives each of n nodes
// of equal weight: Math.floor(percentage * vnodes * servers.length).
func statsdPoints(n int) int {
	total := float64(statsdWeight * n)
	pct := float64(statsdWeight) / total
	return min(int(math.Floor(float64(pct*statsdVnodes)*float64(n))), statsdVnodes)
}

// newState returns the state of up set up with server list order.
func (r *statsdRing) newState(up []bool, order []int) *statsdState {
	s := &statsdState{up: up, order: order, live: r.build(order)}
	if len(order) == len(r.members) {
		s.full = s.live
		return s
	}
	all := slices.Grow(slices.Clone(order), len(r.members)-len(order))
	for m, ok := range up {
		if !ok {
			all = append(all, m)
		}
	}
	s.full = r.build(all)
	return s
}

// build builds the continuum of the members listed in order, as node
// hashring's continuum() does for that server list.
func (r *statsdRing) build(order []int) pointRing {
	if len(order) == 0 {
		return pointRing{hash: hashMD5LE32}
	}
	per := statsdPoints(len(order))
	p := pointRing{hash: hashMD5LE32, members: len(order)}
	p.t.pos = make([]uint32, 0, per*len(order))
	p.t.idx = make([]int32, 0, per*len(order))
	for _, m := range order {
		p.t.pos = append(p.t.pos, r.pts[m][:per]...)
		for range per {
			p.t.idx = append(p.t.idx, int32(m))
		}
	}
	sort.Stable(&p.t)
	return p
}

// Lookup implements Ring. Etsy proxy.js sends each key to one node; n > 1
// walks on to the next distinct nodes, as hashring's range() does.
//
// The ring follows proxy.js's health checks through up: a member that is up
// in the previous up set and down in this one is removed from the server
// list (ring.remove), and one that is down in the previous set and up in
// this one is appended to it (ring.add), several in configuration order;
// the ring is then rebuilt from the list. The previous set is the last
// non-nil up any caller passed, every member up at first. up == nil looks
// the key up with every member in (the live ones in list order, then the
// down ones) and records nothing.
func (r *statsdRing) Lookup(key []byte, n int, up []bool, dst []int) []int {
	s := r.state.Load()
	if up == nil {
		return s.full.Lookup(key, n, nil, dst)
	}
	if !slices.Equal(s.up, up) {
		s = r.record(up)
	}
	return s.live.Lookup(key, n, nil, dst)
}

// record records up as the current up set and returns the new state.
func (r *statsdRing) record(up []bool) *statsdState {
	if len(up) != len(r.members) {
		panic(fmt.Sprintf("hashring: statsd Lookup with %d up entries for %d members", len(up), len(r.members)))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state.Load()
	if slices.Equal(s.up, up) {
		return s // another caller recorded the same change
	}
	order := make([]int, 0, len(up))
	for _, m := range s.order {
		if up[m] {
			order = append(order, m)
		}
	}
	for m, ok := range up {
		if ok && !s.up[m] {
			order = append(order, m)
		}
	}
	s = r.newState(slices.Clone(up), order)
	r.state.Store(s)
	return s
}

// md5LE32JS is node hashring's hash value of a key: the little-endian uint32
// of the first four bytes of the MD5 of the key as Node encodes it. proxy.js
// decodes each packet as UTF-8 first, so invalid sequences become U+FFFD the
// WHATWG way (one per maximal invalid subpart) before hashing.
func md5LE32JS(key []byte) uint32 {
	if utf8.Valid(key) {
		d := md5.Sum(key)
		return binary.LittleEndian.Uint32(d[:4])
	}
	var buf [256]byte
	d := md5.Sum(appendWHATWG(buf[:0], key))
	return binary.LittleEndian.Uint32(d[:4])
}

// appendWHATWG appends s decoded as UTF-8 by the WHATWG decoder and encoded
// back, which replaces each maximal invalid subpart by U+FFFD.
func appendWHATWG(dst, s []byte) []byte {
	const repl = "\uFFFD"
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x80 {
			dst = append(dst, c)
			i++
			continue
		}
		var need int
		lo, hi := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lo = 0xA0
			} else if c == 0xED {
				hi = 0x9F
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lo = 0x90
			} else if c == 0xF4 {
				hi = 0x8F
			}
		default:
			dst = append(dst, repl...)
			i++
			continue
		}
		j := i + 1
		for k := 0; k < need; k++ {
			if j >= len(s) || s[j] < lo || s[j] > hi {
				break
			}
			lo, hi = 0x80, 0xBF
			j++
		}
		if j-i == need+1 {
			dst = append(dst, s[i:j]...)
		} else {
			dst = append(dst, repl...)
		}
		i = j
	}
	return dst
}
