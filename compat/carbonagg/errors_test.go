package carbonagg

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricsrouter/router/registry"
)

// run converts text as dir/f.conf with an empty plugin registry (the
// errors stop before the router's check).
func run(t *testing.T, text string, args ...string) (int, string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "f.conf")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Run(registry.New(), append(args, file), &out, &errb)
	return code, out.String(), strings.ReplaceAll(errb.String(), file, "f.conf")
}

// errorCases: a rule line, the exit status, the message. 1: carbon
// refuses the line, or fails on every metric it matches; 2: the router
// cannot express it.
var errorCases = []struct {
	line string
	code int
	msg  string
}{
	{"a.b (60) = p999 a.<x>", 2, "method p999: not supported by router"},
	{"a (60) = sum", 1, "want output_template (frequency) = method input_pattern"},
	{"a (60) sum b", 1, "want output_template"},
	{"a (60) = sum b # a comment", 1, "want output_template"},
	{"a b (60) = sum c", 1, "want output_template"},
	{"a (sixty) = sum b", 1, "frequency (sixty): not a number"},
	{"a (6__0) = sum b", 1, "frequency (6__0): not a number"},
	{"a (0) = sum b", 1, "frequency (0): carbon fails on every metric the rule matches"},
	{"a (-60) = sum b", 1, "frequency (-60): carbon fails on every metric"},
	{"a (99999999999999) = sum b", 2, "more seconds than the router's durations hold"},
	{"a (60) = median b", 1, "method median: not one of carbon's"},
	{"a (0) = median b", 1, "method median"},
	{"<a>.<b> (60) = sum <a>.<a>", 1, "field <a> twice"},
	{"<1a> (60) = sum x.<1a>", 1, `field name "1a" is not an identifier`},
	{"x (60) = sum a.<>", 1, "a field without a name"},
	{"x (60) = sum a.>>b<<", 1, "a field without a name"},
	{"<x> (60) = sum a.<y>", 1, "<x> is not a field of the input pattern"},
	{"<<x>> (60) = sum a.<<x>>", 1, "<<x>> in the output: carbon fills <x>"},
	{"x<a (60) = sum <a>", 1, "a '<' without its '>'"},
	{"x%q (60) = sum a", 1, `"%q": carbon fails on every metric`},
	{"x% (60) = sum a", 1, `"%": carbon fails on every metric`},
	{"<a>.<b>.<c>.<d>.<e>.<f>.<g>.<h>.<i>.<j> (60) = sum <a>.<b>.<c>.<d>.<e>.<f>.<g>.<h>.<i>.<j>", 2, "10 fields; the router's expressions have at most 9 groups"},
	{"<a>.<b> (60) = sum <<a>>.<<b>>", 2, "two <<fields>>"},
	{"x (60) = sum (a|b).c", 2, `'(' (carbon hands the pattern to Python's re`},
	{"x (60) = sum a.[^b]", 2, "a negated bracket expression"},
	{"<a> (60) = sum <a>x*", 2, `"*" next to a field`},
	{"<a> (60) = sum <a>\\d+", 2, `"+" next to a field`},
	{"<a> (60) = sum x?<a>", 2, `"?" next to a field`},
	{"x (60) = sum a\\w", 2, `the regular expression escape \w`},
	{"x (60) = sum a\\*", 2, `\* (carbon replaces the '*'`},
	{"x (60) = sum a*+", 2, `"+" after a quantifier or glob (lazy or possessive)`},
	{"x (60) = sum a.+b", 2, `"+" at the start of a part`},
	{"x (60) = sum a{1001}", 2, "the router repeats at most 1000 times"},
	{"x (60) = sum a[b", 1, "a '[' without its ']'"},
	{"x (60) = sum a[b.c]", 2, "a bracket expression that does not end in its part"},
	{"x (60) = sum a\\q", 1, `bad escape \q`},
	{"x (60) = sum a[z-a]", 1, "bad character range z-a"},
	{"x (60) = sum a{3,2}", 1, "min repeat greater than max repeat"},
	{"x (60) = sum +a", 1, "nothing to repeat"},
	{"x (60) = sum a+{2}", 1, "multiple repeat"},
	{"x (60) = sum a(b", 1, "a '(' without its ')'"},
	{"x (60) = sum a)b", 1, "a ')' without its '('"},
	{"x (60) = p999 a)b", 1, "a ')' without its '('"},
	{"x (60) = p999 ^a.[c-a]", 1, "bad character range"},
	{"x\\y.<a> (60) = sum <a>", 2, `a '\' (the router's write_to has no way to write one)`},
	{"x%s.<a> (60) = sum <a>", 2, `"%s" (a Python % format`},
	{"x\\y.<b> (60) = sum <a>", 1, "<b> is not a field"},
}

// TestErrors: each line fails with its file, line and exit status, and
// nothing is printed; where carbon is installed its parse_definition
// refuses exactly the lines said to be refused.
func TestErrors(t *testing.T) {
	for _, c := range errorCases {
		code, out, errs := run(t, "# first line\n"+c.line+"\n")
		if code != c.code || out != "" || !strings.HasPrefix(errs, "router convert: f.conf:2: ") || !strings.Contains(errs, c.msg) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %q (want %q)", c.line, code, c.code, out, errs, c.msg)
		}
	}
	t.Run("carbon", func(t *testing.T) {
		needCarbon(t)
		var lines []string
		for _, c := range errorCases {
			lines = append(lines, c.line)
		}
		for i, v := range carbonLines(t, lines) {
			_, errs := Parse("f.conf", lines[i])
			refused := len(errs) > 0 && !errs[0].Unsupported && !errs[0].atRun
			if (v != "ok") != refused {
				t.Errorf("%q: carbon %s; converter %v", lines[i], v, errs)
			}
		}
	})
}

// TestErrorsFile: every line's problem is listed in file order; one that
// carbon refuses makes the exit status 1; lines end as Python's do.
func TestErrorsFile(t *testing.T) {
	code, out, errs := run(t, "a (60) = p999 b\r\n# c\rbad line\n\n<x> (60) = sum y\n")
	want := "router convert: f.conf:1: method p999: not supported by router: its percentiles are whole numbers from 1 to 99\n" +
		"router convert: f.conf:3: want output_template (frequency) = method input_pattern\n" +
		"router convert: f.conf:5: output template <x>: <x> is not a field of the input pattern: carbon fails on every metric the rule matches\n"
	if code != 1 || out != "" || errs != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
	if code, _, errs := run(t, "a (60) = p999 b\nc (60) = sum d\\w\n"); code != 2 || strings.Count(errs, "\n") != 2 {
		t.Errorf("unsupported only: exit %d, %s", code, errs)
	}
	if code, _, errs := run(t, "a (60) = sum b\xff\n"); code != 1 || errs != "router convert: f.conf: not UTF-8 text (carbon reads the file as UTF-8)\n" {
		t.Errorf("not UTF-8: exit %d, %s", code, errs)
	}
}

// TestParse: the translation of each construct.
func TestParse(t *testing.T) {
	for _, c := range []struct{ line, match, writeTo, compute string }{
		{"<env>.all.requests (60) = sum <env>.*.requests", `^([^.]+)\.[^.]+\.requests$`, `\1.all.requests`, "sum"},
		{"x.<rest> (60) = avg a.<<rest>>", `^a\.(.+)$`, `x.\1`, "average"},
		{"<b>.<a> (60) = min p<a>q.<b>", `^p([^.]+)q\.([^.]+)$`, `\2.\1`, "min"},
		{"<a>1.<a>_1.<a>x (60) = max <a>", `^([^.]+)$`, `\g{1}1.\1_1.\1x`, "max"},
		{"n (60) = count a*b.*.c*", `^a[^.]*b\.[^.]+\.c[^.]*$`, `n`, "count"},
		{"<d> (60) = p50 <d>\\d{2}", `^([^.]+)[0-9]{2}$`, `\1`, "median"},
		{"x (60) = p99 a[0-9_]+.b?c{2,}.d{,3}", `^a[0-9_]+\.b?c{2,}\.d{0,3}$`, `x`, "percentile99"},
		{"%%.a>b (60) = sum \\+\\{}{a\\é", `^\+\{\}\{aé$`, `%.a)sb`, "sum"},
		{"x (60) = sum a+.b$c", "", "", ""},
	} {
		rs, errs := Parse("f.conf", c.line)
		if c.match == "" {
			if len(errs) == 0 {
				t.Errorf("%q: no error", c.line)
			}
			continue
		}
		if len(errs) > 0 || len(rs) != 1 {
			t.Errorf("%q: %v", c.line, errs)
			continue
		}
		if r := rs[0]; r.Match != c.match || r.WriteTo != c.writeTo || r.Compute != c.compute {
			t.Errorf("%q: match %q write_to %q compute %q, want %q %q %q", c.line, r.Match, r.WriteTo, r.Compute, c.match, c.writeTo, c.compute)
		}
	}
}
