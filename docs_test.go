package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/metricsrouter/router/agent"
)

const (
	helpBegin = "<!-- BEGIN router -h: checked by TestHelpMatchesREADME (UPDATE_README=1 rewrites it) -->\n```\n"
	helpEnd   = "```\n<!-- END router -h -->"
)

// TestHelpMatchesREADME: README shows exactly what `router -h` prints.
func TestHelpMatchesREADME(t *testing.T) {
	var out bytes.Buffer
	if code := agent.Run(context.Background(), []string{"-h"}, &out, &out); code != 0 {
		t.Fatalf("router -h: exit %d", code)
	}
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, helpBegin), strings.Index(readme, helpEnd)
	if i < 0 || j < i {
		t.Fatal("README.md has no router -h section")
	}
	want := helpBegin + out.String() + helpEnd
	if readme[i:j+len(helpEnd)] == want {
		return
	}
	if os.Getenv("UPDATE_README") == "1" {
		os.WriteFile("README.md", []byte(readme[:i]+want+readme[j+len(helpEnd):]), 0o644)
		return
	}
	t.Fatal("README.md's router -h section differs from `router -h`: run UPDATE_README=1 go test -run TestHelpMatchesREADME .")
}
