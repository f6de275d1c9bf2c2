// Package pickle reads and writes carbon's pickle protocol: each message is
// a 4-byte big-endian length and a pickle of a list of
// (path, (timestamp, value)) tuples, as carbon's relay sends it
// (carbon/client.py, CarbonPickleClientProtocol: pickle.dumps(datapoints,
// protocol=2)) and carbon-cache's pickle receiver reads it
// (carbon/protocols.py, MetricPickleReceiver).
//
// # Decoding
//
// Decoder is a restricted unpickler written for this one shape: it never
// imports, calls or builds anything but the values below, and turns one
// message body into Graphite plaintext lines "path value timestamp\n"
// appended to a caller's buffer, which the Graphite codec then parses (the
// Framer of plugins/internal/picklein does that for one TCP connection).
//
// Accepted: the opcodes that Python 2 and 3 (protocols 0 to 5) write for
// lists and tuples of strings and numbers: PROTO, FRAME, STOP, MARK, POP,
// POP_MARK, DUP; EMPTY_LIST, APPEND, APPENDS, LIST; EMPTY_TUPLE, TUPLE,
// TUPLE1, TUPLE2, TUPLE3; INT (with its "00"/"01" booleans), BININT,
// BININT1, BININT2, LONG, LONG1, LONG4; FLOAT, BINFLOAT; STRING, BINSTRING,
// SHORT_BINSTRING (Python 2's str); UNICODE, BINUNICODE, SHORT_BINUNICODE,
// BINUNICODE8; BINBYTES, SHORT_BINBYTES, BINBYTES8; NEWTRUE, NEWFALSE,
// NONE; PUT, BINPUT, LONG_BINPUT, MEMOIZE; GET, BINGET, LONG_BINGET. Lists
// are shared and mutable as in Python (an APPEND shows through every memo
// reference to the list), MARK opens a new stack as in CPython.
//
// Refused, the whole message, with ErrForbidden: every other opcode of the
// pickle protocol (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ,
// NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, dicts, sets, byte arrays,
// out-of-band buffers). Those are how a pickle imports and calls code (the
// classic payload is os.system through GLOBAL and REDUCE), and a list of
// datapoints needs none of them; the decoder stops at the opcode, having
// looked up and built nothing. (Python 3 writes bytes at protocols 0 to 2
// through GLOBAL _codecs.encode and REDUCE: such messages are refused too;
// Python 3's str and Python 2's str and unicode are not affected.) A
// message that is not a well-formed pickle of a list or tuple is refused
// with ErrMalformed, as carbon ignores a message its unpickler rejects.
// Where CPython and other unpicklers read the text arguments of the
// protocol-0 opcodes differently, only their common reading is taken: INT,
// LONG, PUT and GET take plain decimals (LONG with its 'L'), FLOAT takes
// decimals, "inf" and "nan" (not hexadecimal floats, not '_'), STRING
// takes the escapes Python 2's repr writes (\xhh, three-digit octals,
// \n-style letters, \\, \', \"); Python 2 and 3 write nothing else.
//
// Entries, as carbon reads them (float(value), float(timestamp), and it
// skips what does not fit): an entry that is not a tuple or list of a name
// and a tuple or list of two numbers is skipped and counted. Numbers are
// ints and longs (written in decimal), floats (written in their shortest
// round-trip form), booleans (1, 0) and strings that Python's float() reads
// (" 1_000 ", "1e3", "inf"; written as the float). A float value that is
// NaN is skipped (carbon drops it), an infinite one is kept ("inf", which
// the Graphite codec takes); a timestamp must be finite, and an integer out
// of float64's range skips its entry (float() raises on it). Names are
// Python 3 str, Python 2 str and unicode, and bytes; an empty name, a
// name that is not UTF-8 (carbon decodes names as UTF-8 and drops the
// whole message when one is not) and a name with a byte that would split
// or end a plaintext line here or in carbon's line receiver (' ', '\t',
// '\n', '\r', NUL and every other ASCII control byte) skip their entry.
// UTF-8 names are written as they are, Graphite tags (";k=v") included.
//
// Bounds, so that a message of N bytes costs O(N) time and memory: every
// opcode does constant work besides reading its argument, but LIST, TUPLE
// and APPENDS, which move items pushed by earlier opcodes; the stack holds
// at most MaxStack values and marks; memo keys are below N+256 (what a
// pickler numbers them); a long of more than 1024 bits is not converted
// (it is out of float range: its entry is skipped); the lines of one
// message are at most one per byte and their bytes at most 32 times N plus
// 4 KiB (memo references can repeat a long name): beyond that the message
// is refused with ErrExpansion.
//
// Decode allocates nothing per datapoint: the decoder's tables are reused
// from message to message.
//
// # Encoding
//
// Encoder writes messages as carbon's relay does: pickle protocol 2, a
// list of (unicode path, (timestamp, float value)) tuples, the timestamp an
// int when the metric's timestamp is an integer, else a float.
package pickle

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/metricsrouter/router/plugins/codec/internal/num"
)

// Errors of Decode: constant values, so that counting a refused message
// costs no allocation.
var (
	// ErrForbidden: the message holds an opcode that imports, calls or
	// builds objects (GLOBAL, REDUCE, ...); nothing of it was interpreted.
	ErrForbidden = errors.New("pickle: forbidden opcode (imports, calls or builds objects)")
	// ErrMalformed: not a well-formed pickle of a list or tuple.
	ErrMalformed = errors.New("pickle: malformed message")
	// ErrLimit: the message exceeds the stack or memo bounds.
	ErrLimit = errors.New("pickle: stack or memo bound exceeded")
	// ErrExpansion: the message's lines would exceed 32 times its size.
	ErrExpansion = errors.New("pickle: message expands too much")
)

// MaxStack bounds the values and marks on the unpickler's stacks.
const MaxStack = 1 << 20

// expansion bounds the output of a message: expansion times its size, plus
// expansionSlack bytes.
const (
	expansion      = 32
	expansionSlack = 4 << 10
)

type kind uint8

const (
	kNone  kind = iota
	kBool       // i
	kInt        // i
	kBig        // an integer beyond int64: decimal text at a, length b (see inText)
	kHuge       // an integer of more than 1024 bits: out of float range
	kFloat      // f
	kStr        // bytes at a, length b (see inText)
	kTuple      // items[a : a+b]
	kList       // nodes from head a to tail b (-1: empty)
)

type value struct {
	kind   kind
	inText bool  // kStr, kBig: the bytes are in Decoder.text, else in the message
	a, b   int32 // see kind
	i      int64
	f      float64
}

// node is one item of a list: lists are linked so that an APPEND grows the
// one list every reference points to.
type node struct{ v, next int32 }

// Decoder is a restricted unpickler (see the package doc). Its zero value
// is ready to use; it is used by one goroutine.
type Decoder struct {
	msg   []byte
	pos   int
	vals  []value
	stack []int32
	marks []int32 // lengths of stack at each MARK
	items []int32
	nodes []node
	memo  []int32 // value index + 1; 0: unset
	memoN int     // keys set (MEMOIZE uses it as its key)
	text  []byte  // decoded strings, decimal texts of longs
	limbs []uint32

	// quirks records constructs that other unpicklers read differently
	// from CPython (FuzzDecode compares with og-rek only without them).
	quirks uint32
}

// Constructs that og-rek v1.3.0 reads differently from CPython (quirks).
const (
	qUnsupported = 1 << iota // LONG4, BINUNICODE8, BINBYTES8, POP_MARK
	qLong1Sign               // LONG1 length byte >= 0x80
	qListRef                 // a list pushed again by GET or DUP (og-rek copies lists)
	qFrame                   // FRAME beyond the end of the message
	qMarkRef                 // DUP or POP of what og-rek sees as its mark object
	qSurrogate               // \u escape of a surrogate in UNICODE
	qText                    // a protocol-0 argument outside the common reading
)

// Opcodes (pickletools' names).
const (
	opMark            = '('
	opStop            = '.'
	opPop             = '0'
	opPopMark         = '1'
	opDup             = '2'
	opFloat           = 'F'
	opInt             = 'I'
	opBinint          = 'J'
	opBinint1         = 'K'
	opLong            = 'L'
	opBinint2         = 'M'
	opNone            = 'N'
	opString          = 'S'
	opBinstring       = 'T'
	opShortBinstring  = 'U'
	opUnicode         = 'V'
	opBinunicode      = 'X'
	opAppend          = 'a'
	opAppends         = 'e'
	opGet             = 'g'
	opBinget          = 'h'
	opLongBinget      = 'j'
	opList            = 'l'
	opPut             = 'p'
	opBinput          = 'q'
	opLongBinput      = 'r'
	opTuple           = 't'
	opEmptyList       = ']'
	opEmptyTuple      = ')'
	opBinfloat        = 'G'
	opProto           = 0x80
	opTuple1          = 0x85
	opTuple2          = 0x86
	opTuple3          = 0x87
	opNewtrue         = 0x88
	opNewfalse        = 0x89
	opLong1           = 0x8a
	opLong4           = 0x8b
	opBinbytes        = 'B'
	opShortBinbytes   = 'C'
	opShortBinunicode = 0x8c
	opBinunicode8     = 0x8d
	opBinbytes8       = 0x8e
	opMemoize         = 0x94
	opFrame           = 0x95
)

// forbidden marks the opcodes of the protocol that the decoder refuses with
// ErrForbidden; a byte that is no opcode at all is ErrMalformed.
var forbidden = func() (t [256]bool) {
	for _, c := range []byte{
		'c',              // GLOBAL
		0x93,             // STACK_GLOBAL
		'R',              // REDUCE
		'b',              // BUILD
		'i',              // INST
		'o',              // OBJ
		0x81,             // NEWOBJ
		0x92,             // NEWOBJ_EX
		0x82, 0x83, 0x84, // EXT1, EXT2, EXT4
		'P', 'Q', // PERSID, BINPERSID
		'd', '}', 's', 'u', // DICT, EMPTY_DICT, SETITEM, SETITEMS
		0x8f, 0x90, 0x91, // EMPTY_SET, ADDITEMS, FROZENSET
		0x96, 0x97, 0x98, // BYTEARRAY8, NEXT_BUFFER, READONLY_BUFFER
	} {
		t[c] = true
	}
	return t
}()

// Decode decodes one message body (the pickle, without its length) and
// appends a Graphite line "path value timestamp\n" per datapoint to dst.
// skipped counts the entries that are not datapoints (see the package
// doc). On an error the message is refused as a whole: dst is returned as
// it was.
func (d *Decoder) Decode(dst, msg []byte) (out []byte, skipped int, err error) {
	d.reset(msg)
	defer func() { d.msg = nil }()
	top, err := d.run()
	if err != nil {
		return dst, 0, err
	}
	out, skipped, err = d.emit(dst, top, len(msg))
	if err != nil {
		return dst, 0, err
	}
	return out, skipped, nil
}

func (d *Decoder) reset(msg []byte) {
	d.msg, d.pos = msg, 0
	d.vals = d.vals[:0]
	d.stack = d.stack[:0]
	d.marks = d.marks[:0]
	d.items = d.items[:0]
	d.nodes = d.nodes[:0]
	clear(d.memo)
	d.memo = d.memo[:0]
	d.memoN = 0
	d.text = d.text[:0]
	d.quirks = 0
}

// base is the bottom of the current stack (above the last mark).
func (d *Decoder) base() int {
	if len(d.marks) == 0 {
		return 0
	}
	return int(d.marks[len(d.marks)-1])
}

func (d *Decoder) push(v value) error {
	if len(d.stack)+len(d.marks) >= MaxStack {
		return ErrLimit
	}
	d.vals = append(d.vals, v)
	d.stack = append(d.stack, int32(len(d.vals)-1))
	return nil
}

func (d *Decoder) pushRef(i int32) error {
	if len(d.stack)+len(d.marks) >= MaxStack {
		return ErrLimit
	}
	d.stack = append(d.stack, i)
	return nil
}

// read returns the next n bytes of the message.
func (d *Decoder) read(n uint64) ([]byte, bool) {
	if n > uint64(len(d.msg)-d.pos) {
		return nil, false
	}
	b := d.msg[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b, true
}

// line returns the text up to the next '\n' (without it).
func (d *Decoder) line() ([]byte, bool) {
	for i := d.pos; i < len(d.msg); i++ {
		if d.msg[i] == '\n' {
			b := d.msg[d.pos:i]
			d.pos = i + 1
			return b, true
		}
	}
	return nil, false
}

// run interprets the opcodes up to STOP and returns the value it pops.
func (d *Decoder) run() (int32, error) {
	for {
		if d.pos >= len(d.msg) {
			return 0, ErrMalformed
		}
		op := d.msg[d.pos]
		d.pos++
		if forbidden[op] {
			return 0, ErrForbidden
		}
		var err error
		switch op {
		case opStop:
			if len(d.stack) <= d.base() {
				return 0, ErrMalformed
			}
			return d.stack[len(d.stack)-1], nil
		case opProto:
			b, ok := d.read(1)
			if !ok || b[0] > 5 {
				return 0, ErrMalformed
			}
		case opFrame:
			b, ok := d.read(8)
			if !ok {
				return 0, ErrMalformed
			}
			if binary.LittleEndian.Uint64(b) > uint64(len(d.msg)-d.pos) {
				d.quirks |= qFrame
				return 0, ErrMalformed
			}
		case opMark:
			if len(d.stack)+len(d.marks) >= MaxStack {
				return 0, ErrLimit
			}
			d.marks = append(d.marks, int32(len(d.stack)))
		case opPop:
			switch {
			case len(d.stack) > d.base():
				d.stack = d.stack[:len(d.stack)-1]
			case len(d.marks) > 0:
				d.marks = d.marks[:len(d.marks)-1]
			default:
				return 0, ErrMalformed
			}
		case opPopMark:
			d.quirks |= qUnsupported
			if len(d.marks) == 0 {
				return 0, ErrMalformed
			}
			d.stack = d.stack[:d.base()]
			d.marks = d.marks[:len(d.marks)-1]
		case opDup:
			if len(d.stack) <= d.base() {
				if len(d.marks) > 0 {
					d.quirks |= qMarkRef
				}
				return 0, ErrMalformed
			}
			top := d.stack[len(d.stack)-1]
			if d.vals[top].kind == kList {
				d.quirks |= qListRef
			}
			err = d.pushRef(top)
		case opNone:
			err = d.push(value{kind: kNone})
		case opNewtrue, opNewfalse:
			err = d.push(boolValue(op == opNewtrue))
		case opInt:
			err = d.opInt()
		case opLong:
			err = d.opLong()
		case opBinint:
			b, ok := d.read(4)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.push(value{kind: kInt, i: int64(int32(binary.LittleEndian.Uint32(b)))})
		case opBinint1:
			b, ok := d.read(1)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.push(value{kind: kInt, i: int64(b[0])})
		case opBinint2:
			b, ok := d.read(2)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.push(value{kind: kInt, i: int64(binary.LittleEndian.Uint16(b))})
		case opLong1:
			b, ok := d.read(1)
			if !ok {
				return 0, ErrMalformed
			}
			if b[0] >= 0x80 {
				d.quirks |= qLong1Sign
			}
			err = d.opLongBytes(uint64(b[0]))
		case opLong4:
			d.quirks |= qUnsupported
			b, ok := d.read(4)
			if !ok {
				return 0, ErrMalformed
			}
			n := int32(binary.LittleEndian.Uint32(b))
			if n < 0 {
				return 0, ErrMalformed
			}
			err = d.opLongBytes(uint64(n))
		case opFloat:
			err = d.opFloat()
		case opBinfloat:
			b, ok := d.read(8)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.push(value{kind: kFloat, f: math.Float64frombits(binary.BigEndian.Uint64(b))})
		case opString:
			err = d.opString()
		case opUnicode:
			err = d.opUnicode()
		case opShortBinstring, opShortBinbytes, opShortBinunicode:
			b, ok := d.read(1)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.pushBytes(uint64(b[0]))
		case opBinstring:
			b, ok := d.read(4)
			if !ok {
				return 0, ErrMalformed
			}
			n := int32(binary.LittleEndian.Uint32(b))
			if n < 0 {
				return 0, ErrMalformed
			}
			err = d.pushBytes(uint64(n))
		case opBinunicode, opBinbytes:
			b, ok := d.read(4)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.pushBytes(uint64(binary.LittleEndian.Uint32(b)))
		case opBinunicode8, opBinbytes8:
			d.quirks |= qUnsupported
			b, ok := d.read(8)
			if !ok {
				return 0, ErrMalformed
			}
			err = d.pushBytes(binary.LittleEndian.Uint64(b))
		case opEmptyList:
			err = d.push(value{kind: kList, a: -1, b: -1})
		case opEmptyTuple:
			err = d.push(value{kind: kTuple})
		case opAppend:
			if len(d.stack)-d.base() < 2 {
				return 0, ErrMalformed
			}
			v := d.stack[len(d.stack)-1]
			d.stack = d.stack[:len(d.stack)-1]
			l := d.stack[len(d.stack)-1]
			if d.vals[l].kind != kList {
				return 0, ErrMalformed
			}
			d.appendTo(l, v)
		case opAppends:
			if len(d.marks) == 0 {
				return 0, ErrMalformed
			}
			k := d.base()
			d.marks = d.marks[:len(d.marks)-1]
			if k <= d.base() {
				return 0, ErrMalformed
			}
			l := d.stack[k-1]
			if d.vals[l].kind != kList {
				return 0, ErrMalformed
			}
			for _, v := range d.stack[k:] {
				d.appendTo(l, v)
			}
			d.stack = d.stack[:k]
		case opList, opTuple:
			if len(d.marks) == 0 {
				return 0, ErrMalformed
			}
			k := d.base()
			d.marks = d.marks[:len(d.marks)-1]
			d.collect(op == opList, k)
		case opTuple1, opTuple2, opTuple3:
			n := int(op-opTuple1) + 1
			if len(d.stack)-d.base() < n {
				return 0, ErrMalformed
			}
			d.collect(false, len(d.stack)-n)
		case opPut, opGet:
			b, ok := d.line()
			if !ok {
				return 0, ErrMalformed
			}
			k, ok := memoKey(b)
			if !ok {
				d.quirks |= qText
				return 0, ErrMalformed
			}
			if op == opPut {
				err = d.put(k)
			} else {
				err = d.get(k)
			}
		case opBinput, opBinget:
			b, ok := d.read(1)
			if !ok {
				return 0, ErrMalformed
			}
			if op == opBinput {
				err = d.put(uint64(b[0]))
			} else {
				err = d.get(uint64(b[0]))
			}
		case opLongBinput, opLongBinget:
			b, ok := d.read(4)
			if !ok {
				return 0, ErrMalformed
			}
			k := uint64(binary.LittleEndian.Uint32(b))
			if op == opLongBinput {
				err = d.put(k)
			} else {
				err = d.get(k)
			}
		case opMemoize:
			err = d.put(uint64(d.memoN))
		default:
			return 0, ErrMalformed
		}
		if err != nil {
			return 0, err
		}
	}
}

func boolValue(b bool) value {
	if b {
		return value{kind: kBool, i: 1}
	}
	return value{kind: kBool}
}

// appendTo appends value v to list l.
func (d *Decoder) appendTo(l, v int32) {
	d.nodes = append(d.nodes, node{v: v, next: -1})
	n := int32(len(d.nodes) - 1)
	lv := &d.vals[l]
	if lv.b < 0 {
		lv.a = n
	} else {
		d.nodes[lv.b].next = n
	}
	lv.b = n
}

// collect replaces stack[k:] by a new list or tuple of those values.
func (d *Decoder) collect(list bool, k int) {
	var v value
	if list {
		v = value{kind: kList, a: -1, b: -1}
	} else {
		v = value{kind: kTuple, a: int32(len(d.items)), b: int32(len(d.stack) - k)}
		d.items = append(d.items, d.stack[k:]...)
	}
	d.vals = append(d.vals, v)
	idx := int32(len(d.vals) - 1)
	if list {
		for _, it := range d.stack[k:] {
			d.appendTo(idx, it)
		}
	}
	d.stack = append(d.stack[:k], idx)
}

// memoKey reads the decimal key of PUT and GET.
func memoKey(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var k uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + uint64(c-'0')
	}
	return k, true
}

func (d *Decoder) put(k uint64) error {
	if len(d.stack) <= d.base() {
		return ErrMalformed
	}
	if k >= uint64(len(d.msg))+256 {
		return ErrLimit
	}
	if k >= uint64(len(d.memo)) {
		if k >= uint64(cap(d.memo)) {
			d.memo = append(d.memo[:cap(d.memo)], make([]int32, int(k)+1-cap(d.memo))...)
		}
		d.memo = d.memo[:k+1]
	}
	if d.memo[k] == 0 {
		d.memoN++
	}
	d.memo[k] = d.stack[len(d.stack)-1] + 1
	return nil
}

func (d *Decoder) get(k uint64) error {
	if k >= uint64(len(d.memo)) || d.memo[k] == 0 {
		return ErrMalformed
	}
	v := d.memo[k] - 1
	if d.vals[v].kind == kList {
		d.quirks |= qListRef
	}
	return d.pushRef(v)
}

// pushBytes pushes the next n bytes as a string (str, bytes: both are names
// or numbers' text alike).
func (d *Decoder) pushBytes(n uint64) error {
	start := d.pos
	if _, ok := d.read(n); !ok {
		return ErrMalformed
	}
	return d.push(value{kind: kStr, a: int32(start), b: int32(n)})
}

// decimal checks the common reading of an integer's text: an optional
// sign, then "0"s or digits without a leading zero. It returns the digits
// without sign and whether the number is negative.
func decimal(b []byte) (digits []byte, neg, ok bool) {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return nil, false, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return nil, false, false
		}
	}
	if b[0] == '0' {
		for _, c := range b {
			if c != '0' {
				return nil, false, false
			}
		}
		return b[:1], false, true
	}
	return b, neg, true
}

// pushDecimal pushes an integer given by its digits.
func (d *Decoder) pushDecimal(digits []byte, neg bool) error {
	if len(digits) <= 18 {
		var n int64
		for _, c := range digits {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return d.push(value{kind: kInt, i: n})
	}
	s := len(d.text)
	if neg {
		d.text = append(d.text, '-')
	}
	d.text = append(d.text, digits...)
	return d.pushBig(s)
}

// pushBig pushes the decimal text d.text[s:] (at least 19 digits), an
// int64 if it fits.
func (d *Decoder) pushBig(s int) error {
	t := d.text[s:]
	neg := t[0] == '-'
	digits := t
	if neg {
		digits = t[1:]
	}
	limit := "9223372036854775807"
	if neg {
		limit = "9223372036854775808"
	}
	if len(digits) < len(limit) || len(digits) == len(limit) && string(digits) <= limit {
		var u uint64
		for _, c := range digits {
			u = u*10 + uint64(c-'0')
		}
		d.text = d.text[:s]
		if neg {
			return d.push(value{kind: kInt, i: int64(-u)})
		}
		return d.push(value{kind: kInt, i: int64(u)})
	}
	return d.push(value{kind: kBig, inText: true, a: int32(s), b: int32(len(d.text) - s)})
}

func (d *Decoder) opInt() error {
	b, ok := d.line()
	if !ok {
		return ErrMalformed
	}
	switch string(b) {
	case "00":
		return d.push(boolValue(false))
	case "01":
		return d.push(boolValue(true))
	}
	digits, neg, ok := decimal(b)
	if !ok {
		d.quirks |= qText
		return ErrMalformed
	}
	return d.pushDecimal(digits, neg)
}

func (d *Decoder) opLong() error {
	b, ok := d.line()
	if !ok || len(b) == 0 || b[len(b)-1] != 'L' {
		return ErrMalformed
	}
	digits, neg, ok := decimal(b[:len(b)-1])
	if !ok {
		d.quirks |= qText
		return ErrMalformed
	}
	return d.pushDecimal(digits, neg)
}

// opLongBytes reads the n bytes of LONG1 or LONG4: a little-endian two's
// complement integer.
func (d *Decoder) opLongBytes(n uint64) error {
	b, ok := d.read(n)
	if !ok {
		return ErrMalformed
	}
	if len(b) == 0 {
		return d.push(value{kind: kInt})
	}
	neg := b[len(b)-1] >= 0x80
	// drop sign-extension bytes
	ext := byte(0)
	if neg {
		ext = 0xff
	}
	for len(b) > 1 && b[len(b)-1] == ext && (b[len(b)-2] >= 0x80) == neg {
		b = b[:len(b)-1]
	}
	if len(b) <= 8 {
		var u uint64
		for i := len(b) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if neg && len(b) < 8 {
			u |= ^uint64(0) << (8 * len(b))
		}
		return d.push(value{kind: kInt, i: int64(u)})
	}
	if len(b) > 129 {
		return d.push(value{kind: kHuge})
	}
	// the magnitude, as 32-bit limbs, least significant first
	d.limbs = d.limbs[:0]
	carry := uint32(1)
	var w uint32
	for i, c := range b {
		if neg {
			v := uint32(^c) + carry
			c, carry = byte(v), v>>8
		}
		w |= uint32(c) << (8 * (i % 4))
		if i%4 == 3 || i == len(b)-1 {
			d.limbs = append(d.limbs, w)
			w = 0
		}
	}
	for len(d.limbs) > 0 && d.limbs[len(d.limbs)-1] == 0 {
		d.limbs = d.limbs[:len(d.limbs)-1]
	}
	if len(d.limbs) == 0 {
		return d.push(value{kind: kInt})
	}
	if bits := 32*len(d.limbs) - bitsLen0(d.limbs[len(d.limbs)-1]); bits > 1024 {
		return d.push(value{kind: kHuge})
	}
	s := len(d.text)
	if neg {
		d.text = append(d.text, '-')
	}
	d.text = appendLimbs(d.text, d.limbs)
	return d.pushBig(s)
}

// bitsLen0 is the number of leading zero bits of x.
func bitsLen0(x uint32) int { return 32 - bits.Len32(x) }

// appendLimbs appends the decimal digits of the magnitude in limbs (which
// it destroys) to dst.
func appendLimbs(dst []byte, limbs []uint32) []byte {
	var groups [128]uint32 // base-1e9 digits, least significant first: 1024 bits need 35
	ng := 0
	for len(limbs) > 0 {
		var rem uint64
		for i := len(limbs) - 1; i >= 0; i-- {
			cur := rem<<32 | uint64(limbs[i])
			limbs[i] = uint32(cur / 1e9)
			rem = cur % 1e9
		}
		groups[ng] = uint32(rem)
		ng++
		for len(limbs) > 0 && limbs[len(limbs)-1] == 0 {
			limbs = limbs[:len(limbs)-1]
		}
	}
	if ng == 0 {
		return append(dst, '0')
	}
	dst = strconv.AppendUint(dst, uint64(groups[ng-1]), 10)
	for i := ng - 2; i >= 0; i-- {
		var buf [9]byte
		g := groups[i]
		for j := 8; j >= 0; j-- {
			buf[j] = byte('0' + g%10)
			g /= 10
		}
		dst = append(dst, buf[:]...)
	}
	return dst
}

func (d *Decoder) opFloat() error {
	b, ok := d.line()
	if !ok {
		return ErrMalformed
	}
	f, ok := floatText(b)
	if !ok {
		d.quirks |= qText
		return ErrMalformed
	}
	return d.push(value{kind: kFloat, f: f})
}

// floatText reads FLOAT's argument: a plain decimal in float64's range,
// or [+-]inf, infinity or nan in any case.
func floatText(b []byte) (float64, bool) {
	if num.PlainDecimal(b) {
		// out of range (strconv's error, which allocates) is refused
		f, ok := num.PyFloat(b)
		return f, ok && !math.IsInf(f, 0)
	}
	s := b
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	switch {
	case foldEq(s, "inf"), foldEq(s, "infinity"):
		if neg {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case foldEq(s, "nan"):
		return math.NaN(), true
	}
	return 0, false
}

func foldEq(b []byte, word string) bool {
	if len(b) != len(word) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != word[i] {
			return false
		}
	}
	return true
}

// opString reads STRING: a quoted Python 2 repr with its escapes.
func (d *Decoder) opString() error {
	b, ok := d.line()
	if !ok || len(b) < 2 || (b[0] != '\'' && b[0] != '"') || b[len(b)-1] != b[0] {
		return ErrMalformed
	}
	b = b[1 : len(b)-1]
	s := len(d.text)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			d.text = append(d.text, c)
			continue
		}
		if i+1 >= len(b) {
			return ErrMalformed
		}
		i++
		switch c = b[i]; c {
		case '\\', '\'', '"':
			d.text = append(d.text, c)
		case 'a':
			d.text = append(d.text, 7)
		case 'b':
			d.text = append(d.text, 8)
		case 'f':
			d.text = append(d.text, 12)
		case 'n':
			d.text = append(d.text, '\n')
		case 'r':
			d.text = append(d.text, '\r')
		case 't':
			d.text = append(d.text, '\t')
		case 'v':
			d.text = append(d.text, 11)
		case 'x':
			if i+2 > len(b)-1 {
				return ErrMalformed
			}
			h, l := unhex(b[i+1]), unhex(b[i+2])
			if h < 0 || l < 0 {
				return ErrMalformed
			}
			d.text = append(d.text, byte(h<<4|l))
			i += 2
		case '0', '1', '2', '3':
			if i+2 > len(b)-1 || !isOct(b[i+1]) || !isOct(b[i+2]) {
				return ErrMalformed
			}
			d.text = append(d.text, (c-'0')<<6|(b[i+1]-'0')<<3|(b[i+2]-'0'))
			i += 2
		case '4', '5', '6', '7':
			return ErrMalformed
		default:
			// an unknown escape stays as it is, backslash included
			d.text = append(d.text, '\\', c)
		}
	}
	return d.push(value{kind: kStr, inText: true, a: int32(s), b: int32(len(d.text) - s)})
}

func isOct(c byte) bool { return c >= '0' && c <= '7' }

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return -1
}

// opUnicode reads UNICODE: raw-unicode-escape, Latin-1 bytes with \uXXXX
// and \UXXXXXXXX escapes (after an odd number of backslashes), re-encoded
// as UTF-8. A surrogate is written as its three bytes, which are not
// UTF-8: such a name is skipped, as Python's str of it cannot be encoded.
func (d *Decoder) opUnicode() error {
	b, ok := d.line()
	if !ok {
		return ErrMalformed
	}
	s := len(d.text)
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			d.text = utf8.AppendRune(d.text, rune(c))
			i++
			continue
		}
		j := i
		for j < len(b) && b[j] == '\\' {
			j++
		}
		d.text = append(d.text, b[i:j]...)
		odd := (j-i)%2 == 1
		i = j
		if !odd || j >= len(b) || (b[j] != 'u' && b[j] != 'U') {
			continue
		}
		d.text = d.text[:len(d.text)-1]
		n := 4
		if b[j] == 'U' {
			n = 8
		}
		if j+1+n > len(b) {
			return ErrMalformed
		}
		var r uint32
		for _, h := range b[j+1 : j+1+n] {
			v := unhex(h)
			if v < 0 {
				return ErrMalformed
			}
			r = r<<4 | uint32(v)
		}
		switch {
		case r > utf8.MaxRune:
			return ErrMalformed
		case r >= 0xd800 && r < 0xe000:
			d.quirks |= qSurrogate
			d.text = append(d.text, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
		default:
			d.text = utf8.AppendRune(d.text, rune(r))
		}
		i = j + 1 + n
	}
	return d.push(value{kind: kStr, inText: true, a: int32(s), b: int32(len(d.text) - s)})
}
