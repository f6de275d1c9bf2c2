package graphite_test

import (
	"slices"
	"testing"

	"github.com/metricsrouter/router/plugins/inputs/graphite"
)

// TestTagsSort: tags = "sort" writes tagged paths in carbon's canonical
// form (tags sorted, the last value of a repeated tag), leaves untagged
// lines as they are, and counts a tagged path carbon refuses as a parse
// error; with cleanse = true the cleansed line is sorted.
func TestTagsSort(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cleanse bool
		in      string
		want    []string
		errors  uint64
	}{
		{"sort", false,
			"cpu;host=a;dc=eu 1 1700000000\nplain.name 2 1700000000\nx;k=1;a=2;k=3 3 1700000000\nbad;=v 4 1700000000\nbad;k= 5 1700000000\n",
			[]string{"cpu;dc=eu;host=a 1 1700000000", "plain.name 2 1700000000", "x;a=2;k=3 3 1700000000"}, 2},
		{"cleanse then sort", true,
			"..cpu..load;z=1;a=2  7 1700000000\r\n",
			[]string{"cpu.load;a=2;z=1 7 1700000000"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, func(g *graphite.Graphite) { g.Tags, g.Cleanse = "sort", tc.cleanse })
			c := dial(t, "tcp", r.addr)
			write(t, c, tc.in)
			c.Close()
			r.idle(t, 1)
			if got := r.capture.Raw(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if n := r.metrics.Get("parse_errors_total"); n != tc.errors {
				t.Errorf("parse_errors_total = %d, want %d", n, tc.errors)
			}
		})
	}
}
