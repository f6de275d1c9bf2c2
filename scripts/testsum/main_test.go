package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSummarize: package lines pass through, a failed test's output is
// printed and a passing one's is not, subtests are not counted twice, and a
// package that fails outside any test (a build error) counts.
func TestSummarize(t *testing.T) {
	in := `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestOK"}
{"Action":"output","Package":"a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"a","Test":"TestOK","Output":"quiet line\n"}
{"Action":"pass","Package":"a","Test":"TestOK"}
{"Action":"run","Package":"a","Test":"TestBad"}
{"Action":"output","Package":"a","Test":"TestBad/sub","Output":"    bad_test.go:9: want 1, got 2\n"}
{"Action":"fail","Package":"a","Test":"TestBad/sub"}
{"Action":"output","Package":"a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"a","Test":"TestBad"}
{"Action":"skip","Package":"a","Test":"TestSkip"}
{"Action":"output","Package":"a","Output":"FAIL\ta\t0.01s\n"}
{"Action":"fail","Package":"a"}
{"Action":"output","Package":"b","Output":"ok  \tb\t0.02s\n"}
{"Action":"pass","Package":"b"}
{"ImportPath":"c","Action":"build-output","Output":"c/x.go:1:1: syntax error\n"}
{"Action":"output","Package":"c","Output":"FAIL\tc [build failed]\n"}
{"Action":"fail","Package":"c"}
`
	var out bytes.Buffer
	c, err := summarize(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"bad_test.go:9: want 1, got 2", "--- FAIL: TestBad", "FAIL\ta\t0.01s", "ok  \tb\t0.02s",
		"c/x.go:1:1: syntax error", "FAILED: a TestBad\n",
		"== 1 passed, 1 failed, 1 skipped (top-level tests; 1 packages ok, 2 failed)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet line") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	if c.passed != 1 || c.failed != 1 || c.skipped != 1 || c.pkgOK != 1 || c.pkgFailed != 2 {
		t.Errorf("counts %+v", c)
	}
}
