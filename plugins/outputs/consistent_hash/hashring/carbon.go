package hashring

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Collision rules for NewCarbon.
const (
	// CollisionBump moves a point whose position is taken to the next free
	// position, members in configuration order (carbon since 2013,
	// carbon-relay-ng consistentHashing-v2).
	CollisionBump = "bump"
	// CollisionFirst keeps colliding points and gives the whole run of equal
	// positions to the first member of the run (carbon-c-relay carbon_ch,
	// carbon-relay-ng consistentHashing, carbon before 2013).
	CollisionFirst = "first"
)

// Flavours for NewFNV1a.
const (
	// FlavourCRelay is carbon-c-relay's fnv1a_ch.
	FlavourCRelay = "crelay"
	// FlavourCarbon is Graphite carbon's (and graphite-web's) fnv1a_ch.
	FlavourCarbon = "carbon"
)

// hashKind selects how a ring turns a key into a position.
type hashKind uint8

const (
	hashMD5       hashKind = iota // md5Pos
	hashFNV                       // fold16(fnv1a32)
	hashFNVSigned                 // fold16(fnv1a32Signed)
	hashMD5LE32                   // md5LE32JS (node hashring)
)

func (k hashKind) position(key []byte) uint32 {
	switch k {
	case hashMD5:
		return uint32(md5Pos(key))
	case hashFNV:
		return uint32(fold16(FNV1a32(key)))
	case hashFNVSigned:
		return uint32(fold16(fnv1a32Signed(key)))
	default:
		return md5LE32JS(key)
	}
}

// pointRing is a ring of points walked clockwise: carbon_ch and fnv1a_ch.
type pointRing struct {
	t       table
	hash    hashKind
	members int
}

// Lookup implements Ring.
func (r *pointRing) Lookup(key []byte, n int, up []bool, dst []int) []int {
	return r.t.walk(r.hash.position(key), min(n, r.members), up, dst)
}

// NewCarbon builds a carbon_ch ring: 100 points per member at
// md5_16("('<host>', '<instance>'):<i>"), or with None for a member without
// instance; the port takes no part. collision is CollisionBump ("bump",
// carbon, carbon-relay-ng consistentHashing-v2) or CollisionFirst ("first",
// carbon-c-relay carbon_ch, carbon-relay-ng consistentHashing).
//
// Members are identified by host and instance, so two members on one host
// need distinct instances. Hosts and instances are limited to printable
// ASCII without quote or backslash, the characters on which Python's repr
// (carbon) and plain formatting (the others) agree.
func NewCarbon(members []Member, collision string) (Ring, error) {
	return newCarbon(members, collision, replicaCount)
}

func newCarbon(members []Member, collision string, replicas int) (*pointRing, error) {
	if collision != CollisionBump && collision != CollisionFirst {
		return nil, fmt.Errorf("carbon_ch: unknown collision rule %q (want %q or %q)", collision, CollisionBump, CollisionFirst)
	}
	ports, err := checkMembers(members)
	if err != nil {
		return nil, fmt.Errorf("carbon_ch: %w", err)
	}
	for i, m := range members {
		if !plainASCII(m.Host) || !plainASCII(m.Instance) {
			return nil, fmt.Errorf("carbon_ch: member %d (%s): host and instance must be printable ascii without quotes or backslashes", i, m)
		}
	}
	err = uniqueBy(members, "host and instance (carbon_ch ignores the port)", func(i int) string {
		return members[i].Host + "\x00" + members[i].Instance
	})
	if err == nil && collision == CollisionFirst {
		err = uniqueHostPort(members, ports)
	}
	if err != nil {
		return nil, fmt.Errorf("carbon_ch: %w", err)
	}
	pos := func(m, i int) (uint16, error) {
		k := carbonReplicaKey(members[m], i)
		if len(k) > maxReplicaKey {
			return 0, fmt.Errorf("carbon_ch: member %d (%s): host and instance too long", m, members[m])
		}
		return md5Pos(k), nil
	}
	r := &pointRing{hash: hashMD5, members: len(members)}
	if collision == CollisionBump {
		r.t, err = buildBump(len(members), replicas, pos)
	} else {
		r.t, err = buildFirst(len(members), replicas, pos, func(a, b int) int {
			return cmpCarbon(members[a], members[b])
		})
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// carbonReplicaKey is Python's "%s:%d" % ((host, instance), i).
func carbonReplicaKey(m Member, i int) []byte {
	k := make([]byte, 0, len(m.Host)+len(m.Instance)+16)
	k = append(k, "('"...)
	k = append(k, m.Host...)
	k = append(k, "', "...)
	if m.Instance == "" {
		k = append(k, "None"...)
	} else {
		k = append(k, '\'')
		k = append(k, m.Instance...)
		k = append(k, '\'')
	}
	k = append(k, "):"...)
	return strconv.AppendInt(k, int64(i), 10)
}

// plainASCII reports whether s has only printable ASCII other than ' and \.
func plainASCII(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '\'' || c == '\\' {
			return false
		}
	}
	return true
}

// cmpCarbon is carbon-c-relay's tie order for carbon_ch points: host, then
// instance with no instance last.
func cmpCarbon(a, b Member) int {
	if c := strings.Compare(a.Host, b.Host); c != 0 {
		return c
	}
	switch {
	case a.Instance == b.Instance:
		return 0
	case a.Instance == "":
		return 1
	case b.Instance == "":
		return -1
	}
	return strings.Compare(a.Instance, b.Instance)
}

// NewFNV1a builds an fnv1a_ch ring: 100 points per member at the 16-bit fold
// (h>>16 ^ h&0xffff) of the 32-bit FNV-1a of a replica key.
//
// flavour FlavourCRelay ("crelay") is carbon-c-relay's: the replica key is
// "<i>-<host>:<port>", or "<i>-<instance>" when the member has an instance;
// colliding points go to the first by (position, host, port); bytes from 0x80
// up are hashed sign-extended, as carbon-c-relay's signed char does.
//
// flavour FlavourCarbon ("carbon") is Graphite carbon's: the replica key is
// "<i>-<instance>", "<i>-None" without one, so host and port take no part;
// collisions are bumped as in carbon_ch and bytes are hashed unsigned.
func NewFNV1a(members []Member, flavour string) (Ring, error) {
	return newFNV1a(members, flavour, replicaCount)
}

func newFNV1a(members []Member, flavour string, replicas int) (*pointRing, error) {
	if flavour != FlavourCRelay && flavour != FlavourCarbon {
		return nil, fmt.Errorf("fnv1a_ch: unknown flavour %q (want %q or %q)", flavour, FlavourCRelay, FlavourCarbon)
	}
	ports, err := checkMembers(members)
	if err != nil {
		return nil, fmt.Errorf("fnv1a_ch: %w", err)
	}
	r := &pointRing{members: len(members)}
	if flavour == FlavourCarbon {
		err = uniqueBy(members, "host and instance", func(i int) string {
			return members[i].Host + "\x00" + members[i].Instance
		})
		if err != nil {
			return nil, fmt.Errorf("fnv1a_ch: %w", err)
		}
		r.hash = hashFNV
		r.t, err = buildBump(len(members), replicas, func(m, i int) (uint16, error) {
			inst := members[m].Instance
			if inst == "" {
				inst = "None"
			}
			k := strconv.AppendInt(nil, int64(i), 10)
			k = append(k, '-')
			k = append(k, inst...)
			return fold16(FNV1a32(k)), nil
		})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	ident := func(i int) string {
		if members[i].Instance != "" {
			return members[i].Instance
		}
		return members[i].Host + ":" + strconv.FormatUint(uint64(ports[i]), 10)
	}
	err = uniqueBy(members, "replica key (instance, or host:port without one)", ident)
	if err == nil {
		err = uniqueHostPort(members, ports)
	}
	if err != nil {
		return nil, fmt.Errorf("fnv1a_ch: %w", err)
	}
	r.hash = hashFNVSigned
	r.t, err = buildFirst(len(members), replicas, func(m, i int) (uint16, error) {
		k := strconv.AppendInt(nil, int64(i), 10)
		k = append(k, '-')
		k = append(k, ident(m)...)
		if len(k) > maxReplicaKey {
			return 0, fmt.Errorf("fnv1a_ch: member %d (%s): replica key too long", m, members[m])
		}
		return fold16(fnv1a32Signed(k)), nil
	}, func(a, b int) int {
		if c := strings.Compare(members[a].Host, members[b].Host); c != 0 {
			return c
		}
		return int(ports[a]) - int(ports[b])
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// buildBump places replicas points per member, members in order, replica i
// in order, moving each point up by one while its position is taken (no
// wrap: positions may pass 65535, as in Python).
func buildBump(members, replicas int, pos func(m, i int) (uint16, error)) (table, error) {
	n := members * replicas
	t := table{pos: make([]uint32, 0, n), idx: make([]int32, 0, n)}
	taken := make([]bool, 1<<16+n)
	for m := range members {
		for i := range replicas {
			p16, err := pos(m, i)
			if err != nil {
				return table{}, err
			}
			p := uint32(p16)
			for taken[p] {
				p++
			}
			taken[p] = true
			t.pos = append(t.pos, p)
			t.idx = append(t.idx, int32(m))
		}
	}
	sort.Sort(&t)
	return t, nil
}

// buildFirst places replicas points per member, sorts them by position and
// then by tie (which must order distinct members strictly), and gives every
// run of equal positions to the first member of the run, as carbon-c-relay
// does after its qsort.
func buildFirst(members, replicas int, pos func(m, i int) (uint16, error), tie func(a, b int) int) (table, error) {
	n := members * replicas
	t := table{pos: make([]uint32, 0, n), idx: make([]int32, 0, n)}
	for m := range members {
		for i := range replicas {
			p, err := pos(m, i)
			if err != nil {
				return table{}, err
			}
			t.pos = append(t.pos, uint32(p))
			t.idx = append(t.idx, int32(m))
		}
	}
	sort.Stable(byPosTie{&t, tie})
	for i := 1; i < len(t.pos); i++ {
		if t.pos[i] == t.pos[i-1] {
			t.idx[i] = t.idx[i-1]
		}
	}
	return t, nil
}

type byPosTie struct {
	*table
	tie func(a, b int) int
}

func (s byPosTie) Less(i, j int) bool {
	if s.pos[i] != s.pos[j] {
		return s.pos[i] < s.pos[j]
	}
	return s.tie(int(s.idx[i]), int(s.idx[j])) < 0
}
