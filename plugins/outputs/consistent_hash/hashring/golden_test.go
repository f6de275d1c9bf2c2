package hashring

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goldenDir holds the vectors and the scripts that generated them.
var goldenDir = filepath.Join("..", "..", "..", "..", "testdata", "hashring")

// readLines returns the comment lines (without "# ") and the other non-empty
// lines of a golden file.
func readLines(t *testing.T, name string) (comments, lines []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
			comments = append(comments, strings.TrimSpace(strings.TrimPrefix(l, "#")))
		case l != "" || strings.Contains(name, "statsd"):
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return comments, lines
}

// parseMember reads host:port, host:port:instance (carbon DESTINATIONS) or
// host:port=instance (carbon-c-relay).
func parseMember(t *testing.T, s string) Member {
	t.Helper()
	var m Member
	if i := strings.IndexByte(s, '='); i >= 0 {
		s, m.Instance = s[:i], s[i+1:]
	}
	f := strings.Split(s, ":")
	switch len(f) {
	case 3:
		m.Instance = f[2]
	case 2:
	default:
		t.Fatalf("bad member %q", s)
	}
	m.Host, m.Port = f[0], f[1]
	return m
}

// carbonDest formats a member the way gen_carbon_vectors.py does.
func carbonDest(m Member) string {
	if m.Instance == "" {
		return m.Host + ":" + m.Port
	}
	return m.Host + ":" + m.Port + ":" + m.Instance
}

func names(members []Member, idx []int, format func(Member) string) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = format(members[x])
	}
	return out
}

// mustRing(t)(NewX(...)) fails the test on a constructor error.
func mustRing(t *testing.T) func(Ring, error) Ring {
	return func(r Ring, err error) Ring {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func TestPositionVectors(t *testing.T) {
	tests := []struct {
		name string
		hash hashKind
		in   string
		want uint32
	}{
		{"carbon replica with instance", hashMD5, "('127.0.0.1', 'a'):0", 24043},
		{"carbon replica without instance", hashMD5, "('127.0.0.1', None):0", 52941},
		{"polymur empty instance", hashMD5, "('127.0.0.1', ''):0", 51245},
		{"crng a.b.c.d", hashMD5, "a.b.c.d", 54437},
		{"crng empty", hashMD5, "", 54301},
		{"carbon test.metric", hashMD5, "test.metric", 60931},
		{"carbon fnv worker1.cpu", hashFNV, "hosts.worker1.cpu", 59573},
		{"carbon fnv worker1.load", hashFNV, "hosts.worker1.load", 57163},
		{"carbon fnv worker2.cpu", hashFNV, "hosts.worker2.cpu", 35749},
		{"carbon fnv worker2.network", hashFNV, "hosts.worker2.network", 43584},
		{"carbon fnv worker3.cpu", hashFNV, "hosts.worker3.cpu", 12600},
		{"carbon fnv worker3.irq", hashFNV, "hosts.worker3.irq", 10052},
		{"crelay fnv issue236", hashFNVSigned, "cd85d26b19018dec78e33d44e1477993130267ec79f92abd25ece33fa029bf56", 27369},
		{"crelay carbon issue236", hashMD5, "cd85d26b19018dec78e33d44e1477993130267ec79f92abd25ece33fa029bf56", 31587},
		{"statsd foo", hashMD5LE32, "foo", 3675831724},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.hash.position([]byte(tt.in)); got != tt.want {
				t.Errorf("position(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFNVSignedChar(t *testing.T) {
	tests := []struct {
		name string
		in   string
		same bool
	}{
		{"ascii agrees", "metric.name_1", true},
		{"high bytes differ", "m\xc3\xa9trique", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fnv1a32Signed([]byte(tt.in)) == FNV1a32([]byte(tt.in)); got != tt.same {
				t.Errorf("signed == unsigned: %v, want %v", got, tt.same)
			}
		})
	}
	// 0x80 sign-extends to 0xffffff80 in carbon-c-relay.
	h := uint32(fnv32Offset) ^ 0xffffff80
	want := h * fnv32Prime
	if got := fnv1a32Signed([]byte{0x80}); got != want {
		t.Errorf("fnv1a32Signed(0x80) = %#x, want %#x", got, want)
	}
}

func TestCarbonTestMetric(t *testing.T) {
	members := []Member{
		{Host: "127.0.0.1", Port: "2003", Instance: "a"},
		{Host: "127.0.0.1", Port: "2004", Instance: "b"},
		{Host: "127.0.0.1", Port: "2005", Instance: "c"},
	}
	for _, c := range []string{CollisionBump, CollisionFirst} {
		t.Run(c, func(t *testing.T) {
			r := mustRing(t)(NewCarbon(members, c))
			if got := r.Lookup([]byte("test.metric"), 1, nil, nil); !slices.Equal(got, []int{1}) {
				t.Errorf("test.metric -> %v, want [1] (127.0.0.1, b)", got)
			}
		})
	}
}

// TestCarbonFNV1aVectors is carbon's lib/carbon/tests/test_hashing.py for
// fnv1a_ch.
func TestCarbonFNV1aVectors(t *testing.T) {
	members := []Member{
		{Host: "127.0.0.1", Port: "2003", Instance: "ba603c36342304ed77953f84ac4d357b"},
		{Host: "127.0.0.2", Port: "2003", Instance: "5dd63865534f84899c6e5594dba6749a"},
		{Host: "127.0.0.3", Port: "2003", Instance: "866a18b81f2dc4649517a1df13e26f28"},
	}
	r := mustRing(t)(NewFNV1a(members, FlavourCarbon))
	tests := []struct {
		key  string
		want int
	}{
		{"hosts.worker1.cpu", 0},
		{"hosts.worker2.cpu", 2},
		{"stats.checkout.cluster.padamski-wro.api.v1.payment-initialize.count", 2},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := r.Lookup([]byte(tt.key), 1, nil, nil); !slices.Equal(got, []int{tt.want}) {
				t.Errorf("Lookup = %v, want [%d]", got, tt.want)
			}
		})
	}
}

// TestCRNGRing is carbon-relay-ng's TestConsistentHashingDestinations: two
// replicas per member, no collisions, so bump and first agree.
func TestCRNGRing(t *testing.T) {
	members := []Member{
		{Host: "10.0.0.1", Port: "2003"},
		{Host: "127.0.0.1", Port: "2003", Instance: "a"},
		{Host: "127.0.0.1", Port: "2004", Instance: "b"},
		{Host: "127.0.0.1", Port: "2005", Instance: "c"},
		{Host: "10.0.0.2", Port: "2003"},
	}
	type point struct {
		pos uint32
		idx int32
	}
	tests := []struct {
		name    string
		members int
		want    []point
	}{
		{"three members", 3, []point{{7885, 1}, {10461, 2}, {24043, 1}, {35540, 0}, {46982, 0}, {54295, 2}}},
		{"five members", 5, []point{
			{6639, 4}, {7885, 1}, {10461, 2}, {24043, 1}, {24467, 3},
			{35540, 0}, {46982, 0}, {52177, 4}, {53472, 3}, {54295, 2},
		}},
	}
	for _, c := range []string{CollisionBump, CollisionFirst} {
		for _, tt := range tests {
			t.Run(c+"/"+tt.name, func(t *testing.T) {
				r, err := newCarbon(members[:tt.members], c, 2)
				if err != nil {
					t.Fatal(err)
				}
				var got []point
				for i := range r.t.pos {
					got = append(got, point{r.t.pos[i], r.t.idx[i]})
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("ring = %v, want %v", got, tt.want)
				}
			})
		}
		t.Run(c+"/lookups", func(t *testing.T) {
			r, err := newCarbon(members, c, 2)
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]int{"a.b.c.d": 4, "a.b.c..d": 1, "collectd.bar.memory.free": 3} {
				if got := r.Lookup([]byte(key), 1, nil, nil); !slices.Equal(got, []int{want}) {
					t.Errorf("%s -> %v, want [%d]", key, got, want)
				}
			}
		})
	}
}

var issue335Hosts = []string{
	"10.20.34.114", "10.20.39.104", "10.20.40.161", "10.20.35.158",
	"10.20.37.70", "10.20.40.126", "10.20.33.78", "10.20.39.19",
	"10.20.42.66", "10.20.34.131", "10.20.38.55", "10.20.41.75",
	"10.20.32.8", "10.20.37.165",
}

// TestIssue335Collision checks carbon-relay-ng#335: with its 14 servers,
// 10.20.40.126 (member 5) and 10.20.34.131 (member 9) both hash a point to
// 59417; the next point is at 59482 (10.20.40.126).
func TestIssue335Collision(t *testing.T) {
	members := make([]Member, len(issue335Hosts))
	for i, h := range issue335Hosts {
		members[i] = Member{Host: h, Port: "12003"}
	}
	tests := []struct {
		collision string
		pos       uint32
		want      int
	}{
		{CollisionBump, 59417, 5},
		{CollisionBump, 59418, 9},
		{CollisionBump, 59419, 5},
		{CollisionFirst, 59417, 9},
		{CollisionFirst, 59418, 5},
		{CollisionFirst, 59482, 5},
	}
	for _, tt := range tests {
		t.Run(tt.collision+"/"+strconv.Itoa(int(tt.pos)), func(t *testing.T) {
			r, err := newCarbon(members, tt.collision, replicaCount)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.t.walk(tt.pos, 1, nil, nil); !slices.Equal(got, []int{tt.want}) {
				t.Errorf("position %d -> %v, want [%d]", tt.pos, got, tt.want)
			}
		})
	}
}

func issue236Members() []Member {
	members := make([]Member, 7)
	for i := range members {
		members[i] = Member{Host: "127.0.0." + strconv.Itoa(i+1), Port: strconv.Itoa(2003 + i)}
	}
	return members
}

// TestCRelayIssue236 reproduces every placement of carbon-c-relay's issue236
// test for its three hashes.
func TestCRelayIssue236(t *testing.T) {
	members := issue236Members()
	rings := map[string]Ring{
		"carbon_ch":     mustRing(t)(NewCarbon(members, CollisionFirst)),
		"fnv1a_ch":      mustRing(t)(NewFNV1a(members, FlavourCRelay)),
		"jump_fnv1a_ch": mustRing(t)(NewJump(members)),
	}
	_, lines := readLines(t, "crelay_issue236.txt")
	count := map[string]int{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("bad line %q", l)
		}
		hash, key, want := f[0], []byte(f[1]), f[3:]
		pos, _ := strconv.Atoi(f[2])
		var gotPos int
		switch hash {
		case "carbon_ch":
			gotPos = int(md5Pos(key))
		case "fnv1a_ch":
			gotPos = int(fold16(fnv1a32Signed(key)))
		default:
			gotPos = jumpBucket(fnv1a64Signed(key), len(members))
		}
		if gotPos != pos {
			t.Errorf("%s %s: hash_pos %d, want %d", hash, key, gotPos, pos)
		}
		got := names(members, rings[hash].Lookup(key, 2, nil, nil), Member.String)
		if !slices.Equal(got, want) {
			t.Errorf("%s %s -> %v, want %v", hash, key, got, want)
		}
		count[hash]++
	}
	for hash := range rings {
		if count[hash] != 44 {
			t.Errorf("%s: %d metrics checked, want 44", hash, count[hash])
		}
	}
}

// TestCRelayIssue236Rings compares the built rings with the ones
// carbon-c-relay prints, point by point.
func TestCRelayIssue236Rings(t *testing.T) {
	members := issue236Members()
	jump2 := []Member{
		{Host: "127.0.0.11", Port: "2003"},
		{Host: "127.0.0.12", Port: "2004", Instance: "1"},
		{Host: "127.0.0.13", Port: "2005"},
		{Host: "127.0.0.14", Port: "2006", Instance: "2"},
		{Host: "127.0.0.15", Port: "2007"},
		{Host: "127.0.0.16", Port: "2008", Instance: "foo"},
		{Host: "127.0.0.17", Port: "2009"},
	}
	_, lines := readLines(t, "crelay_issue236_rings.txt")
	want := map[string][]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		want[f[0]] = append(want[f[0]], f[1]+"@"+f[2])
	}
	carbon, err := newCarbon(members, CollisionFirst, replicaCount)
	if err != nil {
		t.Fatal(err)
	}
	fnv, err := newFNV1a(members, FlavourCRelay, replicaCount)
	if err != nil {
		t.Fatal(err)
	}
	points := func(r *pointRing) []string {
		var out []string
		for i := range r.t.pos {
			out = append(out, strconv.Itoa(int(r.t.pos[i]))+"@"+members[r.t.idx[i]].String())
		}
		return out
	}
	order := func(ms []Member) []string {
		r := mustRing(t)(NewJump(ms)).(*jumpRing)
		var out []string
		for _, m := range r.order {
			out = append(out, strconv.Itoa(int(m))+"@"+ms[m].String())
		}
		return out
	}
	got := map[string][]string{
		"carbon_ch":      points(carbon),
		"fnv1a_ch":       points(fnv),
		"jump_fnv1a_ch":  order(members),
		"jump_fnv1a_ch2": order(jump2),
	}
	for name, w := range want {
		if !slices.Equal(got[name], w) {
			t.Errorf("%s ring differs:\n got %v\nwant %v", name, got[name], w)
		}
	}
	if len(want) != 4 {
		t.Errorf("%d rings in the golden file, want 4", len(want))
	}
}

// TestCarbonPythonVectors replays the keys gen_carbon_vectors.py routed
// through Graphite carbon's ConsistentHashingRouter.
func TestCarbonPythonVectors(t *testing.T) {
	files := []struct {
		name   string
		newR   func([]Member) (Ring, error)
		keys   int
		hashed string
	}{
		{"carbon_ch_issue335.txt", func(m []Member) (Ring, error) { return NewCarbon(m, CollisionBump) }, 2056, "carbon_ch"},
		{"carbon_ch_instances.txt", func(m []Member) (Ring, error) { return NewCarbon(m, CollisionBump) }, 2056, "carbon_ch"},
		{"fnv1a_ch_carbon_instances.txt", func(m []Member) (Ring, error) { return NewFNV1a(m, FlavourCarbon) }, 2064, "fnv1a_ch"},
		{"fnv1a_ch_carbon_none.txt", func(m []Member) (Ring, error) { return NewFNV1a(m, FlavourCarbon) }, 2064, "fnv1a_ch"},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			comments, lines := readLines(t, f.name)
			var members []Member
			collisions := -1
			for _, c := range comments {
				switch {
				case strings.HasPrefix(c, "member: "):
					members = append(members, parseMember(t, strings.TrimPrefix(c, "member: ")))
				case strings.HasPrefix(c, "hash: "):
					if h := strings.TrimPrefix(c, "hash: "); h != f.hashed {
						t.Fatalf("hash %s, want %s", h, f.hashed)
					}
				case strings.HasPrefix(c, "colliding raw positions: "):
					collisions, _ = strconv.Atoi(strings.TrimPrefix(c, "colliding raw positions: "))
				}
			}
			if collisions <= 0 {
				t.Fatalf("vectors without colliding positions (%d)", collisions)
			}
			r := mustRing(t)(f.newR(members))
			var dst []int
			for _, l := range lines {
				fs := strings.Split(l, "\t")
				if len(fs) != 3 {
					t.Fatalf("bad line %q", l)
				}
				key := []byte(fs[0])
				for n, want := range []string{fs[1], fs[2]} {
					dst = r.Lookup(key, n+1, nil, dst[:0])
					if got := strings.Join(names(members, dst, carbonDest), ","); got != want {
						t.Errorf("%q replication %d -> %s, want %s", key, n+1, got, want)
					}
				}
			}
			if len(lines) != f.keys {
				t.Errorf("%d keys, want %d", len(lines), f.keys)
			}
		})
	}
}

// TestStatsdExamples are PROTOCOLS B7's examples.
func TestStatsdExamples(t *testing.T) {
	members := []Member{
		{Host: "127.0.0.1", Port: "8127"},
		{Host: "127.0.0.1", Port: "8129"},
		{Host: "127.0.0.1", Port: "8131"},
	}
	r := mustRing(t)(NewStatsd(members))
	for key, want := range map[string]int{"foo": 0, "api.requests": 2, "gorets": 0} {
		if got := r.Lookup([]byte(key), 1, nil, nil); !slices.Equal(got, []int{want}) {
			t.Errorf("%s -> %v, want [%d]", key, got, want)
		}
	}
}

func TestStatsdPoints(t *testing.T) {
	// Node's Math.floor((100 / (100 * n)) * 40 * n) is 39 for these n up
	// to 128 (gen_statsd_vectors.js prints the library's own counts to 32).
	short := []int{7, 14, 28, 49, 56, 98, 103, 112}
	for n := 1; n <= 128; n++ {
		want := 40
		if slices.Contains(short, n) {
			want = 39
		}
		if got := statsdPoints(n); got != want {
			t.Errorf("statsdPoints(%d) = %d, want %d", n, got, want)
		}
	}
	members := make([]Member, 7)
	for i := range members {
		members[i] = Member{Host: "h" + strconv.Itoa(i), Port: "1"}
	}
	r := mustRing(t)(NewStatsd(members)).(*statsdRing)
	if got := len(r.state.Load().full.t.pos); got != 7*39 {
		t.Errorf("7 nodes: %d points, want %d", got, 7*39)
	}
}

// TestStatsdNodeVectors replays the keys gen_statsd_vectors.js sent through
// node hashring 3.2.0.
func TestStatsdNodeVectors(t *testing.T) {
	for _, name := range []string{"statsd_3.txt", "statsd_7.txt", "statsd_7_down.txt"} {
		t.Run(name, func(t *testing.T) {
			comments, lines := readLines(t, name)
			var members []Member
			var down []string
			for _, c := range comments {
				switch {
				case strings.HasPrefix(c, "member: "):
					members = append(members, parseMember(t, strings.TrimPrefix(c, "member: ")))
				case strings.HasPrefix(c, "down: "):
					down = append(down, strings.TrimPrefix(c, "down: "))
				}
			}
			var up []bool
			if len(down) > 0 {
				up = make([]bool, len(members))
				for i, m := range members {
					up[i] = !slices.Contains(down, m.String())
				}
			}
			r := mustRing(t)(NewStatsd(members))
			format := func(m Member) string { return m.Host + ":" + m.Port }
			var dst []int
			for _, l := range lines {
				fs := strings.Split(l, "\t")
				if len(fs) != 3 {
					t.Fatalf("bad line %q", l)
				}
				key, err := hex.DecodeString(fs[0])
				if err != nil {
					t.Fatal(err)
				}
				for n, want := range []string{fs[1], fs[2]} {
					dst = r.Lookup(key, n+1, up, dst[:0])
					if got := strings.Join(names(members, dst, format), ","); got != want {
						t.Errorf("%q (%s) n=%d -> %s, want %s", key, fs[0], n+1, got, want)
					}
				}
			}
			if len(lines) != 2000 {
				t.Errorf("%d keys, want 2000", len(lines))
			}
		})
	}
}
