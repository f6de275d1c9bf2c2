package pickle

import (
	"encoding/binary"
	"errors"
	"math"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/codec/internal/num"
	"github.com/metricsrouter/router/plugins/metric"
)

// Why Encoder.Append refuses a datapoint: carbon's unpickler would drop
// the whole message for the first (it decodes names as UTF-8), and carbon
// cannot store the second.
var (
	ErrName = errors.New("pickle: name is empty or not UTF-8")
	ErrTime = errors.New("pickle: timestamp is not a finite number")
)

// Encoder writes one message at a time as carbon's relay does
// (pickle.dumps(datapoints, protocol=2), after a 4-byte big-endian
// length): PROTO 2, a list, then per datapoint BINUNICODE path, the
// timestamp (BININT, LONG1 or BINFLOAT), the value (BINFLOAT), TUPLE2,
// TUPLE2; APPENDS, STOP. It writes no memo (unpicklers need none). Its
// zero value is ready to use; Begin, Append and End only grow dst.
type Encoder struct {
	start int // offset of the message's length in dst
	n     int // datapoints in the message
}

// Begin starts a message at the end of dst.
func (e *Encoder) Begin(dst []byte) []byte {
	e.start, e.n = len(dst), 0
	return append(dst, 0, 0, 0, 0, 0x80, 2, opEmptyList, opMark)
}

// Len returns the datapoints appended since Begin.
func (e *Encoder) Len() int { return e.n }

// Append appends one datapoint: name, the timestamp token ts (an integer
// is written as an int, anything else float() reads as a float; no token:
// now) and value. It returns dst unchanged and an error for a name that
// is empty or not UTF-8 and for a timestamp that is not a finite number.
func (e *Encoder) Append(dst, name, ts []byte, value float64, now int64) ([]byte, error) {
	if len(name) == 0 || !utf8.Valid(name) {
		return dst, ErrName
	}
	var (
		it    int64
		ft    float64
		isInt = true
	)
	switch {
	case len(ts) == 0:
		it = now
	default:
		if n, ok := intToken(ts); ok {
			it = n
		} else {
			f, ok := num.PyFloat(ts)
			if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
				return dst, ErrTime
			}
			ft, isInt = f, false
		}
	}
	dst = append(dst, opBinunicode)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(name)))
	dst = append(dst, name...)
	if isInt {
		dst = appendInt(dst, it)
	} else {
		dst = appendBinfloat(dst, ft)
	}
	dst = appendBinfloat(dst, value)
	dst = append(dst, opTuple2, opTuple2)
	e.n++
	return dst, nil
}

// AppendMetric appends a Graphite metric: its path (tags included), its
// timestamp (now if it has none) and its value.
func (e *Encoder) AppendMetric(dst []byte, m *metric.Metric, now int64) ([]byte, error) {
	return e.Append(dst, m.Path(), m.TimeToken(), m.Value(), now)
}

// End closes the message begun by Begin and fills in its length.
func (e *Encoder) End(dst []byte) []byte {
	dst = append(dst, opAppends, opStop)
	binary.BigEndian.PutUint32(dst[e.start:], uint32(len(dst)-e.start-4))
	return dst
}

// intToken reads an integer token [+-]digits that fits an int64.
func intToken(b []byte) (int64, bool) {
	i := 0
	neg := false
	if b[0] == '-' || b[0] == '+' {
		neg = b[0] == '-'
		i = 1
	}
	if i == len(b) || len(b)-i > 18 {
		return 0, false
	}
	var n int64
	for ; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// appendInt writes n as Python's pickler does at protocol 2: BININT1,
// BININT2, BININT, else LONG1 with the fewest bytes.
func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= 0xff:
		return append(dst, opBinint1, byte(n))
	case n >= 0 && n <= 0xffff:
		return append(dst, opBinint2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		dst = append(dst, opBinint)
		return binary.LittleEndian.AppendUint32(dst, uint32(n))
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	k := 8
	for k > 1 && (b[k-1] == 0 && b[k-2] < 0x80 || b[k-1] == 0xff && b[k-2] >= 0x80) {
		k--
	}
	dst = append(dst, opLong1, byte(k))
	return append(dst, b[:k]...)
}

func appendBinfloat(dst []byte, f float64) []byte {
	dst = append(dst, opBinfloat)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}
