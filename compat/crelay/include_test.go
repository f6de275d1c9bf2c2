package crelay_test

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/metricsrouter/router/compat/crelay"
)

// tree writes files (path -> content) under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	crelay.WriteTree(t, dir, files)
	return dir
}

// clusters lists the clusters in order with the file and line of each.
func clusters(cfg *crelay.Config) []string {
	var out []string
	for _, c := range cfg.Clusters {
		out = append(out, c.Name+"@"+c.File+":"+strconv.Itoa(c.Line))
	}
	return out
}

// TestInclude: include reads files in place; relative paths are read from
// the directory carbon-c-relay runs in (Options.Dir), not from the
// including file's; globs (also in directory components) expand in byte
// order, without names that start with a dot; the top file may be a glob.
func TestInclude(t *testing.T) {
	dir := tree(t, map[string]string{
		"relay.conf":          "cluster top forward 127.0.0.1:2001;\ninclude conf.d/*.conf;\ninclude sub/inner.conf;\ninclude \"d[0-9]/*/x?.conf\";\ncluster end forward 127.0.0.1:2009;\n",
		"conf.d/B.conf":       "cluster B forward 127.0.0.1:2002;\n",
		"conf.d/a.conf":       "\n\ncluster a forward 127.0.0.1:2003;\n",
		"conf.d/.hidden.conf": "not read\n",
		"conf.d/other.txt":    "not read\n",
		"sub/inner.conf":      "include sub/leaf.conf;\n",
		"sub/leaf.conf":       "cluster leaf forward 127.0.0.1:2004;\n",
		"d1/p/x1.conf":        "cluster x1 forward 127.0.0.1:2005;\n",
		"d2/q/x2.conf":        "cluster x2 forward 127.0.0.1:2006;\n",
		"d2/q/x22.conf":       "not read: x? is one character\n",
		"dx/q/x3.conf":        "not read\n",
		"d3/notadir/x4.conf":  "cluster x4 forward 127.0.0.1:2007;\n",
		"escaped/[x].conf":    "cluster bracket forward 127.0.0.1:2008;\n",
		"top-escape.conf":     "include escaped/\\[x\\].conf;\n",
		"conf.d.top/1.conf":   "cluster one forward 127.0.0.1:2010;\n",
		"conf.d.top/2.conf":   "cluster two forward 127.0.0.1:2011;\n",
		"negated/a.conf":      "cluster na forward 127.0.0.1:2012;\n",
		"negated/b.conf":      "cluster nb forward 127.0.0.1:2013;\n",
		"negate.conf":         "include \"negated/[!a].conf\";\ninclude negated/[^b].conf;\n",
	})
	if _, err := crelay.Parse("relay.conf", crelay.Options{Dir: dir}); err == nil {
		t.Fatal("relay.conf is not in the current directory: want an error")
	}
	cfg, err := crelay.Parse(filepath.Join(dir, "relay.conf"), crelay.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "relay.conf")
	want := []string{"top@" + top + ":1", "B@conf.d/B.conf:1", "a@conf.d/a.conf:3", "leaf@sub/leaf.conf:1",
		"x1@d1/p/x1.conf:1", "x2@d2/q/x2.conf:1", "x4@d3/notadir/x4.conf:1", "end@" + top + ":5"}
	if got := clusters(cfg); !slices.Equal(got, want) {
		t.Errorf("clusters:\n got %q\nwant %q", got, want)
	}

	// a name with glob characters cannot be included: carbon-c-relay reads
	// each match as a pattern again
	_, err = crelay.Parse(filepath.Join(dir, "top-escape.conf"), crelay.Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "top-escape.conf:1: pattern 'escaped/[x].conf' did not match any files") {
		t.Errorf("escaped brackets: %v", err)
	}
	cfg, err = crelay.Parse(filepath.Join(dir, "negate.conf"), crelay.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := clusters(cfg); !slices.Equal(got, []string{"nb@negated/b.conf:1", "na@negated/a.conf:1"}) {
		t.Errorf("negated brackets: %q", got)
	}
	// the file named on the command line may be a glob itself
	cfg, err = crelay.Parse(filepath.Join(dir, "conf.d.top", "*.conf"), crelay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := clusters(cfg); len(got) != 2 || !strings.HasPrefix(got[0], "one@") || !strings.HasPrefix(got[1], "two@") {
		t.Errorf("top-level glob: %q", got)
	}
}

// TestIncludeErrors: an error in an included file names that file and
// line; a loop, however long, is an error naming the chain, as is nesting
// too deep.
func TestIncludeErrors(t *testing.T) {
	files := map[string]string{
		"bad.conf":        "cluster a forward 127.0.0.1;\ninclude inc/broken.conf;\n",
		"inc/broken.conf": "\ncluster b forward 127.0.0.1:70000;\n",
		"self.conf":       "include self.conf;\n",
		"a.conf":          "cluster a forward 127.0.0.1;\ninclude b.conf;\n",
		"b.conf":          "\ninclude c.conf;\n",
		"c.conf":          "include a.conf;\n",
		"twice.conf":      "include once.conf;\ninclude once.conf;\n",
		"once.conf":       "rewrite a into b;\n",
	}
	for i := range 70 {
		files["deep"+strconv.Itoa(i)+".conf"] = "include deep" + strconv.Itoa(i+1) + ".conf;\n"
	}
	files["deep70.conf"] = "rewrite a into b;\n"
	dir := tree(t, files)
	for _, c := range []struct{ file, want string }{
		{"bad.conf", "inc/broken.conf:2: invalid port number '70000'"},
		{"self.conf", "self.conf:1: include loop: self.conf includes self.conf (carbon-c-relay recurses until it fails)"},
		{"a.conf", "c.conf:1: include loop: a.conf includes b.conf includes c.conf includes a.conf"},
		{"deep0.conf", "deep63.conf:1: includes nested more than 64 deep"},
	} {
		_, err := crelay.Parse(filepath.Join(dir, c.file), crelay.Options{Dir: dir})
		if err == nil {
			t.Errorf("%s: no error", c.file)
			continue
		}
		got := strings.ReplaceAll(err.Error(), dir+"/", "")
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.file, got, c.want)
		}
	}
	// including one file twice is no loop
	cfg, err := crelay.Parse(filepath.Join(dir, "twice.conf"), crelay.Options{Dir: dir})
	if err != nil || len(cfg.Rules) != 2 {
		t.Fatalf("twice: %v", err)
	}
}
