package num

// PlainDecimal reports whether b is [+-]digits[.digits][(e|E)[+-]digits]
// (digits on at least one side of the '.'): a value token that readers of
// the other format read as strconv does (Python's float() in carbon,
// JavaScript's Number() in Etsy statsd), unlike strconv's hexadecimal
// floats, digit separators ("0x1p3", "0x_1p3") and "Inf".
func PlainDecimal(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		digits++
	}
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		e := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
		if i == e {
			return false
		}
	}
	return i == len(b)
}

// ByteSet has bit c set for each byte c in the set (the codecs set only
// ASCII bytes). It is a constant table, with no initialisation code, and
// c>>6 needs no bounds check.
type ByteSet [4]uint64

// Has reports whether c is in the set.
func (s *ByteSet) Has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Controls is the ASCII control bytes 0x00..0x1f, the first word of a
// ByteSet (0x7f is bit 63 of the second word).
const Controls = 1<<0x20 - 1
