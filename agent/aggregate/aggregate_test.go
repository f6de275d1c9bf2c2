package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/registry"
)

func spec(every, expire int, when string, comps ...string) *Spec {
	s := &Spec{Every: registry.Duration(time.Duration(every) * time.Second), Expire: registry.Duration(time.Duration(expire) * time.Second), Timestamp: when}
	for i := 0; i+1 < len(comps); i += 2 {
		s.Compute = append(s.Compute, ComputeSpec{Type: comps[i], WriteTo: comps[i+1]})
	}
	return s
}

func mustNew(t *testing.T, s *Spec, now *int64) *Aggregate {
	t.Helper()
	c, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return New(c, func() int64 { return *now }, 1)
}

func put(a *Aggregate, comp int, name string, v float64, ts int64) {
	var b Batch
	b.Add(comp, []byte(name), v, ts)
	b.Received = 1
	a.Put(&b)
}

func lines(b []byte) []string {
	out := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(b) == 0 {
		return nil
	}
	sort.Strings(out)
	return out
}

// TestComputes: every compute type on one bucket, as carbon-c-relay
// prints them, with the three timestamp positions.
func TestComputes(t *testing.T) {
	now := int64(1_700_000_100)
	for _, when := range []struct {
		name string
		off  int64
	}{{"start", 0}, {"middle", 5}, {"end", 10}, {"", 10}} {
		a := mustNew(t, spec(10, 30, when.name, "sum", "s", "count", "c", "max", "mx", "min", "mn", "average", "a",
			"median", "md", "percentile90", "p90", "variance", "v", "stddev", "sd"), &now)
		vals := []float64{3, 1, 4, 1, 5, 9, 2, 6}
		for c := range 9 {
			for _, v := range vals {
				put(a, c, a.cfg.Computes[c].WriteTo, v, 1_700_000_085)
			}
		}
		now += 100 // everything expired
		got := lines(a.Expire(nil, false))
		now -= 100
		ts := int64(1_700_000_080) + when.off
		want := lines([]byte(strings.Join([]string{
			"s 31.000000", "c 8", "mx 9.000000", "mn 1.000000", "a 3.875000",
			"md 3.000000",  // k = int(0.5*8+0.9) = 4: sorted 1 1 2 3 4 5 6 9 -> 3
			"p90 9.000000", // k = int(7.2+0.9) = 8
			"v 6.609375", "sd 2.570870",
		}, " "+strconv.FormatInt(ts, 10)+"\n") + " " + strconv.FormatInt(ts, 10) + "\n"))
		if !slices.Equal(got, want) {
			t.Errorf("timestamp %q:\ngot  %q\nwant %q", when.name, got, want)
		}
	}
}

// TestBucketsAndDrops: a series' buckets start at ((now - expire) / every)
// * every; older values are late, values past the last bucket are future,
// a series past max_series is refused; all counted.
func TestBucketsAndDrops(t *testing.T) {
	now := int64(1_000_000_007)
	s := spec(10, 25, "start", "sum", "x")
	s.MaxSeries = 2
	a := mustNew(t, s, &now)
	// first bucket: ((1000000007-25)/10)*10 = 999999980; 5 buckets
	// (ceil(25/10) + 2): 999999980 .. 1000000029
	put(a, 0, "x", 1, 999_999_980)
	put(a, 0, "x", 1, 999_999_979)   // late
	put(a, 0, "x", 1, 1_000_000_029) // last bucket
	put(a, 0, "x", 1, 1_000_000_030) // future
	put(a, 0, "y", 1, 1_000_000_000)
	put(a, 0, "z", 1, 1_000_000_000) // third series: refused
	c := a.C
	if c.Late.Load() != 1 || c.Future.Load() != 1 || c.Refused.Load() != 1 || c.Received.Load() != 6 {
		t.Fatalf("late %d future %d refused %d received %d", c.Late.Load(), c.Future.Load(), c.Refused.Load(), c.Received.Load())
	}
	if n, _ := a.Series(); n != 2 {
		t.Fatalf("%d series", n)
	}
}

// TestExpiryTiming: a bucket is emitted once start + expire + spread < now
// (spread < every), not before; a series whose buckets are all empty is
// forgotten; the final flush emits every bucket that has ended.
func TestExpiryTiming(t *testing.T) {
	now := int64(1000)
	a := mustNew(t, spec(10, 20, "end", "sum", "x"), &now)
	put(a, 0, "x", 2, 995) // bucket 990
	put(a, 0, "x", 3, 1005)
	s := a.series[0]["x"]
	spread := s.expire - 20
	if spread < 0 || spread >= 10 {
		t.Fatalf("spread %d", spread)
	}
	now = 990 + 20 + spread // start + expire == now: not yet
	if out := a.Expire(nil, false); len(out) != 0 {
		t.Fatalf("emitted early: %q", out)
	}
	now++
	if got := string(a.Expire(nil, false)); got != "x 2.000000 1000\n" {
		t.Fatalf("got %q", got)
	}
	if got := a.Expire(nil, false); len(got) != 0 {
		t.Fatalf("emitted twice: %q", got)
	}
	// final: the bucket 1000..1010 has ended at 1011
	now = 1011
	if got := string(a.Expire(nil, true)); got != "x 3.000000 1010\n" {
		t.Fatalf("final: %q", got)
	}
	now = 1100
	a.Expire(nil, false)
	if n, _ := a.Series(); n != 0 {
		t.Fatalf("%d series left after everything expired", n)
	}
}

// TestMsortLikeGlibc: carbon-c-relay's comparator truncates the difference
// to an int, so values less than 1 apart are "equal" and keep the order
// the merge sort leaves them in; a difference past an int is INT_MIN.
func TestMsortLikeGlibc(t *testing.T) {
	v := []float64{0.9, 0.1, 0.5, 2.2, 1.5, 0.3}
	msort(v)
	// runs [0.9 0.1 0.5] and [0.3 2.2 1.5] (2.2 and 1.5 are "equal"),
	// merged: 0.9, 0.1 and 0.5 all "equal" 0.3
	want := []float64{0.9, 0.1, 0.5, 0.3, 2.2, 1.5}
	if !slices.Equal(v, want) {
		t.Fatalf("got %v, want %v", v, want)
	}
	if cmpEntry(5e9, 0) != math.MinInt32 || cmpEntry(math.NaN(), 0) != math.MinInt32 || cmpEntry(2.7, 0.5) != 2 || cmpEntry(0.5, 0.9) != 0 {
		t.Fatal("cmpEntry")
	}
}

// TestCFloat: "%f" as C prints it.
func TestCFloat(t *testing.T) {
	for v, want := range map[float64]string{1: "1.000000", 0.1234565: "0.123456", 2.5e-7: "0.000000", -3.25: "-3.250000",
		1e20: "100000000000000000000.000000", math.Inf(1): "inf", math.Inf(-1): "-inf"} {
		if got := string(appendCFloat(nil, v)); got != want {
			t.Errorf("%v: %q, want %q", v, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		s    *Spec
		want string
	}{
		{spec(10, 10, "", "sum", "x"), "greater than every"},
		{spec(0, 10, "", "sum", "x"), "at least 1s"},
		{spec(10, 20, "begin", "sum", "x"), "timestamp"},
		{spec(10, 20, ""), "at least one"},
		{spec(10, 20, "", "percentile100", "x"), "1 to 99"},
		{spec(10, 20, "", "p95", "x"), "want sum"},
		{spec(10, 20, "", "sum", ""), "write_to"},
	} {
		if _, err := Compile(c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.s, err, c.want)
		}
	}
}

// TestMsortAgainstGlibc sorts random arrays (many values less than 1 apart,
// some far apart) with msort and with this machine's glibc qsort and
// carbon-c-relay's comparator (testdata/qsort.c, compiled with cc), and
// wants the same order: it is what carbon-c-relay's percentiles pick from.
func TestMsortAgainstGlibc(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no C compiler (apt-get install gcc): cannot compare with glibc's qsort")
		}
		t.Skip("no C compiler: cannot compare with glibc's qsort")
	}
	bin := filepath.Join(t.TempDir(), "qsort")
	if out, err := exec.Command(cc, "-O2", "-o", bin, "testdata/qsort.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var in strings.Builder
	var arrays [][]float64
	for range 2000 {
		n := r.IntN(200)
		if r.IntN(10) == 0 {
			n = 200 + r.IntN(2000) // past glibc's 1 KiB stack buffer
		}
		v := make([]float64, n)
		scale := []float64{0.5, 3, 1000, 1e10}[r.IntN(4)]
		for i := range v {
			v[i] = math.Round((r.Float64()-0.3)*scale*1000) / 1000
		}
		arrays = append(arrays, v)
		fmt.Fprint(&in, n)
		for _, x := range v {
			fmt.Fprintf(&in, " %.17g", x)
		}
		in.WriteByte('\n')
	}
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(arrays) {
		t.Fatalf("%d lines from qsort, want %d", len(got), len(arrays))
	}
	for i, v := range arrays {
		msort(v)
		var b strings.Builder
		for k, x := range v {
			if k > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s", strconv.FormatFloat(x, 'g', 17, 64))
		}
		if b.String() != got[i] {
			t.Fatalf("array %d (%d values): msort differs from glibc qsort\n got  %s\n want %s", i, len(v), b.String(), got[i])
		}
	}
}

// TestSaveLoad: the buckets still open at shutdown, saved and taken up by
// the same rule after a restart, are emitted as if no restart happened; a
// changed rule does not take them.
func TestSaveLoad(t *testing.T) {
	now := int64(1000)
	s := spec(10, 30, "end", "sum", "s", "percentile50", "p")
	a := mustNew(t, s, &now)
	for _, v := range []float64{1, 2, 3} {
		put(a, 0, "s", v, 1005)
		put(a, 1, "p", v, 1005)
	}
	now = 1008 // the bucket 1000..1010 has not ended: nothing to emit
	if out := a.Expire(nil, true); len(out) != 0 {
		t.Fatalf("final emitted %q", out)
	}
	var buf strings.Builder
	if n, err := a.Save(&buf, "rule-v1"); err != nil || n != 2 {
		t.Fatalf("saved %d series: %v", n, err)
	}
	now = 1012 // restarted
	b := mustNew(t, s, &now)
	if _, err := b.Load(strings.NewReader(buf.String()), "rule-v2"); err == nil {
		t.Fatal("a changed rule took the saved buckets")
	}
	if n, err := b.Load(strings.NewReader(buf.String()), "rule-v1"); err != nil || n != 2 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	put(b, 0, "s", 4, 1006)
	now = 2000
	got := lines(b.Expire(nil, false))
	if want := []string{"p 2.000000 1010", "s 10.000000 1010"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
