package statsdagg

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestJSNumber(t *testing.T) {
	// Expected texts are those of node's String(x).
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {0.1, "0.1"},
		{0.30000000000000004, "0.30000000000000004"}, {2.0 / 3, "0.6666666666666666"},
		{1e-6, "0.000001"}, {1e-7, "1e-7"}, {1.5e-7, "1.5e-7"}, {123e-20, "1.23e-18"},
		{1e20, "100000000000000000000"}, {1e21, "1e+21"}, {1.5e21, "1.5e+21"},
		{123456789012345680000, "123456789012345680000"}, {1 << 60, "1152921504606847000"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
		{-0.000001234, "-0.000001234"}, {1e15, "1000000000000000"}, {999999999999999.9, "999999999999999.9"},
	} {
		if got := jsNumber(c.f); got != c.want {
			t.Errorf("jsNumber(%v) = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestJSToNumber(t *testing.T) {
	for _, c := range []struct {
		s    string
		want float64
		ok   bool
	}{
		{"", 0, true}, {"  ", 0, true}, {" 1 ", 1, true}, {"+1", 1, true}, {"-1.5e3", -1500, true},
		{".5", 0.5, true}, {"5.", 5, true}, {"1E+2", 100, true}, {"0x10", 16, true}, {"0o17", 15, true},
		{"0b101", 5, true}, {"Infinity", math.Inf(1), true}, {"-Infinity", math.Inf(-1), true},
		{"1e999", math.Inf(1), true}, {"\u00a01\ufeff", 1, true},
		{"-0x10", 0, false}, {"0x", 0, false}, {".", 0, false}, {"1e", 0, false}, {"inf", 0, false},
		{"NaN", 0, false}, {"1_0", 0, false}, {"0x1p3", 0, false}, {"1 2", 0, false}, {"abc", 0, false},
		{"infinity", 0, false}, {"1.2.3", 0, false},
	} {
		got, ok := jsToNumber(c.s)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("jsToNumber(%q) = %v, %v; want %v, %v", c.s, got, ok, c.want, c.ok)
		}
	}
}

// TestJSNumberNode compares jsNumber and jsToNumber with node itself on
// random doubles and on their texts.
func TestJSNumberNode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var bits []string
	var fs []float64
	for i := 0; i < 3000; i++ {
		var f float64
		switch i % 3 {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = r.Float64() * math.Pow(10, float64(r.IntN(50)-25))
		default:
			f = float64(r.IntN(1000000)) / float64(1+r.IntN(1000))
		}
		if math.IsNaN(f) {
			continue
		}
		fs = append(fs, f)
		bits = append(bits, jsNumber(f))
	}
	in, _ := json.Marshal(fs)
	// node prints String(x) for each number, and the text parsed back.
	cmd := exec.Command("node", "-e", `let a=JSON.parse(require('fs').readFileSync(0,'utf8'));`+
		`console.log(JSON.stringify(a.map(x=>[String(x), Number(String(x))===x])))`)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var res [][2]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		if res[i][0] != bits[i] {
			t.Errorf("jsNumber(%b) = %q, node says %q", f, bits[i], res[i][0])
		}
		if g, ok := jsToNumber(bits[i]); !ok || g != f {
			t.Errorf("jsToNumber(%q) = %v, %v; want %b", bits[i], g, ok, f)
		}
	}
}

func TestAddAndFlush(t *testing.T) {
	c := DefaultConfig()
	c.FlushInterval = 2 * time.Second
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"a:1|c", "a:3|c|@0.5", "g:5|g", "g:-2|g", "t:3|ms:1|ms", "s:x|s:y|s", "x|c"} {
		err := s.Add([]byte(l))
		if (err != nil) != (l == "x|c") {
			t.Errorf("Add(%q) = %v", l, err)
		}
		if err != nil && !errors.Is(err, ErrBadLine) {
			t.Errorf("Add(%q) = %v, not ErrBadLine", l, err)
		}
	}
	got := string(s.Flush(100, nil))
	for _, want := range []string{
		"stats.a 3.5 100\n", "stats_counts.a 7 100\n", "stats.gauges.g 3 100\n", "stats.sets.s.count 2 100\n",
		"stats.timers.t.upper_90 3 100\n", "stats.timers.t.count_ps 1 100\n", "stats.timers.t.median 2 100\n",
		"stats_counts.statsd.bad_lines_seen 1 100\n", "stats_counts.statsd.metrics_received 7 100\n",
		"statsd.numStats 7 100\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("flush lacks %q:\n%s", want, got)
		}
	}
	got = string(s.Flush(102, nil))
	for _, want := range []string{
		"stats.a 0 102\n", "stats.gauges.g 3 102\n", "stats.sets.s.count 0 102\n",
		"stats.timers.t.count 0 102\n", "stats.gauges.statsd.timestamp_lag 0 102\n", "statsd.numStats 8 102\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("second flush lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "stats.timers.t.upper ") {
		t.Errorf("second flush has timer statistics of an empty timer:\n%s", got)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a zero FlushInterval")
	}
}

var benchLines = [][]byte{
	[]byte("api.requests.count:1|c"), []byte("api.latency:12.5|ms|@0.5"), []byte("pool.size:+3|g"),
	[]byte("users.seen:u12345|s"), []byte("api.requests.count:2|c|#env:prod,dc:eu"),
}

func BenchmarkAdd(b *testing.B) {
	s, _ := New(DefaultConfig())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.Add(benchLines[i%len(benchLines)])
		if i%100000 == 0 {
			s.Flush(1, nil)
		}
	}
}

func BenchmarkFlush(b *testing.B) {
	s, _ := New(DefaultConfig())
	var keys [][]byte
	for i := 0; i < 1000; i++ {
		keys = append(keys, []byte("svc.counter."+strings.Repeat("x", i%7)+string(rune('a'+i%26))+jsNumber(float64(i))+":1|c"),
			[]byte("svc.timer."+jsNumber(float64(i))+":"+jsNumber(float64(i%97))+"|ms"),
			[]byte("svc.gauge."+jsNumber(float64(i))+":5|g"))
	}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, k := range keys {
			_ = s.Add(k)
		}
		b.StartTimer()
		dst = s.Flush(1700000000, dst[:0])
	}
}

// flushMap flushes s into name -> value text.
func flushMap(t *testing.T, s *State) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(s.Flush(1700000000, nil))), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad line %q", l)
		}
		m[f[0]] = f[1]
	}
	return m
}

func TestMaxSeries(t *testing.T) {
	c := DefaultConfig()
	c.MaxSeries = 3
	s, _ := New(c)
	for _, l := range []string{"a:1|c", "b:1|ms", "c:1|g", "d:1|s", "e:1|c", "a:2|c", "b:3|ms"} {
		if err := s.Add([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Series() != 3 || s.Refused() != 2 {
		t.Fatalf("series %d refused %d, want 3 and 2", s.Series(), s.Refused())
	}
	m := flushMap(t, s)
	if m["stats_counts.a"] != "3" || m["stats.timers.b.count"] != "2" || m["stats.gauges.c"] != "1" {
		t.Fatalf("kept keys wrong: %v", m)
	}
	if _, ok := m["stats.sets.d.count"]; ok {
		t.Fatal("a refused key was written")
	}
	// timestamp_lag (from the second flush on) does not count
	s.Flush(1700000010, nil)
	if s.Series() != 3 {
		t.Fatalf("series %d after the lag gauge, want 3", s.Series())
	}
	// deleted keys free room
	c.DeleteCounters, c.DeleteTimers = true, true
	s, _ = New(c)
	_ = s.Add([]byte("a:1|c"))
	_ = s.Add([]byte("b:1|ms"))
	_ = s.Add([]byte("c:1|g"))
	s.Flush(1700000000, nil)
	_ = s.Add([]byte("x:1|c"))
	if s.Series() != 2 || s.Refused() != 0 {
		t.Fatalf("series %d refused %d after deletion, want 2 and 0", s.Series(), s.Refused())
	}
}

func TestAddPackets(t *testing.T) {
	s, _ := New(DefaultConfig())
	s.AddPackets(3)
	_ = s.AddPacket([]byte("a:1|c\nb:1|c"))
	if m := flushMap(t, s); m["stats_counts.statsd.packets_received"] != "4" || m["stats_counts.statsd.metrics_received"] != "2" {
		t.Fatalf("packets %s metrics %s, want 4 and 2", m["stats_counts.statsd.packets_received"], m["stats_counts.statsd.metrics_received"])
	}
}

func TestTimerTypes(t *testing.T) {
	lines := []string{"lat:3|ms", "lat:5|h", "lat:7|d", "neg:-1|h"}
	etsy, _ := New(DefaultConfig())
	c := DefaultConfig()
	c.TimerTypes = []string{"ms", "h", "d"}
	dog, _ := New(c)
	var dogBad int
	for _, l := range lines {
		_ = etsy.Add([]byte(l))
		if dog.Add([]byte(l)) != nil {
			dogBad++
		}
	}
	e, d := flushMap(t, etsy), flushMap(t, dog)
	// Etsy: h and d are counters; "neg:-1|h" is a counter of -1
	if e["stats.timers.lat.count"] != "1" || e["stats_counts.lat"] != "12" || e["stats_counts.neg"] != "-1" {
		t.Fatalf("Etsy's types: %v", e)
	}
	if d["stats.timers.lat.count"] != "3" || d["stats.timers.lat.mean"] != "5" || d["stats_counts.lat"] != "" || dogBad != 1 {
		t.Fatalf("timer types ms, h, d: %v (bad %d)", d, dogBad)
	}
}

func TestInfluxTags(t *testing.T) {
	s, _ := New(DefaultConfig())
	for _, l := range []string{"req,host=a b,dc=eu:1|c", "req,host=a b,dc=eu:2|c|#env:prod", "plain,notag:1|c", "t,k=v:4|ms",
		"semi,k=a;b:1|c", "empty,k=!!:1|c", "emptyk,=v:1|c", "part,k=v,x:1|c", "dog:1|c|#z:1,a:2", "g,k=v:5|g", "s,k=v:x|s"} {
		if err := s.Add([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	m := flushMap(t, s)
	for name, want := range map[string]string{
		"stats_counts.req;host=a_b;dc=eu":          "1",
		"stats_counts.req;host=a_b;dc=eu;env=prod": "2",
		"stats_counts.plainnotag":                  "1", // not k=v: Etsy's sanitizing
		"stats.timers.t.mean;k=v":                  "4",
		"stats_counts.semi;k=a_b":                  "1", // a ';' would make two tags
		"stats_counts.emptyk=":                     "1", // a value sanitized away: Etsy's key
		"stats_counts.emptyk=v":                    "1", // an empty tag name: Etsy's key
		"stats_counts.partk=vx":                    "1", // not every part a k=v: Etsy's key
		"stats_counts.dog;z=1;a=2":                 "1", // DogStatsD tags unsorted, as Etsy
		"stats.gauges.g;k=v":                       "5",
		"stats.sets.s.count;k=v":                   "1",
	} {
		if m[name] != want {
			t.Errorf("%s = %q, want %q", name, m[name], want)
		}
	}
}

func TestHistogramNames(t *testing.T) {
	c := DefaultConfig()
	c.Histogram = []Histogram{{"lat", []float64{0.5, 10, math.Inf(1)}}}
	s, _ := New(c)
	for _, l := range []string{"lat:0.1|ms", "lat:5|ms", "lat:9.99|ms", "lat:10|ms", "lat:1e6|ms", "other:1|ms"} {
		_ = s.Add([]byte(l))
	}
	m := flushMap(t, s)
	if m["stats.timers.lat.histogram.bin_0_5"] != "1" || m["stats.timers.lat.histogram.bin_10"] != "2" || m["stats.timers.lat.histogram.bin_inf"] != "2" {
		t.Fatalf("bins: %v", m)
	}
	if _, ok := m["stats.timers.other.histogram.bin_10"]; ok {
		t.Fatal("a timer no entry matches has bins")
	}
}

// BenchmarkFlush1M flushes a million keys: 600k counters, 300k timers of 3
// values each, 100k gauges.
func BenchmarkFlush1M(b *testing.B) {
	c := DefaultConfig()
	c.MaxSeries = 0
	s, _ := New(c)
	var lines [][]byte
	for i := range 1_000_000 {
		n := jsNumber(float64(i))
		switch {
		case i%10 < 6:
			lines = append(lines, []byte("svc.c."+n+":1|c"))
		case i%10 < 9:
			for v := range 3 {
				lines = append(lines, []byte("svc.t."+n+":"+jsNumber(float64(i%97+v))+"|ms"))
			}
		default:
			lines = append(lines, []byte("svc.g."+n+":5|g"))
		}
	}
	add := func() {
		for _, l := range lines {
			_ = s.Add(l)
		}
	}
	// one flush first, as every flush after a server's first: the output
	// buffer and the line index have their size
	add()
	dst := s.Flush(1700000000, nil)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		add()
		b.StartTimer()
		dst = s.Flush(1700000000, dst[:0])
	}
}

// TestAllocs holds Add to 0 allocations for the lines of existing keys and
// Flush to 0 allocations once its buffers have their size, with and without
// the delete options.
func TestAllocs(t *testing.T) {
	lines := [][]byte{
		[]byte("api.count:1|c"), []byte("api.count:2|c|@0.5|#env:prod,dc:eu"), []byte("api.lat:12.5|ms|@0.5"),
		[]byte("api.h:3|h"), []byte("pool:+3|g"), []byte("users:u1|s"), []byte("req,host=a b,dc=eu:1|c"),
		[]byte("multi:1|c:2|c"),
	}
	for _, del := range []bool{false, true} {
		c := DefaultConfig()
		c.TimerTypes = []string{"ms", "h", "d"}
		c.Histogram = []Histogram{{"lat", []float64{1, 10, math.Inf(1)}}}
		c.DeleteCounters, c.DeleteTimers, c.DeleteGauges, c.DeleteSets, c.GaugesMaxTTL = del, del, del, del, 3
		c.MaxSeries = 100
		s, _ := New(c)
		add := func() {
			for _, l := range lines {
				_ = s.Add(l)
			}
		}
		add()
		dst := s.Flush(1, nil)
		add()
		dst = s.Flush(2, dst[:0])
		add()
		if n := testing.AllocsPerRun(100, add); n != 0 {
			t.Errorf("delete %v: Add: %v allocations per run of existing keys", del, n)
		}
		dst = s.Flush(3, dst[:0]) // of the 100 runs' values
		// a set member new in an interval is copied: count Flush alone
		var before, after runtime.MemStats
		var n uint64
		for range 20 {
			add()
			runtime.ReadMemStats(&before)
			dst = s.Flush(3, dst[:0])
			runtime.ReadMemStats(&after)
			n += after.Mallocs - before.Mallocs
		}
		if n != 0 {
			t.Errorf("delete %v: Flush: %d allocations in 20 flushes", del, n)
		}
	}
}

func TestGaugesTTL(t *testing.T) {
	c := DefaultConfig()
	c.DeleteGauges, c.GaugesMaxTTL = true, 3
	s, _ := New(c)
	_ = s.Add([]byte("a:1|g"))
	_ = s.Add([]byte("b:2|g"))
	has := func(m map[string]string, k string) bool { _, ok := m[k]; return ok }
	for i, want := range []struct{ a, b bool }{{true, true}, {true, true}, {true, true}, {true, false}, {false, false}} {
		if i == 1 {
			_ = s.Add([]byte("a:+1|g")) // a delta resets the TTL too
		}
		m := flushMap(t, s)
		if has(m, "stats.gauges.a") != want.a || has(m, "stats.gauges.b") != want.b {
			t.Fatalf("flush %d: a %v b %v, want %v %v", i+1, has(m, "stats.gauges.a"), has(m, "stats.gauges.b"), want.a, want.b)
		}
		if i == 0 && m["stats.gauges.a"] != "1" || i == 1 && m["stats.gauges.a"] != "2" {
			t.Fatalf("flush %d: a = %s", i+1, m["stats.gauges.a"])
		}
	}
	// the lag gauge stays; gaugesMaxTTL 0 counts as 1
	c.GaugesMaxTTL = 0
	s, _ = New(c)
	_ = s.Add([]byte("a:1|g"))
	flushMap(t, s)
	if m := flushMap(t, s); has(m, "stats.gauges.a") || !has(m, "stats.gauges.statsd.timestamp_lag") {
		t.Fatalf("TTL 0: %v", m)
	}
	if s.Series() != 0 {
		t.Fatalf("series %d after the deletion, want 0", s.Series())
	}
}

func TestResolveDeleteIdle(t *testing.T) {
	f, tr := false, true
	if a, b, c, d := ResolveDeleteIdle(true, &f, nil, nil, &tr); a || !b || !c || !d {
		t.Errorf("deleteIdleStats true: %v %v %v %v", a, b, c, d)
	}
	if a, b, c, d := ResolveDeleteIdle(false, nil, &tr, nil, nil); a || !b || c || d {
		t.Errorf("deleteIdleStats false: %v %v %v %v", a, b, c, d)
	}
}

func TestHistogramSameNames(t *testing.T) {
	c := DefaultConfig()
	// 2.50 and 2.5 are one name: node keeps one property, at the first
	// place, with the last value
	c.Histogram = []Histogram{{"x", nil}, {"lat", []float64{5, 2.5, 10, 2.50, 1e21, math.Inf(-1)}}}
	s, _ := New(c)
	for _, l := range []string{"lat:1|ms", "lat:3|ms", "lat:7|ms", "xlat:1|ms"} {
		_ = s.Add([]byte(l))
	}
	var got []string
	for _, l := range strings.Split(string(s.Flush(1, nil)), "\n") {
		if strings.Contains(l, "histogram") {
			got = append(got, strings.Fields(l)[0]+"="+strings.Fields(l)[1])
		}
	}
	want := []string{"stats.timers.lat.histogram.bin_5=2", "stats.timers.lat.histogram.bin_2_5=0",
		"stats.timers.lat.histogram.bin_10=1", "stats.timers.lat.histogram.bin_1e+21=0",
		"stats.timers.lat.histogram.bin_-Infinity=0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("bins\n got %v\nwant %v", got, want)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, tt := range [][]string{{""}, {"g"}, {"s"}, {" h"}, {"a|b"}, {"a:b"}} {
		c := DefaultConfig()
		c.TimerTypes = tt
		if _, err := New(c); err == nil {
			t.Errorf("New accepted timer types %q", tt)
		}
	}
	c := DefaultConfig()
	c.MaxSeries = -1
	if _, err := New(c); err == nil {
		t.Error("New accepted MaxSeries -1")
	}
	c = DefaultConfig()
	c.Histogram = []Histogram{{"a", []float64{math.NaN()}}}
	if _, err := New(c); err == nil {
		t.Error("New accepted a NaN bin")
	}
}

// TestSize checks the estimate Flush sizes its buffers by: every line
// counted, and the bytes too while values take at most valueRoom bytes.
func TestSize(t *testing.T) {
	for _, legacy := range []bool{true, false} {
		c := DefaultConfig()
		c.LegacyNamespace, c.GlobalSuffix = legacy, "sfx"
		c.PercentThreshold = []float64{90, -10, 99.9, 150}
		c.Histogram = []Histogram{{"lat", []float64{1, 2.5, 2.5, math.Inf(1)}}}
		c.FlushCounts = legacy
		s, _ := New(c)
		for _, l := range []string{"a:1|c", "b;k=v:2|c", "lat:1|ms:2|ms:3|ms", "lat2:4|ms", "t:1|ms", "g:1|g", "s:a|s", "bad"} {
			_ = s.Add([]byte(l))
		}
		for i := range 4 {
			if i == 2 {
				_ = s.Add([]byte("t:5|ms"))
			}
			lines, bytes := s.size(len("1700000000"))
			if i == 1 {
				lines++ // the lag gauge, from the second flush on
				bytes += len("stats.gauges.statsd.timestamp_lag.sfx -0.0000000001 1700000000\n")
			}
			out := s.Flush(1700000000, []byte("before\n"))
			if lines < len(s.Lines()) || bytes < len(out)-len("before\n") {
				t.Errorf("legacy %v flush %d: estimated %d lines, %d bytes; wrote %d, %d", legacy, i+1, lines, bytes, len(s.Lines()), len(out)-7)
			}
			if l := s.Lines()[0]; string(out[7+l.Start:7+l.End]) != strings.SplitN(string(out), "\n", 3)[1] {
				t.Errorf("Lines are not offsets from the text appended: %+v in %q", l, out)
			}
		}
	}
}
