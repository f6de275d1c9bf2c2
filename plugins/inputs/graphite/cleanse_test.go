package graphite_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/inputs/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestCleanseOffKeepsBytes: by default a line leaves as it came, junk and
// all; cleansing is an option.
func TestCleanseOffKeepsBytes(t *testing.T) {
	r := start(t, nil)
	c := dial(t, "tcp", r.addr)
	write(t, c, "a..b/c  1 2\r\n.x.y. 3 4\n")
	c.Close()
	r.idle(t, 1)
	want := []string{"a..b/c  1 2\r", ".x.y. 3 4"}
	if got := r.capture.Raw(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestCleanseCounts: with cleanse on, the cleansed bytes are forwarded,
// '\r' ends a line, and every line dropped is counted: as a parse error
// (nothing left, no blank after the name, cleansed but not a Graphite
// line) or as too long (max_input_length, max_metric_length), at once, in
// one stream over TCP and in one UDP datagram.
func TestCleanseCounts(t *testing.T) {
	stream := "" +
		" .a..b/c.\t1..5  2\r\n" + // kept: a.b_c 1.5 2
		"x 1 2\ry 3 4\r\n" + // two lines
		"\r\r\n" + // no line at all
		" . \t\n" + // nothing left: parse error
		"nospace\n" + // no blank: parse error
		"a.b 1\n" + // c-relay forwards it; not Graphite: parse error
		"a;k=v\n" + // the same
		"abcdefghijk 1 2\n" + // name over max_metric_length: too long
		"a 1 " + strings.Repeat("9", 40) + "\n" + // over max_input_length: too long
		"t;k=v..w\t7 8\n" // kept: t;k=v.w 7 8
	want := []string{"a.b_c 1.5 2", "x 1 2", "y 3 4", "t;k=v.w 7 8"}
	mod := func(proto string) func(g *graphite.Graphite) {
		return func(g *graphite.Graphite) {
			g.Protocol, g.Cleanse, g.MaxInputLength, g.MaxMetricLength = proto, true, 40, 10
		}
	}
	check := func(t *testing.T, r *running) {
		t.Helper()
		if got := r.capture.Raw(); !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		for name, n := range map[string]uint64{"parse_errors_total": 4, "lines_too_long_total": 2} {
			if got := r.metrics.Get(name); got != n {
				t.Errorf("%s = %d, want %d", name, got, n)
			}
		}
	}
	t.Run("tcp", func(t *testing.T) {
		r := start(t, mod("tcp"))
		c := dial(t, "tcp", r.addr)
		write(t, c, stream)
		c.Close()
		r.idle(t, 1)
		check(t, r)
	})
	t.Run("udp", func(t *testing.T) {
		r := start(t, mod("udp"))
		c := dial(t, "udp", r.addr)
		write(t, c, stream)
		if !r.capture.WaitFor(len(want), wait) {
			t.Fatalf("%d of %d lines arrived", r.capture.Len(), len(want))
		}
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
}

// TestInitCleanse: the cleansing keys are checked as carbon-c-relay checks
// its -M and -m.
func TestInitCleanse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(g *graphite.Graphite)
		wantErr string
	}{
		{"on", func(g *graphite.Graphite) { g.Cleanse = true }, ""},
		{"limits", func(g *graphite.Graphite) { g.Cleanse, g.MaxInputLength, g.MaxMetricLength = true, 100, 99 }, ""},
		{"no allowed chars", func(g *graphite.Graphite) { g.Cleanse, g.AllowedChars = true, "" }, ""},
		{"zero max_input_length", func(g *graphite.Graphite) { g.MaxInputLength = 0 }, "max_input_length"},
		{"negative max_metric_length", func(g *graphite.Graphite) { g.MaxMetricLength = -1 }, "max_metric_length"},
		{"max_metric_length not smaller", func(g *graphite.Graphite) { g.MaxInputLength, g.MaxMetricLength = 100, 100 }, "must be smaller than max_input_length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraphite(t, tc.mod)
			env, _ := plugintest.Env(t, "inputs.graphite")
			plugintest.WantErr(t, "Init", g.Init(env), tc.wantErr)
		})
	}
}

// relayBin is carbon-c-relay 3.7.3, the reference for cleansing.
func relayBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("carbon-c-relay"); err == nil {
		return p
	}
	const p = "/usr/bin/carbon-c-relay"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("carbon-c-relay is not installed (apt-get install carbon-c-relay): the cleansing reference is missing")
	}
	t.Skip("carbon-c-relay is not installed (apt-get install carbon-c-relay): no reference to compare cleansing with")
	return ""
}

// cleanseCorpus returns n lines (without '\n') of what senders get wrong:
// double, leading and trailing dots, tabs and runs of blanks, bytes outside
// [A-Za-z0-9] (non-ASCII, invalid UTF-8, NUL, controls), tags with junk,
// names of up to a few KB, missing, empty and extra fields, '\r' inside and
// at the end, blank lines. The same seed gives the same lines.
func cleanseCorpus(n int) []string {
	r := rand.New(rand.NewPCG(3, 7))
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	seg := func() string {
		var b strings.Builder
		for range 1 + r.IntN(8) {
			switch r.IntN(12) {
			case 0:
				b.WriteString(pick("/", "*", "(", ")", "=", ",", "~", "%", "+", "@", "!", "?", "[", "]", "{", "}", "'", "\"", "\\", "|", "<", "$", "^", "&", ";"))
			case 1:
				b.WriteString(pick("é", "ß", "日本", "\xff", "\xc3", "\x80\x80", "\x00", "\x01", "\x1b", "\x7f", "\v", "\f"))
			case 2:
				b.WriteString(pick("-", "_", ":", "#"))
			default:
				b.WriteByte(alnum[r.IntN(len(alnum))])
			}
		}
		return b.String()
	}
	blank := func() string { return pick(" ", " ", " ", " ", "  ", "\t", " \t ", "\t\t", "   ") }
	dots := func() string { return pick(".", ".", ".", ".", "..", "...") }
	name := func() string {
		var b strings.Builder
		if r.IntN(6) == 0 {
			b.WriteString(pick(".", "..", " ", "\t", " .", ". "))
		}
		segs := 1 + r.IntN(6)
		if r.IntN(15) == 0 {
			segs = 20 + r.IntN(600) // names of a few hundred bytes to a few KB
		}
		for i := range segs {
			if i > 0 {
				b.WriteString(dots())
			}
			b.WriteString(seg())
		}
		if r.IntN(6) == 0 {
			b.WriteString(dots())
		}
		if r.IntN(4) == 0 {
			for range 1 + r.IntN(3) {
				b.WriteString(pick(";", ";", "; ", ";.", ".;"))
				b.WriteString(seg() + pick("=", "=", "") + seg() + pick("", "", "..", ".x", " "))
			}
		}
		return b.String()
	}
	value := func() string {
		if r.IntN(3) > 0 {
			return pick("1", "42", "1.5", "-2e3", "+7", ".5", "1.", "1..5", "0", "-0.25")
		}
		return pick("0x10", "nan", "inf", "1_000", "١٢", "x", "1;2", "1;.2", "", "é", "1\x00", "1...", "..", "1.2.3")
	}
	ts := func() string {
		if r.IntN(4) > 0 {
			return pick("1700000000", "1700000000", "1700000000.5", "17..0", "-1")
		}
		return pick("", "t", "1700000000;x", "1e400", "..5")
	}
	lines := make([]string, 0, n)
	for range n {
		var l string
		switch k := r.IntN(40); {
		case k < 4: // clean
			var b strings.Builder
			for i := range 1 + r.IntN(6) {
				if i > 0 {
					b.WriteByte('.')
				}
				for range 1 + r.IntN(10) {
					b.WriteByte(alnum[r.IntN(len(alnum))])
				}
			}
			l = b.String() + " " + pick("1", "2.5", "-3") + " 1700000000"
		case k == 4:
			l = ""
		case k == 5:
			l = pick(" ", "\t", " . ", "..", "\t.\t", ";", "\r", "\r\r", " \r ")
		case k == 6:
			l = name() // no blank
		case k == 7:
			l = name() + blank() + value() // two fields
		case k == 8:
			l = name() + blank() + value() + blank() + ts() + blank() + value() // four
		case k < 12:
			l = name() + blank() + value() + blank() + ts() + "\r" + name() + blank() + value() + blank() + ts()
		case k == 12:
			l = name() + blank() // nothing after the name
		default:
			l = name() + blank() + value() + blank() + ts()
		}
		if r.IntN(5) == 0 {
			l += pick("\r", " ", "\t", "  ", " \r", ".")
		}
		if r.IntN(10) == 0 {
			l = blank() + l
		}
		lines = append(lines, l)
	}
	return lines
}

// unexposed returns corpus with each line that carbon-c-relay would read
// with its tags off, for g's settings, split into its '\r'-separated parts,
// and how many lines it split. carbon-c-relay turns the tags off at the
// first ';' of a line and on again at the start of each line it keeps (and
// at each read from the socket): a line it drops for a length limit after
// its ';' leaves them off for the next lines, whose ';' then becomes '_'
// (TestCleanseCarbonCRelayTagQuirk). The router reads each line as the
// first of a read; a sentinel line after each corpus line turns the tags
// back on in carbon-c-relay, but a line's '\r'-separated parts are read in
// a row.
func unexposed(corpus []string, g *graphite.Graphite) ([]string, int) {
	if !g.Cleanse || strings.Contains(g.AllowedChars, ";") {
		return corpus, 0
	}
	c := codec.NewCleanser(g.AllowedChars, g.MaxInputLength, g.MaxMetricLength)
	var out []string
	split := 0
	for _, l := range corpus {
		tags, exposed := true, false
		for _, p := range strings.Split(l, "\r") {
			if p == "" {
				continue
			}
			if !tags {
				exposed = true
				break
			}
			if _, err := c.Cleanse([]byte(p)); err == nil {
				tags = true
			} else if strings.Contains(p, ";") {
				tags = false
			}
		}
		if !exposed {
			out = append(out, l)
			continue
		}
		split++
		out = append(out, strings.Split(l, "\r")...)
	}
	return out, split
}

// sentinel separates the outputs of corpus line i; no cleansing touches it.
func sentinel(i int) string { return fmt.Sprintf("sentinel.%d 1 1", i) }

// stream is the corpus as sent: each line, then its sentinel.
func stream(corpus []string) []byte {
	var b bytes.Buffer
	for i, l := range corpus {
		b.WriteString(l)
		b.WriteByte('\n')
		b.WriteString(sentinel(i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// groups splits what came out into the lines of each corpus line (between
// its sentinel and the previous one); every sentinel must be there, in order.
func groups(t *testing.T, who string, out []string, n int) [][]string {
	t.Helper()
	gs := make([][]string, 0, n)
	var cur []string
	for _, l := range out {
		if strings.HasPrefix(l, "sentinel.") && strings.HasSuffix(l, " 1 1") {
			if want := sentinel(len(gs)); l != want {
				t.Fatalf("%s: got %q where %q was due", who, l, want)
			}
			gs = append(gs, cur)
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	if len(gs) != n || cur != nil {
		t.Fatalf("%s: %d of %d sentinels, %d lines after the last", who, len(gs), n, len(cur))
	}
	return gs
}

// runRelay passes data through carbon-c-relay with the given flags (and -s:
// no statistics of its own, -w 1) and returns the lines its forward
// cluster sent, once the last sentinel arrived.
func runRelay(t *testing.T, bin string, flags []string, data []byte, last string) []string {
	t.Helper()
	sink := plugintest.NewLineSink(t)
	addr := plugintest.FreeAddr(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "relay.conf")
	cfg := fmt.Sprintf("listen type linemode %s proto tcp;\ncluster sink forward %s;\nmatch * send to sink stop;\n", addr, sink.Addr)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs plugintest.SyncBuffer
	cmd := exec.Command(bin, append([]string{"-f", conf, "-s", "-w", "1"}, flags...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		// what it forwarded is in: no need for its graceful stop (seconds)
		_ = cmd.Process.Kill()
		<-exited
	}()
	var c net.Conn
	deadline := time.Now().Add(wait)
	for {
		var err error
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("carbon-c-relay %q exited: %v\n%s", flags, err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-c-relay does not listen on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if _, err := c.Write(data); err != nil {
		t.Fatalf("write to carbon-c-relay: %v", err)
	}
	c.Close()
	deadline = time.Now().Add(3 * wait)
	for {
		lines := sink.Lines()
		if len(lines) > 0 && lines[len(lines)-1] == last {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-c-relay forwarded %d lines, not up to %q\n%s", len(lines), last, logs.String())
		}
		sink.WaitLen(len(lines)+1, 100*time.Millisecond)
	}
}

// runRouter passes data through inputs.graphite set up by mod and returns
// the lines it emitted and its parse_errors_total + lines_too_long_total.
func runRouter(t *testing.T, mod func(g *graphite.Graphite), data []byte, last string) ([]string, uint64) {
	t.Helper()
	r := start(t, mod)
	c := dial(t, "tcp", r.addr)
	write(t, c, string(data))
	c.Close()
	r.idle(t, 1)
	out := r.capture.Raw()
	if len(out) == 0 || out[len(out)-1] != last {
		t.Fatalf("the router emitted %d lines, not up to %q", len(out), last)
	}
	return out, r.metrics.Get("parse_errors_total") + r.metrics.Get("lines_too_long_total")
}

// TestCleanseMatchesCarbonCRelay sends one generated corpus of bad lines
// to the real carbon-c-relay and to inputs.graphite with the same
// settings, and compares what each forwards, line by line. The router
// forwards exactly the lines carbon-c-relay forwards that are Graphite
// lines ("path value timestamp" with numbers: carbon drops the others),
// byte for byte, and counts every other line it read.
func TestCleanseMatchesCarbonCRelay(t *testing.T) {
	bin := relayBin(t)
	corpus0 := cleanseCorpus(3000)
	for _, tc := range []struct {
		name  string
		flags []string // carbon-c-relay's
		mod   func(g *graphite.Graphite)
	}{
		{"defaults", nil, func(g *graphite.Graphite) { g.Cleanse = true }},
		{"allowed ';' and limits", []string{"-c", "-_:#/;=", "-M", "300", "-m", "60"}, func(g *graphite.Graphite) {
			g.Cleanse, g.AllowedChars, g.MaxInputLength, g.MaxMetricLength = true, "-_:#/;=", 300, 60
		}},
		{"utf-8 allowed, metric limit", []string{"-c", "é@=", "-m", "40"}, func(g *graphite.Graphite) {
			g.Cleanse, g.AllowedChars, g.MaxMetricLength = true, "é@=", 40
		}},
		{"nothing allowed, input limit", []string{"-c", "", "-M", "1000"}, func(g *graphite.Graphite) {
			g.Cleanse, g.AllowedChars, g.MaxInputLength = true, "", 1000
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGraphite(t, tc.mod)
			corpus, split := unexposed(corpus0, g)
			data := stream(corpus)
			last := sentinel(len(corpus) - 1)
			relay := groups(t, "carbon-c-relay", runRelay(t, bin, tc.flags, data, last), len(corpus))
			routed, dropped := runRouter(t, tc.mod, data, last)
			router := groups(t, "router", routed, len(corpus))
			var m metric.Metric
			var same, changed, relayDropped, notGraphite uint64
			for i, line := range corpus {
				var want []string
				for _, l := range relay[i] {
					if codec.Parse([]byte(l), &m) == nil {
						want = append(want, l)
					} else {
						notGraphite++
					}
				}
				if !slices.Equal(router[i], want) {
					t.Errorf("line %d %q:\ncarbon-c-relay %q\nrouter         %q", i, line, relay[i], router[i])
				}
				parts := 0
				for _, p := range strings.Split(line, "\r") {
					if p != "" {
						parts++
					}
				}
				relayDropped += uint64(parts - len(relay[i]))
				same += uint64(len(want))
				for _, l := range want {
					if !slices.Contains(strings.Split(line, "\r"), l) {
						changed++
					}
				}
			}
			if want := relayDropped + notGraphite; dropped != want {
				t.Errorf("router counted %d bad lines, want %d (%d dropped by carbon-c-relay, %d not Graphite)", dropped, want, relayDropped, notGraphite)
			}
			t.Logf("%d corpus lines (%d split at '\\r'): %d forwarded by both (%d changed by cleansing), %d dropped by carbon-c-relay, %d forwarded by it that are not Graphite",
				len(corpus), split, same, changed, relayDropped, notGraphite)
			// the corpus exercises every path, or the comparison says little
			if same < 1200 || changed < 300 || relayDropped < 50 || notGraphite < 200 {
				t.Errorf("the corpus is too tame for these settings")
			}
		})
	}
}

// TestCleanseCarbonCRelayTagQuirk: where cleansing differs from
// carbon-c-relay's on purpose. carbon-c-relay turns tags off at a line's
// first ';' and on again only at a line it keeps or at its next read from
// the socket. So after a line with tags that it drops for a length limit,
// the ';' of the next lines of the same read become '_' until a line is
// kept: what a line becomes depends on how the stream was cut into reads.
// The router cleanses each line on its own.
func TestCleanseCarbonCRelayTagQuirk(t *testing.T) {
	bin := relayBin(t)
	// one small write: carbon-c-relay reads it at once
	data := []byte("long.name;k=v 1 2\na;b=c 3 4\nd;e=f 5 6\nend 1 1\n")
	relay := runRelay(t, bin, []string{"-m", "5"}, data, "end 1 1")
	if want := []string{"a_b_c 3 4", "d;e=f 5 6", "end 1 1"}; !slices.Equal(relay, want) {
		t.Fatalf("carbon-c-relay forwarded %q, want %q", relay, want)
	}
	routed, dropped := runRouter(t, func(g *graphite.Graphite) { g.Cleanse, g.MaxMetricLength = true, 5 }, data, "end 1 1")
	if want := []string{"a;b=c 3 4", "d;e=f 5 6", "end 1 1"}; !slices.Equal(routed, want) || dropped != 1 {
		t.Fatalf("the router forwarded %q and counted %d bad lines, want %q and 1", routed, dropped, want)
	}
}

// BenchmarkTCPInputCleanse is BenchmarkTCPInput with cleanse = true, on
// lines that need it (double dots, a tab, a byte to replace).
func BenchmarkTCPInputCleanse(b *testing.B) {
	benchTCPInput(b, "bench..input/path.%d\t%d.5 1700000000\n", func(g *graphite.Graphite) { g.Cleanse = true })
}
