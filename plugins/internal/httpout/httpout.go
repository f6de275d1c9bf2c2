// Package httpout holds what the HTTP outputs (http_json, https_batch,
// prometheus_remote_write) share: gzipped request bodies in memory reused
// from one request to the next, and reading an answer's body for a message.
package httpout

import (
	"bytes"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Encoder gzips one body at a time; it is not safe for concurrent use.
type Encoder struct {
	w   *gzip.Writer
	buf bytes.Buffer
}

// New returns an Encoder at a gzip level (gzip.BestSpeed ...).
func New(level int) (*Encoder, error) {
	w, err := gzip.NewWriterLevel(io.Discard, level)
	if err != nil {
		return nil, err
	}
	return &Encoder{w: w}, nil
}

// Encode returns body gzipped, as one gzip member. The result is valid
// until the next call.
func (e *Encoder) Encode(body []byte) ([]byte, error) {
	e.buf.Reset()
	e.w.Reset(&e.buf)
	if _, err := e.w.Write(body); err != nil {
		return nil, err
	}
	if err := e.w.Close(); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

// ReadSome reads at most 512 bytes of an answer's body for messages,
// drains a little more so that the connection can be reused, and closes
// the body.
func ReadSome(body io.ReadCloser) string {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	return strings.TrimSpace(string(b))
}
