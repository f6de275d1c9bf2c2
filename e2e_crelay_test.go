package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/crelaytest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// routerPairs runs lines through `router -route - -json` and returns the
// sorted "dest name" pairs per line.
func routerPairs(t *testing.T, bin, cfg string, lines []string) [][]string {
	t.Helper()
	out := runStdin(t, strings.Join(lines, "\n")+"\n", bin, "-config", cfg, "-route", "-", "-json")
	var res [][]string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r struct {
			Sends []struct{ Dest, Name string }
		}
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		pairs := []string{}
		for _, s := range r.Sends {
			pairs = append(pairs, s.Dest+" "+s.Name)
		}
		slices.Sort(pairs)
		res = append(res, pairs)
	}
	return res
}

// convertCRelay runs `router convert carbon-c-relay conf`; ok is false
// when the converter refuses the file (a construct not supported yet, exit
// status 2), and the message says which.
func convertCRelay(t *testing.T, bin, conf, dir string) (toml string, msg string, ok bool) {
	t.Helper()
	cmd := exec.Command(bin, "convert", "carbon-c-relay", conf)
	cmd.Dir = dir // relative include paths, as carbon-c-relay reads them: from the working directory
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ee, isExit := err.(*exec.ExitError); isExit && ee.ExitCode() == 2 &&
			(strings.Contains(stderr.String(), "not supported") || strings.Contains(stderr.String(), "the router refuses the converted configuration")) {
			return "", strings.TrimSpace(stderr.String()), false
		}
		t.Fatalf("router convert carbon-c-relay %s: %v\n%s", conf, err, stderr.String())
	}
	return string(out), "", true
}

// diffConverted converts conf, then requires every line to reach the same
// (destination, name) pairs through the router as through carbon-c-relay
// -t. It returns the number of lines compared.
func diffConverted(t *testing.T, crelay, bin, conf, dir string, lines []string) int {
	t.Helper()
	text, msg, ok := convertCRelay(t, bin, conf, dir)
	if !ok {
		t.Fatalf("%s: %s", conf, msg)
	}
	cfg := filepath.Join(t.TempDir(), "converted.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got := routerPairs(t, bin, cfg, lines)
	if len(got) != len(lines) {
		t.Fatalf("%s: router printed %d results for %d lines", conf, len(got), len(lines))
	}
	for i, line := range lines {
		want := crelaytest.Pairs(crelaytest.Trace(t, crelay, conf, dir, line), func(s crelaytest.Send) string { return s.Dest })
		if !slices.Equal(got[i], want) {
			t.Errorf("%s, line %q:\nrouter:         %q\ncarbon-c-relay: %q\nconverted:\n%s", filepath.Base(conf), line, got[i], want, text)
		}
	}
	return len(lines)
}

// readLines returns the non-empty lines of a file.
func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	return out
}

// TestConvertedRoutingAgainstCarbonCRelay: configurations covering every
// routing construct (testdata/crelay/*.conf, lines in *.lines) converted
// with `router convert carbon-c-relay` route every line to the same
// destinations under the same names as carbon-c-relay -t on the original.
func TestConvertedRoutingAgainstCarbonCRelay(t *testing.T) {
	crelay := crelaytest.Bin(t)
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	confs, _ := filepath.Glob("testdata/crelay/*.conf")
	if len(confs) == 0 {
		t.Fatal("no testdata/crelay/*.conf")
	}
	n := 0
	for _, conf := range confs {
		abs, _ := filepath.Abs(conf)
		n += diffConverted(t, crelay, bin, abs, filepath.Dir(abs), readLines(t, strings.TrimSuffix(conf, ".conf")+".lines"))
	}
	t.Logf("%d configurations x their lines: %d lines, identical (destination, name) pairs", len(confs), n)
}

// TestCRelayIssuesAgainstCarbonCRelay runs carbon-c-relay's own regression
// configurations (issues/*.conf of Debian's source package, with the names
// of test/*.tst) through the converter and both routers. Configurations
// with constructs the router does not convert yet (aggregate, route using,
// ...) are listed, not compared.
func TestCRelayIssuesAgainstCarbonCRelay(t *testing.T) {
	crelay := crelaytest.Bin(t)
	src := os.Getenv("CRELAY_SRC")
	if src == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CRELAY_SRC is not set (scripts/test.sh sets it)")
		}
		t.Skip("CRELAY_SRC is not set: CRELAY_SRC=$(scripts/install-crelay.sh) go test ...")
	}
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	confs, _ := filepath.Glob(filepath.Join(src, "issues", "*.conf"))
	compared, lines := 0, 0
	var refused, invalid []string
	for _, conf := range confs {
		base := strings.TrimSuffix(filepath.Base(conf), ".conf")
		tst := filepath.Join(src, "test", base+".tst")
		if _, err := os.Stat(tst); err != nil {
			continue // no input names for this one
		}
		check := exec.Command(crelay, "-t", "-f", conf)
		check.Dir = filepath.Dir(conf)
		if err := check.Run(); err != nil {
			// carbon-c-relay refuses it too (some issue files show errors);
			// the converter must refuse it as well
			cmd := exec.Command(bin, "convert", "carbon-c-relay", conf)
			cmd.Dir = filepath.Dir(conf)
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("%s: carbon-c-relay refuses it, the converter does not:\n%s", base, out)
			}
			invalid = append(invalid, base)
			continue
		}
		dir := filepath.Dir(conf)
		_, msg, ok := convertCRelay(t, bin, conf, dir)
		if !ok && strings.Contains(msg, "without clusters") {
			// rewrite-only files (carbon-c-relay drops every metric): send
			// what the rewrites leave to a probe cluster, through a
			// wrapper that includes the original, in both routers
			wrapper := filepath.Join(t.TempDir(), base+"-probe.conf")
			text := "include " + conf + ";\ncluster zz_probe forward 127.0.0.1:1;\nmatch * send to zz_probe;\n"
			if err := os.WriteFile(wrapper, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			conf = wrapper
			_, msg, ok = convertCRelay(t, bin, conf, dir)
		}
		if !ok {
			refused = append(refused, base+": "+msg)
			continue
		}
		t.Run(base, func(t *testing.T) {
			// the names of its test file, and names made from the
			// configuration's own expressions (most test files are empty:
			// they test the parser)
			names := append(readLines(t, tst), namesFrom(t, conf)...)
			lines += diffConverted(t, crelay, bin, conf, dir, names)
		})
		compared++
	}
	t.Logf("%d of carbon-c-relay's issue configurations compared (%d lines); refused by both: %s; not convertible yet:\n  %s",
		compared, lines, strings.Join(invalid, " "), strings.Join(refused, "\n  "))
	if compared == 0 {
		t.Fatal("no configuration compared")
	}
}

// TestConvertedConfigEndToEnd converts a carbon-c-relay configuration with
// three clusters (forward, carbon_ch with replication, any_of), rewrites and
// a blackhole, runs the binary on it over real sockets, sends 200,000 lines,
// and requires every sink to receive exactly the lines `-route - -json`
// predicted for its address: the same multiset of lines, so the same count
// and bytes.
func TestConvertedConfigEndToEnd(t *testing.T) {
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	sinks := map[string]*plugintest.LineSink{}
	var addr [6]string
	for i := range addr {
		s := plugintest.NewLineSink(t)
		addr[i] = s.Addr
		sinks[s.Addr] = s
	}
	in := plugintest.FreeAddr(t)
	conf := filepath.Join(t.TempDir(), "relay.conf")
	text := fmt.Sprintf(`listen type linemode %s proto tcp ;
cluster archive forward %s ;
cluster caches carbon_ch replication 2 %s=a %s=b %s=c ;
cluster relays any_of %s %s ;
match ^junk\. send to blackhole ;
rewrite ^servers\.([^.]+)\.(.*)$ into hosts.\_1.\2 ;
match ^hosts\. send to caches ;
match \.count$ send to relays stop ;
match * send to archive caches ;
`, in, addr[0], addr[1], addr[2], addr[3], addr[4], addr[5])
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	toml, msg, ok := convertCRelay(t, bin, conf, filepath.Dir(conf))
	if !ok {
		t.Fatal(msg)
	}
	cfg := filepath.Join(t.TempDir(), "router.toml")
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 200000
	lines := make([]string, n)
	for i := range lines {
		switch i % 5 {
		case 0:
			lines[i] = fmt.Sprintf("servers.Web%d.cpu.user %d 1700000000", i%97, i)
		case 1:
			lines[i] = fmt.Sprintf("junk.x%d 1 1700000000", i)
		case 2:
			lines[i] = fmt.Sprintf("app.req%d.count %d 1700000000", i%1000, i)
		default:
			lines[i] = fmt.Sprintf("plain.m%d %d 1700000000", i%5000, i)
		}
	}
	// what each sink should get, from the route mode
	want := map[string][]string{}
	total := 0
	for i, pairs := range routeJSON(t, bin, cfg, lines) {
		rest := lines[i][strings.IndexByte(lines[i], ' '):]
		for _, s := range pairs {
			want[s.Dest] = append(want[s.Dest], s.Name+rest)
			total++
		}
	}
	startBinary(t, cfg)
	waitListen(t, in)
	sendLines(t, in, lines, 4)
	got := func() int {
		k := 0
		for _, s := range sinks {
			k += s.Len()
		}
		return k
	}
	if !waitFor(60*time.Second, func() bool { return got() >= total }) {
		t.Fatalf("sinks got %d lines, route mode predicted %d", got(), total)
	}
	time.Sleep(200 * time.Millisecond) // anything beyond the prediction would arrive now
	for a, s := range sinks {
		var g []string
		for _, l := range s.Sorted() {
			if !strings.HasPrefix(l, "carbon.relays.") { // the relay's own metrics, once a minute
				g = append(g, l)
			}
		}
		w := sortedCopy(want[a])
		if !slices.Equal(g, w) {
			t.Errorf("sink %s: %d lines (%d bytes), predicted %d (%d bytes)", a, len(g), bytesOf(g), len(w), bytesOf(w))
		}
	}
	t.Logf("%d lines sent, %d delivered over 6 sinks exactly as -route - -json predicted", n, total)
}

func bytesOf(lines []string) int {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	return n
}

// routeJSON is routerPairs with the destinations and names apart.
func routeJSON(t *testing.T, bin, cfg string, lines []string) [][]struct{ Dest, Name string } {
	t.Helper()
	out := runStdin(t, strings.Join(lines, "\n")+"\n", bin, "-config", cfg, "-route", "-", "-json")
	var res [][]struct{ Dest, Name string }
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r struct{ Sends []struct{ Dest, Name string } }
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		res = append(res, r.Sends)
	}
	if len(res) != len(lines) {
		t.Fatalf("route mode printed %d results for %d lines", len(res), len(lines))
	}
	return res
}

// namesFrom makes metric names from the expressions of a carbon-c-relay
// configuration (and the files it includes, when they are in the same
// directory): each expression with its regular-expression syntax replaced
// by text it matches, roughly, plus a few names of every shape.
func namesFrom(t *testing.T, conf string) []string {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if inc, _ := filepath.Glob(filepath.Join(filepath.Dir(conf), "*.conf")); strings.Contains(text, "include") {
		for _, f := range inc {
			if x, err := os.ReadFile(f); err == nil {
				text += "\n" + string(x)
			}
		}
	}
	subst := strings.NewReplacer(`\.`, ".", "^", "", "$", "", "(", "", ")", "", ".*", "x", ".+", "yy", "[^.]+", "z",
		"[^.]*", "", "[0-9]+", "42", "[0-9]*", "7", "[a-zA-Z]+", "Ab", "[a-z]+", "ab", "|", "", "?", "", "+", "", "*", "", "[", "", "]", "", `\`, "")
	seen := map[string]bool{}
	names := []string{"a", "foo.bar", "servers.web01.cpu.user", "x.y.z.count", "Foo.BAR.baz"}
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, tok := range strings.Fields(line) {
			if !strings.ContainsAny(tok, `\^$.`) || strings.Contains(tok, "/") || strings.Contains(tok, ":") {
				continue
			}
			n := strings.Trim(subst.Replace(strings.TrimSuffix(tok, ";")), ".")
			if n != "" && !seen[n] && !strings.ContainsAny(n, " {}=") {
				seen[n] = true
				names = append(names, n, n+".tail", "pre."+n)
			}
		}
	}
	for i := range names {
		names[i] += " 1 1700000000"
	}
	return names
}
