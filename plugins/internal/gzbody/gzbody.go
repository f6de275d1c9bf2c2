// Package gzbody gzips HTTP request bodies into memory reused from one
// request to the next (outputs.http_json, outputs.https_batch).
package gzbody

import (
	"bytes"
	"io"

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
