package hashring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// kinds builds every ring type over the same members; instances are
// dropped for statsd, which has none.
var kinds = []struct {
	name string
	new  func([]Member) (Ring, error)
}{
	{"carbon_ch/bump", func(m []Member) (Ring, error) { return NewCarbon(m, CollisionBump) }},
	{"carbon_ch/first", func(m []Member) (Ring, error) { return NewCarbon(m, CollisionFirst) }},
	{"fnv1a_ch/crelay", func(m []Member) (Ring, error) { return NewFNV1a(m, FlavourCRelay) }},
	{"fnv1a_ch/carbon", func(m []Member) (Ring, error) { return NewFNV1a(m, FlavourCarbon) }},
	{"jump_fnv1a_ch", NewJump},
	{"statsd", func(m []Member) (Ring, error) {
		m = slices.Clone(m)
		for i := range m {
			m[i].Instance = ""
		}
		return NewStatsd(m)
	}},
}

// testMembers returns n members on distinct hosts, every third with an
// instance.
func testMembers(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{Host: fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), Port: strconv.Itoa(2003 + i%3)}
		if i%3 == 0 {
			ms[i].Instance = fmt.Sprintf("cache-%d", i)
		}
	}
	return ms
}

func testKeys(n int) [][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "servers.host%d.cpu%d.%x", rnd.IntN(1000), rnd.IntN(64), rnd.Uint32())
	}
	return keys
}

func TestConstructorErrors(t *testing.T) {
	ok := []Member{{Host: "10.0.0.1", Port: "2003"}, {Host: "10.0.0.2", Port: "2003"}}
	carbon := func(c string) func([]Member) (Ring, error) {
		return func(m []Member) (Ring, error) { return NewCarbon(m, c) }
	}
	fnv := func(f string) func([]Member) (Ring, error) {
		return func(m []Member) (Ring, error) { return NewFNV1a(m, f) }
	}
	tests := []struct {
		name    string
		new     func([]Member) (Ring, error)
		members []Member
		want    string
	}{
		{"carbon empty", carbon(CollisionBump), nil, "no members"},
		{"fnv empty", fnv(FlavourCRelay), nil, "no members"},
		{"jump empty", NewJump, nil, "no members"},
		{"statsd empty", NewStatsd, []Member{}, "no members"},
		{"carbon bad collision", carbon("wrap"), ok, "unknown collision rule"},
		{"fnv bad flavour", fnv("python"), ok, "unknown flavour"},
		{"empty host", NewJump, []Member{{Port: "1"}}, "empty host"},
		{"bad port", NewStatsd, []Member{{Host: "a", Port: "http"}}, "port"},
		{"port too big", NewJump, []Member{{Host: "a", Port: "65536"}}, "port"},
		{"exact duplicate", NewStatsd, []Member{ok[0], ok[1], ok[0]}, "duplicate member 2"},
		{"duplicate with leading zero port", NewJump, []Member{{Host: "a", Port: "2003"}, {Host: "a", Port: "02003"}}, "duplicate member 1"},
		{"nul byte", NewJump, []Member{{Host: "a\x00b", Port: "1"}}, "NUL"},
		{
			"carbon same host without instances", carbon(CollisionBump),
			[]Member{{Host: "a", Port: "2003"}, {Host: "a", Port: "2004"}}, "same host and instance",
		},
		{
			"carbon same host and instance", carbon(CollisionFirst),
			[]Member{{Host: "a", Port: "2003", Instance: "x"}, {Host: "a", Port: "2004", Instance: "x"}}, "same host and instance",
		},
		{
			"carbon first same host and port", carbon(CollisionFirst),
			[]Member{{Host: "a", Port: "2003", Instance: "x"}, {Host: "a", Port: "2003", Instance: "y"}}, "same host and port",
		},
		{"carbon quote", carbon(CollisionBump), []Member{{Host: "a'b", Port: "1"}}, "printable ascii"},
		{"carbon backslash instance", carbon(CollisionFirst), []Member{{Host: "a", Port: "1", Instance: `x\y`}}, "printable ascii"},
		{"carbon non-ascii", carbon(CollisionBump), []Member{{Host: "é", Port: "1"}}, "printable ascii"},
		{"carbon too long", carbon(CollisionFirst), []Member{{Host: strings.Repeat("h", 250), Port: "1"}}, "too long"},
		{
			"fnv crelay same instance", fnv(FlavourCRelay),
			[]Member{{Host: "a", Port: "1", Instance: "x"}, {Host: "b", Port: "1", Instance: "x"}}, "same replica key",
		},
		{
			"fnv crelay instance equals host:port", fnv(FlavourCRelay),
			[]Member{{Host: "a", Port: "1"}, {Host: "b", Port: "1", Instance: "a:1"}}, "same replica key",
		},
		{
			"fnv carbon same host and instance", fnv(FlavourCarbon),
			[]Member{{Host: "a", Port: "1"}, {Host: "a", Port: "2"}}, "same host and instance",
		},
		{"fnv crelay too long", fnv(FlavourCRelay), []Member{{Host: "a", Port: "1", Instance: strings.Repeat("i", 253)}}, "too long"},
		{
			"jump same host and port", NewJump,
			[]Member{{Host: "a", Port: "1", Instance: "x"}, {Host: "a", Port: "1", Instance: "y"}}, "same host and port",
		},
		{
			"jump equal instances", NewJump,
			[]Member{{Host: "a", Port: "1", Instance: "x"}, {Host: "b", Port: "1", Instance: "x"}}, "cannot be ordered",
		},
		{
			"jump numerically equal instances", NewJump,
			[]Member{{Host: "a", Port: "1", Instance: "1"}, {Host: "b", Port: "1", Instance: "01"}}, "cannot be ordered",
		},
		{
			"jump instance cycle", NewJump,
			[]Member{{Host: "a", Port: "1", Instance: "10"}, {Host: "b", Port: "1", Instance: "2a"}, {Host: "c", Port: "1", Instance: "3"}},
			"cannot be ordered",
		},
		{"statsd instance", NewStatsd, []Member{{Host: "a", Port: "1", Instance: "x"}}, "no instance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.new(tt.members)
			if err == nil {
				t.Fatalf("got ring %T, want error containing %q", r, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestConstructorAccepts(t *testing.T) {
	tests := []struct {
		name    string
		new     func([]Member) (Ring, error)
		members []Member
	}{
		{
			"carbon bump same host and port, distinct instances", func(m []Member) (Ring, error) { return NewCarbon(m, CollisionBump) },
			[]Member{{Host: "a", Port: "1", Instance: "x"}, {Host: "a", Port: "1", Instance: "y"}},
		},
		{
			"fnv carbon without instances", func(m []Member) (Ring, error) { return NewFNV1a(m, FlavourCarbon) },
			[]Member{{Host: "a", Port: "1"}, {Host: "b", Port: "1"}},
		},
		{
			"jump numbers and names", NewJump,
			[]Member{{Host: "a", Port: "1", Instance: "10"}, {Host: "b", Port: "1", Instance: "9"}, {Host: "c", Port: "1", Instance: "x"}, {Host: "d", Port: "1"}},
		},
		{"single member", NewStatsd, []Member{{Host: "a", Port: "1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.new(tt.members); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestJumpOrder(t *testing.T) {
	tests := []struct {
		name      string
		instances []string
		want      []int
	}{
		{"numbers compare as numbers", []string{"10", "9", "-3", " 4", "+5"}, []int{2, 3, 4, 1, 0}},
		{"names compare bytewise", []string{"b", "a", "B"}, []int{2, 1, 0}},
		{"no instance last in config order", []string{"", "z", "", "a"}, []int{3, 1, 0, 2}},
		{"number against name is bytewise", []string{"x", "10", "9"}, []int{2, 1, 0}},
		{"int truncation of the difference", []string{"4294967296", "1"}, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := make([]Member, len(tt.instances))
			for i, inst := range tt.instances {
				ms[i] = Member{Host: "h" + strconv.Itoa(i), Port: "1", Instance: inst}
			}
			r := mustRing(t)(NewJump(ms)).(*jumpRing)
			got := make([]int, len(r.order))
			for i, m := range r.order {
				got[i] = int(m)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStrtol(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"-7", -7, true},
		{"+7", 7, true},
		{" \t12", 12, true},
		{"12 ", 0, false},
		{"1a", 0, false},
		{"a", 0, false},
		{"+", 0, false},
		{" ", 0, false},
		{"", 0, true},
		{"99999999999999999999", 1<<63 - 1, true},
		{"-99999999999999999999", -1 << 63, true},
		{"9223372036854775808", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			got, ok := strtol(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("strtol(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestWHATWG(t *testing.T) {
	const r = "\uFFFD"
	tests := []struct {
		in, want string
	}{
		{"abc", "abc"},
		{"\x80", r},
		{"a\xe2\x82", "a" + r},
		{"\xe2\x82.", r + "."},
		{"\xf0\x90\x8d", r},
		{"\xc0\xaf", r + r},
		{"\xed\xa0\x80", r + r + r},
		{"\xf4\x90\x80\x80", r + r + r + r},
		{"a\xe2\xe2\x82\xacb", "a" + r + "\u20acb"},
		{"\xf0\x9f\x98\x81", "\U0001F601"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.in), func(t *testing.T) {
			if got := string(appendWHATWG(nil, []byte(tt.in))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLookupProperties(t *testing.T) {
	const size = 11
	members := testMembers(size)
	keys := testKeys(300)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := mustRing(t)(k.new(members))
			for _, key := range keys {
				all := r.Lookup(key, size+5, nil, nil)
				if len(all) != size {
					t.Fatalf("%s: %d members for n > size, want %d", key, len(all), size)
				}
				seen := map[int]bool{}
				for _, m := range all {
					if m < 0 || m >= size || seen[m] {
						t.Fatalf("%s: bad or repeated member in %v", key, all)
					}
					seen[m] = true
				}
				for n := 0; n <= size; n++ {
					got := r.Lookup(key, n, nil, nil)
					if !slices.Equal(got, all[:n]) {
						t.Fatalf("%s n=%d: %v, want prefix %v", key, n, got, all[:n])
					}
				}
				prefix := []int{7, 7}
				if got := r.Lookup(key, 3, nil, prefix); !slices.Equal(got, append([]int{7, 7}, all[:3]...)) {
					t.Fatalf("%s: dst prefix not kept: %v", key, got)
				}
			}
		})
	}
}

func TestLookupDeterministic(t *testing.T) {
	members := testMembers(9)
	keys := testKeys(200)
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			a := mustRing(t)(k.new(members))
			b := mustRing(t)(k.new(slices.Clone(members)))
			for _, key := range keys {
				if x, y := a.Lookup(key, 3, nil, nil), b.Lookup(key, 3, nil, nil); !slices.Equal(x, y) {
					t.Fatalf("%s: %v then %v", key, x, y)
				}
			}
		})
	}
}

// TestUpSkipping checks the documented failover: carbon_ch, fnv1a_ch and
// jump_fnv1a_ch return the first live members of the full sequence; statsd
// is the ring of the live members alone.
func TestUpSkipping(t *testing.T) {
	const size = 12
	members := testMembers(size)
	keys := testKeys(200)
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := mustRing(t)(k.new(members))
			for range 30 {
				up := make([]bool, size)
				var live []int
				for i := range up {
					up[i] = rnd.IntN(3) > 0
					if up[i] {
						live = append(live, i)
					}
				}
				var ref Ring
				if k.name == "statsd" {
					ms := make([]Member, len(live))
					for i, m := range live {
						ms[i] = Member{Host: members[m].Host, Port: members[m].Port}
					}
					if len(ms) > 0 {
						ref = mustRing(t)(NewStatsd(ms))
					}
				}
				for _, key := range keys {
					for n := 1; n <= 4; n++ {
						got := r.Lookup(key, n, up, nil)
						var want []int
						if ref != nil {
							for _, i := range ref.Lookup(key, n, nil, nil) {
								want = append(want, live[i])
							}
						} else if k.name != "statsd" {
							for _, m := range r.Lookup(key, size, nil, nil) {
								if up[m] && len(want) < n {
									want = append(want, m)
								}
							}
						}
						if !slices.Equal(got, want) {
							t.Fatalf("%s n=%d up=%v: %v, want %v", key, n, up, got, want)
						}
					}
				}
			}
		})
	}
}

func TestAllDownAndAllUp(t *testing.T) {
	members := testMembers(5)
	down := make([]bool, len(members))
	up := []bool{true, true, true, true, true}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := mustRing(t)(k.new(members))
			for _, key := range testKeys(50) {
				if got := r.Lookup(key, 2, down, nil); len(got) != 0 {
					t.Fatalf("all down: %v", got)
				}
				if a, b := r.Lookup(key, 2, up, nil), r.Lookup(key, 2, nil, nil); !slices.Equal(a, b) {
					t.Fatalf("all up %v, nil %v", a, b)
				}
			}
		})
	}
}

// refJump is carbon-c-relay's ch_get_nodes for jump_fnv1a_ch, on a plain
// copy of the bucket list, extended to skip dead members.
func refJump(order []int32, key []byte, n int, up []bool) []int {
	bck := slices.Clone(order)
	h := fnv1a64Signed(key)
	var out []int
	for i := len(bck); i > 0 && len(out) < n; {
		j := jumpBucket(h, i)
		if up == nil || up[bck[j]] {
			out = append(out, int(bck[j]))
			if len(out) == n {
				break
			}
		}
		h = xorshift(h)
		i--
		bck[j] = bck[i]
	}
	return out
}

// TestJumpCandidates compares the overlay and its spill to the plain list,
// with enough dead members to spill.
func TestJumpCandidates(t *testing.T) {
	const size = 120
	members := testMembers(size)
	r := mustRing(t)(NewJump(members)).(*jumpRing)
	rnd := rand.New(rand.NewPCG(5, 6))
	keys := testKeys(100)
	for _, alive := range []int{size, 60, 10, 1, 0} {
		up := make([]bool, size)
		for _, i := range rnd.Perm(size)[:alive] {
			up[i] = true
		}
		for _, key := range keys {
			for _, n := range []int{1, 2, 5, 40, size} {
				if got, want := r.Lookup(key, n, up, nil), refJump(r.order, key, n, up); !slices.Equal(got, want) {
					t.Fatalf("alive=%d n=%d %s: %v, want %v", alive, n, key, got, want)
				}
			}
		}
	}
}

// TestBalance checks rough balance. Every member has an instance: carbon's
// fnv1a_ch without instances is pathological (see TestFNV1aCarbonNone).
func TestBalance(t *testing.T) {
	const size = 10
	const keys = 50000
	members := testMembers(size)
	for i := range members {
		members[i].Instance = fmt.Sprintf("%08x", FNV1a32([]byte{byte(i)}))
	}
	tests := map[string][2]float64{ // min and max share of the fair share
		"carbon_ch/bump":  {0.6, 1.5},
		"carbon_ch/first": {0.6, 1.5},
		"fnv1a_ch/crelay": {0.6, 1.5},
		"fnv1a_ch/carbon": {0.6, 1.5},
		"jump_fnv1a_ch":   {0.95, 1.05},
		"statsd":          {0.6, 1.5},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := mustRing(t)(k.new(members))
			count := make([]int, size)
			var dst []int
			for i := range keys {
				dst = r.Lookup(fmt.Appendf(nil, "balance.test.metric%d.value", i), 1, nil, dst[:0])
				count[dst[0]]++
			}
			lim := tests[k.name]
			for m, c := range count {
				share := float64(c) * size / keys
				if share < lim[0] || share > lim[1] {
					t.Errorf("member %d: %.2f of its fair share (counts %v)", m, share, count)
				}
			}
		})
	}
}

func TestConcurrentLookup(t *testing.T) {
	members := testMembers(8)
	keys := testKeys(100)
	ups := [][]bool{
		nil,
		{true, true, true, true, true, true, true, true},
		{false, true, true, true, true, true, true, true},
		{true, true, false, true, false, true, true, true},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := mustRing(t)(k.new(members))
			want := make([][][]int, len(ups))
			for u, up := range ups {
				for _, key := range keys {
					want[u] = append(want[u], r.Lookup(key, 2, up, nil))
				}
			}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := range 8 {
				wg.Go(func() {
					var dst []int
					for i := range 400 {
						u := (g + i) % len(ups)
						key := i % len(keys)
						dst = r.Lookup(keys[key], 2, ups[u], dst[:0])
						if !slices.Equal(dst, want[u][key]) {
							select {
							case errs <- fmt.Sprintf("up %v key %s: %v, want %v", ups[u], keys[key], dst, want[u][key]):
							default:
							}
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

func TestLookupAllocs(t *testing.T) {
	members := testMembers(14)
	key := []byte("servers.web-042.cpu.total.user")
	bad := []byte("servers.\xff\xfe.cpu")
	up := make([]bool, len(members))
	for i := range up {
		up[i] = i != 3 && i != 7
	}
	for _, k := range kinds {
		r := mustRing(t)(k.new(members))
		dst := make([]int, 0, 8)
		for _, tc := range []struct {
			name string
			key  []byte
			n    int
			up   []bool
		}{
			{"n=1", key, 1, nil},
			{"n=3", key, 3, nil},
			{"n=3/down", key, 3, up},
			{"invalid utf-8", bad, 2, nil},
		} {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				r.Lookup(tc.key, tc.n, tc.up, dst[:0]) // builds the statsd live ring
				if a := testing.AllocsPerRun(200, func() { r.Lookup(tc.key, tc.n, tc.up, dst[:0]) }); a != 0 {
					t.Errorf("%.1f allocs per lookup, want 0", a)
				}
			})
		}
	}
}

// TestFNV1aCarbonNone shows why carbon's fnv1a_ch needs instances: without
// them every member has the same 100 positions and the bump rule leaves the
// first member almost everything.
func TestFNV1aCarbonNone(t *testing.T) {
	members := []Member{{Host: "a", Port: "1"}, {Host: "b", Port: "1"}, {Host: "c", Port: "1"}}
	r := mustRing(t)(NewFNV1a(members, FlavourCarbon))
	count := make([]int, len(members))
	for i := range 30000 {
		count[r.Lookup(fmt.Appendf(nil, "k%d", i), 1, nil, nil)[0]]++
	}
	if count[0] < 29000 {
		t.Errorf("counts %v: want nearly all on member 0", count)
	}
}
