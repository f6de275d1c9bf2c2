package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// The golden end-to-end cases: testdata/e2e/<case>/ holds a router.toml
// template, the input sent to each listener and the lines each sink must
// receive. testdata/e2e/README.md describes the format; TestCases runs them.

const casesDir = "testdata/e2e"

// caseSpec is a case's case.toml.
type caseSpec struct {
	// Proves says in one sentence what the case shows.
	Proves string `toml:"proves"`
	// Golden says where expected/ came from: a peer (carbon, carbon-c-relay,
	// Etsy statsd) and how, the spec by hand, or the router (UPDATE_GOLDEN).
	Golden string `toml:"golden"`
	// Frozen: expected/ comes from a peer; UPDATE_GOLDEN=1 never rewrites it.
	Frozen bool `toml:"frozen"`
	// Serial: run alone, not in parallel with the other cases.
	Serial bool `toml:"serial"`
	// Timeout bounds the whole case (default 30s).
	Timeout registry.Duration `toml:"timeout"`
	// Connections: TCP connections per listener; with more than one, the
	// input's lines are dealt round robin (default 1: the file byte for byte).
	Connections int `toml:"connections"`
	// Metrics: series of /metrics on {{stats}} and the value each must reach
	// once the input is through. Keys are templates, like router.toml.
	Metrics map[string]float64 `toml:"metrics"`
}

// caseSink is a sink a case declared with {{sink}} or {{udpsink}}.
type caseSink struct {
	tcp *plugintest.LineSink
	udp *plugintest.UDPSink
}

func (s *caseSink) addr() string {
	if s.tcp != nil {
		return s.tcp.Addr
	}
	return s.udp.Addr
}

func (s *caseSink) lines() []string {
	if s.tcp != nil {
		return s.tcp.Lines()
	}
	return s.udp.Lines()
}

func (s *caseSink) count() int {
	if s.tcp != nil {
		return s.tcp.Len()
	}
	return len(s.udp.Lines())
}

// caseListener is an address a case declared with {{listen}} or
// {{listenudp}}, for one of the router's inputs.
type caseListener struct {
	addr string
	udp  bool
}

// caseEnv holds what a case's templates declared. Sinks live for the whole
// case; listeners and the stats address are picked again when the router
// could not bind them (another process took the port meanwhile).
type caseEnv struct {
	t         *testing.T
	sinks     map[string]*caseSink
	listeners map[string]caseListener
	stats     string
	lookup    bool // only names already declared (case.toml's templates)
}

var caseName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (e *caseEnv) funcs() template.FuncMap {
	return template.FuncMap{
		"sink":      func(name string, host ...string) (string, error) { return e.sink(name, false, host) },
		"udpsink":   func(name string) (string, error) { return e.sink(name, true, nil) },
		"listen":    func(name string) (string, error) { return e.listen(name, false) },
		"listenudp": func(name string) (string, error) { return e.listen(name, true) },
		"stats": func() (string, error) {
			if e.stats == "" {
				if e.lookup {
					return "", errors.New("stats: router.toml has no {{stats}}")
				}
				e.stats = plugintest.FreeAddr(e.t)
			}
			return e.stats, nil
		},
	}
}

func (e *caseEnv) sink(name string, udp bool, host []string) (string, error) {
	kind := map[bool]string{false: "sink", true: "udpsink"}
	if !caseName.MatchString(name) {
		return "", fmt.Errorf("%s %q: a name is letters, digits, '.', '_', '-' (it names expected/NAME.txt)", kind[udp], name)
	}
	if len(host) > 1 {
		return "", fmt.Errorf("sink %q: one host at most", name)
	}
	if s, ok := e.sinks[name]; ok {
		if (s.udp != nil) != udp {
			return "", fmt.Errorf("%s %q: already declared as %s", kind[udp], name, kind[!udp])
		}
		if len(host) == 1 && !strings.HasPrefix(s.addr(), host[0]+":") {
			return "", fmt.Errorf("sink %q: already declared on %s", name, s.addr())
		}
		return s.addr(), nil
	}
	if e.lookup {
		return "", fmt.Errorf("%s %q: not declared in router.toml", kind[udp], name)
	}
	s := &caseSink{}
	switch {
	case udp:
		s.udp = plugintest.NewUDPSink(e.t)
	case len(host) == 1:
		tcp, err := lineSinkOn(e.t, host[0])
		if err != nil {
			return "", fmt.Errorf("sink %q: %w", name, err)
		}
		s.tcp = tcp
	default:
		s.tcp = plugintest.NewLineSink(e.t)
	}
	e.sinks[name] = s
	return s.addr(), nil
}

func (e *caseEnv) listen(name string, udp bool) (string, error) {
	kind := map[bool]string{false: "listen", true: "listenudp"}
	if !caseName.MatchString(name) {
		return "", fmt.Errorf("%s %q: a name is letters, digits, '.', '_', '-' (it names input/NAME.txt)", kind[udp], name)
	}
	if l, ok := e.listeners[name]; ok {
		if l.udp != udp {
			return "", fmt.Errorf("%s %q: already declared as %s", kind[udp], name, kind[!udp])
		}
		return l.addr, nil
	}
	if e.lookup {
		return "", fmt.Errorf("%s %q: not declared in router.toml", kind[udp], name)
	}
	addr := ""
	if udp {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr = c.LocalAddr().String()
		c.Close()
	} else {
		addr = plugintest.FreeAddr(e.t)
	}
	e.listeners[name] = caseListener{addr: addr, udp: udp}
	return addr, nil
}

// lineSinkOn is a LineSink on another loopback address (127.0.0.5, say):
// carbon_ch hashes the host, not the port, so a ring from a peer's test
// needs its hosts.
func lineSinkOn(t *testing.T, host string) (*plugintest.LineSink, error) {
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return nil, fmt.Errorf("host %q: want an IPv4 loopback address", host)
	}
	s := plugintest.NewLineSink(t)
	if host == "127.0.0.1" {
		return s, nil
	}
	s.Stop()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	s.Addr = ln.Addr().String()
	ln.Close()
	return s, s.Start()
}

// TestCases runs every case of testdata/e2e as a subtest. UPDATE_GOLDEN=1
// rewrites the expected/ files of the cases that are not frozen from what
// the sinks received.
func TestCases(t *testing.T) {
	entries, err := os.ReadDir(casesDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		dir := filepath.Join(casesDir, e.Name())
		t.Run(e.Name(), func(t *testing.T) { runCase(t, dir) })
	}
	if n == 0 {
		t.Fatalf("no cases in %s", casesDir)
	}
}

func readCaseSpec(t *testing.T, dir string) caseSpec {
	t.Helper()
	file := filepath.Join(dir, "case.toml")
	spec := caseSpec{Timeout: registry.Duration(30 * time.Second), Connections: 1}
	md, err := toml.DecodeFile(file, &spec)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("%s: unknown key %q", file, u[0].String())
	}
	if strings.TrimSpace(spec.Proves) == "" || strings.TrimSpace(spec.Golden) == "" {
		t.Fatalf("%s: say what the case proves (proves = ...) and where its golden files came from (golden = ...)", file)
	}
	if spec.Connections < 1 {
		t.Fatalf("%s: connections = %d, want 1 or more", file, spec.Connections)
	}
	return spec
}

// readDirFiles reads dir/*.txt into name -> content; a missing dir is empty.
func readDirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".txt")
		if !ok || e.IsDir() {
			t.Fatalf("%s: unexpected %s (want NAME.txt files only)", dir, e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// splitLines is a file's lines without their '\n' (a '\r' stays).
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func runCase(t *testing.T, dir string) {
	spec := readCaseSpec(t, dir)
	if !spec.Serial {
		t.Parallel()
	}
	update := os.Getenv("UPDATE_GOLDEN") == "1"
	raw, err := os.ReadFile(filepath.Join(dir, "router.toml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("router.toml").Option("missingkey=error").Funcs((&caseEnv{}).funcs()).Parse(string(raw))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	inputs := readDirFiles(t, filepath.Join(dir, "input"))
	expected := map[string][]string{}
	for name, b := range readDirFiles(t, filepath.Join(dir, "expected")) {
		expected[name] = splitLines(b)
	}

	begin := time.Now()
	deadline := begin.Add(time.Duration(spec.Timeout))
	env := &caseEnv{t: t, sinks: map[string]*caseSink{}, listeners: map[string]caseListener{}}
	p := startCase(t, dir, tmpl, env, deadline, func() { checkCaseFiles(t, env, inputs, expected, spec, update) })
	metrics := caseMetrics(t, env, spec.Metrics)

	sendCaseInputs(t, env.listeners, inputs, spec.Connections)

	names := slices.Sorted(maps.Keys(env.sinks))
	counts := func() []int {
		c := make([]int, len(names))
		for i, n := range names {
			c[i] = env.sinks[n].count()
		}
		return c
	}
	// Wait for each sink's count to reach its golden's (under UPDATE_GOLDEN,
	// the old golden's, if any), then for the counts to stay still.
	reached := waitCond(deadline, func() bool {
		for i, c := range counts() {
			if c < len(expected[names[i]]) {
				return false
			}
		}
		return true
	})
	if !reached && !update {
		var b strings.Builder
		for i, c := range counts() {
			fmt.Fprintf(&b, " %s %d/%d", names[i], c, len(expected[names[i]]))
		}
		t.Errorf("deadline (%v) passed before every sink had its lines:%s", time.Duration(spec.Timeout), b.String())
	}
	waitQuiet(counts, deadline)
	if len(metrics) > 0 {
		checkCaseMetrics(t, env.stats, metrics, deadline)
	}
	// The router drains its queues when it stops: what it still held
	// arrives now, and shows as unexpected lines.
	if code := p.stop(t); code != 0 {
		t.Errorf("router exit status %d, want 0", code)
	}
	// after a deadline that passed, still give the sinks a moment
	if late := time.Now().Add(10 * caseQuiet); deadline.Before(late) {
		deadline = late
	}
	waitQuiet(counts, deadline)
	lo, hi := begin.Unix(), time.Now().Unix()+1

	for _, name := range names {
		got := make([]string, 0, len(expected[name]))
		for _, l := range env.sinks[name].lines() {
			got = append(got, maskNow(l, lo, hi))
		}
		slices.Sort(got)
		if update && !spec.Frozen {
			file := filepath.Join(dir, "expected", name+".txt")
			if err := writeGolden(file, got); err != nil {
				t.Fatal(err)
			}
			t.Logf("UPDATE_GOLDEN: wrote %s (%d lines)", file, len(got))
			continue
		}
		if d := diffLines(got, expected[name]); d != "" {
			t.Errorf("sink %q (%s): %s", name, filepath.Join(dir, "expected", name+".txt"), d)
		}
	}
	if update && spec.Frozen {
		t.Logf("UPDATE_GOLDEN: %s is frozen (golden from %s): compared, not rewritten", dir, spec.Golden)
	}
}

// startCase renders router.toml and starts the router on it, then waits
// until it listens on every listener. If the router exits first (another
// process took a port meanwhile), it tries again on other ports, three times
// in all. check runs once, after the first rendering declared everything.
func startCase(t *testing.T, dir string, tmpl *template.Template, env *caseEnv, deadline time.Time, check func()) *routerProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		env.listeners, env.stats = map[string]caseListener{}, ""
		var cfg bytes.Buffer
		if err := tmpl.Funcs(env.funcs()).Execute(&cfg, nil); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if attempt == 1 {
			check()
		}
		p := startRouter(t, cfg.String())
		err := waitCaseListeners(p, env.listeners, deadline)
		if err == nil {
			return p
		}
		if !errors.Is(err, errRouterExited) || attempt == 3 {
			t.Fatalf("%v\nconfiguration:\n%s", err, cfg.String())
		}
		t.Logf("attempt %d: %v; picking other ports", attempt, err)
	}
}

// caseMetrics renders the series names of case.toml's [metrics] with the
// addresses router.toml declared.
func caseMetrics(t *testing.T, env *caseEnv, spec map[string]float64) map[string]float64 {
	t.Helper()
	env.lookup = true
	out := map[string]float64{}
	for k, v := range spec {
		kt, err := template.New("case.toml").Option("missingkey=error").Funcs(env.funcs()).Parse(k)
		if err != nil {
			t.Fatalf("case.toml [metrics] %q: %v", k, err)
		}
		var b strings.Builder
		if err := kt.Execute(&b, nil); err != nil {
			t.Fatalf("case.toml [metrics] %q: %v", k, err)
		}
		out[b.String()] = v
	}
	return out
}

// checkCaseFiles checks that input/ and expected/ match what router.toml
// declared: an input per listener and an expected file per sink.
func checkCaseFiles(t *testing.T, env *caseEnv, inputs map[string][]byte, expected map[string][]string, spec caseSpec, update bool) {
	t.Helper()
	for name := range inputs {
		if _, ok := env.listeners[name]; !ok {
			t.Fatalf("input/%s.txt: router.toml has no {{listen %q}} or {{listenudp %q}}", name, name, name)
		}
	}
	for name := range env.listeners {
		if _, ok := inputs[name]; !ok {
			t.Fatalf("listener %q has no input/%s.txt", name, name)
		}
	}
	for name := range expected {
		if _, ok := env.sinks[name]; !ok {
			t.Fatalf("expected/%s.txt: router.toml has no {{sink %q}} or {{udpsink %q}}", name, name, name)
		}
	}
	for name := range env.sinks {
		if _, ok := expected[name]; !ok && (!update || spec.Frozen) {
			t.Fatalf("sink %q has no expected/%s.txt (UPDATE_GOLDEN=1 writes it)", name, name)
		}
	}
	if len(spec.Metrics) > 0 && env.stats == "" {
		t.Fatal("case.toml has [metrics] but router.toml has no stats_addr = \"{{stats}}\"")
	}
}

var errRouterExited = errors.New("the router exited")

// waitCaseListeners waits until the router logged that it listens on every
// listener's address (a probe connection would show in its counters).
func waitCaseListeners(p *routerProc, ls map[string]caseListener, deadline time.Time) error {
	for {
		select {
		case code := <-p.done:
			p.done <- code
			return fmt.Errorf("%w with status %d before it listened", errRouterExited, code)
		default:
		}
		log := p.out.String()
		var missing []string
		for name, l := range ls {
			proto := map[bool]string{false: "tcp", true: "udp"}[l.udp]
			if !logHas(log, `"addr":"`+l.addr+`"`, "listening ("+proto+")") {
				missing = append(missing, fmt.Sprintf("%s (%s %s)", name, proto, l.addr))
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			slices.Sort(missing)
			return fmt.Errorf("the router never logged that it listens on %s", strings.Join(missing, ", "))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logHas reports whether one line of log contains both a and b.
func logHas(log, a, b string) bool {
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, a) && strings.Contains(l, b) {
			return true
		}
	}
	return false
}

// sendCaseInputs sends each listener its input/NAME.txt: over TCP the file
// as it is on one connection (or its lines dealt over conns connections),
// over UDP one datagram per block of lines, blocks separated by a blank line.
func sendCaseInputs(t *testing.T, ls map[string]caseListener, inputs map[string][]byte, conns int) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(ls)) {
		l, data := ls[name], inputs[name]
		switch {
		case l.udp:
			c, err := net.Dial("udp", l.addr)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range udpDatagrams(data) {
				if _, err := c.Write([]byte(g)); err != nil {
					t.Fatalf("input %s: %v", name, err)
				}
			}
			c.Close()
		case conns > 1:
			sendLines(t, l.addr, splitLines(data), conns)
		default:
			c, err := net.Dial("tcp", l.addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(data); err != nil {
				t.Fatalf("input %s: %v", name, err)
			}
			c.Close()
		}
	}
}

// udpDatagrams splits an input file into datagrams: blocks of lines
// separated by blank lines, each sent as its lines joined by '\n' with no
// final '\n'.
func udpDatagrams(data []byte) []string {
	var out []string
	var block []string
	for _, l := range splitLines(data) {
		if l == "" {
			if len(block) > 0 {
				out = append(out, strings.Join(block, "\n"))
			}
			block = nil
			continue
		}
		block = append(block, l)
	}
	if len(block) > 0 {
		out = append(out, strings.Join(block, "\n"))
	}
	return out
}

// waitCond polls cond until it holds or the deadline passes.
func waitCond(deadline time.Time, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// caseQuiet is how long the sinks' counts must stay unchanged before a case
// takes what they received as final.
const caseQuiet = 200 * time.Millisecond

// waitQuiet polls counts until they stayed the same for caseQuiet, or the
// deadline passes.
func waitQuiet(counts func() []int, deadline time.Time) {
	last, since := counts(), time.Now()
	waitCond(deadline, func() bool {
		c := counts()
		if !slices.Equal(c, last) {
			last, since = c, time.Now()
		}
		return time.Since(since) >= caseQuiet
	})
}

// checkCaseMetrics polls /metrics until every series has its value, or the
// deadline passes, and reports those that do not.
func checkCaseMetrics(t *testing.T, stats string, want map[string]float64, deadline time.Time) {
	t.Helper()
	var bad []string
	waitCond(deadline, func() bool {
		m := scrape(t, stats)
		bad = bad[:0]
		for k, v := range want {
			got, ok := m[k]
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s: not in /metrics", k))
			case got != v:
				bad = append(bad, fmt.Sprintf("%s = %v, want %v", k, got, v))
			}
		}
		return len(bad) == 0
	})
	slices.Sort(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// nowToken stands, in an expected file, for a Unix timestamp taken while
// the case ran: the time the router stamps on a metric that had none.
const nowToken = "<now>"

var digitRun = regexp.MustCompile(`[0-9]+`)

// maskNow replaces in line each whole number from lo to hi (not part of a
// longer number or decimal) by nowToken.
func maskNow(line string, lo, hi int64) string {
	idx := digitRun.FindAllStringIndex(line, -1)
	if idx == nil {
		return line
	}
	var b strings.Builder
	prev := 0
	for _, m := range idx {
		if m[0] > 0 && line[m[0]-1] == '.' || m[1] < len(line) && line[m[1]] == '.' {
			continue
		}
		v, err := strconv.ParseInt(line[m[0]:m[1]], 10, 64)
		if err != nil || v < lo || v > hi {
			continue
		}
		b.WriteString(line[prev:m[0]])
		b.WriteString(nowToken)
		prev = m[1]
	}
	b.WriteString(line[prev:])
	return b.String()
}

// diffLines compares got and want as multisets and describes the
// difference, or returns "".
func diffLines(got, want []string) string {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var missing, unexpected []string
	for _, l := range slices.Sorted(maps.Keys(count)) {
		for c := count[l]; c > 0; c-- {
			missing = append(missing, l)
		}
		for c := count[l]; c < 0; c++ {
			unexpected = append(unexpected, l)
		}
	}
	if len(missing) == 0 && len(unexpected) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "got %d lines, want %d: %d missing, %d unexpected", len(got), len(want), len(missing), len(unexpected))
	show := func(what string, ls []string) {
		for i, l := range ls {
			if i == 20 {
				fmt.Fprintf(&b, "\n  %s: ... and %d more", what, len(ls)-i)
				break
			}
			fmt.Fprintf(&b, "\n  %s: %q", what, l)
		}
	}
	show("missing   ", missing)
	show("unexpected", unexpected)
	return b.String()
}

// writeGolden writes lines, one per line, to file.
func writeGolden(file string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}
