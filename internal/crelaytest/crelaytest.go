// Package crelaytest runs Debian's carbon-c-relay as the oracle of the
// differential tests: `carbon-c-relay -t` prints, per metric, the rules it
// matches, each rewrite and each destination.
package crelaytest

import (
	"bufio"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Bin returns the carbon-c-relay binary, or skips the test; under CI
// (scripts/test.sh installs it with scripts/install-crelay.sh) its absence
// fails the test.
func Bin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("carbon-c-relay")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("carbon-c-relay is not installed (scripts/install-crelay.sh)")
		}
		t.Skip("carbon-c-relay is not installed (scripts/install-crelay.sh)")
	}
	return p
}

// Send is one destination of a metric in carbon-c-relay's trace.
type Send struct {
	Cluster string // cluster name
	Dest    string // member: "ip:port" (a file cluster: its path)
	Name    string // the metric's name at that point
}

// Trace runs one line through `carbon-c-relay -t -f conf` in directory dir
// (relative include paths are read from the working directory) and returns
// every destination its trace shows, in order.
func Trace(t testing.TB, bin, conf, dir, line string) []Send {
	t.Helper()
	cmd := exec.Command(bin, "-t", "-f", conf)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(line + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("carbon-c-relay -t -f %s: %v\n%s", conf, err, out)
	}
	text := string(out)
	// the trace follows the echo of the configuration, whose last
	// statement ends with "    ;"
	i := strings.LastIndex(text, "\n    ;\n")
	if i < 0 {
		t.Fatalf("carbon-c-relay -t printed no configuration:\n%s", text)
	}
	var sends []Send
	name, cluster := "", ""
	sc := bufio.NewScanner(strings.NewReader(text[i+len("\n    ;\n"):]))
	for sc.Scan() {
		l := sc.Text()
		member := strings.HasPrefix(l, "        ")
		switch {
		case member && strings.HasPrefix(strings.TrimSpace(l), "using("):
			// "using(\1) -> key": the route using key, not a destination
		case member && cluster != "":
			sends = append(sends, Send{Cluster: cluster, Dest: strings.TrimSpace(l), Name: name})
		case member:
		case strings.HasPrefix(l, "    ") && strings.Contains(l, " -> "):
			// "    expr (regex) -> name", "    -> name", "    into(x) -> name"
			name = l[strings.LastIndex(l, " -> ")+4:]
			cluster = ""
		case strings.HasPrefix(l, "    ") && strings.HasSuffix(l, ")") && strings.Contains(l, "("):
			// forward(x), carbon_ch(x), fnv1a_ch(x), any_of(x), file ip(x), ...
			cluster = l[strings.IndexByte(l, '(')+1 : len(l)-1]
		default:
			cluster = ""
		}
	}
	return sends
}

// Pairs returns the sorted "a name" strings of sends, a chosen by key.
func Pairs(sends []Send, key func(Send) string) []string {
	out := []string{}
	for _, s := range sends {
		out = append(out, key(s)+" "+s.Name)
	}
	slices.Sort(out)
	return out
}
