package hashring

import "testing"

// BenchmarkLookup measures one Lookup on a 14-member ring: the primary only,
// replication 2, and replication 2 with two members down.
func BenchmarkLookup(b *testing.B) {
	members := testMembers(14)
	keys := testKeys(1024)
	up := make([]bool, len(members))
	for i := range up {
		up[i] = i != 3 && i != 9
	}
	cases := []struct {
		name string
		n    int
		up   []bool
	}{
		{"n=1", 1, nil},
		{"n=2", 2, nil},
		{"n=2,down=2", 2, up},
	}
	for _, k := range kinds {
		r, err := k.new(members)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cases {
			b.Run(k.name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				dst := make([]int, 0, 4)
				i := 0
				for b.Loop() {
					dst = r.Lookup(keys[i&1023], c.n, c.up, dst[:0])
					i++
				}
			})
		}
	}
}
