package prefix_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/plugins/processors/prefix"
	"github.com/metricsrouter/router/registry"
)

// parse builds a batch from "graphite:…" and "statsd:…" lines, all in one
// buffer as an input's read would be; it returns that buffer too.
func parse(t testing.TB, lines ...string) (metric.Batch, []byte) {
	t.Helper()
	var buf []byte
	var ends []int
	for _, l := range lines {
		l = strings.TrimPrefix(strings.TrimPrefix(l, "graphite:"), "statsd:")
		buf = append(buf, l...)
		ends = append(ends, len(buf))
	}
	b := make(metric.Batch, len(lines))
	start := 0
	for i, l := range lines {
		line := buf[start:ends[i]:ends[i]]
		start = ends[i]
		var err error
		if strings.HasPrefix(l, "statsd:") {
			err = statsd.Parse(line, &b[i])
		} else {
			err = graphite.Parse(line, &b[i])
		}
		if err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
	}
	return b, buf
}

func newPrefix(t testing.TB, p string) *prefix.Prefix {
	t.Helper()
	pr := &prefix.Prefix{Prefix: p}
	if err := pr.Init(registry.Env{}); err != nil {
		t.Fatalf("Init(%q): %v", p, err)
	}
	return pr
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		ok           bool
	}{
		{"with separator", "dc1.", true},
		{"without separator", "dc1", true},
		{"utf-8", "région.", true},
		{"empty", "", false},
		{"space", "dc 1.", false},
		{"tab", "dc\t1.", false},
		{"newline", "dc1.\n", false},
		{"carriage return", "dc1.\r", false},
		{"colon (statsd name end)", "dc:1.", false},
		{"pipe (statsd section)", "dc|1.", false},
		{"semicolon (graphite tags)", "dc1;", false},
		{"comma (statsd influx tags)", "dc1,", false},
		{"other punctuation", "a-b_c=d@e#f!.", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&prefix.Prefix{Prefix: tc.prefix}).Init(registry.Env{})
			if (err == nil) != tc.ok {
				t.Fatalf("Init(%q) = %v, want ok %v", tc.prefix, err, tc.ok)
			}
		})
	}
}

func TestFactoryAndSample(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Processors, "prefix")
	if !ok {
		t.Fatal("processors.prefix is not registered")
	}
	if err := p.New().(*prefix.Prefix).Init(registry.Env{}); err == nil {
		t.Error("the factory's empty prefix passes Init")
	}
	var pr prefix.Prefix
	if err := plugintest.DecodeSample(p.Sample, "processors", "prefix", &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Prefix != "dc1." {
		t.Fatalf("sample prefix %q", pr.Prefix)
	}
}

func TestProcess(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		path     string // Path() after
		metName  string // Name() after
		graphite string // codec graphite output (now = 1)
		statsd   string // codec statsd output
	}{
		{
			name: "graphite path", in: "graphite:a.b.c 1.5 1700000000",
			path: "dc1.a.b.c", metName: "dc1.a.b.c",
			graphite: "dc1.a.b.c 1.5 1700000000", statsd: "dc1.a.b.c:1.5|g",
		},
		{
			name: "graphite tags stay after the name", in: "graphite:a.b;k=v;dc=eu 2 1700000000",
			path: "dc1.a.b;k=v;dc=eu", metName: "dc1.a.b",
			graphite: "dc1.a.b;k=v;dc=eu 2 1700000000", statsd: "dc1.a.b:2|g|#k:v,dc:eu",
		},
		{
			name: "graphite line with odd blanks is rendered clean", in: "graphite:  a\t3  1700000000\r",
			path: "dc1.a", metName: "dc1.a",
			graphite: "dc1.a 3 1700000000", statsd: "dc1.a:3|g",
		},
		{
			name: "statsd bucket", in: "statsd:hits:1|c",
			path: "dc1.hits", metName: "dc1.hits",
			graphite: "dc1.hits 1 1", statsd: "dc1.hits:1|c",
		},
		{
			name: "statsd influx tags stay after the name", in: "statsd:lat,host=a,dc=eu:12|ms|@0.1",
			path: "dc1.lat,host=a,dc=eu", metName: "dc1.lat",
			graphite: "dc1.lat;dc=eu;host=a 12 1", statsd: "dc1.lat,host=a,dc=eu:12|ms|@0.1",
		},
		{
			name: "dogstatsd tags, time and unknown sections kept", in: "statsd:g:-2|g|#env:prod,bare|T1700000000|c:xyz",
			path: "dc1.g", metName: "dc1.g",
			graphite: "dc1.g;env=prod -2 1700000000", statsd: "dc1.g:-2|g|#env:prod,bare|T1700000000|c:xyz",
		},
		{
			name: "statsd set member", in: "statsd:users:alice|s",
			path: "dc1.users", metName: "dc1.users",
			graphite: "", statsd: "dc1.users:alice|s", // Graphite cannot carry a set member: refused
		},
		{
			name: "etsy multi-metric line: every metric is the renamed bucket", in: "statsd:multi:1|c:2|ms",
			path: "dc1.multi", metName: "dc1.multi",
			graphite: "", statsd: "dc1.multi:1|c:2|ms", // nor two values
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := parse(t, tc.in)
			b = newPrefix(t, "dc1.").Process(b)
			if len(b) != 1 {
				t.Fatalf("Process returned %d metrics", len(b))
			}
			m := &b[0]
			if !m.Modified() {
				t.Error("a prefixed metric still claims its raw line")
			}
			if string(m.Path()) != tc.path || string(m.Name()) != tc.metName {
				t.Errorf("path %q name %q, want %q %q", m.Path(), m.Name(), tc.path, tc.metName)
			}
			want := tc.graphite + "\n"
			if tc.graphite == "" {
				want = ""
			}
			if got := string(graphite.Append(nil, m, 1)); got != want {
				t.Errorf("graphite: %q, want %q", got, want)
			}
			if got := string(statsd.Append(nil, m, metric.Untyped)); got != tc.statsd+"\n" {
				t.Errorf("statsd: %q, want %q", got, tc.statsd+"\n")
			}
		})
	}
}

// TestProcessKeepsNameAndTagsApart: whatever prefix Init accepts ends up in
// the name, and the tags stay what they were.
func TestProcessKeepsNameAndTagsApart(t *testing.T) {
	in := []string{"graphite:a.b;k=v 1 1", "graphite:plain 1 1", "statsd:c,host=x:1|c", "statsd:plain:1|c|#k:v"}
	for _, p := range []string{"dc1.", "dc1", "a-b_c=d@e#f!.", "dc1;", "dc1,", "k=v;", "x,y=z."} {
		t.Run(p, func(t *testing.T) {
			pr := &prefix.Prefix{Prefix: p}
			if pr.Init(registry.Env{}) != nil {
				return // rejected: nothing to check
			}
			b, _ := parse(t, in...)
			var names, tags []string
			for i := range b {
				names = append(names, string(b[i].Name()))
				tags = append(tags, string(b[i].PathTags()))
			}
			b = pr.Process(b)
			for i := range b {
				if got, want := string(b[i].Name()), p+names[i]; got != want {
					t.Errorf("%s: name %q, want %q", in[i], got, want)
				}
				if got := string(b[i].PathTags()); got != tags[i] {
					t.Errorf("%s: path tags %q, want %q", in[i], got, tags[i])
				}
			}
		})
	}
}

// TestProcessBatch: every metric of a mixed batch is prefixed once, in place,
// and the input's bytes are not written to (other outputs may share them).
func TestProcessBatch(t *testing.T) {
	var lines, want []string
	for i := range 500 {
		if i%2 == 0 {
			lines = append(lines, fmt.Sprintf("graphite:g.%d;k=%d %d 1700000000", i, i, i))
			want = append(want, fmt.Sprintf("pre_g.%d;k=%d %d 1700000000\n", i, i, i))
		} else {
			lines = append(lines, fmt.Sprintf("statsd:s.%d,k=%d:%d|c", i, i, i))
			want = append(want, fmt.Sprintf("pre_s.%d,k=%d:%d|c\n", i, i, i))
		}
	}
	b, buf := parse(t, lines...)
	orig := bytes.Clone(buf)
	out := newPrefix(t, "pre_").Process(b)
	if len(out) != len(b) || &out[0] != &b[0] {
		t.Fatal("Process did not return the batch it was given")
	}
	for i := range out {
		var got []byte
		if out[i].Format() == metric.StatsD {
			got = statsd.Append(nil, &out[i], metric.Untyped)
		} else {
			got = graphite.Append(nil, &out[i], 0)
		}
		if string(got) != want[i] {
			t.Fatalf("metric %d: %q, want %q", i, got, want[i])
		}
	}
	if !bytes.Equal(buf, orig) {
		t.Fatal("Process wrote into the input's buffer")
	}
	if got := newPrefix(t, "x.").Process(metric.Batch{}); len(got) != 0 {
		t.Fatalf("empty batch: %d metrics", len(got))
	}
}

// TestProcessAllocations: the new paths of a batch share one allocation.
func TestProcessAllocations(t *testing.T) {
	orig, work := benchBatch(t)
	p := newPrefix(t, "dc1.")
	if n := testing.AllocsPerRun(50, func() {
		copy(work, orig)
		p.Process(work)
	}); n > 1 {
		t.Fatalf("Process allocates %v times per batch, want at most 1", n)
	}
}

// benchBatch returns 1000 parsed metrics (half Graphite with tags, half
// StatsD) and a batch to copy them into before each Process.
func benchBatch(t testing.TB) (orig, work metric.Batch) {
	lines := make([]string, 1000)
	for i := range lines {
		if i%2 == 0 {
			lines[i] = fmt.Sprintf("graphite:servers.web%d.cpu.user;dc=eu %d.5 1700000000", i, i)
		} else {
			lines[i] = fmt.Sprintf("statsd:api.requests,host=web%d:%d|c|@0.5", i, i)
		}
	}
	orig, _ = parse(t, lines...)
	return orig, make(metric.Batch, len(orig))
}

func BenchmarkProcess(b *testing.B) {
	orig, work := benchBatch(b)
	p := newPrefix(b, "dc1.")
	b.ReportAllocs()
	for b.Loop() {
		copy(work, orig) // Process works in place: start from the parsed batch each time
		p.Process(work)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(orig)), "ns/metric")
}
