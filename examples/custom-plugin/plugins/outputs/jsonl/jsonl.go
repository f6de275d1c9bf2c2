// Package jsonl is an example third-party output for the router: it writes
// every metric as one JSON object per line to a file or standard output.
//
//	{"format":"graphite","name":"web1.cpu","path":"web1.cpu;dc=eu","value":0.5,"time":1700000000}
//	{"format":"statsd","name":"hits","path":"hits","value":3,"type":"c","rate":0.1,"tags":"env:prod"}
//
// It shows the parts every plugin has: a struct with toml tags decoded from
// [[outputs.jsonl]], an embedded sample.toml registered from init(), Init
// validating the configuration without opening anything, and the Output
// contract (Connect, Write, Close called from one goroutine, so no locks;
// ErrNotConnected to have the runner reconnect with backoff). The runner
// retries a failed batch, so after a partial write some lines may appear
// twice: the file is at-least-once, like every router output.
package jsonl

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("jsonl", func() registry.Output { return &JSONL{Path: "-"} }, sample, registry.OutputSpec{})
}

// JSONL is the outputs.jsonl plugin.
type JSONL struct {
	// Path is the file to append to; "-" is standard output.
	Path string `toml:"path"`
	// Line adds the metric's current line ("line":"...").
	Line bool `toml:"line"`

	log     zerolog.Logger
	written *atomic.Uint64
	w       io.Writer // nil while not connected
	f       *os.File  // the open file; nil for standard output
	buf     []byte    // reused rendering buffer
}

// Init validates the configuration and registers the plugin's counter. It
// opens nothing: `router -check` calls it.
func (j *JSONL) Init(env registry.Env) error {
	if j.Path == "" {
		return errors.New(`path: required (a file, or "-" for standard output)`)
	}
	j.log = env.Log
	j.written = new(atomic.Uint64)
	if env.Metrics != nil {
		j.written = env.Metrics.Counter("bytes_written_total", "bytes of JSON lines written")
	}
	return nil
}

// Connect opens the file for appending (standard output needs nothing). An
// error makes the runner retry with backoff while it buffers metrics.
func (j *JSONL) Connect(context.Context) error {
	if j.Path == "-" {
		j.w = os.Stdout
		return nil
	}
	f, err := os.OpenFile(j.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open %s: %w", j.Path, err)
	}
	j.f, j.w = f, f
	j.log.Debug().Msg("file opened")
	return nil
}

// Write renders the batch and writes it with one call. On error it closes
// the file and returns an error wrapping registry.ErrNotConnected: the
// runner keeps the batch, calls Connect again and retries.
func (j *JSONL) Write(_ context.Context, b metric.Batch) error {
	if j.w == nil {
		return registry.ErrNotConnected
	}
	buf := j.buf[:0]
	for i := range b {
		buf = j.appendMetric(buf, &b[i])
	}
	j.buf = buf[:0]
	n, err := j.w.Write(buf)
	j.written.Add(uint64(n))
	if err != nil {
		j.closeFile()
		return fmt.Errorf("write %s: %w: %w", j.Path, registry.ErrNotConnected, err)
	}
	return nil
}

// Close closes the file; the runner has written all it could before.
func (j *JSONL) Close() error {
	return j.closeFile()
}

func (j *JSONL) closeFile() error {
	f := j.f
	j.f, j.w = nil, nil
	if f == nil {
		return nil
	}
	return f.Close()
}

// appendMetric appends m as one JSON object and a newline.
func (j *JSONL) appendMetric(dst []byte, m *metric.Metric) []byte {
	dst = append(dst, `{"format":"`...)
	dst = append(dst, m.Format().String()...)
	dst = append(dst, `","name":`...)
	dst = appendString(dst, m.Name())
	dst = append(dst, `,"path":`...)
	dst = appendString(dst, m.Path())
	dst = append(dst, `,"value":`...)
	if v := m.Value(); math.IsNaN(v) || math.IsInf(v, 0) {
		dst = appendString(dst, m.ValueToken()) // a StatsD set member, or "nan"
	} else {
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	if len(m.TimeToken()) > 0 {
		dst = append(dst, `,"time":`...)
		dst = strconv.AppendInt(dst, m.Time(), 10)
	}
	if t := m.Type(); t != metric.Untyped {
		dst = append(dst, `,"type":"`...)
		dst = append(dst, t.String()...)
		dst = append(dst, '"')
	}
	if r := m.Rate(); r != 0 {
		dst = append(dst, `,"rate":`...)
		dst = strconv.AppendFloat(dst, r, 'g', -1, 64)
	}
	if tags := m.Tags(); tags != nil {
		dst = append(dst, `,"tags":`...)
		dst = appendString(dst, tags)
	}
	if j.Line {
		dst = append(dst, `,"line":`...)
		dst = appendString(dst, m.Line())
	}
	return append(dst, "}\n"...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

var (
	_ registry.Output      = (*JSONL)(nil)
	_ registry.Initializer = (*JSONL)(nil)
)
