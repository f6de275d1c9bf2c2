package hashring

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The two nodes of testdata/statsd_flap_2.txt: virtual node 33 of a and 4 of
// b are both at 1765889975.
var (
	flapA = Member{Host: "127.0.0.1", Port: "20239"}
	flapB = Member{Host: "127.0.0.1", Port: "22058"}
)

// flapKey lands on the point flapA and flapB share (statsd_flap_2.txt).
var flapKey = []byte("shared.32")

// TestStatsdFlapVectors replays the health-check sequences that
// testdata/gen_statsd_flap.js ran through proxy.js's rules and node
// hashring: after each step the server list and, for every key, ring.get
// and ring.range(key, 2).
func TestStatsdFlapVectors(t *testing.T) {
	for _, name := range []string{"statsd_flap_2.txt", "statsd_flap_4.txt"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var (
				members []Member
				names   []string
				r       *statsdRing
				up      []bool
				step    string
				dst     []int
				// placement of the keys per list of live members, and
				// how many placements changed with the order alone
				seen    = map[string]string{}
				flips   int
				placed  strings.Builder
				list    string
				nkeys   int
				nshared int
			)
			ring := func() {
				if r == nil {
					r = mustRing(t)(NewStatsd(members)).(*statsdRing)
					up = slices.Repeat([]bool{true}, len(members))
				}
			}
			index := func(s string) int {
				i := slices.Index(names, s)
				if i < 0 {
					t.Fatalf("%s: unknown member %q", step, s)
				}
				return i
			}
			endStep := func() {
				if step == "" {
					return
				}
				live := strings.Split(list, ",")
				slices.Sort(live)
				set := strings.Join(live, ",")
				if p, ok := seen[set]; ok && p != placed.String() {
					flips++
				}
				seen[set] = placed.String()
				placed.Reset()
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				l := sc.Text()
				switch {
				case strings.HasPrefix(l, "# member: "):
					names = append(names, strings.TrimPrefix(l, "# member: "))
					members = append(members, parseMember(t, names[len(names)-1]))
				case strings.HasPrefix(l, "# shared: "):
					fs := strings.Fields(strings.TrimPrefix(l, "# shared: "))
					want, _ := strconv.ParseUint(fs[0], 10, 32)
					ring()
					for _, v := range fs[1:] {
						i := strings.LastIndexByte(v, '-')
						vn, _ := strconv.Atoi(v[i+1:])
						if got := r.pts[index(v[:i])][vn]; got != uint32(want) {
							t.Errorf("point of %s: %d, want %d", v, got, want)
						}
					}
					nshared++
				case strings.HasPrefix(l, "#"):
				case strings.HasPrefix(l, "@ "):
					endStep()
					ring()
					fs := strings.Split(l[2:], "\t")
					step, list = fs[0], fs[1]
					if what, who, ok := strings.Cut(step, " "); ok {
						up[index(who)] = what == "up"
					}
					r.Lookup(nil, 1, up, nil) // records the health-check result
					var order []string
					for _, m := range r.state.Load().order {
						order = append(order, names[m])
					}
					if got := strings.Join(order, ","); got != list {
						t.Errorf("%s: servers %s, want %s", step, got, list)
					}
				default:
					fs := strings.Split(l, "\t")
					if len(fs) != 3 || step == "" {
						t.Fatalf("bad line %q", l)
					}
					key := []byte(fs[0])
					for n, want := range fs[1:] {
						dst = r.Lookup(key, n+1, up, dst[:0])
						if got := strings.Join(memberNames(names, dst), ","); got != want {
							t.Errorf("%s: %s n=%d -> %s, want %s", step, key, n+1, got, want)
						}
					}
					if !slices.Contains(up, false) {
						if got := r.Lookup(key, 2, nil, nil); !slices.Equal(got, dst) {
							t.Errorf("%s: %s nil up -> %v, want %v", step, key, got, dst)
						}
					}
					placed.WriteString(fs[1] + ";")
					nkeys++
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			endStep()
			if nshared == 0 || nkeys < 1000 {
				t.Errorf("%d shared points, %d key lines", nshared, nkeys)
			}
			// the file shows ties going the other way after a flap
			if flips == 0 {
				t.Error("no step changed a key's node by the order of the servers alone")
			}
		})
	}
}

func memberNames(names []string, idx []int) []string {
	out := make([]string, len(idx))
	for i, m := range idx {
		out[i] = names[m]
	}
	return out
}

// TestStatsdFlapConcurrent records the same health changes from many
// goroutines at once: each is recorded once, and every lookup sees either
// the ring before or the ring after.
func TestStatsdFlapConcurrent(t *testing.T) {
	members := []Member{flapA, flapB, {Host: "127.0.0.1", Port: "8125"}}
	for round := range 20 {
		r := mustRing(t)(NewStatsd(members)).(*statsdRing)
		sets := [][]bool{{false, true, true}, {true, true, true}}
		for _, up := range sets {
			var wg sync.WaitGroup
			start := make(chan struct{})
			bad := make(chan []int, 8)
			for range 8 {
				wg.Go(func() {
					<-start
					var dst [2]int
					for range 50 {
						got := r.Lookup(flapKey, 1, up, dst[:0])
						// a: only with a up; b wins the shared point otherwise
						if len(got) != 1 || got[0] != 1 {
							bad <- slices.Clone(got)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			close(bad)
			for got := range bad {
				t.Fatalf("round %d, up %v: %v, want [1]", round, up, got)
			}
		}
		if got := r.state.Load().order; !slices.Equal(got, []int{1, 2, 0}) {
			t.Fatalf("round %d: order %v, want [1 2 0]", round, got)
		}
	}
}

// TestStatsdFlapNil: nil up records nothing and looks up with every member
// in, the down ones after the live ones.
func TestStatsdFlapNil(t *testing.T) {
	r := mustRing(t)(NewStatsd([]Member{flapA, flapB})).(*statsdRing)
	if got := r.Lookup(flapKey, 1, nil, nil); !slices.Equal(got, []int{0}) {
		t.Fatalf("start: %v, want [0]", got)
	}
	r.Lookup(flapKey, 1, []bool{false, true}, nil)
	// a is down: with every member in, it comes after b
	if got := r.Lookup(flapKey, 2, nil, nil); !slices.Equal(got, []int{1, 0}) {
		t.Fatalf("a down, nil up: %v, want [1 0]", got)
	}
	if got := r.Lookup(flapKey, 1, []bool{true, true}, nil); !slices.Equal(got, []int{1}) {
		t.Fatalf("a back: %v, want [1]", got)
	}
	if got := r.Lookup(flapKey, 1, nil, nil); !slices.Equal(got, []int{1}) {
		t.Fatalf("a back, nil up: %v, want [1]", got)
	}
	if got := r.state.Load().order; !slices.Equal(got, []int{1, 0}) {
		t.Fatalf("order %v, want [1 0]", got)
	}
	dst := make([]int, 0, 2)
	for _, up := range [][]bool{nil, {true, true}} {
		if a := testing.AllocsPerRun(100, func() { r.Lookup(flapKey, 2, up, dst[:0]) }); a != 0 {
			t.Errorf("up %v after a flap: %.1f allocs per lookup, want 0", up, a)
		}
	}
}
