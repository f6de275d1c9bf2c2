package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/metricsrouter/router/agent"
)

const (
	helpDoc   = "docs/configuration.md"
	helpBegin = "<!-- BEGIN router -h: checked by TestHelpMatchesDocs (UPDATE_DOCS=1 rewrites it) -->\n```\n"
	helpEnd   = "```\n<!-- END router -h -->"
)

// TestHelpMatchesDocs: the configuration reference shows exactly what
// `router -h` prints.
func TestHelpMatchesDocs(t *testing.T) {
	var out bytes.Buffer
	if code := agent.Run(context.Background(), []string{"-h"}, &out, &out); code != 0 {
		t.Fatalf("router -h: exit %d", code)
	}
	raw, err := os.ReadFile(helpDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, helpBegin), strings.Index(doc, helpEnd)
	if i < 0 || j < i {
		t.Fatal(helpDoc + " has no router -h section")
	}
	want := helpBegin + out.String() + helpEnd
	if doc[i:j+len(helpEnd)] == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		if err := os.WriteFile(helpDoc, []byte(doc[:i]+want+doc[j+len(helpEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal(helpDoc + "'s router -h section differs from `router -h`: run UPDATE_DOCS=1 go test -run TestHelpMatchesDocs .")
}

// mdLink is a Markdown link's target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// mdProse returns a Markdown file's lines outside code fences, and the
// anchors GitHub gives its headings (lower case; letters, digits, '-' and
// '_' kept, spaces become '-', a repeated anchor gets "-1", "-2", ...).
func mdProse(text string) (prose string, anchors []string) {
	var b strings.Builder
	fence := false
	seen := map[string]int{}
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence {
			continue
		}
		b.WriteString(l)
		n := len(l) - len(strings.TrimLeft(l, "#"))
		if n == 0 || !strings.HasPrefix(l[n:], " ") {
			continue
		}
		var a strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(l[n:])) {
			switch {
			case r == ' ':
				a.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				a.WriteRune(r)
			}
		}
		id := a.String()
		if k := seen[id]; k > 0 {
			seen[id]++
			id = fmt.Sprintf("%s-%d", id, k)
		} else {
			seen[id] = 1
		}
		anchors = append(anchors, id)
	}
	return b.String(), anchors
}

// TestDocsLinks: README.md links every page of docs/, and every relative
// link in README.md and docs/*.md names a file that exists and, after '#',
// a heading of that file.
func TestDocsLinks(t *testing.T) {
	pages, _ := filepath.Glob("docs/*.md")
	if len(pages) == 0 {
		t.Fatal("no docs/*.md")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if !strings.Contains(string(readme), "]("+p+")") && !strings.Contains(string(readme), "]("+p+"#") {
			t.Errorf("README.md does not link %s", p)
		}
	}
	for _, f := range append([]string{"README.md"}, pages...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		prose, _ := mdProse(string(raw))
		for _, m := range mdLink.FindAllStringSubmatch(prose, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.Join(filepath.Dir(f), path)
			}
			text, err := os.ReadFile(file)
			if err != nil {
				if fi, serr := os.Stat(file); serr != nil || !fi.IsDir() || frag != "" {
					t.Errorf("%s: link %s: no such file", f, target)
				}
				continue
			}
			if _, anchors := mdProse(string(text)); frag != "" && !slices.Contains(anchors, frag) {
				t.Errorf("%s: link %s: %s has no heading with that anchor (has %q)", f, target, file, anchors)
			}
		}
	}
}
