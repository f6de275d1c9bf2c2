package metric

import "unsafe"

// What a queued metric holds in memory, for the accounting of
// [agent] max_buffered_bytes.
//
// A parsed metric points into the buffer its line was read into. If that
// buffer is much larger than the lines that keep it alive (a read buffer
// that also held junk, or a receive area), the metric holds the whole
// buffer. Inputs therefore either hand a batch over in place, when its lines
// fill at least 16/17 of the buffer they point into, or Detach it: its lines
// are copied into a new buffer of their size. Either way a metric holds at
// most 17/16 of Footprint's per-metric bytes, which is what RetainedBytes
// charges.

// Overhead is the memory of a queued metric besides its line: the Metric
// value, plus the line terminator (up to 2 bytes, "\r\n") that a detached
// run of lines keeps between them.
const Overhead = int64(unsafe.Sizeof(Metric{})) + 2

// RetainedBytes is the most that the metrics of b hold in memory when they
// came from an input that keeps the rule above: their lines and Overhead
// each, plus 1/16 for the buffer space that may come with them.
func RetainedBytes(b Batch) int64 {
	n := int64(len(b)) * Overhead
	for i := range b {
		n += int64(b[i].lineEnd)
	}
	return n + n/16
}

// Dense reports whether a batch whose metrics point to used bytes of a
// buffer of size bytes may keep pointing into it (used >= 16/17 of size).
func Dense(used, size int) bool { return 17*int64(used) >= 16*int64(size) }

// Backing returns how many bytes of buf the metrics of b point into: the
// total size of their buffers that lie inside buf.
func Backing(b Batch, buf []byte) int {
	if len(buf) == 0 {
		return 0
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	end := base + uintptr(len(buf))
	n := 0
	for i := range b {
		if _, ok := b[i].offsetIn(base, end); ok {
			n += int(b[i].bufLen)
		}
	}
	return n
}

// maxGap is the largest gap between two metrics' buffers that Detach copies
// along with them to copy both at once: a line terminator.
const maxGap = 2

// Detach copies the buffers of b's metrics that lie inside buf into one new
// allocation and points the metrics there, so that b no longer keeps buf
// alive. Metrics whose buffers follow one another in buf (at most a line
// terminator apart) are copied as one run. Metrics elsewhere are left as
// they are. It returns the size of the new allocation.
func Detach(b Batch, buf []byte) int {
	if len(buf) == 0 || len(b) == 0 {
		return 0
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	end := base + uintptr(len(buf))
	size := 0
	runs := 0
	rs, re := -1, -1 // the current run: buf[rs:re]
	for i := range b {
		off, ok := b[i].offsetIn(base, end)
		if !ok {
			continue
		}
		e := off + int(b[i].bufLen)
		if rs >= 0 && off >= re && off-re <= maxGap {
			re = e
			continue
		}
		if rs >= 0 {
			size += re - rs
		}
		rs, re = off, e
		runs++
	}
	if rs < 0 {
		return 0
	}
	size += re - rs
	var arena []byte
	if runs == 1 {
		arena = append([]byte(nil), buf[rs:re]...) // not zeroed first
	} else {
		arena = make([]byte, size)
	}
	at := 0 // where the current run starts in arena
	rs, re = -1, -1
	for i := range b {
		m := &b[i]
		off, ok := m.offsetIn(base, end)
		if !ok {
			continue
		}
		e := off + int(m.bufLen)
		if rs < 0 || off < re || off-re > maxGap {
			if rs >= 0 {
				if runs > 1 {
					copy(arena[at:], buf[rs:re])
				}
				at += re - rs
			}
			rs, re = off, e
		} else {
			re = e
		}
		m.ptr = &arena[at+off-rs]
	}
	if runs > 1 {
		copy(arena[at:], buf[rs:re])
	}
	return size
}

// offsetIn returns the offset of m's buffer in [base, end), if it lies
// there entirely.
func (m *Metric) offsetIn(base, end uintptr) (int, bool) {
	if m.ptr == nil || m.bufLen == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(m.ptr))
	if p < base || p+uintptr(m.bufLen) > end {
		return 0, false
	}
	return int(p - base), true
}
