package crelay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/crelaytest"

	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// The differential tests run carbon-c-relay 3.7.3 itself (-t prints the
// configuration it parsed) on the same files as the parser and require the
// same verdict and, when it accepts, the same parsed configuration.

const testHostname = "Relay1.Example.org"

// systemLookup resolves as carbon-c-relay does on this machine.
func systemLookup(host string) ([]netip.Addr, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(as) == 0 {
		return nil, false
	}
	for i := range as {
		as[i] = as[i].Unmap()
	}
	return as, true
}

// crelayVerdict runs carbon-c-relay -t on dir/name: ok when it accepted
// the configuration (exit 0), crashed when it died of a signal, and the
// parsed configuration it printed.
func crelayVerdict(t *testing.T, bin, dir, name string) (ok, crashed bool, parsed, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-t", "-O", "-1", "-H", testHostname, "-f", name)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		ok = true
	case errors.As(err, &ee):
		crashed = ee.ExitCode() == -1
	default:
		t.Fatalf("carbon-c-relay: %v", err)
	}
	text := out.String()
	if i := strings.Index(text, "parsed configuration follows:\n"); i >= 0 {
		parsed = text[i+len("parsed configuration follows:\n"):]
	}
	return ok, crashed, parsed, errb.String()
}

// differ checks one configuration text against carbon-c-relay; it returns
// a description of the disagreement, or "", and whether both accepted it.
func differ(t *testing.T, bin, dir, text string) (string, bool) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "relay.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ok, crashed, parsed, stderr := crelayVerdict(t, bin, dir, "relay.conf")
	cfg, err := Parse(filepath.Join(dir, "relay.conf"), Options{Dir: dir, Lookup: systemLookup, ProbePaths: true})
	switch {
	case crashed:
		if err != nil {
			return "", false
		}
		if _, errs := Convert(cfg, ConvertOptions{}); len(errs) > 0 {
			return "", false
		}
		return "carbon-c-relay crashed, the converter accepts it", false
	case !ok && err == nil:
		return "carbon-c-relay refuses (" + strings.TrimSpace(stderr) + "), the parser accepts it", false
	case ok && err != nil:
		return fmt.Sprintf("carbon-c-relay accepts, the parser refuses: %v", err), false
	case !ok:
		return "", false
	}
	if got := dump(cfg, testHostname) + "\n"; got != parsed {
		return fmt.Sprintf("parsed configurations differ:\n--- carbon-c-relay\n%s\n--- parser\n%s", parsed, got), true
	}
	return "", true
}

// TestDifferentialCases: hand-picked corners of the scanner, the grammar
// and the checks.
func TestDifferentialCases(t *testing.T) {
	bin := crelaytest.Bin(t)
	dir := t.TempDir()
	for i, text := range differentialCases(dir) {
		if d, _ := differ(t, bin, dir, text); d != "" {
			t.Errorf("case %d:\n%s\n%s", i, text, d)
		}
	}
}

func differentialCases(dir string) []string {
	f := filepath.Join(dir, "out.log")
	const ca = "cluster a forward 127.0.0.1;\n"
	return []string{
		"",
		"# only a comment\n",
		"# a comment without newline",
		ca + "match * send to a;\n",
		"cluster a forward 127.0.0.1 match foo send to a;\n",
		"clustera forward 127.0.0.1;\n",
		"cluster a forward127.0.0.1:2004;\n",
		"cluster a\n  forward\n    127.0.0.1:2003 proto udp\n    127.0.0.2 proto tcp type linemode transport plain\n  ;\n",
		"cluster a forward 127.0.0.1 transport plain ssl;\n",
		"cluster a forward 127.0.0.1 transport plain mtls c.pem k.pem;\n",
		"cluster a forward 127.0.0.1 proto udp transport plain ssl;\n",
		"listen type linemode transport plain ssl x.pem 2003 proto tcp /tmp/router-crelay-ssl.sock proto unix;\n" + ca,
		"listen type linemode transport plain ssl x.pem 2003 proto tcp; listen type linemode 2004 proto tcp;\n" + ca,
		"listen type linemode transport plain mtls c.pem 2003 proto tcp;\n" + ca,
		"listen type linemode transport plain ssl 2003 proto tcp;\n" + ca,
		"listen type linemode ssl x.pem 2003 proto tcp;\n" + ca,
		"cluster a forward 127.0.0.1 type syslog;\n",
		"cluster a forward 127.0.0.1 proto tcp type linemode; cluster b any_of 127.0.0.1 type syslog;\n",
		"cluster a carbon_ch replication 2 dynamic 127.0.0.1=a 127.0.0.2:2004=b;\n",
		"cluster a carbon_ch replication 3 127.0.0.1=a 127.0.0.2:2004=b;\n",
		"cluster a carbon_ch replication 0 127.0.0.1;\n",
		"cluster a carbon_ch replication 256 127.0.0.1;\n",
		"cluster a carbon_ch replication 429496730 127.0.0.1;\n",
		"cluster a fnv1a_ch 127.0.0.1=007 127.0.0.2=99999999999;\n",
		"cluster a jump_fnv1a_ch 127.0.0.1=\"x y\" [::1]=2 [::1]:2004=3;\n",
		"cluster a forward 127.0.0.1=a; cluster b carbon_ch 127.0.0.1;\n",
		"cluster a carbon_ch 127.0.0.1=a; cluster b carbon_ch 127.0.0.1=b;\n",
		"cluster a carbon_ch 127.0.0.1=a; cluster b carbon_ch 127.0.0.1=a;\n",
		"cluster a forward 127.0.0.1; cluster b any_of 127.0.0.1 127.0.0.2;\n",
		"cluster b any_of 127.0.0.1 127.0.0.2; cluster a forward 127.0.0.1;\n",
		"cluster b failover 127.0.0.1 127.0.0.1;\n",
		"cluster a forward 127.0.0.1; cluster a forward 127.0.0.2;\n",
		"cluster blackhole forward 127.0.0.1;\n",
		"cluster a forward 127.0.0.1:0;\n",
		"cluster a forward 127.0.0.1:65536;\n",
		"cluster a forward \"127.0.0.1:+2004\";\n",
		"cluster a forward \"127.0.0.1: 2004\";\n",
		"cluster a forward 127.0.0.1:20x;\n",
		"cluster a forward [::1;\n",
		"cluster a forward ::1 [::2] [::3]:2004;\n",
		"cluster a forward \"[]:2003\";\n",
		"cluster a forward 127.1 0x7f.2;\n",
		"cluster a forward useall 127.0.0.1 [::1]:2004 localhost:2005;\n",
		"cluster a forward 127.0.0.1:2003 localhost:2003;\n",
		"cluster a forward 127.0.0.1:2003; cluster b any_of localhost:2003;\n",
		"cluster a forward nonexistent.invalid:2003 nonexistent.invalid:2004;\n",
		"cluster a file " + f + "; cluster b file ip " + f + " " + f + "2;\n",
		"cluster a file \"" + f + "\"; match * send to a;\n",
		"cluster \"tcp\" forward 127.0.0.1; match * send to \"tcp\";\n",
		"cluster tcp forward 127.0.0.1;\n",
		"cluster ip forward 127.0.0.1;\n",
		"cluster \"\" forward 127.0.0.1;\n",
		"cluster a\\ b forward 127.0.0.1; match * send to a\\ b;\n",
		"cluster \"a;b\" forward 127.0.0.1; match * send to \"a;b\";\n",
		ca + "match ^a\\.b \\.c$ ^d$ e_f validate ^[0-9.]+\\ [0-9]+$ else log send to a stop;\n",
		ca + "match \"*\" foo send to a;\n",
		ca + "match * foo send to a;\n",
		ca + "match *foo send to a;\n",
		ca + "match foo send to blackhole a;\n",
		ca + "match foo send to \"blackhole\" a;\n",
		ca + "match foo send to a \"blackhole\" stop;\n",
		ca + "match foo send to b;\n",
		ca + "match foo validate x else drop;\nmatch bar validate y else log stop;\n",
		ca + "match foo;\n",
		ca + "match foo stop;\n",
		ca + "match foo route using bar send to a;\n",
		ca + "match foo send to a route using bar;\n",
		ca + "match a( send to a;\n",
		ca + "match a) send to a;\n",
		ca + "match (a)\\1 send to a;\n",
		ca + "match (a\\1) send to a;\n",
		ca + "match a** send to a;\n",
		ca + "match ^* send to a;\n",
		ca + "match a{2}{3} a{,3} a{1 send to a;\n",
		ca + "match a{3,2} send to a;\n",
		ca + "match a{32768} send to a;\n",
		ca + "match [[:alpha:][:foo:]] send to a;\n",
		ca + "match [z-a] send to a;\n",
		ca + "match [a-z-0] send to a;\n",
		ca + "match []a] [^]a] [a-] [[.-.]] [[=a=]] [[.ab.]] send to a;\n",
		ca + "match \\w+\\s\\b\\<x\\>\\d send to a;\n",
		ca + "match foo\\ send to a;\n",
		ca + "match \"foo\\\\\" send to a;\n",
		ca + "match a| |b (|a) () send to a;\n",
		ca + "match " + strings.Repeat("(a)", 64) + " send to a;\n",
		ca + "match " + strings.Repeat("(a)", 63) + " send to a;\n",
		ca + "match \"a b\" \"#x\" \"c\\\"d\" send to a;\n",
		ca + "match \"#\" send to a;\n\" x;\n",
		ca + "match \"a\n\nb\" send to a;\n",
		ca + "match \"a\nb\" send to a;\n",
		ca + "match \"\" send to a;\n",
		ca + "match \"" + strings.Repeat("x", 1023) + "\" send to a;\n",
		ca + "match \"" + strings.Repeat("x", 1024) + "\" send to a;\n",
		ca + "match \"unterminated send to a;\n",
		ca + "match foo send to a;\x00garbage\n",
		"rewrite ^a\\.(.*) into b.\\1;\nrewrite x into \"y z\";\nrewrite \"*\" into y;\n",
		"rewrite a( into b;\n",
		"rewrite send into b;\n",
		"rewrite env\\.app\\.POS.\\.yadda\\.count into env.app.POS#.yadda.count;\n; # end\n",
		ca + "aggregate ^a\\.(.*) every 10 seconds expire after 20 seconds timestamp at start of bucket compute sum write to x.\\1 compute percentile95 write to y compute cnt write to z send to a stop;\n",
		ca + "aggregate ^a every 10 seconds expire after 10 seconds compute sum write to x;\n",
		ca + "aggregate ^a every 0 seconds expire after 10 seconds compute sum write to x;\n",
		ca + "aggregate ^a every 10 seconds expire after 20 seconds compute percentile write to x;\n",
		ca + "aggregate ^a every 10 seconds expire after 20 seconds compute percentile100 write to x;\n",
		ca + "aggregate * every 10 seconds expire after 20 seconds compute sum write to x;\n",
		ca + "statistics submit every 10 seconds reset counters after interval prefix with foo.\\_2.\\.1 send to a stop;\n",
		ca + "statistics prefix with x;\nstatistics submit every 5 seconds;\n",
		ca + "statistics reset counters after interval;\nstatistics prefix with y;\n",
		ca + "statistics submit every 0 seconds;\n",
		ca + "statistics send to a;\nsend statistics to a;\n",
		ca + "send statistics to a \"blackhole\" stop;\n",
		ca + "statistics send to blackhole;\n",
		ca + "statistics prefix with every;\n",
		ca + "statistics prefix with \"a b\";\n",
		"listen type linemode 2003 proto tcp 2003 proto udp " + filepath.Join(dir, "s.sock") + " proto unix;\n",
		"listen type linemode 2003 proto tcp; listen type linemode 127.0.0.1:2003 proto tcp;\n",
		"listen type linemode 127.0.0.1:2003 proto tcp [::1]:2003 proto tcp [::]:2004 proto tcp 2004 proto udp;\n",
		"listen type linemode 127.0.0.1:2003 proto tcp localhost:2003 proto tcp;\n",
		"listen type linemode nonexistent.invalid:2003 proto tcp;\n",
		"listen type linemode \"[]:2003\" proto tcp;\n",
		"listen type linemode 0:2003 proto tcp 2003 proto tcp;\n",
		"listen type linemode 123456789012345678901234567890 proto tcp;\n",
		"listen type linemode transport plain 2003 proto tcp;\n",
		"listen type linemode transport plain ssl /nonexistent.pem 2003 proto tcp 2004 proto tcp;\n",
		"listen type linemode transport plain ssl /nonexistent.pem 2003 proto udp;\n",
		"listen type linemode 2003 proto tcp; listen type linemode 2003 proto tcp;\n",
		"listen type linemode " + filepath.Join(dir, "s.sock") + " proto unix " + filepath.Join(dir, "s.sock") + " proto unix;\n",
		"listen type linemode 2003;\n",
		"include nonexistent.conf;\n",
		"include nonexistent*.conf;\n",
		"include " + dir + ";\n",
		"cluster a forward 127.0.0.1;;\n",
		"cluster a forward 127.0.0.1; stop;\n",
		ca + "match foo send to a\n",
		"match\n",
		"cluster a forward 127.0.0.1\n",
	}
}

// TestDifferentialRandom: generated configurations, then mutated byte by
// byte (keywords, quotes, comments, escapes, separators), through both.
func TestDifferentialRandom(t *testing.T) {
	bin := crelaytest.Bin(t)
	dir := t.TempDir()
	n := 200
	if testing.Short() {
		n = 50
	}
	if v, err := strconv.Atoi(os.Getenv("CRELAY_DIFF_N")); err == nil {
		n = v
	}
	rng := rand.New(rand.NewPCG(3, 7))
	fails, both := 0, 0
	defer func() { t.Logf("%d configurations, %d accepted by both", n, both) }()
	for i := range n {
		text := randomConfig(rng, dir)
		if i%3 != 0 {
			text = mutate(rng, text)
		}
		d, accepted := differ(t, bin, dir, text)
		if accepted {
			both++
		}
		if d != "" {
			t.Errorf("random config %d:\n%s\n%s", i, text, d)
			if fails++; fails == 5 {
				t.FailNow()
			}
		}
	}
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randomConfig(rng *rand.Rand, dir string) string {
	names := []string{"a", "b", `"c d"`, "e-f", "g.h"}
	hosts := []string{"127.0.0.1", "127.0.0.2:2004", "[::1]", "[::1]:2005", "::1", "127.0.0.3:2003=x", "127.0.0.4=7", "10.0.0.1 proto udp", "127.0.0.5 proto tcp type linemode", "127.0.0.6 transport plain", "localhost:2006"}
	exprs := []string{"*", "^a", "b$", "^c$", "d", "^sys\\.", "\\.count$", "(x|y)\\.z", `"q r"`, "a.b", "[a-z]+", "^(foo)\\.(bar)"}
	var b strings.Builder
	var defined []string
	stmts := 2 + rng.IntN(6)
	for range stmts {
		switch rng.IntN(9) {
		case 0, 1, 2:
			name := pick(rng, names)
			defined = append(defined, name)
			switch k := rng.IntN(6); k {
			case 0:
				fmt.Fprintf(&b, "cluster %s file %s;\n", name, filepath.Join(dir, "f"+fmt.Sprint(rng.IntN(3))))
			default:
				typ := pick(rng, []string{"forward", "any_of", "failover", "carbon_ch", "fnv1a_ch replication 2", "jump_fnv1a_ch dynamic", "forward useall"})
				fmt.Fprintf(&b, "cluster %s %s", name, typ)
				for range 1 + rng.IntN(3) {
					fmt.Fprintf(&b, "\n    %s", pick(rng, hosts))
				}
				b.WriteString("\n    ;\n")
			}
		case 3, 4:
			fmt.Fprintf(&b, "match %s", pick(rng, exprs))
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&b, " %s", pick(rng, exprs))
			}
			if rng.IntN(4) == 0 {
				b.WriteString(" validate ^[0-9.]+\\ [0-9]+$ else drop")
			}
			if rng.IntN(5) > 0 {
				b.WriteString(" send to")
				if len(defined) == 0 || rng.IntN(4) == 0 {
					b.WriteString(" blackhole")
				} else {
					for range 1 + rng.IntN(2) {
						fmt.Fprintf(&b, " %s", pick(rng, defined))
					}
				}
			}
			if rng.IntN(2) == 0 {
				b.WriteString(" stop")
			}
			b.WriteString(";\n")
		case 5:
			fmt.Fprintf(&b, "rewrite %s into %s;\n", pick(rng, exprs[1:]), pick(rng, []string{"x.\\1", "\\_1.y", `"a b"`}))
		case 6:
			b.WriteString("statistics")
			if rng.IntN(2) == 0 {
				fmt.Fprintf(&b, " submit every %d seconds", rng.IntN(100))
			}
			if rng.IntN(3) == 0 {
				b.WriteString(" reset counters after interval")
			}
			if rng.IntN(2) == 0 {
				b.WriteString(" prefix with " + pick(rng, []string{"x.\\1", "carbon.\\_2", "\\.1.y", "p"}))
			}
			if len(defined) > 0 && rng.IntN(3) == 0 {
				b.WriteString(" send to " + pick(rng, defined))
			}
			b.WriteString(";\n")
		case 7:
			b.WriteString("listen type linemode")
			for range 1 + rng.IntN(2) {
				fmt.Fprintf(&b, " %s", pick(rng, []string{"2003 proto tcp", "2003 proto udp", "127.0.0.1:2004 proto tcp", "[::1]:2004 proto udp", filepath.Join(dir, "sock") + " proto unix"}))
			}
			b.WriteString(";\n")
		case 8:
			b.WriteString(pick(rng, []string{"# a comment\n", "aggregate ^a every 10 seconds expire after 20 seconds compute sum write to x;\n", "\n"}))
		}
	}
	return b.String()
}

// mutate changes a few bytes: deletes, duplicates, or inserts a piece of
// the configuration language.
func mutate(rng *rand.Rand, s string) string {
	pieces := []string{";", "\"", "#", "\\", "\n", " ", "=", "*", "[", "]", ":", "stop", "send to ", "blackhole", "proto", "udp", "ip", "a", "0", "9", "\\ ", "{", "(", ")", "\t", "\r", "match", "cluster", "."}
	for range 1 + rng.IntN(3) {
		if len(s) == 0 {
			s = pick(rng, pieces)
			continue
		}
		i := rng.IntN(len(s))
		switch rng.IntN(3) {
		case 0:
			s = s[:i] + s[i+1:]
		case 1:
			s = s[:i] + pick(rng, pieces) + s[i:]
		case 2:
			j := min(len(s), i+1+rng.IntN(8))
			s = s[:i] + s[i:j] + s[i:]
		}
	}
	return s
}

// TestDifferentialRegex: random extended regular expressions, whether
// glibc's regcomp (through carbon-c-relay) and checkERE agree. Many go in
// one file; carbon-c-relay names the first it refuses, which is then
// checked and dropped, and the rest is run again.
func TestDifferentialRegex(t *testing.T) {
	bin := crelaytest.Bin(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 13))
	pieces := []string{"a", "b", "(", ")", "[", "]", "{", "}", "*", "+", "?", "|", "^", "$", ".", "\\", "-", ",", "1", "2", ":", "=",
		"[:alpha:]", "[:foo:]", "[.a.]", "[.-.]", "[=a=]", "[.ab.]", "\\1", "\\2", "\\w", "\\b", "\\<", "\\d", "{2}", "{1,3}", "{,2}", "{3,1}", "{1,}", "{x}", "[^", "[]", "a-z", "z-a", "()", "(a)"}
	var res []string
	n := 800
	if testing.Short() {
		n = 200
	}
	for len(res) < n {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			b.WriteString(pick(rng, pieces))
		}
		// "*" alone is carbon-c-relay's match-all, never compiled
		if re := b.String(); needsRegex(re) && re != "*" {
			res = append(res, re)
		}
	}
	enc := func(re string) string {
		var b strings.Builder
		for i := 0; i < len(re); i++ {
			b.WriteByte('\\')
			b.WriteByte(re[i])
		}
		return b.String()
	}
	lineRe := regexp.MustCompile(`relay\.conf:(\d+):\d+: invalid expression`)
	valid, invalid := 0, 0
	for len(res) > 0 {
		var b strings.Builder
		b.WriteString("cluster a forward 127.0.0.1;\n")
		for _, re := range res {
			fmt.Fprintf(&b, "match \"%s\" send to a;\n", enc(re))
		}
		if err := os.WriteFile(filepath.Join(dir, "relay.conf"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		ok, _, _, stderr := crelayVerdict(t, bin, dir, "relay.conf")
		bad := len(res) // the index of the one refused
		if !ok {
			m := lineRe.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("carbon-c-relay: %s", stderr)
			}
			n, _ := strconv.Atoi(m[1])
			bad = n - 2
		}
		for _, re := range res[:bad] {
			if _, msg := checkERE(re); msg != "" {
				t.Errorf("%q: glibc accepts it, checkERE: %s", re, msg)
			}
			valid++
		}
		if bad < len(res) {
			invalid++
			if _, msg := checkERE(res[bad]); msg == "" {
				t.Errorf("%q: glibc refuses it (%s), checkERE accepts it", res[bad], strings.TrimSpace(stderr))
			}
			res = res[bad+1:]
			continue
		}
		res = nil
	}
	t.Logf("%d valid, %d invalid expressions", valid, invalid)
}

// WriteTree writes files (path -> content) under dir; exported for the
// external tests.
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDifferentialInclude: include statements with globs and relative
// paths read the same files in the same order as carbon-c-relay.
func TestDifferentialInclude(t *testing.T) {
	bin := crelaytest.Bin(t)
	dir := t.TempDir()
	files := map[string]string{
		"conf.d/B.conf":       "cluster B forward 127.0.0.1:2002;\n",
		"conf.d/a.conf":       "cluster a forward 127.0.0.1:2003;\n",
		"conf.d/a-b.conf":     "cluster ab forward 127.0.0.1:2013;\n",
		"conf.d/.hidden.conf": "cluster hidden forward 127.0.0.1:2014;\n",
		"conf.d/other.txt":    "cluster txt forward 127.0.0.1:2015;\n",
		"sub/inner.conf":      "include sub/leaf.conf;\n",
		"sub/leaf.conf":       "cluster leaf forward 127.0.0.1:2004;\n",
		"d1/p/x1.conf":        "cluster x1 forward 127.0.0.1:2005;\n",
		"d2/q/x2.conf":        "cluster x2 forward 127.0.0.1:2006;\n",
		"d2/q/x22.conf":       "cluster x22 forward 127.0.0.1:2016;\n",
		"d2-/q/x3.conf":       "cluster x3 forward 127.0.0.1:2017;\n",
		"negated/a.conf":      "cluster na forward 127.0.0.1:2012;\n",
		"negated/b.conf":      "cluster nb forward 127.0.0.1:2018;\n",
		"negated/-.conf":      "cluster nminus forward 127.0.0.1:2019;\n",
	}
	WriteTree(t, dir, files)
	for i, text := range []string{
		"include conf.d/*.conf;\ninclude sub/inner.conf;\n",
		"include \"d[0-9]*/*/x?.conf\";\n",
		"include \"d*/q/x*\";\n",
		"include \"negated/[!a].conf\";\ninclude negated/[^b].conf;\n",
		"include \"negated/[a-].conf\";\n",
		"include \"negated/[[:alpha:]].conf\";\n",
		"include conf.d/.*.conf;\n",
		"include conf.d/*;\n",
		"include ./conf.d/a*.conf;\n",
		"include " + dir + "/conf.d/[aB].conf;\n",
		"include conf.d;\n",
		"include nothing/*.conf;\n",
		"include sub/inner.conf\n",
	} {
		if d, _ := differ(t, bin, dir, text); d != "" {
			t.Errorf("case %d:\n%s\n%s", i, text, d)
		}
	}
}

// TestDifferentialRewrite: carbon-c-relay 3.7's replacements, converted,
// rename metrics in the router's rule chain exactly as carbon-c-relay -t
// shows it does (\g is where the languages differ).
func TestDifferentialRewrite(t *testing.T) {
	bin := crelaytest.Bin(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 8))
	pieces := []string{`\g`, `\g{`, `}`, `\_`, `\^`, `\.`, `\1`, `\2`, `\3`, `\4`, `1`, `0`, `x`, `.`, `\\`, `{`, `g`, `\0`, `A`}
	n := 300
	if testing.Short() {
		n = 100
	}
	var conf strings.Builder
	var input strings.Builder
	intos := make([]string, n)
	conf.WriteString("cluster a forward 127.0.0.1;\n")
	for k := range n {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(pick(rng, pieces))
		}
		intos[k] = b.String()
		var enc strings.Builder
		for i := 0; i < len(intos[k]); i++ {
			enc.WriteByte('\\')
			enc.WriteByte(intos[k][i])
		}
		fmt.Fprintf(&conf, "rewrite ^m%d\\.(a)\\.(B)\\.(c) into \"%s\";\n", k, enc.String())
		fmt.Fprintf(&input, "m%d.a.B.c.d 1 2\n", k)
	}
	conf.WriteString("match * send to a;\n")
	file := filepath.Join(dir, "relay.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-O", "-1", "-f", "relay.conf")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(input.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("carbon-c-relay: %v", err)
	}
	var want []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "    into(") {
			want = append(want, l[strings.LastIndex(l, " -> ")+4:])
		}
	}
	if len(want) != n {
		t.Fatalf("%d rewrites in the trace, want %d", len(want), n)
	}
	cfg, err := Parse(file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for k, r := range cfg.Rules[:n] {
		if r.Into != intos[k] {
			t.Fatalf("rule %d: into %q, want %q", k, r.Into, intos[k])
		}
		into, ch := routerInto(r.Into)
		if ch {
			changed++
		}
		ch2, err := rules.Compile([]rules.Spec{{Rewrite: r.Exprs[0], Into: &into}}, func(string) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		var m metric.Metric
		if err := graphite.Parse([]byte(fmt.Sprintf("m%d.a.B.c.d 1 2", k)), &m); err != nil {
			t.Fatal(err)
		}
		tr := ch2.Explain(m)
		if len(tr.Steps) != 1 || tr.Steps[0].Rewritten != want[k] {
			t.Errorf("into %q (router: %q): carbon-c-relay %q, router %+v", r.Into, into, want[k], tr.Steps)
		}
	}
	t.Logf("%d replacements, %d rewritten for \\g", n, changed)
}
