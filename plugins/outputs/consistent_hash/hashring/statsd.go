package hashring

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
)

// statsdWeight and statsdVnodes are what Etsy proxy.js and node hashring
// use: weight 100 for every node, 40 virtual nodes.
const (
	statsdWeight = 100
	statsdVnodes = 40
)

// statsdRing is node hashring 3.2.0 as Etsy statsd proxy.js configures it.
type statsdRing struct {
	members []Member
	full    pointRing
	// live caches the ring of the last up set that was not all up.
	live atomic.Pointer[statsdLive]
}

type statsdLive struct {
	up   []bool
	ring pointRing
}

// NewStatsd builds the ring of Etsy statsd proxy.js: node hashring 3.2.0 with
// nodes "host:port" of weight 100 and one point per virtual node. Each node
// gets floor((100/(100*N))*40*N) virtual nodes, computed in float64 left to
// right (39 rather than 40 for N = 7, 14 or 28); virtual node i is at the
// little-endian uint32 of the first four bytes of MD5("host:port-i"). A key
// goes to the first point at or after the little-endian uint32 of its own
// MD5, wrapping; equal points keep node order (Node's stable sort).
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
	live := make([]int, len(members))
	for i := range live {
		live[i] = i
	}
	r := &statsdRing{members: members}
	r.full = buildStatsd(members, live)
	return r, nil
}

// statsdPoints is the number of points node hashring gives each of n nodes
// of equal weight: Math.floor(percentage * vnodes * servers.length).
func statsdPoints(n int) int {
	total := float64(statsdWeight * n)
	pct := float64(statsdWeight) / total
	return int(math.Floor(float64(pct*statsdVnodes) * float64(n)))
}

// buildStatsd builds the continuum of the members listed in live, in order.
func buildStatsd(members []Member, live []int) pointRing {
	if len(live) == 0 {
		return pointRing{hash: hashMD5LE32}
	}
	per := statsdPoints(len(live))
	r := pointRing{hash: hashMD5LE32, members: len(live)}
	r.t.pos = make([]uint32, 0, per*len(live))
	r.t.idx = make([]int32, 0, per*len(live))
	var k []byte
	for _, m := range live {
		for i := range per {
			k = append(k[:0], members[m].Host...)
			k = append(k, ':')
			k = append(k, members[m].Port...)
			k = append(k, '-')
			k = strconv.AppendInt(k, int64(i), 10)
			d := md5.Sum(k)
			r.t.pos = append(r.t.pos, binary.LittleEndian.Uint32(d[:4]))
			r.t.idx = append(r.t.idx, int32(m))
		}
	}
	sort.Stable(&r.t)
	return r
}

// Lookup implements Ring. Etsy proxy.js sends each key to one node; n > 1
// walks on to the next distinct nodes, as hashring's range() does. A dead
// node is taken out and the ring rebuilt from the live nodes, as proxy.js
// does when a health check fails; the rebuilt ring is cached for the last up
// set seen.
func (r *statsdRing) Lookup(key []byte, n int, up []bool, dst []int) []int {
	if up == nil || allTrue(up) {
		return r.full.Lookup(key, n, nil, dst)
	}
	l := r.live.Load()
	if l == nil || !slices.Equal(l.up, up) {
		live := make([]int, 0, len(up))
		for i, ok := range up {
			if ok {
				live = append(live, i)
			}
		}
		l = &statsdLive{up: slices.Clone(up), ring: buildStatsd(r.members, live)}
		r.live.Store(l)
	}
	return l.ring.Lookup(key, n, nil, dst)
}

func allTrue(up []bool) bool {
	for _, ok := range up {
		if !ok {
			return false
		}
	}
	return true
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
