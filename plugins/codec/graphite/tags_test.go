package graphite_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// canonicalCase is one line of testdata/tags/canonical.txt: a path and what
// carbon 1.1.7's TaggedSeries.parse(path).path gave (err: it raised).
type canonicalCase struct {
	path, want string
	err        bool
}

func canonicalCases(tb testing.TB) []canonicalCase {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", "tags", "canonical.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []canonicalCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		h, w, ok := strings.Cut(l, "\t")
		p, err := hex.DecodeString(h)
		if !ok || err != nil {
			tb.Fatalf("bad line %q", l)
		}
		c := canonicalCase{path: string(p), err: w == "error"}
		if !c.err {
			b, err := hex.DecodeString(w)
			if err != nil {
				tb.Fatalf("bad line %q", l)
			}
			c.want = string(b)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) < 3000 {
		tb.Fatalf("%d cases in canonical.txt", len(cases))
	}
	return cases
}

// TestAppendCanonicalCarbon: AppendCanonical gives what carbon's
// TaggedSeries gives for every path of testdata/tags/canonical.txt, and an
// error exactly where carbon raises.
func TestAppendCanonicalCarbon(t *testing.T) {
	for _, c := range canonicalCases(t) {
		got, err := graphite.AppendCanonical([]byte("x"), []byte(c.path))
		switch {
		case c.err && err == nil:
			t.Errorf("AppendCanonical(%q) = %q, carbon raises", c.path, got[1:])
		case !c.err && err != nil:
			t.Errorf("AppendCanonical(%q): %v, carbon gives %q", c.path, err, c.want)
		case !c.err && string(got[1:]) != c.want:
			t.Errorf("AppendCanonical(%q) = %q, carbon gives %q", c.path, got[1:], c.want)
		case c.err && string(got) != "x":
			t.Errorf("AppendCanonical(%q) wrote %q with an error", c.path, got[1:])
		}
		if (graphite.CheckTags([]byte(c.path)) != nil) != c.err {
			t.Errorf("CheckTags(%q) disagrees with carbon (raises: %v)", c.path, c.err)
		}
	}
}

// TestSortTagsCarbon: SortTags on "path 1 2" lines gives carbon's canonical
// path; a line carbon's parse refuses is dropped with an error when its
// path is tagged, kept as it came otherwise; and what it returns parses.
func TestSortTagsCarbon(t *testing.T) {
	for _, c := range canonicalCases(t) {
		if strings.ContainsAny(c.path, " \t") {
			continue
		}
		for _, pre := range []string{"", "  "} {
			in := pre + c.path + " 1.5 1700000000"
			line := []byte(in)
			out, err := graphite.SortTags(line)
			tagged := strings.Contains(c.path, ";") || strings.HasSuffix(c.path, `"}`) && strings.Contains(c.path, "{")
			switch {
			case c.err && tagged:
				if err == nil {
					t.Errorf("SortTags(%q) = %q, want an error", in, out)
				}
				continue
			case c.err:
				if err != nil || string(out) != in {
					t.Errorf("SortTags(%q) = %q, %v: want it unchanged", in, out, err)
				}
				continue
			case err != nil:
				t.Errorf("SortTags(%q): %v", in, err)
				continue
			}
			if want := pre + c.want + " 1.5 1700000000"; string(out) != want {
				t.Errorf("SortTags(%q) = %q, want %q", in, out, want)
			}
			if len(out) > 0 && &out[0] != &line[0] {
				t.Errorf("SortTags(%q) did not rewrite in place", in)
			}
			var m metric.Metric
			if err := graphite.Parse(out, &m); err != nil {
				t.Errorf("Parse(SortTags(%q)): %v", in, err)
			}
		}
	}
}

func TestSortTagsNoAlloc(t *testing.T) {
	for _, in := range []string{
		"a.b.c 1 2",
		"a.b;k=v;z=1 1 2",
		"a.b;z=1;k=v;k=w;name=q;b=2;a=1 1 2",
		"~a.b;z=1;k=v 1 2",
		`a{z="1",k="v\"x"} 1 2`,
		"a;z=1;k 1 2",
	} {
		line := []byte(in)
		if n := testing.AllocsPerRun(50, func() {
			copy(line, in)
			_, _ = graphite.SortTags(line[:len(in)])
		}); n != 0 {
			t.Errorf("SortTags(%q): %v allocs/op", in, n)
		}
	}
}

// TestSortTagsMany: more tags than AppendCanonical sorts on the stack.
func TestSortTagsMany(t *testing.T) {
	var b, want strings.Builder
	b.WriteString("m")
	want.WriteString("m")
	for i := 199; i >= 0; i-- {
		b.WriteString(";t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "=" + "v")
	}
	// sorted by hand: keys "t" + letter + x's
	var keys []string
	for i := range 200 {
		keys = append(keys, "t"+string(rune('a'+i%26))+strings.Repeat("x", i/26))
	}
	sortStrings(keys)
	for _, k := range keys {
		want.WriteString(";" + k + "=v")
	}
	out, err := graphite.SortTags([]byte(b.String() + " 1 2"))
	if err != nil || string(out) != want.String()+" 1 2" {
		t.Fatalf("SortTags = %q, %v\nwant %q", out, err, want.String())
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j-1]+"=" > s[j]+"="; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

func TestCutTag(t *testing.T) {
	var got []string
	for rest := []byte(";k=v;bare;=x;k2=a=b;"); len(rest) > 0; {
		var k, v []byte
		k, v, rest = graphite.CutTag(rest)
		got = append(got, string(k)+"|"+string(v)+"|"+map[bool]string{true: "nil", false: "set"}[v == nil])
	}
	want := []string{"k|v|set", "bare||nil", "|x|set", "k2|a=b|set", "||nil"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("CutTag: %q, want %q", got, want)
	}
}

// FuzzSortTags: SortTags never panics, never lengthens a line, and is
// idempotent but on an OpenMetrics path whose name holds tags (carbon
// appends the OpenMetrics tags after them: "a;t=1{k=\"v\"}" is
// "a;t=1;k=v", whose own canonical form is "a;k=v;t=1").
func FuzzSortTags(f *testing.F) {
	for _, c := range canonicalCases(f)[:200] {
		f.Add([]byte(c.path + " 1 2"))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := bytes.Clone(line)
		out, err := graphite.SortTags(line)
		if err != nil {
			return
		}
		if len(out) > len(in) {
			t.Fatalf("SortTags(%q) = %q: longer", in, out)
		}
		if bytes.IndexByte(in, '{') >= 0 {
			return
		}
		again, err := graphite.SortTags(bytes.Clone(out))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("SortTags(%q) = %q, then %q, %v", in, out, again, err)
		}
	})
}

func BenchmarkSortTags(b *testing.B) {
	for _, in := range []string{
		"servers.web01.cpu.user 42.5 1700000000",
		"servers.cpu.user;dc=ams;env=prod;host=web01 42.5 1700000000",
		"servers.cpu.user;host=web01;env=prod;dc=ams 42.5 1700000000",
	} {
		b.Run(strings.Fields(in)[0], func(b *testing.B) {
			line := []byte(in)
			b.ReportAllocs()
			for b.Loop() {
				copy(line, in)
				_, _ = graphite.SortTags(line)
			}
		})
	}
}
