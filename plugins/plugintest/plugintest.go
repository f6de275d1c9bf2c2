// Package plugintest has helpers for testing router plugins, ours and third
// parties': an Env with a test logger and real counters, a capturing Emitter,
// strict decoding of sample.toml, batches parsed from lines, line sinks and
// stalling servers on 127.0.0.1, and the checks and loads the plugins'
// tests share.
package plugintest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

// Logger returns a logger that prints through t (shown only when a test fails).
func Logger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}

// Metrics is a registry.Metrics that keeps counters in memory.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]*atomic.Uint64
	gauges   map[string]func() float64
}

// NewMetrics returns an empty Metrics.
func NewMetrics() *Metrics {
	return &Metrics{counters: map[string]*atomic.Uint64{}, gauges: map[string]func() float64{}}
}

// Counter implements registry.Metrics.
func (m *Metrics) Counter(name, _ string) *atomic.Uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[name]; ok {
		return c
	}
	c := new(atomic.Uint64)
	m.counters[name] = c
	return c
}

// Gauge implements registry.Metrics.
func (m *Metrics) Gauge(name, _ string, f func() float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gauges[name] = f
}

// Get returns a counter's value (0 if never registered).
func (m *Metrics) Get(name string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[name]; ok {
		return c.Load()
	}
	return 0
}

// Env returns an Env for a plugin under test, with its Metrics.
func Env(t testing.TB, plugin string) (registry.Env, *Metrics) {
	m := NewMetrics()
	return registry.Env{ID: "test", Plugin: plugin, Log: Logger(t), Metrics: m}, m
}

// DecodeSample strictly decodes a plugin's sample.toml (the first table of
// kind.name) into v: every key must be known to v.
func DecodeSample(sample, kind, name string, v any) error {
	var doc map[string]map[string][]toml.Primitive
	md, err := toml.Decode(sample, &doc)
	if err != nil {
		return err
	}
	tables := doc[kind][name]
	if len(tables) == 0 {
		return errors.New("sample has no [[" + kind + "." + name + "]] table")
	}
	if err := md.PrimitiveDecode(tables[0], v); err != nil {
		return err
	}
	if u := md.Undecoded(); len(u) > 0 {
		var keys []string
		for _, k := range u {
			keys = append(keys, k.String())
		}
		return errors.New("unknown keys in sample: " + strings.Join(keys, ", "))
	}
	return nil
}

// Capture is an Emitter that records every emitted metric, rendered as lines
// by a caller-supplied function.
type Capture struct {
	mu      sync.Mutex
	Batches int
	Metrics []metric.Metric
	notify  chan struct{}
}

// NewCapture returns an empty Capture.
func NewCapture() *Capture { return &Capture{notify: make(chan struct{}, 1)} }

// Emit records b.
func (c *Capture) Emit(_ context.Context, b metric.Batch) error {
	c.mu.Lock()
	c.Batches++
	c.Metrics = append(c.Metrics, b...)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

// Len returns the number of metrics captured.
func (c *Capture) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.Metrics)
}

// WaitFor waits until n metrics were captured or the timeout passes.
func (c *Capture) WaitFor(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		if c.Len() >= n {
			return true
		}
		select {
		case <-c.notify:
		case <-deadline:
			return c.Len() >= n
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Raw returns the raw lines captured, in order.
func (c *Capture) Raw() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.Metrics))
	for i := range c.Metrics {
		out[i] = string(c.Metrics[i].Raw())
	}
	return out
}

// Snapshot returns a copy of the metrics captured so far, in order.
func (c *Capture) Snapshot() metric.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(metric.Batch(c.Metrics))
}

var _ registry.Emitter = (*Capture)(nil)

// FreeAddr returns a loopback "127.0.0.1:port" that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// LineSink is a TCP server on 127.0.0.1 that records every line it receives.
// It can be stopped and started again on the same address.
type LineSink struct {
	Addr string

	mu       sync.Mutex
	lines    []string
	ln       net.Listener
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	conds    chan struct{}
	accepted int // connections accepted since the start
}

// Accepted returns how many connections the sink accepted so far.
func (s *LineSink) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// NewLineSink starts a sink on a free port.
func NewLineSink(t testing.TB) *LineSink {
	t.Helper()
	s := &LineSink{conns: map[net.Conn]struct{}{}, conds: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// Start listens again on the sink's address (after Stop).
func (s *LineSink) Start() error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", s.Addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.serve(ln)
	return nil
}

func (s *LineSink) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			stopped := s.ln != ln // Stop ran between Accept and here
			s.conns[c] = struct{}{}
			s.accepted++
			s.wg.Add(1)
			s.mu.Unlock()
			if stopped {
				// Stop did not see this connection: end it the same way
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			}
			go func() {
				defer s.wg.Done()
				br := bufio.NewReaderSize(c, 256<<10)
				var local []string
				var long []byte
				flush := func() {
					s.mu.Lock()
					s.lines = append(s.lines, local...)
					s.mu.Unlock()
					local = local[:0]
					select {
					case s.conds <- struct{}{}:
					default:
					}
				}
				for {
					frag, err := br.ReadSlice('\n')
					if errors.Is(err, bufio.ErrBufferFull) {
						long = append(long, frag...)
						continue
					}
					if len(frag) > 0 && frag[len(frag)-1] == '\n' {
						line := frag[:len(frag)-1]
						if long != nil {
							line = append(long, line...)
							long = nil
						}
						local = append(local, string(line))
					} else if len(frag) > 0 || long != nil {
						local = append(local, string(append(long, frag...)))
						long = nil
					}
					if err != nil {
						break
					}
					if br.Buffered() == 0 || len(local) >= 4096 {
						flush()
					}
				}
				flush()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
}

// Stop closes the listener and every connection after reading what they
// already sent (it half-closes and drains, so nothing in flight is lost).
func (s *LineSink) Stop() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln == nil {
		return
	}
	ln.Close()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	}
	s.wg.Wait()
}

// Lines returns a copy of the lines received so far.
func (s *LineSink) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Len returns the number of lines received.
func (s *LineSink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// WaitLen waits until at least n lines arrived, or timeout.
func (s *LineSink) WaitLen(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s.Len() >= n {
			return true
		}
		select {
		case <-s.conds:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s.Len() >= n
}

// Sorted returns the received lines sorted (order across connections is not defined).
func (s *LineSink) Sorted() []string {
	l := s.Lines()
	sort.Strings(l)
	return l
}

// WantErr checks the error of what (a call, for the messages): none if want
// is "", else one whose text contains want. It reports whether err is nil,
// that is whether the test goes on to check what the call did.
func WantErr(t testing.TB, what string, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("%s: %v", what, err)
	case want != "" && err == nil:
		t.Fatalf("%s: no error, want one containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("%s: %v, want an error containing %q", what, err, want)
	}
	return err == nil
}

// Batch parses lines as an input would: those prefixed "statsd:" with the
// StatsD codec, the others, prefixed "graphite:" or not, with the Graphite
// codec.
func Batch(t testing.TB, lines ...string) metric.Batch {
	t.Helper()
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		var err error
		if s, ok := strings.CutPrefix(l, "statsd:"); ok {
			err = statsd.Parse([]byte(s), &b[i])
		} else {
			err = graphite.Parse([]byte(strings.TrimPrefix(l, "graphite:")), &b[i])
		}
		if err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
	}
	return b
}

// Dial connects to addr over TCP, with a deadline within from now for all
// that follows on the connection.
func Dial(t testing.TB, addr string, within time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(within))
	return c
}

// ListenRcvBuf listens on a free port of 127.0.0.1 with a receive buffer of
// rcvbuf bytes, set before listening so that the sockets it accepts inherit
// it and their window is small from the start: a peer that is not read
// soon has to wait. The listener is closed when the test ends.
func ListenRcvBuf(t testing.TB, rcvbuf int) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// OpenConns opens n connections with dial and writes head on each; they are
// closed when the test ends.
func OpenConns(t testing.TB, dial func() (net.Conn, error), n int, head string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
	}
	return conns
}
