package aggregate

import "math"

// cmpEntry is carbon-c-relay's qsort comparator, `return *l - *r;` from a
// double to an int: the difference truncated toward zero, so values less
// than 1 apart compare equal; a difference that does not fit an int (or
// NaN) becomes INT_MIN on x86-64 (cvttsd2si), "less than".
func cmpEntry(l, r float64) int32 {
	d := l - r
	if math.IsNaN(d) || d >= 1<<31 || d <= -(1<<31)-1 {
		return math.MinInt32
	}
	return int32(d)
}

// msort sorts v as glibc's qsort (2.36, msort.c) does for 8-byte elements:
// a top-down merge sort that splits n into n/2 and n - n/2 and, merging,
// takes from the left run while cmp(left, right) <= 0. With
// carbon-c-relay's comparator, which is not a total order, only this very
// algorithm gives its order.
func msort(v []float64) {
	if len(v) <= 1 {
		return
	}
	tmp := make([]float64, len(v))
	msortWith(v, tmp)
}

func msortWith(b, tmp []float64) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msortWith(b1, tmp)
	msortWith(b2, tmp)
	i, j, k := 0, 0, 0
	for i < len(b1) && j < len(b2) {
		if cmpEntry(b1[i], b2[j]) <= 0 {
			tmp[k] = b1[i]
			i++
		} else {
			tmp[k] = b2[j]
			j++
		}
		k++
	}
	// what is left of the left run goes after; the right run's rest is
	// already in place
	k += copy(tmp[k:], b1[i:])
	copy(b, tmp[:k])
}
