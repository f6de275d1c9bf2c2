package pickle

import (
	"bytes"
	"encoding/binary"
	"math"
	"os/exec"
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
)

type point struct {
	name, ts string
	value    float64
}

// encodeCases: datapoints and, as a Python expression, the list carbon's
// unpickler must get from them.
var encodeCases = []struct {
	name   string
	points []point
	python string
}{
	{"empty", nil, "[]"},
	{"ints and floats", []point{
		{"a.b", "1700000000", 1.5},
		{"caf\u00e9.\u20ac;tag=v", "0", math.Copysign(0, -1)},
		{"small", "255", 1e-300},
		{"int2", "65535", math.Inf(1)},
		{"neg", "-1", math.Inf(-1)},
		{"big", "4294967296", 1e300},
		{"huge.ts", "-9223372036854775", math.NaN()},
		{"frac.ts", "1700000000.25", 3},
		{"exp.ts", "1.7e9", 0.1},
		{"now", "", 42},
	}, "[(u'a.b', (1700000000, 1.5)), (u'caf\\xe9.\\u20ac;tag=v', (0, -0.0)), (u'small', (255, 1e-300))," +
		" (u'int2', (65535, float('inf'))), (u'neg', (-1, float('-inf'))), (u'big', (4294967296, 1e300))," +
		" (u'huge.ts', (-9223372036854775, float('nan'))), (u'frac.ts', (1700000000.25, 3.0))," +
		" (u'exp.ts', (1700000000.0, 0.1)), (u'now', (1600000000, 42.0))]"},
}

func encodeMessage(t testing.TB, e *Encoder, dst []byte, pts []point) []byte {
	dst = e.Begin(dst)
	for _, p := range pts {
		var err error
		dst, err = e.Append(dst, []byte(p.name), []byte(p.ts), p.value, 1600000000)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
	}
	return e.End(dst)
}

// TestEncodePython: python3's pickle.loads reads each message as exactly
// the intended list (repr equal: types, NaN and -0.0 included), and
// Decode reads it back.
func TestEncodePython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 not found (%v): the encoder is not checked against pickle.loads", err)
	}
	var e Encoder
	var stream []byte
	var exprs []string
	for _, c := range encodeCases {
		stream = encodeMessage(t, &e, stream, c.points)
		exprs = append(exprs, c.python)
	}
	script := `
import pickle, struct, sys
data = sys.stdin.buffer.read()
want = eval(sys.argv[1])
got = []
while data:
    n, = struct.unpack('>I', data[:4])
    got.append(pickle.loads(data[4:4 + n]))
    data = data[4 + n:]
if repr(got) != repr(want):
    sys.exit('got  %r\nwant %r' % (got, want))
`
	cmd := exec.Command(py, "-c", script, "["+strings.Join(exprs, ", ")+"]")
	cmd.Stdin = bytes.NewReader(stream)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	// the decoder reads its own messages (NaN values skipped, as carbon does)
	var d Decoder
	for _, c := range encodeCases {
		n := binary.BigEndian.Uint32(stream[:4])
		var msg []byte
		msg, stream = stream[4:4+n], stream[4+n:]
		if _, _, err := d.Decode(nil, msg); err != nil {
			t.Errorf("%s: Decode: %v", c.name, err)
		}
	}
}

// TestEncodeRefuses: a name carbon would refuse, and a timestamp it cannot
// store, leave dst as it was.
func TestEncodeRefuses(t *testing.T) {
	var e Encoder
	dst := e.Begin(nil)
	for _, p := range []point{{"", "1", 1}, {"bad\xff", "1", 1}, {"a", "inf", 1}, {"a", "x", 1}} {
		out, err := e.Append(dst, []byte(p.name), []byte(p.ts), p.value, 0)
		if err == nil || len(out) != len(dst) {
			t.Errorf("%+v: err %v, %d bytes written", p, err, len(out)-len(dst))
		}
	}
}

// TestEncodeNoAlloc: with room in dst, a message costs no allocation.
func TestEncodeNoAlloc(t *testing.T) {
	var e Encoder
	dst := make([]byte, 0, 1<<16)
	allocs := testing.AllocsPerRun(100, func() {
		dst = encodeMessage(t, &e, dst[:0], encodeCases[1].points)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message", allocs)
	}
}

func parseLine(line string) (metric.Metric, error) {
	var m metric.Metric
	err := graphite.Parse([]byte(line), &m)
	return m, err
}

// TestAppendMetric: a parsed Graphite metric keeps its path, tags, integer
// or fractional timestamp and value.
func TestAppendMetric(t *testing.T) {
	var e Encoder
	var dst []byte
	dst = e.Begin(dst)
	for _, l := range []string{"a.b;k=v 1.5 1700000000", "c 2 1700000000.5"} {
		m, err := parseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if dst, err = e.AppendMetric(dst, &m, 0); err != nil {
			t.Fatal(err)
		}
	}
	dst = e.End(dst)
	var d Decoder
	out, _, err := d.Decode(nil, dst[4:])
	if err != nil || string(out) != "a.b;k=v 1.5 1700000000\nc 2 1700000000.5\n" {
		t.Fatalf("%q, %v", out, err)
	}
}
