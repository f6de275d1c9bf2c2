package etsyconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// literals are object literals the Go parser reads; node must read each to
// the same value.
var literals = []string{
	`{}`,
	`({a: 1})`,
	`(({a: 1}));`,
	"// c\n{a: 1} // end",
	`/* a */ { /* b */ a /* c */ : /* d */ 1 /* e */ , } /* f */`,
	`{'a b': "c", "d'e": 'f"g', $x_1: true, _y: false, z: null}`,
	`{s: 'x\n\t\r\b\f\v\0\x41\u0042\u{1F600}\\\'\"\q', t: "line\
continued", u: "\ud83d\ude00", v: "\u2028"}`,
	`{n: [0, -0, 1.5, .5, 5., -1e3, 1E-7, 1e21, 123456789012345678901234, 0x1F, 0o17, 0b101, 1_000, - - 3, +-2]}`,
	`{big: 1e400, neg: -1e400, tiny: 5e-324}`,
	`{1: 'a', b: 'b', 0: 'c', "2": 'd', 10: 'e', 4294967295: 'f'}`,
	`{a: 1, b: 2, a: 3}`,
	`{a: [1, [2, [3, {b: [ ]}]], ], c: {d: {e: {}}}}`,
	`{1.5: 'x', 1e3: 'y', .25: 'z', 0x10: 'w'}`,
	"{a:\u00a01,\u2028b:\ufeff2}",
	`{graphite: {legacyNamespace: false, globalSuffix: 'h'}, backends: ['./backends/graphite']}`,
}

func TestParseLikeNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed")
		}
		t.Skip("node is not installed")
	}
	dir := t.TempDir()
	for i, src := range literals {
		file := filepath.Join(dir, "c.js")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := EvalNode(t.Context(), node, file)
		if err != nil {
			t.Errorf("%d: node: %v", i, err)
			continue
		}
		got, err := ParseLiteral(src)
		if err != nil {
			t.Errorf("%d: %q: %v", i, src, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d: %q:\nparser %s\nnode   %s", i, src, show(got), show(want))
		}
	}
}

func show(v any) string {
	switch v := v.(type) {
	case *Object:
		var b strings.Builder
		b.WriteString("{")
		for _, k := range v.Keys {
			b.WriteString(k + ":" + show(v.Vals[k]) + " ")
		}
		return b.String() + "}"
	case []any:
		var parts []string
		for _, e := range v {
			parts = append(parts, show(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return "'" + v + "'"
	case float64:
		return jsNumber(v)
	case nil:
		return "null"
	}
	return reflect.ValueOf(v).String()
}

// TestParseRefuses: what is not a plain object literal is an error with
// its line and column (node evaluates such files).
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ src, msg string }{
		{``, "1:1: want an object literal"},
		{`[1]`, "1:1: want an object literal"},
		{"{\n  host: require('os').hostname()\n}", "2:9: require is not a literal"},
		{`{a: 1} + 1`, "1:8: unexpected"},
		{`{a}`, "1:3: want ':' after key \"a\""},
		{`{a: 1 b: 2}`, "1:7: want ',' or '}'"},
		{`{a: [1,,2]}`, "1:8: array holes need node"},
		{`{a: 'x}`, "unterminated string"},
		{"{a: 'x\ny'}", "line break in a string"},
		{`{a: 010}`, "leading zero needs node"},
		{`{a: '\1'}`, "octal escape needs node"},
		{`{a: 0x}`, "bad number"},
		{`{a: 1x}`, "bad number"},
		{`{a: \u0061}`, "unexpected"},
		{`{a: 1`, "want ',' or '}'"},
		{`({a: 1}`, "want ')'"},
		{"{a: `t`}", "unexpected"},
		{`{[k]: 1}`, "want a key"},
		{`{a: NaN}`, "NaN is not a literal"},
		{`{a: 1}; {b: 2}`, "after the object"},
	} {
		_, err := ParseLiteral(c.src)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: %v, want %q", c.src, err, c.msg)
		}
	}
}
