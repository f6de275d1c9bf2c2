package selector

import (
	"fmt"
	"strings"
	"testing"
)

// name60 pads a metric name with path components to exactly 60 bytes.
func name60(head, tail string) []byte {
	mid := strings.Repeat("x", 60-len(head)-len(tail)-2)
	n := head + "." + mid + "." + tail
	if len(n) != 60 {
		panic(fmt.Sprintf("name60: %d bytes", len(n)))
	}
	return []byte(n)
}

// globs10 are ten Graphite-style patterns of the usual shapes: prefix,
// suffix, infix, ranges, alternatives, `?` and `**`.
var globs10 = []string{
	"carbon.agents.*", "stats.timers.*.p99", "servers.*.cpu.*", "*.memory.*", "collectd.{web,db}*.load.*",
	"app.[a-f]*.requests", "statsd.??.count", "*.disk.sd?.*", "prod.*.latency.**", "**.errors",
}

type benchCase struct {
	label  string
	sel    *Selector
	name60 []byte
}

func mustCompile(pass, drop []string, separators string) *Selector {
	s, err := Compile(pass, drop, separators)
	if err != nil {
		panic(err)
	}
	return s
}

func benchCases() []benchCase {
	exact100 := make([]string, 100)
	for i := range exact100 {
		exact100[i] = string(name60(fmt.Sprintf("servers.host-%03d", i), "cpu.user"))
	}
	hitExact := []byte(exact100[73])
	missExact := name60("servers.host-999", "cpu.user")
	hitGlob := name60("web-01.app", "errors") // matches only the last pattern
	missGlob := name60("web-01.app", "warnings")
	cases := []benchCase{
		{"nil", nil, hitExact},
		{"exact1/hit", mustCompile(exact100[:1], nil, ""), []byte(exact100[0])},
		{"exact1/miss", mustCompile(exact100[:1], nil, ""), missExact},
		{"exact100/hit", mustCompile(exact100, nil, ""), hitExact},
		{"exact100/miss", mustCompile(exact100, nil, ""), missExact},
		{"exact100_separators/hit", mustCompile(exact100, nil, "."), hitExact},
		{"exact100_separators/miss", mustCompile(exact100, nil, "."), missExact},
		{"globs10/hit", mustCompile(globs10, nil, ""), hitGlob},
		{"globs10/miss", mustCompile(globs10, nil, ""), missGlob},
		{"globs10_separators/hit", mustCompile(globs10, nil, "."), hitGlob},
		{"globs10_separators/miss", mustCompile(globs10, nil, "."), missGlob},
		{"exact100_drop_globs10/pass", mustCompile(exact100, globs10, "."), hitExact},
		{"exact100_drop_globs10/drop", mustCompile(append([]string{string(hitGlob)}, exact100...), globs10, "."), hitGlob},
	}
	return cases
}

func BenchmarkPass(b *testing.B) {
	for _, c := range benchCases() {
		b.Run(c.label, func(b *testing.B) {
			b.ReportAllocs()
			var passed int
			for b.Loop() {
				if c.sel.Pass(c.name60) {
					passed++
				}
			}
			if passed != 0 && passed != b.N {
				b.Fatalf("Pass changed its answer: %d of %d", passed, b.N)
			}
		})
	}
}

func TestBenchCases(t *testing.T) {
	// The benchmarks measure what their labels say.
	for _, c := range benchCases() {
		want := !strings.HasSuffix(c.label, "/miss") && !strings.HasSuffix(c.label, "/drop")
		if got := c.sel.Pass(c.name60); got != want {
			t.Errorf("%s: Pass = %v", c.label, got)
		}
		if len(c.name60) != 60 {
			t.Errorf("%s: name of %d bytes", c.label, len(c.name60))
		}
	}
	s := mustCompile(globs10, nil, "")
	hit := name60("web-01.app", "errors")
	for i, p := range globs10 {
		one := mustCompile([]string{p}, nil, "")
		if got, want := one.Pass(hit), i == len(globs10)-1; got != want {
			t.Errorf("pattern %q: Pass(%q) = %v", p, hit, got)
		}
	}
	if !s.Pass(hit) {
		t.Error("globs10 drops its hit")
	}
}
