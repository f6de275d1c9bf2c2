package https_batch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"unsafe"

	"github.com/klauspost/compress/gzip"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/netx"
)

// How a request body becomes a batch, and what it may cost.
//
// The body is never held whole, compressed or not: it streams through a
// read buffer and, if gzipped, a decompressor into a window of a fixed size.
// The complete lines of each window-full are copied into an arena block of
// exactly their size (empty and over-long lines left out), each line with
// its '\n'; once the body has ended well, the batch is allocated for exactly
// the lines kept and they are parsed into it, the metrics pointing into the
// blocks. So memory grows with the lines that arrive, never with a length
// the client announces (Content-Length, the gzip trailer's size), a batch is
// allocated once, and what the queued batch keeps is its lines (and their
// newlines): a block whose lines were mostly malformed is compacted, and a
// batch mostly unused is trimmed, before the batch is emitted.
//
// Every request reading a body takes what it is about to allocate from the
// input's max_inflight_bytes budget first: its fixed cost (window, read
// buffer, decompressor) when it starts, then each block and the batch. It
// gives everything back once the batch is queued or refused. A request that
// does not fit is answered 503 (the proxy resends), or 413 if it alone would
// need more than the whole budget.
const (
	minWindow   = 128 << 10 // smallest framing window
	readBuffer  = 32 << 10  // read buffer over the connection
	gzipState   = 48 << 10  // a gzip reader's decompressor (window, tables)
	metricSize  = int64(unsafe.Sizeof(metric.Metric{}))
	maxLineCeil = 16 << 20
)

var (
	errBodyTooLarge = errors.New("body too large")
	errBusy         = errors.New("max_inflight_bytes reached")
	errNotGzip      = errors.New("content-encoding gzip but not gzip")
	gzipMagic       = []byte{0x1f, 0x8b}
)

// windowSize is the framing window for lines of up to maxLine bytes: twice
// the longest line, so that moving a partial line to the front of the window
// leaves at least half of it for new bytes.
func windowSize(maxLine int) int { return max(minWindow, 2*(maxLine+1)) }

// fixedCost is what a request reading a body holds from its first byte.
func fixedCost(maxLine int) int64 { return int64(windowSize(maxLine) + readBuffer + gzipState) }

// reservation is what one request holds of the input's budget.
type reservation struct {
	b    *netx.Budget
	held int64
}

// take reserves n more bytes: errBodyTooLarge if the request alone would
// exceed the whole budget, errBusy if other requests hold the rest.
func (r *reservation) take(n int64) error {
	if r.b.Take(n) {
		r.held += n
		return nil
	}
	if r.held+n > r.b.Max() {
		return errBodyTooLarge
	}
	return errBusy
}

// give returns n bytes taken before.
func (r *reservation) give(n int64) {
	r.b.Release(n)
	r.held -= n
}

// release returns everything the request holds.
func (r *reservation) release() {
	r.b.Release(r.held)
	r.held = 0
}

// limitReader counts the bytes read from r and fails beyond limit.
type limitReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	// one byte more than limit tells a body of exactly limit bytes from a
	// longer one
	if rem := l.limit - l.n + 1; int64(len(p)) > rem {
		p = p[:max(rem, 0)]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.limit {
		return n, errBodyTooLarge
	}
	return n, err
}

// bodyReader is the per-request reading state, reused through a pool: the
// read buffer over the body, a gzip reader, the framing window and the list
// of blocks.
type bodyReader struct {
	src    limitReader
	br     *bufio.Reader
	zr     gzip.Reader
	win    []byte
	blocks [][]byte // emptied between requests
}

func (g *Gateway) getReader() *bodyReader {
	if rd, ok := g.readers.Get().(*bodyReader); ok {
		return rd
	}
	return &bodyReader{br: bufio.NewReaderSize(nil, readBuffer), win: make([]byte, windowSize(g.MaxLineLength))}
}

func (g *Gateway) putReader(rd *bodyReader) {
	rd.src = limitReader{}
	rd.zr.Header = gzip.Header{}
	rd.br.Reset(&rd.src) // drop the request body
	g.readers.Put(rd)
}

// readBatch reads and parses the body of r: gzip (one or more members, told
// by its magic bytes, since the original proxy sets no Content-Encoding) or
// plain. It returns the batch, the number of non-empty lines, and an error
// (errBodyTooLarge, errBusy, errNotGzip, a gzip or network error); nothing
// is returned with an error, so a batch is taken whole or not at all.
func (h *handler) readBatch(r *http.Request, res *reservation) (metric.Batch, int, error) {
	g := h.g
	gz := strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), "gzip")
	if r.ContentLength == 0 {
		if gz {
			return nil, 0, errNotGzip
		}
		return nil, 0, nil
	}
	if err := res.take(g.fixed); err != nil {
		return nil, 0, err
	}
	rd := g.getReader()
	defer g.putReader(rd)
	rd.src = limitReader{r: r.Body, limit: g.MaxBodyBytes}
	rd.br.Reset(&rd.src)
	bb := builder{g: g, res: res, blocks: rd.blocks[:0]}
	defer func() {
		clear(bb.blocks)
		rd.blocks = bb.blocks[:0]
	}()
	err := bb.read(rd, gz)
	g.c.bytesIn.Add(uint64(rd.src.n))
	g.c.bytesOut.Add(uint64(bb.out))
	if err != nil {
		return nil, 0, err
	}
	b, err := bb.parse()
	if err != nil {
		return nil, 0, err
	}
	return b, bb.lines, nil
}

// builder keeps the lines of a body in arena blocks, then parses them into
// a batch.
type builder struct {
	g      *Gateway
	res    *reservation
	blocks [][]byte // lines, each with its '\n'
	kept   int      // lines in blocks
	lines  int      // non-empty lines
	out    int64    // bytes after decompression
}

// read frames the body (through rd) into lines, within max_line_length and
// max_decompressed_bytes.
func (bb *builder) read(rd *bodyReader, gz bool) error {
	g := bb.g
	var src io.Reader = rd.br
	magic, _ := rd.br.Peek(2)
	switch {
	case bytes.Equal(magic, gzipMagic):
		if err := rd.zr.Reset(rd.br); err != nil {
			return err
		}
		src = &rd.zr
	case gz:
		return errNotGzip
	}
	win := rd.win
	end := 0          // win[:end] holds bytes not framed yet
	skipping := false // inside a line over max_line_length
	for eof := false; !eof; {
		for end < len(win) {
			n, err := src.Read(win[end:])
			end += n
			bb.out += int64(n)
			if bb.out > g.MaxDecompressedBytes {
				return errBodyTooLarge
			}
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return err
			}
		}
		data := win[:end]
		if skipping {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				end = 0
				continue
			}
			data, skipping = data[i+1:], false
		}
		last := len(data)
		if !eof {
			last = bytes.LastIndexByte(data, '\n') + 1
		}
		if err := bb.add(data[:last]); err != nil {
			return err
		}
		rest := data[last:]
		if len(rest) > g.MaxLineLength {
			bb.lines++
			g.c.tooLong.Add(1)
			skipping = true
			end = 0
			continue
		}
		end = copy(win, rest)
	}
	return nil
}

// add keeps the lines of data (complete lines; the last one may lack its
// '\n') that are neither empty nor over max_line_length, in a new block of
// their size.
func (bb *builder) add(data []byte) error {
	g := bb.g
	size, kept, all := 0, 0, len(data) > 0 && data[len(data)-1] == '\n'
	for p := data; len(p) > 0; {
		var line []byte
		line, p = cutLine(p)
		if blank(line) {
			all = false
			continue
		}
		bb.lines++
		if len(line) > g.MaxLineLength {
			g.c.tooLong.Add(1)
			all = false
			continue
		}
		size += len(line) + 1
		kept++
	}
	if kept == 0 {
		return nil
	}
	if err := bb.res.take(int64(size)); err != nil {
		return err
	}
	block := make([]byte, 0, size)
	if all {
		block = append(block, data...) // every line kept: the common case
	} else {
		for p := data; len(p) > 0; {
			var line []byte
			line, p = cutLine(p)
			if blank(line) || len(line) > g.MaxLineLength {
				continue
			}
			block = append(append(block, line...), '\n')
		}
	}
	bb.blocks = append(bb.blocks, block)
	bb.kept += kept
	return nil
}

// cutLine returns the first line of p without its '\n', and what follows
// that (nil after a last line without '\n').
func cutLine(p []byte) (line, rest []byte) {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, nil
}

// blank reports whether a line is empty or only a '\r'.
func blank(line []byte) bool { return len(line) == 0 || (len(line) == 1 && line[0] == '\r') }

// parse parses the kept lines into a batch allocated for all of them. A
// block whose malformed lines make up most of it is compacted (its metrics
// parsed again from an exact copy of their lines), and a batch left mostly
// unused by malformed lines is trimmed, so that the batch keeps only its
// lines: both only happen with malformed input.
func (bb *builder) parse() (metric.Batch, error) {
	g := bb.g
	if bb.kept == 0 {
		return nil, nil
	}
	if err := bb.res.take(int64(bb.kept) * metricSize); err != nil {
		return nil, err
	}
	b := make(metric.Batch, bb.kept)
	k := 0
	for i, block := range bb.blocks {
		first, used := k, 0
		for p := block; len(p) > 0; {
			n := bytes.IndexByte(p, '\n')
			line := p[:n:n]
			p = p[n+1:]
			if err := codec.Parse(line, &b[k]); err != nil {
				b[k] = metric.Metric{}
				g.c.parseErrors.Add(1)
				if len(line) > 200 {
					line = line[:200]
				}
				g.warn.Warn().Err(err).Bytes("line", line).Msg("bad line skipped")
				continue
			}
			k++
			used += n + 1
		}
		if !metric.Dense(used, len(block)) { // what metric.RetainedBytes charges for
			if err := bb.compact(b[first:k], used, len(block)); err != nil {
				return nil, err
			}
		}
		bb.blocks[i] = nil
	}
	if !metric.Dense(k, len(b)) {
		if err := bb.res.take(int64(k) * metricSize); err != nil {
			return nil, err
		}
		return append(metric.Batch(nil), b[:k]...), nil
	}
	return b[:k], nil
}

// compact moves the lines of metrics m (used bytes with their newlines) out
// of a block of size bytes into an exact copy, parsing them again there.
func (bb *builder) compact(m metric.Batch, used, size int) error {
	if err := bb.res.take(int64(used)); err != nil {
		return err
	}
	nb := make([]byte, 0, used)
	for i := range m {
		off := len(nb)
		nb = append(append(nb, m[i].Line()...), '\n')
		if err := codec.Parse(nb[off:len(nb)-1:len(nb)-1], &m[i]); err != nil {
			return err // cannot happen: the same bytes parsed before
		}
	}
	bb.res.give(int64(size))
	return nil
}
