package carbontest

import (
	"fmt"
	"math"
	"net"
	"slices"
	"testing"
	"time"
)

// TestCache sends plaintext lines to a real carbon-cache and reads them back
// from its whisper files: names map to paths, values keep every bit, and
// each timestamp lands in its own one-second slot.
func TestCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-cache")
	}
	c := Start(t, "[all]\npattern = .*\nretentions = 1s:10m\n")
	now := time.Now().Unix()
	conn, err := net.Dial("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	exact := 28.722813232690143 // more digits than whisper-fetch's text form keeps
	_, err = fmt.Fprintf(conn, "a.b.c 1.5 %d\na.b.c 2.5 %d\nx.exact %v %d\nx.tiny 1e-07 %d\n",
		now-3, now-2, exact, now-2, now-2)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := c.WaitPoints(t, "a.b.c", 2, 10*time.Second)
	if want := []Point{{now - 3, 1.5}, {now - 2, 2.5}}; !slices.Equal(got, want) {
		t.Fatalf("a.b.c: %v, want %v", got, want)
	}
	if got := c.WaitPoints(t, "x.exact", 1, 10*time.Second); len(got) != 1 || got[0].Value != exact {
		t.Fatalf("x.exact: %v, want %v", got, exact)
	}
	if got := c.WaitPoints(t, "x.tiny", 1, 10*time.Second); len(got) != 1 || got[0].Value != 1e-7 {
		t.Fatalf("x.tiny: %v, want 1e-07", got)
	}
	if got, want := c.Series(t, ""), []string{"a.b.c", "x.exact", "x.tiny"}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	if got, want := c.Series(t, "x"), []string{"x.exact", "x.tiny"}; !slices.Equal(got, want) {
		t.Fatalf("series under x %v, want %v", got, want)
	}
	if got := c.Series(t, "nothing.here"); len(got) != 0 {
		t.Fatalf("series under nothing.here: %v", got)
	}
}

func TestParseFetchJSON(t *testing.T) {
	out := `{
    "start" : 100,
    "end" : 106,
    "step" : 2,
    "values" : [null, 1.5, 1e-07, inf, -inf, nan]
  }`
	got, err := parseFetchJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0] != (Point{102, 1.5}) || got[1] != (Point{104, 1e-7}) ||
		!math.IsInf(got[2].Value, 1) || !math.IsInf(got[3].Value, -1) || !math.IsNaN(got[4].Value) || got[4].Time != 110 {
		t.Fatalf("got %v", got)
	}
	if got, err := parseFetchJSON([]byte(`{"start": 1, "end": 2, "step": 1, "values": []}`)); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{``, `{"start": 1}`, `{"start": 1, "step": 1, "values": [1.5`, `{"start": 1, "step": 1, "values": [x]}`} {
		if _, err := parseFetchJSON([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
