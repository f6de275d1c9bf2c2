package pickle

import (
	"bytes"
	"errors"
	"math/big"
	"strconv"
	"testing"
	"unicode/utf8"

	ogorek "github.com/kisielk/og-rek"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/internal/num"
	"github.com/metricsrouter/router/plugins/metric"
)

// FuzzDecode: Decode never panics, its output is bounded and parses with
// the Graphite codec, and it agrees with og-rek (an independent
// unpickler): whenever og-rek reads a list or tuple, Decode gives the
// datapoints og-rek's values make and skips the same entries, and
// whenever Decode accepts a message, og-rek does too. Messages with
// constructs og-rek reads differently from CPython (Decoder.quirks: its
// missing opcodes, its copied lists, its wider reading of protocol-0
// text) and messages Decode refuses by design (ErrForbidden, the bounds)
// are checked for the first properties only.
func FuzzDecode(f *testing.F) {
	for _, g := range loadGolden(f) {
		if len(g.msg) < 4096 {
			f.Add(g.msg)
		}
	}
	f.Add([]byte("(lp0\n(S'x'\n(I1\ncos\nsystem\n(S'true'\ntRtta."))
	f.Add([]byte("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00](\x8c\x01a\x94K\x01K\x02\x86\x86\x94h\x00e."))
	var d Decoder
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, skipped, err := d.Decode(nil, msg)
		if err != nil && (len(out) != 0 || skipped != 0) {
			t.Fatalf("refused with %v but wrote %q", err, out)
		}
		if len(out) > expansion*len(msg)+expansionSlack+len(msg)+800 {
			t.Fatalf("%d bytes out of %d", len(out), len(msg))
		}
		if n := bytes.Count(out, []byte("\n")); n > len(msg) {
			t.Fatalf("%d lines out of %d bytes", n, len(msg))
		}
		for _, line := range bytes.SplitAfter(out, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var m metric.Metric
			if line[len(line)-1] != '\n' || graphite.Parse(line[:len(line)-1], &m) != nil {
				t.Fatalf("line %q does not parse", line)
			}
		}
		if d.quirks != 0 || errors.Is(err, ErrForbidden) || errors.Is(err, ErrLimit) || errors.Is(err, ErrExpansion) {
			return
		}
		v, oerr := ogorek.NewDecoder(bytes.NewReader(msg)).Decode()
		if err == nil && oerr != nil {
			t.Fatalf("Decode accepts, og-rek refuses: %v", oerr)
		}
		if oerr != nil {
			return
		}
		want, wskipped, ok := refLines(v)
		if !ok {
			if err == nil {
				t.Fatalf("Decode accepts, og-rek reads %T", v)
			}
			return
		}
		if err != nil {
			t.Fatalf("og-rek reads a list, Decode refuses: %v", err)
		}
		if !bytes.Equal(out, want) || skipped != wskipped {
			t.Fatalf("got %q (%d skipped), og-rek's %q (%d skipped)", out, skipped, want, wskipped)
		}
	})
}

// refLines makes the lines of og-rek's value, following the package doc.
func refLines(v any) (out []byte, skipped int, ok bool) {
	var entries []any
	switch v := v.(type) {
	case []any:
		entries = v
	case ogorek.Tuple:
		entries = v
	default:
		return nil, 0, false
	}
	for _, e := range entries {
		line, ok := refEntry(e)
		if !ok {
			skipped++
			continue
		}
		out = append(out, line...)
	}
	return out, skipped, true
}

func two(v any) (any, any, bool) {
	switch v := v.(type) {
	case []any:
		if len(v) == 2 {
			return v[0], v[1], true
		}
	case ogorek.Tuple:
		if len(v) == 2 {
			return v[0], v[1], true
		}
	}
	return nil, nil, false
}

func refText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case ogorek.Bytes:
		return string(v), true
	case ogorek.ByteString:
		return string(v), true
	}
	return "", false
}

func refEntry(e any) ([]byte, bool) {
	n, dp, ok := two(e)
	if !ok {
		return nil, false
	}
	name, ok := refText(n)
	if !ok || name == "" || !utf8.ValidString(name) {
		return nil, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] == 0x7f {
			return nil, false
		}
	}
	ts, val, ok := two(dp)
	if !ok {
		return nil, false
	}
	vs, ok1 := refNum(val, false)
	tss, ok2 := refNum(ts, true)
	if !ok1 || !ok2 {
		return nil, false
	}
	return []byte(name + " " + vs + " " + tss + "\n"), true
}

func refNum(v any, time bool) (string, bool) {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	case *big.Int:
		// float() raises where the nearest float64 is infinite
		if f, _ := new(big.Float).SetInt(v).Float64(); f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
			return "", false
		}
		return v.String(), true
	case float64:
		b, ok := appendFloat(nil, v, time)
		return string(b), ok
	}
	if s, ok := refText(v); ok {
		f, ok := num.PyFloat([]byte(s))
		if !ok {
			return "", false
		}
		b, ok := appendFloat(nil, f, time)
		return string(b), ok
	}
	return "", false
}
