package hashring

import (
	"crypto/md5"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Member is one destination, in configuration order.
type Member struct {
	Host     string // as written in the configuration, without port, e.g. "127.0.0.1"
	Port     string // decimal, e.g. "2003"
	Instance string // carbon instance; "" means none (Python None, carbon-c-relay NULL)
}

// String formats m the way carbon-c-relay prints a member: host:port, then
// =instance when it has one.
func (m Member) String() string {
	s := m.Host + ":" + m.Port
	if m.Instance != "" {
		s += "=" + m.Instance
	}
	return s
}

// Ring maps a key to member indexes, which index the []Member given to the
// constructor. The key is the metric path: for Graphite the line up to the
// first space, for StatsD the text before the first ':'.
//
// A Ring is safe for concurrent use. It is immutable once built, except
// that the statsd ring keeps proxy.js's server list, which Lookup updates
// from the up sets it is given (see the package documentation).
type Ring interface {
	// Lookup appends up to n distinct member indexes for key to dst,
	// primary first, and returns dst.
	//
	// up is nil (every member is up) or holds one entry per member; members
	// with up[i] == false are skipped the way the package documentation
	// describes for each ring, so the members chosen for a key never change
	// while up is nil (for statsd: while no up set changes the server
	// list). When fewer than n distinct live members exist, Lookup returns
	// as many as there are (none when every member is down).
	//
	// Lookup does not allocate when dst has room for n more entries, except
	// that the statsd ring rebuilds itself once per change of the up set.
	Lookup(key []byte, n int, up []bool, dst []int) []int
}

// replicaCount is the number of ring points per member in carbon_ch and
// fnv1a_ch (carbon's replica_count, carbon-c-relay's HASH_REPLICAS).
const replicaCount = 100

// maxReplicaKey is the size of carbon-c-relay's replica key buffer minus its
// terminating NUL: longer keys would be truncated there, so they are refused.
const maxReplicaKey = 255

var errNoMembers = errors.New("no members")

// checkMembers validates what every ring needs: at least one member, a host,
// a decimal port and no two members with the same host, port and instance.
// It returns the parsed ports.
func checkMembers(members []Member) ([]uint16, error) {
	if len(members) == 0 {
		return nil, errNoMembers
	}
	ports := make([]uint16, len(members))
	seen := make(map[Member]int, len(members))
	for i, m := range members {
		if m.Host == "" {
			return nil, fmt.Errorf("member %d: empty host", i)
		}
		if strings.IndexByte(m.Host, 0) >= 0 || strings.IndexByte(m.Instance, 0) >= 0 {
			return nil, fmt.Errorf("member %d (%s): NUL byte in host or instance", i, m)
		}
		p, err := strconv.ParseUint(m.Port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("member %d (%s): port %q is not a number from 0 to 65535", i, m, m.Port)
		}
		ports[i] = uint16(p)
		k := Member{Host: m.Host, Port: strconv.FormatUint(p, 10), Instance: m.Instance}
		if j, ok := seen[k]; ok {
			return nil, fmt.Errorf("duplicate member %d (%s): same as member %d", i, m, j)
		}
		seen[k] = i
	}
	return ports, nil
}

// uniqueBy reports the first two members that share the identity id gives.
func uniqueBy(members []Member, what string, id func(i int) string) error {
	seen := make(map[string]int, len(members))
	for i := range members {
		k := id(i)
		if j, ok := seen[k]; ok {
			return fmt.Errorf("members %d (%s) and %d (%s) have the same %s", j, members[j], i, members[i], what)
		}
		seen[k] = i
	}
	return nil
}

// uniqueHostPort refuses two members on one host and port: carbon-c-relay
// makes them one server, whatever their instances.
func uniqueHostPort(members []Member, ports []uint16) error {
	return uniqueBy(members, "host and port", func(i int) string {
		return members[i].Host + ":" + strconv.FormatUint(uint64(ports[i]), 10)
	})
}

// md5Pos is carbon's ring position of s: the first two bytes of MD5(s) as a
// big-endian number (Python int(md5(s).hexdigest()[:4], 16)).
func md5Pos(s []byte) uint16 {
	d := md5.Sum(s)
	return uint16(d[0])<<8 | uint16(d[1])
}

const (
	fnv32Offset = 2166136261
	fnv32Prime  = 16777619
	fnv64Offset = 14695981039346656037
	fnv64Prime  = 1099511628211
)

// FNV1a32 is textbook 32-bit FNV-1a over the bytes of s, as in Python
// carbon (the one FNV-1a of the router: any_of hashes with it too).
func FNV1a32(s []byte) uint32 {
	h := uint32(fnv32Offset)
	for _, c := range s {
		h = (h ^ uint32(c)) * fnv32Prime
	}
	return h
}

// fnv1a32Signed is carbon-c-relay's 32-bit FNV-1a: its macro XORs a plain
// (signed, on x86 and most other Linux targets but ARM) char, so bytes from
// 0x80 up are sign-extended.
func fnv1a32Signed(s []byte) uint32 {
	h := uint32(fnv32Offset)
	for _, c := range s {
		h = (h ^ uint32(int32(int8(c)))) * fnv32Prime
	}
	return h
}

// fnv1a64Signed is carbon-c-relay's 64-bit FNV-1a, with the same signed char.
func fnv1a64Signed(s []byte) uint64 {
	h := uint64(fnv64Offset)
	for _, c := range s {
		h = (h ^ uint64(int64(int8(c)))) * fnv64Prime
	}
	return h
}

// fold16 folds a 32-bit hash into the 16-bit ring space of fnv1a_ch.
func fold16(h uint32) uint16 {
	return uint16(h>>16) ^ uint16(h)
}

// table is a sorted ring of points: pos ascending, idx the member index that
// owns each point.
type table struct {
	pos []uint32
	idx []int32
}

func (t *table) Len() int { return len(t.pos) }

func (t *table) Less(i, j int) bool { return t.pos[i] < t.pos[j] }

func (t *table) Swap(i, j int) {
	t.pos[i], t.pos[j] = t.pos[j], t.pos[i]
	t.idx[i], t.idx[j] = t.idx[j], t.idx[i]
}

// search returns the index of the first point at or after p, wrapping to 0
// past the last point (Python bisect_left modulo the ring length).
func (t *table) search(p uint32) int {
	lo, hi := 0, len(t.pos)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.pos[m] < p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(t.pos) {
		return 0
	}
	return lo
}

// walk appends to dst up to n distinct live members met clockwise from the
// first point at or after p, visiting every point at most once.
func (t *table) walk(p uint32, n int, up []bool, dst []int) []int {
	if n <= 0 || len(t.pos) == 0 {
		return dst
	}
	start := len(dst)
	i := t.search(p)
	for range len(t.pos) {
		m := int(t.idx[i])
		if (up == nil || up[m]) && !containsInt(dst[start:], m) {
			dst = append(dst, m)
			if len(dst)-start == n {
				break
			}
		}
		i++
		if i == len(t.pos) {
			i = 0
		}
	}
	return dst
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
