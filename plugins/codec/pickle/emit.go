package pickle

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/codec/internal/num"
)

// emit writes the datapoints of the list or tuple top as lines.
func (d *Decoder) emit(dst []byte, top int32, size int) ([]byte, int, error) {
	limit := len(dst) + expansion*size + expansionSlack
	skipped, lines := 0, 0
	one := func(e int32) error {
		if lines >= size {
			return ErrExpansion
		}
		n0 := len(dst)
		var ok bool
		dst, ok = d.entry(dst, e)
		if !ok {
			dst = dst[:n0]
			skipped++
			return nil
		}
		lines++
		if len(dst) > limit {
			return ErrExpansion
		}
		return nil
	}
	v := d.vals[top]
	switch v.kind {
	case kList:
		for n := v.a; n >= 0; n = d.nodes[n].next {
			if err := one(d.nodes[n].v); err != nil {
				return dst, 0, err
			}
		}
	case kTuple:
		for _, e := range d.items[v.a : v.a+v.b] {
			if err := one(e); err != nil {
				return dst, 0, err
			}
		}
	default:
		return dst, 0, ErrMalformed
	}
	return dst, skipped, nil
}

// pair returns the two items of a list or tuple of length 2.
func (d *Decoder) pair(i int32) (x, y int32, ok bool) {
	v := d.vals[i]
	switch v.kind {
	case kTuple:
		if v.b == 2 {
			return d.items[v.a], d.items[v.a+1], true
		}
	case kList:
		if v.a >= 0 {
			n1 := d.nodes[v.a]
			if n1.next >= 0 {
				n2 := d.nodes[n1.next]
				if n2.next < 0 {
					return n1.v, n2.v, true
				}
			}
		}
	}
	return 0, 0, false
}

func (d *Decoder) bytesOf(v value) []byte {
	if v.inText {
		return d.text[v.a : v.a+v.b]
	}
	return d.msg[v.a : v.a+v.b]
}

// entry appends the line of the entry e = (name, (timestamp, value)), or
// reports it is not a datapoint (dst then holds a part of its line).
func (d *Decoder) entry(dst []byte, e int32) ([]byte, bool) {
	name, dp, ok := d.pair(e)
	if !ok {
		return dst, false
	}
	nv := d.vals[name]
	if nv.kind != kStr {
		return dst, false
	}
	nb := d.bytesOf(nv)
	if !validName(nb) {
		return dst, false
	}
	ts, val, ok := d.pair(dp)
	if !ok {
		return dst, false
	}
	dst = append(dst, nb...)
	dst = append(dst, ' ')
	if dst, ok = d.appendNum(dst, d.vals[val], false); !ok {
		return dst, false
	}
	dst = append(dst, ' ')
	if dst, ok = d.appendNum(dst, d.vals[ts], true); !ok {
		return dst, false
	}
	return append(dst, '\n'), true
}

// overflow is 2**1024 - 2**970, the least integer that float() rounds to
// 2**1024 and refuses with OverflowError (half way to the largest float64,
// rounded to even).
const overflow = "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792"

// validName reports a name a plaintext line can carry as it is: not
// empty, UTF-8, without space and ASCII control bytes (NUL, '\t', '\n',
// '\r' and the others, which line readers split on or stop at).
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

// appendNum appends v as float() reads it in carbon, or reports that it
// is not a number carbon keeps (time: a timestamp, which must be finite).
func (d *Decoder) appendNum(dst []byte, v value, time bool) ([]byte, bool) {
	switch v.kind {
	case kInt, kBool:
		return strconv.AppendInt(dst, v.i, 10), true
	case kBig:
		t := d.bytesOf(v)
		digits := len(t)
		if t[0] == '-' {
			digits--
		}
		// below 1e308 all is finite, from 1e309 on all overflows
		// (float() raises OverflowError): decide the rest by rounding
		if digits > 309 {
			return dst, false
		}
		if digits == 309 && string(t[len(t)-digits:]) >= overflow {
			return dst, false
		}
		return append(dst, t...), true
	case kFloat:
		return appendFloat(dst, v.f, time)
	case kStr:
		f, ok := num.PyFloat(d.bytesOf(v))
		if !ok {
			return dst, false
		}
		return appendFloat(dst, f, time)
	}
	return dst, false
}

// appendFloat appends f in its shortest round-trip form: fixed notation
// from 1e-5 to below 1e21, else exponent notation. NaN is refused (carbon
// drops a NaN value, and cannot take a NaN timestamp), so is an infinite
// timestamp; an infinite value is "inf" or "-inf".
func appendFloat(dst []byte, f float64, time bool) ([]byte, bool) {
	switch {
	case f != f:
		return dst, false
	case math.IsInf(f, 0):
		if time {
			return dst, false
		}
		if f < 0 {
			return append(dst, "-inf"...), true
		}
		return append(dst, "inf"...), true
	}
	if a := math.Abs(f); f == 0 || a >= 1e-5 && a < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64), true
	}
	return strconv.AppendFloat(dst, f, 'e', -1, 64), true
}
