// Package file is an output that appends metrics to files, one line per
// metric: carbon-c-relay's `file` and `file ip` clusters and Telegraf's
// outputs.file.
//
// Each batch is rendered once into a buffer (every metric's line plus
// "\n") and handed to each file with one write(2). Files are opened with
// O_APPEND|O_CREATE, so several writers (workers, other processes) never
// cut each other's lines, and opened again on SIGHUP (Reopen) for
// logrotate. "stdout" and "stderr" name the router's standard streams.
//
// With ip = true the agent prefixes every line with the sender's address
// before the metric is queued (registry.PeerPrefixer); the output itself
// always writes the metric's line.
package file

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("file", func() registry.Output {
		return &File{Files: []string{"stdout"}, FileMode: "0644", stdout: os.Stdout, stderr: os.Stderr}
	}, sample, registry.OutputSpec{})
}

// File is the outputs.file plugin.
type File struct {
	Files    []string `toml:"files"`
	IP       bool     `toml:"ip"`
	FileMode string   `toml:"file_mode"`

	stdout, stderr *os.File // what "stdout" and "stderr" name
	mode           os.FileMode
	log            zerolog.Logger // sampled
	bytes          *atomic.Uint64
	reopens        *atomic.Uint64
	reopenErrors   *atomic.Uint64

	buf []byte // the batch's lines, reused

	// mu guards sinks: Write, Connect and Close come from the runner's
	// goroutine, Reopen from the agent's (SIGHUP). Held once per batch.
	mu    sync.Mutex
	sinks []sink // nil: not connected
}

// sink is one destination file.
type sink struct {
	path string
	f    *os.File
	std  bool // stdout or stderr: never closed nor reopened
}

// Init validates the configuration.
func (o *File) Init(env registry.Env) error {
	if len(o.Files) == 0 {
		return errors.New(`files: at least one path (or "stdout", "stderr")`)
	}
	seen := make(map[string]bool, len(o.Files))
	for _, p := range o.Files {
		if p == "" {
			return errors.New("files: empty path")
		}
		if seen[p] {
			return fmt.Errorf("files: %q listed twice (every line would be written twice)", p)
		}
		seen[p] = true
	}
	mode, err := strconv.ParseUint(strings.TrimPrefix(o.FileMode, "0o"), 8, 32)
	if err != nil || mode > 0o777 {
		return fmt.Errorf("file_mode %q: want permissions in octal, e.g. \"0644\"", o.FileMode)
	}
	o.mode = os.FileMode(mode)
	if o.stdout == nil {
		o.stdout = os.Stdout
	}
	if o.stderr == nil {
		o.stderr = os.Stderr
	}
	o.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second})
	if env.Metrics != nil {
		o.bytes = env.Metrics.Counter("bytes_written_total", "Bytes appended, summed over the files.")
		o.reopens = env.Metrics.Counter("reopens_total", "Files closed and opened again by path (SIGHUP).")
		o.reopenErrors = env.Metrics.Counter("reopen_errors_total", "Files that could not be opened again on SIGHUP; the output kept writing to the file it had.")
	} else {
		o.bytes, o.reopens, o.reopenErrors = new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64)
	}
	return nil
}

// Destination returns the file's path, or with several files their paths
// joined by ",".
func (o *File) Destination() string { return strings.Join(o.Files, ",") }

// Destinations returns every file's path, in configuration order.
func (o *File) Destinations() []string { return o.Files }

// PrefixPeer reports whether lines get the sender's address in front (ip).
func (o *File) PrefixPeer() bool { return o.IP }

// open opens path for appending; "stdout" and "stderr" are the streams.
func (o *File) open(path string) (sink, error) {
	switch path {
	case "stdout":
		return sink{path: path, f: o.stdout, std: true}, nil
	case "stderr":
		return sink{path: path, f: o.stderr, std: true}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, o.mode)
	if err != nil {
		return sink{}, err
	}
	return sink{path: path, f: f}, nil
}

// Connect opens every file (again, after a failed write). If one cannot
// be opened, none stays open and the error names it.
func (o *File) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeAll()
	sinks := make([]sink, 0, len(o.Files))
	for _, p := range o.Files {
		s, err := o.open(p)
		if err != nil {
			for _, s := range sinks {
				s.close()
			}
			return err
		}
		sinks = append(sinks, s)
	}
	o.sinks = sinks
	return nil
}

// Write appends the batch to every file, one write each. It writes to
// every file even when one fails, then returns the first error; it wraps
// registry.ErrNotConnected, so the runner opens the files again (Connect)
// before it retries. When every file took a first part of the batch, a
// *registry.PartialWriteError says how many metrics all of them have whole,
// and a cut last line is removed from a file that still ends with it. A
// file that took more than the others gets those lines again with the
// retry: keep files that fail apart in outputs of their own.
func (o *File) Write(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf := o.buf[:0]
	for i := range b {
		buf = append(buf, b[i].Line()...)
		buf = append(buf, '\n')
	}
	o.buf = buf[:0]

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sinks == nil {
		return registry.ErrNotConnected
	}
	whole := len(b) // metrics every file has whole
	var first error
	for i := range o.sinks {
		s := &o.sinks[i]
		n, err := s.f.Write(buf)
		o.bytes.Add(uint64(n))
		if err == nil {
			continue
		}
		k, at := complete(b, n)
		whole = min(whole, k)
		if at < n && !s.std && !s.cut(n-at) {
			o.log.Warn().Str("path", s.path).Int("bytes", n-at).Msg("a cut line stays in the file")
		}
		if first == nil {
			first = &writeError{err: err}
		}
	}
	if first == nil {
		return nil
	}
	if whole > 0 {
		return &registry.PartialWriteError{Written: whole, Err: first}
	}
	return first
}

// complete returns how many metrics of b the first n bytes of its rendering
// hold whole, and where the next one starts.
func complete(b metric.Batch, n int) (k, at int) {
	for k < len(b) {
		l := len(b[k].Line()) + 1
		if at+l > n {
			break
		}
		at += l
		k++
	}
	return k, at
}

// cut removes the last n bytes a failed write left in the file (a line cut
// short), if the file still ends where that write did: nobody appended
// since. With O_APPEND the file offset is the end of our last write.
func (s *sink) cut(n int) bool {
	end, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false
	}
	fi, err := s.f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != end || end < int64(n) {
		return false
	}
	return s.f.Truncate(end-int64(n)) == nil
}

func (s *sink) close() error {
	if s.std || s.f == nil {
		return nil
	}
	return s.f.Close()
}

// closeAll closes every file; o.mu is held.
func (o *File) closeAll() error {
	var first error
	for i := range o.sinks {
		if err := o.sinks[i].close(); err != nil && first == nil {
			first = err
		}
	}
	o.sinks = nil
	return first
}

// Reopen opens every file again by its path and closes the old one, so that
// after logrotate renamed a file the next batch goes to a new file at the
// path. A file that cannot be opened keeps its old one (nothing is lost) and
// Reopen returns the first such error. It is safe to call concurrently with
// Write: a batch goes whole to the old file or whole to the new one.
func (o *File) Reopen() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var first error
	for i := range o.sinks {
		s := &o.sinks[i]
		if s.std {
			continue
		}
		ns, err := o.open(s.path)
		if err != nil {
			o.reopenErrors.Add(1)
			if first == nil {
				first = fmt.Errorf("reopen: %w", err)
			}
			continue
		}
		if err := s.close(); err != nil {
			o.log.Warn().Err(err).Str("path", s.path).Msg("close on reopen failed")
		}
		*s = ns
		o.reopens.Add(1)
	}
	return first
}

// Close closes the files (not stdout or stderr).
func (o *File) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closeAll()
}

// writeError is a failed write to a file. It wraps registry.ErrNotConnected
// as well, so the runner calls Connect (which opens the files again) before
// it retries; its text is the write's.
type writeError struct{ err error }

func (e *writeError) Error() string   { return e.err.Error() }
func (e *writeError) Unwrap() []error { return []error{e.err, registry.ErrNotConnected} }

var (
	_ registry.Output            = (*File)(nil)
	_ registry.Initializer       = (*File)(nil)
	_ registry.Addresser         = (*File)(nil)
	_ registry.DestinationLister = (*File)(nil)
	_ registry.PeerPrefixer      = (*File)(nil)
	_ registry.Reopener          = (*File)(nil)
)
