package consistent_hash

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// TestCarbonTaggedPlacement: 10,000 tagged names with their tags in random
// order (testdata/carbon_ch_tagged.txt, from carbon's own router: see
// testdata/gen_tagged_vectors.py) go through graphite.SortTags (inputs
// with tags = "sort"), graphite.Parse and the carbon_ch ring, with
// replication 1 and 2: every placement is carbon's for the canonical form.
func TestCarbonTaggedPlacement(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "carbon_ch_tagged.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var members []string
	type vec struct{ name, r1, r2 string }
	var vecs []vec
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if m, ok := strings.CutPrefix(l, "# member: "); ok {
			members = append(members, m)
			continue
		}
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		p := strings.Split(l, "\t")
		if len(p) != 3 {
			t.Fatalf("bad line %q", l)
		}
		vecs = append(vecs, vec{p[0], p[1], p[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 10000 || len(members) != 8 {
		t.Fatalf("%d vectors, %d members", len(vecs), len(members))
	}
	tg := make([]registry.Target, len(members))
	for i, m := range members {
		p := strings.Split(m, ":")
		tg[i] = registry.Target{ID: m, Plugin: "graphite", Host: p[0], Port: p[1]}
		if len(p) == 3 {
			tg[i].Instance = p[2]
		}
	}
	for repl := 1; repl <= 2; repl++ {
		c := &ConsistentHash{Hash: "carbon_ch", Collision: "bump", Flavour: "crelay", Replication: repl, OnDown: "queue"}
		if err := c.SetTargets(tg); err != nil {
			t.Fatal(err)
		}
		env, _ := plugintest.Env(t, "outputs.consistent_hash")
		if err := c.Init(env); err != nil {
			t.Fatal(err)
		}
		sorted, bad, unsortedBad := 0, 0, 0
		var dst []int
		for _, v := range vecs {
			in := v.name + " 1 1700000000"
			line, err := graphite.SortTags([]byte(in))
			if err != nil {
				t.Fatalf("SortTags(%q): %v", in, err)
			}
			if string(line) != in {
				sorted++
			}
			var m metric.Metric
			if err := graphite.Parse(line, &m); err != nil {
				t.Fatalf("Parse(%q): %v", line, err)
			}
			var raw metric.Metric
			if err := graphite.Parse([]byte(in), &raw); err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			dst = c.Route(&raw, nil, dst[:0])
			rawFirst := members[dst[0]]
			dst = c.Route(&m, nil, dst[:0])
			if rawFirst != members[dst[0]] {
				unsortedBad++
			}
			got := make([]string, len(dst))
			for i, d := range dst {
				got[i] = members[d]
			}
			want := v.r1
			if repl == 2 {
				want = v.r2
			}
			if g := strings.Join(got, ","); g != want {
				if bad++; bad <= 10 {
					t.Errorf("replication %d: %q (as %q) goes to %s, carbon: %s", repl, v.name, m.Path(), g, want)
				}
			}
		}
		if bad > 0 {
			t.Fatalf("replication %d: %d of %d placements differ from carbon's", repl, bad, len(vecs))
		}
		// the vectors must exercise the sort: most names arrive unsorted
		if sorted < len(vecs)/2 || unsortedBad < len(vecs)/2 {
			t.Fatalf("only %d of %d names were rewritten by SortTags, %d placed elsewhere unsorted", sorted, len(vecs), unsortedBad)
		}
	}
}
