package pickle

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

// golden is one message of testdata/golden and what Decode must make of
// it (testdata/README.md says how they were made).
type golden struct {
	name    string
	msg     []byte
	lines   []byte
	skipped int
}

func loadGolden(tb testing.TB) []golden {
	tb.Helper()
	files, err := filepath.Glob("testdata/golden/*.pickle")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden messages: %v", err)
	}
	var gs []golden
	for _, f := range files {
		msg, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(f, ".pickle") + ".txt")
		if err != nil {
			tb.Fatal(err)
		}
		head, lines, _ := bytes.Cut(want, []byte("\n"))
		n, err := strconv.Atoi(strings.TrimPrefix(string(head), "# skipped "))
		if err != nil {
			tb.Fatalf("%s: bad header %q", f, head)
		}
		gs = append(gs, golden{filepath.Base(f), msg, lines, n})
	}
	return gs
}

// TestGolden: every message Python 2 and 3 wrote decodes to the lines
// gen.py expects, and every line parses with the Graphite codec.
func TestGolden(t *testing.T) {
	var d Decoder
	for _, g := range loadGolden(t) {
		t.Run(g.name, func(t *testing.T) {
			out, skipped, err := d.Decode([]byte("keep\n"), g.msg)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.HasPrefix(out, []byte("keep\n")) {
				t.Fatalf("dst not appended to: %q", out[:min(len(out), 20)])
			}
			out = out[5:]
			if !bytes.Equal(out, g.lines) {
				t.Errorf("lines differ:\n got %q\nwant %q", firstDiff(out, g.lines), firstDiff(g.lines, out))
			}
			if skipped != g.skipped {
				t.Errorf("skipped %d, want %d", skipped, g.skipped)
			}
			for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var m metric.Metric
				if err := graphite.Parse(line, &m); err != nil {
					t.Errorf("line %q does not parse: %v", line, err)
				}
			}
		})
	}
}

func firstDiff(a, b []byte) []byte {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	s := max(0, i-40)
	return a[s:min(len(a), i+40)]
}

// TestDecodeCases: hand-written messages, one construct each.
func TestDecodeCases(t *testing.T) {
	const T = "J\x00\xf1\x53\x65" // BININT 1700000000
	entry := func(name, ts, v string) string {
		return "X" + le32(len(name)) + name + ts + v + "\x86\x86"
	}
	cases := []struct {
		name    string
		msg     string
		want    string
		skipped int
		err     error
	}{
		{"empty list", "\x80\x02].", "", 0, nil},
		{"empty tuple", ").", "", 0, nil},
		{"top tuple", "(" + entry("a", T, "K\x01") + "t.", "a 1 1700000000\n", 0, nil},
		{"append", "]" + entry("a", T, "K\x01") + "a.", "a 1 1700000000\n", 0, nil},
		{"list opcode", "(" + entry("a", T, "K\x02") + entry("b", T, "K\x03") + "l.", "a 2 1700000000\nb 3 1700000000\n", 0, nil},
		{"memo list shared", "]q\x00" + entry("a", T, "K\x01") + "a0h\x00.", "a 1 1700000000\n", 0, nil},
		{"dup list shared", "]2" + entry("a", T, "K\x01") + "a0.", "a 1 1700000000\n", 0, nil},
		{"pop mark", "](K\x01K\x021" + entry("a", T, "K\x01") + "a.", "a 1 1700000000\n", 0, nil},
		{"memoize", "\x80\x04]\x94" + entry("a", T, "K\x01") + "a0h\x00.", "a 1 1700000000\n", 0, nil},
		{"long1 ts", "]" + entry("a", "\x8a\x05\x00\x00\x00\x00\x01", "K\x01") + "a.", "a 1 4294967296\n", 0, nil},
		{"long1 neg", "]" + entry("a", T, "\x8a\x01\xff") + "a.", "a -1 1700000000\n", 0, nil},
		{"long1 empty", "]" + entry("a", T, "\x8a\x00") + "a.", "a 0 1700000000\n", 0, nil},
		{"long1 -2^64", "]" + entry("a", T, "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff") + "a.", "a -18446744073709551616 1700000000\n", 0, nil},
		{"long4", "]" + entry("a", T, "\x8b\x02\x00\x00\x00\x00\x01") + "a.", "a 256 1700000000\n", 0, nil},
		{"long4 huge", "]" + entry("a", T, "\x8b\x00\x02\x00\x00"+strings.Repeat("\x01", 512)) + "a.", "", 1, nil},
		{"int text", "]" + entry("a", "I-5\n", "L123456789012345678901234567890L\n") + "a.", "a 123456789012345678901234567890 -5\n", 0, nil},
		{"float text", "]" + entry("a", "F1.7e9\n", "F-inf\n") + "a.", "a -inf 1700000000\n", 0, nil},
		{"float nan", "]" + entry("a", T, "Fnan\n") + "a.", "", 1, nil},
		{"none", "]" + entry("a", T, "N") + "a.", "", 1, nil},
		{"control in name", "]" + entry("a\x01b", T, "K\x01") + "a.", "", 1, nil},
		{"nul in name", "]" + entry("a\x00b", T, "K\x01") + "a.", "", 1, nil},
		{"newline in name", "]" + entry("a\nb 1 2", T, "K\x01") + "a.", "", 1, nil},
		{"not a list", "K\x01.", "", 0, ErrMalformed},
		{"no stop", "]", "", 0, ErrMalformed},
		{"truncated", "]X\xff\x00\x00\x00ab", "", 0, ErrMalformed},
		{"stop on empty", ".", "", 0, ErrMalformed},
		{"stop above mark", "](.", "", 0, ErrMalformed},
		{"append under mark", "](K\x01a.", "", 0, ErrMalformed},
		{"get unset", "h\x05.", "", 0, ErrMalformed},
		{"proto 6", "\x80\x06].", "", 0, ErrMalformed},
		{"frame overrun", "\x95\xff\x00\x00\x00\x00\x00\x00\x00].", "", 0, ErrMalformed},
		{"int leading zero", "]" + entry("a", T, "I007\n") + "a.", "", 0, ErrMalformed},
		{"float hex", "]" + entry("a", T, "F0x1p3\n") + "a.", "", 0, ErrMalformed},
		{"put huge key", "]r\xff\xff\xff\x7f.", "", 0, ErrLimit},
		{"unknown opcode", "]\xff.", "", 0, ErrMalformed},
		{"global", "]cos\nsystem\n.", "", 0, ErrForbidden},
		{"dict", "}.", "", 0, ErrForbidden},
		{"reduce late", "]" + entry("a", T, "K\x01") + "aR.", "", 0, ErrForbidden},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, skipped, err := d.Decode(nil, []byte(c.msg))
			if !errors.Is(err, c.err) || err != nil && c.err == nil {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if string(out) != c.want || skipped != c.skipped {
				t.Errorf("got %q skipped %d, want %q skipped %d", out, skipped, c.want, c.skipped)
			}
		})
	}
}

func le32(n int) string {
	return string([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
}

// TestExpansionBound: memo references repeating a long name cannot make a
// message's lines much bigger than the message.
func TestExpansionBound(t *testing.T) {
	name := strings.Repeat("n", 10000)
	msg := "](X" + le32(len(name)) + name + "q\x00J\x00\xf1\x53\x65K\x01\x86\x86q\x01" +
		strings.Repeat("h\x01", 20000) + "e."
	var d Decoder
	out, _, err := d.Decode(nil, []byte(msg))
	if !errors.Is(err, ErrExpansion) || len(out) != 0 {
		t.Fatalf("err %v, %d bytes out; want ErrExpansion", err, len(out))
	}
	// DUP costs one byte a line: lines stay below one per byte
	msg = "](X\x01\x00\x00\x00aK\x01K\x01\x86\x86" + strings.Repeat("2", 100000) + "e."
	out, _, err = d.Decode(out, []byte(msg))
	if err != nil || bytes.Count(out, []byte("\n")) > len(msg) {
		t.Fatalf("err %v, %d lines from %d bytes", err, bytes.Count(out, []byte("\n")), len(msg))
	}
}

// TestDecodeNoAlloc: a decoder that has seen a message decodes it again
// without allocating.
func TestDecodeNoAlloc(t *testing.T) {
	var d Decoder
	for _, g := range loadGolden(t) {
		dst, _, _ := d.Decode(nil, g.msg)
		allocs := testing.AllocsPerRun(20, func() {
			dst, _, _ = d.Decode(dst[:0], g.msg)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per message", g.name, allocs)
		}
	}
}

// TestMaliciousPickle: os.system through GLOBAL + REDUCE (protocol 0) and
// through STACK_GLOBAL + REDUCE (protocol 4) is refused with ErrForbidden
// and has no effect. python3 (when present) first proves that each payload
// does run the command when unpickled.
func TestMaliciousPickle(t *testing.T) {
	dir := t.TempDir()
	payloads := map[string]func(path string) []byte{
		"global": func(path string) []byte {
			return []byte("(lp0\n(S'x'\n(I1\ncos\nsystem\n(S'touch " + path + "'\ntRtta.")
		},
		"stack_global": func(path string) []byte {
			cmd := "touch " + path
			return []byte("\x80\x04\x95" + le64(0) + "](\x8c\x01x\x94\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c" +
				string(rune(len(cmd))) + cmd + "\x94\x85\x94R\x94\x86\x94e.")
		},
	}
	py, pyErr := exec.LookPath("python3")
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			if pyErr == nil {
				live := filepath.Join(dir, name+"-python")
				cmd := exec.Command(py, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())")
				cmd.Stdin = bytes.NewReader(payload(live))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("python3: %v: %s", err, out)
				}
				if _, err := os.Stat(live); err != nil {
					t.Fatalf("the payload is not live: python3 did not create %s", live)
				}
			} else {
				t.Logf("python3 not found (%v): the payload's liveness is not checked", pyErr)
			}
			target := filepath.Join(dir, name+"-router")
			var d Decoder
			out, skipped, err := d.Decode(nil, payload(target))
			if !errors.Is(err, ErrForbidden) || len(out) != 0 || skipped != 0 {
				t.Fatalf("Decode: %q, %d skipped, %v; want ErrForbidden", out, skipped, err)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s exists: the payload ran (%v)", target, err)
			}
		})
	}
}

func le64(n uint64) string {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	return string(b)
}
