package crelay

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// FuzzParse: the parser never panics and never hangs on any input; what
// it accepts converts without panicking, and what converts is TOML whose
// strings hold exactly what the configuration said.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/golden/*.conf")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	for _, s := range differentialCases("/tmp/crelay-fuzz") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if bytes.Contains(src, []byte("include")) {
			return // reads other files
		}
		cfg, err := parseText("fuzz.conf", src, Options{})
		if err != nil {
			var e *Error
			if !errorsAs(err, &e) || e.File != "fuzz.conf" {
				t.Fatalf("error without its place: %v", err)
			}
			return
		}
		out, errs := Convert(cfg, ConvertOptions{Command: "fuzz"})
		if len(errs) > 0 {
			for _, e := range errs {
				if e.File != "fuzz.conf" {
					t.Fatalf("error without its place: %v", e)
				}
			}
			return
		}
		var v map[string]any
		if _, err := toml.Decode(out.TOML, &v); err != nil {
			t.Fatalf("not TOML: %v\n%s", err, out.TOML)
		}
		if strings.Count(out.TOML, "\n") != len(out.Origin) {
			t.Fatalf("%d lines, %d origins", strings.Count(out.TOML, "\n"), len(out.Origin))
		}
		// every rule's expressions come back as written
		var doc struct {
			Rules []struct {
				Match   any    `toml:"match"`
				Rewrite string `toml:"rewrite"`
				Into    string `toml:"into"`
			} `toml:"rules"`
		}
		if _, err := toml.Decode(out.TOML, &doc); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range doc.Rules {
			switch m := r.Match.(type) {
			case string:
				got = append(got, m)
			case []any:
				for _, x := range m {
					got = append(got, x.(string))
				}
			}
			if r.Rewrite != "" {
				got = append(got, r.Rewrite, r.Into)
			}
		}
		var want []string
		for _, r := range cfg.Rules {
			want = append(want, r.Exprs...)
			if r.Kind == Rewrite {
				into, _ := routerInto(r.Into)
				want = append(want, into)
			}
		}
		if len(cfg.Rules) > 0 && strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("expressions\n got %q\nwant %q", got, want)
		}
	})
}

// FuzzERE: checkERE never panics on any expression.
func FuzzERE(f *testing.F) {
	for _, s := range []string{"a(", "[[:alpha:]]", "a{1,2}", "(a)\\1", "[z-a]", "\\", "[[.", "a**", "^*", "x{,3}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, re string) {
		checkERE(re)
	})
}

// FuzzQuote: basic and literal strings decode to exactly the string, and
// never hold "${" for the loader to expand.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"a", "it's", "${HOME}", "a\\b\"c", "\x01\x7f\t\n", "é", "$${x}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, q := range []func(string) string{basic, literal} {
			text := "v = " + q(s) + "\n"
			if strings.Contains(text, "${") {
				t.Fatalf("%q holds ${", text)
			}
			var v struct{ V string }
			if _, err := toml.Decode(text, &v); err != nil {
				t.Fatalf("%q: %v", text, err)
			}
			if v.V != s {
				t.Fatalf("%q decodes to %q, want %q", text, v.V, s)
			}
		}
	})
}

func errorsAs(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}
