// Command testsum reads `go test -json` on standard input and prints what a
// person wants from a whole-suite run: each package's result line, the
// output of every test that failed (and only those), and a closing line
//
//	== 1234 passed, 0 failed, 12 skipped (top-level tests; 58 packages ok, 0 failed)
//
// It exits 1 when a test or a package (a build error, a panic outside a
// test, a timeout) failed. scripts/test.sh runs the suite through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of test2json's output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type counts struct {
	passed, failed, skipped int
	pkgOK, pkgFailed        int
}

func main() {
	c, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsum:", err)
		os.Exit(2)
	}
	if c.failed > 0 || c.pkgFailed > 0 {
		os.Exit(1)
	}
}

func summarize(r io.Reader, w io.Writer) (counts, error) {
	var c counts
	out := map[string][]string{} // package + "\x00" + test -> its output
	var failedTests []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// not test2json (go vet or the toolchain writing to stdout)
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch {
		case e.Action == "build-output" || e.Action == "build-fail":
			fmt.Fprint(w, e.Output)
		case e.Test == "" && e.Action == "output":
			// the package's own lines: "ok  pkg 1.2s", "FAIL pkg", a panic;
			// not the "PASS" that -json's implied -v adds before "ok"
			if e.Output != "PASS\n" {
				fmt.Fprint(w, e.Output)
			}
		case e.Test == "" && e.Action == "pass":
			c.pkgOK++
		case e.Test == "" && e.Action == "fail":
			c.pkgFailed++
		case e.Action == "output":
			out[key] = append(out[key], e.Output)
		case e.Action == "fail":
			fmt.Fprint(w, strings.Join(out[key], ""))
			delete(out, key)
			if !strings.Contains(e.Test, "/") {
				c.failed++
				failedTests = append(failedTests, e.Package+" "+e.Test)
			}
		case e.Action == "pass" || e.Action == "skip":
			delete(out, key)
			if !strings.Contains(e.Test, "/") {
				if e.Action == "pass" {
					c.passed++
				} else {
					c.skipped++
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	for _, t := range failedTests {
		fmt.Fprintf(w, "FAILED: %s\n", t)
	}
	fmt.Fprintf(w, "== %d passed, %d failed, %d skipped (top-level tests; %d packages ok, %d failed)\n",
		c.passed, c.failed, c.skipped, c.pkgOK, c.pkgFailed)
	return c, nil
}
