package graphite

// Graphite 1.1 tags, as carbon (1.1.7, carbon/util.py TaggedSeries) reads
// them.
//
// A tagged path is "name;tag1=value1;tag2=value2...". carbon's
// TaggedSeries.parse splits it at every ';': the first part is the name,
// which may not be empty; every other part is split at its first '=' into
// a tag and its value, and refused (with the whole path) when it has no
// '=', an empty tag or an empty value, a tag holding one of '!' and '^'
// (';' and '=' cannot be in one by then), or a value starting with '~'. A
// tag written twice keeps its last value; a tag called "name" is replaced
// by the name, with its leading '~'s stripped (a name of '~'s only is
// refused). A path ending in `"}` with a '{' in it is read in the
// OpenMetrics form instead: `name{tag="value",tag2="value2"}`.
//
// The canonical form (TaggedSeries.format, the series' path in carbon's
// cache, its whisper file and, with TAG_RELAY_NORMALIZED, its relays) is
// the name followed by ";tag=value" for every tag but "name", those
// strings sorted as Python sorts strings (by code point: byte order for
// UTF-8). A path without tags is its own canonical form, its leading '~'s
// stripped. carbon hashes what it routes as a whole: with the canonical
// form, a consistent-hash ring places a tagged series as carbon does.

import (
	"bytes"
	"errors"
	"slices"
)

// Tag errors: why carbon refuses a tagged path (constant values, like the
// parse errors).
var (
	ErrTagNoName   = errors.New("graphite: tagged path without a name before its first ';'")
	ErrTagSegment  = errors.New("graphite: tag without '=' or with an empty tag name")
	ErrTagNoValue  = errors.New("graphite: tag with an empty value")
	ErrTagChar     = errors.New("graphite: tag name holding '!' or '^'")
	ErrTagTilde    = errors.New("graphite: tag value starting with '~'")
	ErrTagTildes   = errors.New("graphite: name of '~'s only (carbon strips them and finds nothing)")
	ErrOpenMetrics = errors.New("graphite: OpenMetrics path carbon cannot read (name{tag=\"value\",...})")
)

// CutTag cuts the first tag off tags, a path's tag part (";k=v;k2=v2", the
// leading ';' optional): key and value are split at the tag's first '='
// (value is nil without one), rest is what follows it, with its ';'. It
// checks nothing and does not allocate: selectors and rules read tags with
// it. An empty tags gives empty results.
func CutTag(tags []byte) (key, value, rest []byte) {
	if len(tags) > 0 && tags[0] == ';' {
		tags = tags[1:]
	}
	seg := tags
	if i := bytes.IndexByte(tags, ';'); i >= 0 {
		seg, rest = tags[:i], tags[i:]
	}
	if i := bytes.IndexByte(seg, '='); i >= 0 {
		return seg[:i], seg[i+1:], rest
	}
	return seg, nil, rest
}

// CheckTags reports why carbon refuses path, nil when it reads it (a path
// without tags is refused only when it is '~'s only).
func CheckTags(path []byte) error {
	var scratch [256]byte
	_, err := AppendCanonical(scratch[:0], path)
	return err
}

// tagSeg is one "k=v" of a tagged path: its bytes src[off:end], the key
// keyLen long; pos is its place in the path.
type tagSeg struct {
	off, end, keyLen, pos int32
}

// segsOnStack is how many tags AppendCanonical sorts without allocating.
const segsOnStack = 64

// AppendCanonical appends carbon's canonical form of path to dst
// (TaggedSeries.parse(path).path), or returns dst unchanged and why carbon
// refuses path. It allocates only for a path with more than 64 tags (and
// when dst must grow).
func AppendCanonical(dst, path []byte) ([]byte, error) {
	if isOpenMetrics(path) {
		return appendOpenMetrics(dst, path)
	}
	semi := bytes.IndexByte(path, ';')
	if semi < 0 {
		name := trimTildes(path)
		if len(name) == 0 {
			return dst, ErrTagTildes
		}
		return append(dst, name...), nil
	}
	if semi == 0 {
		return dst, ErrTagNoName
	}
	var small [segsOnStack]tagSeg
	segs := small[:0]
	for i, pos := semi+1, int32(0); ; pos++ {
		e := i + bytes.IndexByte(path[i:], ';')
		if e < i {
			e = len(path)
		}
		seg := path[i:e]
		eq := bytes.IndexByte(seg, '=')
		switch {
		case eq <= 0:
			return dst, ErrTagSegment
		case eq == len(seg)-1:
			return dst, ErrTagNoValue
		case bytes.IndexByte(seg[:eq], '!') >= 0 || bytes.IndexByte(seg[:eq], '^') >= 0:
			return dst, ErrTagChar
		case seg[eq+1] == '~':
			return dst, ErrTagTilde
		}
		if !(eq == 4 && string(seg[:4]) == "name") {
			segs = append(segs, tagSeg{int32(i), int32(e), int32(eq), pos})
		}
		if e == len(path) {
			break
		}
		i = e + 1
	}
	name := trimTildes(path[:semi])
	if len(name) == 0 {
		return dst, ErrTagTildes
	}
	return appendSorted(append(dst, name...), path, segs), nil
}

// appendSorted appends ";k=v" for each tag of segs (bytes of src), sorted,
// the last of each key only.
func appendSorted(dst, src []byte, segs []tagSeg) []byte {
	less := func(a, b tagSeg) int {
		if c := bytes.Compare(src[a.off:a.end], src[b.off:b.end]); c != 0 {
			return c
		}
		return int(a.pos - b.pos)
	}
	if len(segs) <= segsOnStack {
		// insertion sort: no closure escapes, nothing allocates
		for i := 1; i < len(segs); i++ {
			for j := i; j > 0 && less(segs[j-1], segs[j]) > 0; j-- {
				segs[j-1], segs[j] = segs[j], segs[j-1]
			}
		}
	} else {
		slices.SortFunc(segs, less)
	}
	// a key's tags are next to each other (a string between two "k=..."
	// starts with "k=", so its key is k): write the last written of each
	for i := 0; i < len(segs); {
		s := segs[i]
		key := src[s.off : s.off+s.keyLen]
		j := i + 1
		for ; j < len(segs) && bytes.Equal(src[segs[j].off:segs[j].off+segs[j].keyLen], key); j++ {
			if segs[j].pos > s.pos {
				s = segs[j]
			}
		}
		dst = append(dst, ';')
		dst = append(dst, src[s.off:s.end]...)
		i = j
	}
	return dst
}

// trimTildes is Python's name.lstrip('~').
func trimTildes(b []byte) []byte {
	for len(b) > 0 && b[0] == '~' {
		b = b[1:]
	}
	return b
}

// isOpenMetrics reports whether carbon reads path in the OpenMetrics form:
// it ends in `"}` and has a '{'.
func isOpenMetrics(path []byte) bool {
	n := len(path)
	return n >= 2 && path[n-2] == '"' && path[n-1] == '}' && bytes.IndexByte(path, '{') >= 0
}

// appendOpenMetrics is AppendCanonical for `name{tag="value",...}`, read as
// carbon's parse_openmetrics does: exactly one '{'; then, repeatedly, a
// tag (bytes up to the next '='), `="`, a value of one or more bytes other
// than '"' and '\', or of the escapes `\"` and `\\`, a closing '"', an
// optional ':' and a ',' or the end. The value is unescaped as carbon does
// it (`\"` then `\\`) and checked like a tag's.
func appendOpenMetrics(dst, path []byte) ([]byte, error) {
	open := bytes.IndexByte(path, '{')
	if bytes.IndexByte(path[open+1:], '{') >= 0 || open == 0 {
		return dst, ErrOpenMetrics
	}
	raw := path[open+1 : len(path)-1]
	// the unescaped values go after the name in a buffer of their own
	// (they are never longer than raw): on the stack when they fit
	var small [segsOnStack]tagSeg
	var vbuf [512]byte
	segs, vals := small[:0], vbuf[:0]
	for pos := int32(0); len(raw) > 0; pos++ {
		eq := bytes.IndexByte(raw, '=')
		if eq <= 0 || eq+1 >= len(raw) || raw[eq+1] != '"' {
			return dst, ErrOpenMetrics
		}
		key := raw[:eq]
		i := eq + 2
		start := i
		for i < len(raw) && raw[i] != '"' {
			if raw[i] == '\\' {
				if i+1 >= len(raw) || raw[i+1] != '"' && raw[i+1] != '\\' {
					return dst, ErrOpenMetrics
				}
				i++
			}
			i++
		}
		if i == start || i >= len(raw) {
			return dst, ErrOpenMetrics
		}
		value := raw[start:i]
		i++ // the closing '"'
		if i < len(raw) && raw[i] == ':' {
			i++
		}
		switch {
		case i == len(raw):
		case raw[i] == ',':
			i++
		default:
			return dst, ErrOpenMetrics
		}
		raw = raw[i:]
		if bytes.IndexByte(key, ';') >= 0 || bytes.IndexByte(key, '!') >= 0 || bytes.IndexByte(key, '^') >= 0 {
			return dst, ErrTagChar
		}
		off := len(vals)
		vals = append(vals, key...)
		vals = append(vals, '=')
		vals = appendUnescaped(vals, value)
		v := vals[off+len(key)+1:]
		switch {
		case len(v) == 0:
			return dst, ErrTagNoValue
		case bytes.IndexByte(v, ';') >= 0:
			return dst, ErrOpenMetrics
		case v[0] == '~':
			return dst, ErrTagTilde
		}
		if !(len(key) == 4 && string(key) == "name") {
			segs = append(segs, tagSeg{int32(off), int32(len(vals)), int32(len(key)), pos})
		}
	}
	name := trimTildes(path[:open])
	if len(name) == 0 {
		return dst, ErrTagTildes
	}
	return appendSorted(append(dst, name...), vals, segs), nil
}

// appendUnescaped appends v with `\"` made '"', then `\\` made '\', each
// over the whole value in turn, as carbon's two str.replace calls do.
func appendUnescaped(dst, v []byte) []byte {
	s := len(dst)
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && v[i+1] == '"' {
			dst = append(dst, '"')
			i++
			continue
		}
		dst = append(dst, v[i])
	}
	// second pass, in place: the result is never longer
	w := s
	for i := s; i < len(dst); i++ {
		if dst[i] == '\\' && i+1 < len(dst) && dst[i+1] == '\\' {
			dst[w] = '\\'
			w++
			i++
			continue
		}
		dst[w] = dst[i]
		w++
	}
	return dst[:w]
}

// SortTags rewrites the path of a plaintext line ("path value timestamp",
// optional leading blanks) in place into carbon's canonical form and
// returns the line, a prefix of line (the canonical path is never longer).
// It is inputs.graphite's tags = "sort", with the signature of
// linein.CleanseFunc. A tagged path carbon refuses (AppendCanonical's
// errors) drops the line with that error; a path without tags is never
// refused (carbon keeps a name of '~'s only as it came). It allocates only
// for a path of more than 1 KiB or 64 tags that is not canonical already.
func SortTags(line []byte) ([]byte, error) {
	ps := 0
	for ps < len(line) && isBlank(line[ps]) {
		ps++
	}
	pe := ps
	for pe < len(line) && !isBlank(line[pe]) {
		pe++
	}
	path := line[ps:pe]
	if canonical(path) {
		return line, nil
	}
	var scratch [1024]byte
	out, err := AppendCanonical(scratch[:0], path)
	if err != nil {
		if bytes.IndexByte(path, ';') < 0 && !isOpenMetrics(path) {
			return line, nil
		}
		return line, err
	}
	n := copy(line[ps:], out)
	n += copy(line[ps+n:], line[pe:])
	return line[: ps+n : ps+n], nil
}

// canonical reports, cheaply, a path that is its own canonical form: no
// leading '~', no OpenMetrics form, and valid tags in strictly increasing
// order with no "name" tag. false means "maybe not".
func canonical(path []byte) bool {
	if len(path) == 0 || path[0] == '~' || isOpenMetrics(path) {
		return false
	}
	semi := bytes.IndexByte(path, ';')
	if semi < 0 {
		return true
	}
	if semi == 0 {
		return false
	}
	var prev []byte
	prevKey := -1
	for rest := path[semi:]; len(rest) > 0; {
		seg := rest[1:]
		if i := bytes.IndexByte(seg, ';'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		} else {
			rest = nil
		}
		eq := bytes.IndexByte(seg, '=')
		if eq <= 0 || eq == len(seg)-1 || seg[eq+1] == '~' ||
			bytes.IndexByte(seg[:eq], '!') >= 0 || bytes.IndexByte(seg[:eq], '^') >= 0 ||
			eq == 4 && string(seg[:4]) == "name" {
			return false
		}
		if prev != nil && (bytes.Compare(prev, seg) >= 0 || prevKey == eq && bytes.Equal(prev[:eq], seg[:eq])) {
			return false
		}
		prev, prevKey = seg, eq
	}
	return true
}
