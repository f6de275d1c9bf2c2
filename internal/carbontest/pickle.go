package carbontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Datapoint is one (path, (timestamp, value)) of a carbon pickle message.
type Datapoint struct {
	Name  string
	Time  float64
	Value float64
}

// pickleDumpPy reads a Python literal on stdin (ast.literal_eval: nothing
// is executed) and writes one frame of carbon's pickle protocol: the 4-byte
// big-endian length, then pickle.dumps(literal, protocol=argv[1]).
const pickleDumpPy = `import ast, pickle, struct, sys
obj = ast.literal_eval(sys.stdin.read())
data = pickle.dumps(obj, protocol=int(sys.argv[1]))
sys.stdout.buffer.write(struct.pack("!L", len(data)) + data)
`

// pickleLoadPy reads the frames of carbon's pickle protocol from the file
// argv[1] (4-byte big-endian length, then a pickle) and prints each
// (path, (timestamp, value)) as "repr(float(timestamp))<TAB>
// repr(float(value))<TAB>json.dumps(path)", the numbers as carbon's pickle
// receiver converts them. Any global
// in a pickle is refused, a frame that is cut short or a datapoint of
// another shape is an error (exit status 1).
const pickleLoadPy = `import io, json, pickle, struct, sys
class Loader(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s refused" % (module, name))
out = []
with open(sys.argv[1], "rb") as f:
    data = f.read()
pos = 0
while pos < len(data):
    if pos + 4 > len(data):
        sys.exit("frame header cut short at byte %d" % pos)
    (n,) = struct.unpack("!L", data[pos:pos + 4])
    pos += 4
    if pos + n > len(data):
        sys.exit("frame of %d bytes cut short at byte %d" % (n, pos))
    for item in Loader(io.BytesIO(data[pos:pos + n]), encoding="utf-8").load():
        name, (ts, value) = item
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        out.append("%r\t%r\t%s\n" % (float(ts), float(value), json.dumps(name)))
    pos += n
sys.stdout.write("".join(out))
`

// Pickle returns one frame for a carbon pickle receiver, built by python3's
// pickle module: the 4-byte big-endian length and pickle.dumps(obj,
// protocol=protocol), obj being the Python literal, e.g.
// "[('a.b', (1700000000, 1.5))]" (read with ast.literal_eval, so nothing
// in it runs).
func Pickle(t testing.TB, literal string, protocol int) []byte {
	t.Helper()
	need(t, Python3Bin)
	cmd := exec.Command(Python3Bin, "-c", pickleDumpPy, strconv.Itoa(protocol))
	cmd.Stdin = strings.NewReader(literal)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 pickle.dumps: %v\n%s", err, stderr.Bytes())
	}
	return out
}

// PickleDatapoints is Pickle of the list of (name, (time, value)) carbon's
// relays send: a time that is a whole number is a Python int, any other a
// float; values are floats and must be finite, names valid UTF-8.
func PickleDatapoints(t testing.TB, dps []Datapoint, protocol int) []byte {
	t.Helper()
	var b strings.Builder
	b.WriteString("[")
	for _, dp := range dps {
		if math.IsInf(dp.Value, 0) || math.IsNaN(dp.Value) || math.IsInf(dp.Time, 0) || math.IsNaN(dp.Time) {
			t.Fatalf("carbontest.PickleDatapoints: %v: not finite", dp)
		}
		ts := strconv.FormatFloat(dp.Time, 'g', -1, 64)
		if dp.Time == math.Trunc(dp.Time) && math.Abs(dp.Time) < 1<<53 {
			ts = strconv.FormatInt(int64(dp.Time), 10)
		}
		v := strconv.FormatFloat(dp.Value, 'g', -1, 64)
		if !strings.ContainsAny(v, ".e") {
			v += ".0"
		}
		// an ASCII Go string literal of valid UTF-8 is a Python one too
		// (\n, \t, \u...., \U........ mean the same)
		fmt.Fprintf(&b, "(%s, (%s, %s)),", strconv.QuoteToASCII(dp.Name), ts, v)
	}
	b.WriteString("]")
	return Pickle(t, b.String(), protocol)
}

// DecodePickleFrames reads the file of pickle frames at path (as a pickle
// receiver gets them: 4-byte big-endian length, then a pickle) with
// python3's own unpickler, every global refused, and returns the
// datapoints in order. Timestamps and values are converted with float(),
// as carbon's receiver does.
func DecodePickleFrames(t testing.TB, path string) []Datapoint {
	t.Helper()
	need(t, Python3Bin)
	cmd := exec.Command(Python3Bin, "-c", pickleLoadPy, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 pickle.loads %s: %v\n%s", path, err, stderr.Bytes())
	}
	dps, err := parseDatapoints(out)
	if err != nil {
		t.Fatalf("python3 pickle.loads %s: %v", path, err)
	}
	return dps
}

// parseDatapoints reads pickleLoadPy's output.
func parseDatapoints(out []byte) ([]Datapoint, error) {
	var dps []Datapoint
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		ts, rest, ok := strings.Cut(line, "\t")
		value, name, ok2 := strings.Cut(rest, "\t")
		if !ok || !ok2 {
			return nil, fmt.Errorf("line %q: not time, value, name", line)
		}
		var dp Datapoint
		var err error
		if dp.Time, err = strconv.ParseFloat(ts, 64); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		if dp.Value, err = strconv.ParseFloat(value, 64); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		if err := json.Unmarshal([]byte(name), &dp.Name); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		dps = append(dps, dp)
	}
	return dps, nil
}
