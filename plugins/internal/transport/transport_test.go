package transport

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/crelaytest"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
	"github.com/pierrec/lz4/v4"
)

var kinds = []string{Gzip, LZ4, Snappy}

func TestCheck(t *testing.T) {
	for _, k := range []string{"", "none", "gzip", "lz4", "snappy"} {
		if err := Check(k); err != nil {
			t.Errorf("Check(%q): %v", k, err)
		}
	}
	for _, k := range []string{"zstd", "GZIP", "plain", "ssl"} {
		if err := Check(k); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", k)) {
			t.Errorf("Check(%q): %v", k, err)
		}
	}
	if _, err := NewCompressor("zstd"); err == nil {
		t.Error("NewCompressor(zstd) succeeded")
	}
}

// metricLines returns n distinct Graphite lines.
func metricLines(prefix string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%s.host%03d.cpu.%d %d.5 %d\n", prefix, i%997, i, i, 1700000000+i%60)
	}
	return b.Bytes()
}

// send compresses lines in chunks of about chunk bytes (whole lines), one
// write per chunk.
func send(t *testing.T, w io.Writer, c *Compressor, lines []byte, chunk int) {
	t.Helper()
	var dst []byte
	for len(lines) > 0 {
		n := min(chunk, len(lines))
		if i := bytes.LastIndexByte(lines[:n], '\n'); i >= 0 {
			n = i + 1
		} else if n = bytes.IndexByte(lines, '\n') + 1; n == 0 {
			n = len(lines)
		}
		var err error
		dst, err = c.Compress(dst[:0], lines[:n])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(dst); err != nil {
			t.Fatal(err)
		}
		lines = lines[n:]
	}
}

// sink collects the lines of every connection accepted on 127.0.0.1.
type sink struct {
	ln   net.Listener
	mu   sync.Mutex
	got  map[string]int
	n    int
	errs []error
}

func startSink(t *testing.T, wrap func(net.Conn) net.Conn) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, got: map[string]int{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				rc := wrap(c)
				defer rc.Close()
				go func() { <-t.Context().Done(); rc.Close() }()
				sc := bufio.NewScanner(rc)
				for sc.Scan() {
					s.mu.Lock()
					s.got[sc.Text()]++
					s.n++
					s.mu.Unlock()
				}
				// carbon-c-relay closes its TLS connections without reading
				// the session tickets sent to it: a reset, after all its data
				if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
					s.mu.Lock()
					s.errs = append(s.errs, err)
					s.mu.Unlock()
				}
			})
		}
	})
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

// wait waits until the sink holds n lines, or nothing came for quiet.
func (s *sink) wait(n int, quiet time.Duration) {
	last, lastN := time.Now(), -1
	for time.Since(last) < quiet {
		s.mu.Lock()
		got := s.n
		s.mu.Unlock()
		if got >= n {
			return
		}
		if got != lastN {
			last, lastN = time.Now(), got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check compares the lines received with want: every line exactly once.
func (s *sink) check(t *testing.T, want []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.errs {
		t.Errorf("sink: %v", e)
	}
	missing, dup := 0, 0
	var first string
	for _, l := range strings.Split(strings.TrimSuffix(string(want), "\n"), "\n") {
		switch s.got[l] {
		case 1:
		case 0:
			if missing == 0 {
				first = l
			}
			missing++
		default:
			dup++
		}
	}
	total := strings.Count(string(want), "\n")
	if missing > 0 || dup > 0 || s.n != total {
		t.Errorf("received %d lines for %d: %d missing (first %q), %d repeated", s.n, total, missing, first, dup)
	}
}

// testPKI is a CA and a certificate for 127.0.0.1 it signed, in files: the
// certificate, its key, both in one file (carbon-c-relay's `ssl <pemcert>`)
// and the CA.
type testPKI struct {
	cert, key, pem, ca string
	// client certificate signed by the same CA
	cliCert, cliKey string
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	ca := plugintest.NewPKI(t, "transport test CA")
	srv, cli := ca.Leaf(t, "127.0.0.1"), ca.Leaf(t, "client")
	return testPKI{cert: srv.Cert, key: srv.Key, pem: srv.PEM, ca: ca.CA, cliCert: cli.Cert, cliKey: cli.Key}
}

func serverTLS(t *testing.T, s registry.TLSServer) *tls.Config {
	t.Helper()
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { registry.ReleaseTLS(cfg) })
	return cfg
}

func clientTLS(t *testing.T, c registry.TLSClient, addr string) *tls.Config {
	t.Helper()
	cfg, err := c.ClientConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { registry.ReleaseTLS(cfg) })
	return cfg
}

func dial(t *testing.T, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			t.Fatal(registry.TLSHandshakeError(addr, err))
		}
		c = tc
	}
	return c
}

const crelayLines = 200000

// crelayBroken are the cases where carbon-c-relay 3.7.3 itself loses lines
// (the same happens between two carbon-c-relays): they run only with
// CRELAY_STRICT=1.
var crelayBroken = map[string]string{
	"to/lz4/plain":      "lzread/lzreadbuf (dispatcher.c) fail with \"input buffer overflow\" once frames queue up in its 32 KiB input buffer",
	"to/lz4/ssl":        "lzread/lzreadbuf (dispatcher.c) fail with \"input buffer overflow\" once frames queue up in its 32 KiB input buffer",
	"to/snappy/plain":   "snappyread (dispatcher.c) needs one block per read() and moves its input by the uncompressed length",
	"to/snappy/ssl":     "snappyread (dispatcher.c) needs one block per read() and moves its input by the uncompressed length",
	"to/gzip/ssl":       "the dispatcher stops reading a TLS connection whose data OpenSSL has buffered (it polls the socket only)",
	"from/snappy/plain": "snappyflush (server.c) compresses into a 32 KiB buffer, smaller than snappy_max_compressed_length of a full 32 KiB batch, and drops the connection",
	"from/snappy/ssl":   "snappyflush (server.c) compresses into a 32 KiB buffer, smaller than snappy_max_compressed_length of a full 32 KiB batch, and drops the connection",
}

func skipBroken(t *testing.T, key string) {
	if why, ok := crelayBroken[key]; ok && os.Getenv("CRELAY_STRICT") == "" {
		t.Skip("carbon-c-relay 3.7.3 loses lines here itself (CRELAY_STRICT=1 runs it): " + why)
	}
}

// TestToCRelay: Go Compressor -> carbon-c-relay's listener (`transport X`,
// `transport X ssl <pemcert>`) -> carbon-c-relay forwards plaintext to a
// Go sink: every line exactly once.
func TestToCRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("carbon-c-relay end to end")
	}
	bin := crelaytest.FullBin(t)
	p := newPKI(t)
	for _, kind := range kinds {
		for _, sec := range []string{"plain", "ssl"} {
			t.Run(kind+"/"+sec, func(t *testing.T) {
				skipBroken(t, "to/"+kind+"/"+sec)
				s := startSink(t, func(c net.Conn) net.Conn { return c })
				in := crelaytest.FreeAddr(t)
				lsnr := "transport " + kind
				if sec == "ssl" {
					lsnr += " ssl " + p.pem
				}
				conf := fmt.Sprintf("listen type linemode %s %s proto tcp;\n"+
					"cluster sink forward %s;\nmatch * send to sink stop;\n", lsnr, in, s.addr())
				t.Logf("carbon-c-relay.conf:\n%s", conf)
				relay := crelaytest.StartFull(t, bin, conf, []string{in}, "-q", "500000", "-T", "5000")
				var cfg *tls.Config
				if sec == "ssl" {
					cfg = clientTLS(t, registry.TLSClient{TLSCA: p.ca}, in)
				}
				c := dial(t, in, cfg)
				comp, err := NewCompressor(kind)
				if err != nil {
					t.Fatal(err)
				}
				lines := metricLines("to."+kind+"."+sec, crelayLines)
				send(t, c, comp, lines, 8<<10)
				c.Close()
				s.wait(crelayLines, 10*time.Second)
				if t.Failed() || func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n != crelayLines }() {
					t.Logf("carbon-c-relay's output:\n%s", relay.Log())
				}
				s.check(t, lines)
			})
		}
	}
}

// TestFromCRelay: carbon-c-relay's cluster member `host:port transport X
// [ssl]` -> a Go listener reading through Server (behind TLS from
// registry.TLSServer for ssl): every line exactly once.
func TestFromCRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("carbon-c-relay end to end")
	}
	bin := crelaytest.FullBin(t)
	p := newPKI(t)
	for _, kind := range kinds {
		for _, sec := range []string{"plain", "ssl"} {
			t.Run(kind+"/"+sec, func(t *testing.T) {
				skipBroken(t, "from/"+kind+"/"+sec)
				var cfg *tls.Config
				if sec == "ssl" {
					cfg = serverTLS(t, registry.TLSServer{TLSCert: p.cert, TLSKey: p.key})
				}
				s := startSink(t, func(c net.Conn) net.Conn {
					if cfg != nil {
						c = tls.Server(c, cfg)
					}
					return Server(kind, c)
				})
				in := crelaytest.FreeAddr(t)
				member := s.addr() + " transport " + kind
				var args []string
				if sec == "ssl" {
					member += " ssl"
					args = []string{"-C", p.ca}
				}
				conf := fmt.Sprintf("listen type linemode %s proto tcp;\n"+
					"cluster out forward %s;\nmatch * send to out stop;\n", in, member)
				t.Logf("carbon-c-relay.conf:\n%s", conf)
				relay := crelaytest.StartFull(t, bin, conf, []string{in}, append(args, "-q", "500000", "-T", "5000")...)
				c := dial(t, in, nil)
				lines := metricLines("from."+kind+"."+sec, crelayLines)
				if _, err := c.Write(lines); err != nil {
					t.Fatal(err)
				}
				c.Close()
				s.wait(crelayLines, 10*time.Second)
				if err := relay.Stop(t); err != nil {
					t.Errorf("carbon-c-relay: %v", err)
				}
				s.wait(crelayLines, 2*time.Second)
				s.mu.Lock()
				n := s.n
				s.mu.Unlock()
				if n != crelayLines {
					t.Logf("carbon-c-relay's output:\n%s", relay.Log())
				}
				s.check(t, lines)
			})
		}
	}
}

// TestGoToGo: Compressor -> Server over TLS and mutual TLS, with certificates
// from registry's helper.
func TestGoToGo(t *testing.T) {
	p := newPKI(t)
	for _, kind := range append([]string{None}, kinds...) {
		for _, sec := range []string{"plain", "tls", "mtls"} {
			t.Run(kind+"/"+sec, func(t *testing.T) {
				var scfg *tls.Config
				switch sec {
				case "tls":
					scfg = serverTLS(t, registry.TLSServer{TLSCert: p.cert, TLSKey: p.key})
				case "mtls":
					scfg = serverTLS(t, registry.TLSServer{TLSCert: p.cert, TLSKey: p.key, TLSCA: p.ca})
				}
				s := startSink(t, func(c net.Conn) net.Conn {
					if scfg != nil {
						c = tls.Server(c, scfg)
					}
					return Server(kind, c)
				})
				var ccfg *tls.Config
				switch sec {
				case "tls":
					ccfg = clientTLS(t, registry.TLSClient{TLSCA: p.ca}, s.addr())
				case "mtls":
					ccfg = clientTLS(t, registry.TLSClient{TLSCA: p.ca, TLSCert: p.cliCert, TLSKey: p.cliKey}, s.addr())
				}
				comp, err := NewCompressor(kind)
				if err != nil {
					t.Fatal(err)
				}
				lines := metricLines("go."+kind+"."+sec, 50000)
				for i, chunk := range []int{100, 64 << 10} {
					// two connections: Reset starts a new stream
					comp.Reset()
					c := dial(t, s.addr(), ccfg)
					mid := bytes.IndexByte(lines[len(lines)/2:], '\n') + len(lines)/2 + 1
					half := lines[:mid]
					if i == 1 {
						half = lines[mid:]
					}
					send(t, c, comp, half, chunk)
					c.Close()
				}
				s.wait(50000, 5*time.Second)
				s.check(t, lines)
			})
		}
	}
}

// TestHandover: a reader stops at an expired read deadline, with data in
// flight, and a second reader reads on from the same conn: every line
// once.
func TestHandover(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			lines := metricLines("handover."+kind, 20000)
			mid := bytes.IndexByte(lines[len(lines)/2:], '\n') + len(lines)/2 + 1
			resume := make(chan struct{})
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer c.Close()
				comp, _ := NewCompressor(kind)
				dst, _ := comp.Compress(nil, lines[:mid])
				// the second half of the first half's bytes arrive later
				c.Write(dst[:len(dst)/2])
				time.Sleep(50 * time.Millisecond)
				c.Write(dst[len(dst)/2:])
				<-resume
				dst, _ = comp.Compress(dst[:0], lines[mid:])
				c.Write(dst)
			}()
			raw, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c := Server(kind, raw)
			defer c.Close()
			var got bytes.Buffer
			// first reader: small reads, until its deadline
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			b := make([]byte, 100)
			for {
				n, err := c.Read(b)
				got.Write(b[:n])
				if err != nil {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("first reader: %v, want a timeout", err)
					}
					break
				}
			}
			if got.Len() != mid {
				t.Fatalf("first reader got %d bytes, want %d", got.Len(), mid)
			}
			// a deadline in the past fails at once, and harms nothing
			c.SetReadDeadline(time.Now().Add(-time.Second))
			if _, err := c.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read after a past deadline: %v", err)
			}
			close(resume)
			// second reader: the rest
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest, err := io.ReadAll(io.LimitReader(bufio.NewReader(c), int64(len(lines)-mid)))
			if err != nil {
				t.Fatal(err)
			}
			got.Write(rest)
			if !bytes.Equal(got.Bytes(), lines) {
				t.Fatalf("got %d bytes, want the %d sent", got.Len(), len(lines))
			}
			c.SetReadDeadline(time.Time{})
			if n, err := c.Read(b); err != io.EOF {
				t.Fatalf("at the end: %d, %v, want EOF", n, err)
			}
		})
	}
}

// TestCorrupt: a stream that is not what the transport says gives an error
// naming the transport, after the good lines before it.
func TestCorrupt(t *testing.T) {
	good := []byte("a.b.c 1 1700000000\n")
	junk := bytes.Repeat([]byte{0xff, 0x13, 0x77, 0x00}, 64)
	for _, c := range []struct {
		kind   string
		stream func(*Compressor) []byte
		want   string
	}{
		{Gzip, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return append(b, junk...) }, "gzip transport: "},
		{Gzip, func(z *Compressor) []byte { return junk }, "gzip transport: gzip: invalid header"},
		{LZ4, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return append(b, junk...) }, "lz4 transport: "},
		// a block larger than the frame's 64 KiB
		{LZ4, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return append(b, 0x01, 0x00, 0x02, 0x00) }, "lz4 transport: "},
		{Snappy, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return append(b, junk...) }, "snappy transport: "},
		// a copy before any byte was written
		{Snappy, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return append(b, 10, 0x2a, 0x05, 0x00) }, "snappy transport: "},
		{Snappy, func(z *Compressor) []byte { return []byte{0x80, 0x80, 0x80, 0x01} }, "snappy transport: snappy block of 2097152 bytes"},
		{Snappy, func(z *Compressor) []byte { b, _ := z.Compress(nil, good); return b[:len(b)-3] }, "snappy transport: unexpected EOF"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			comp, _ := NewCompressor(c.kind)
			a, b := net.Pipe()
			go func() {
				a.Write(c.stream(comp))
				a.Close()
			}()
			z := Server(c.kind, b)
			defer z.Close()
			z.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(z)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if len(got) > 0 && !bytes.Equal(got, good) {
				t.Errorf("read %q before the error", got)
			}
			t.Log(err)
		})
	}
}

// TestGzipWithoutTrailer: carbon-c-relay closes its gzip stream without a
// trailer; the end of the connection is then a clean EOF.
func TestGzipWithoutTrailer(t *testing.T) {
	comp, _ := NewCompressor(Gzip)
	a, b := net.Pipe()
	go func() {
		dst, _ := comp.Compress(nil, []byte("a 1 1\n"))
		a.Write(dst)
		a.Close()
	}()
	z := Server(Gzip, b)
	defer z.Close()
	got, err := io.ReadAll(z)
	if err != nil || string(got) != "a 1 1\n" {
		t.Fatalf("%q, %v", got, err)
	}
}

// TestLZ4Frame: one LZ4 frame per connection, never ended: its header
// once after Reset, then per Compress p but its last byte in blocks of at
// most lz4WriteBlock bytes, then the last byte in a stored block of its
// own (the package doc says why); the end of the connection ends the
// stream cleanly.
func TestLZ4Frame(t *testing.T) {
	comp, _ := NewCompressor(LZ4)
	lines := metricLines("lz4.frame", 3000)
	var stream []byte
	for _, p := range [][]byte{lines, []byte("x 1 2\n"), []byte("\n")} {
		start := len(stream)
		stream, _ = comp.Compress(stream, p)
		b := stream[start:]
		if start == 0 {
			if !bytes.Equal(b[:7], lz4FrameHeader[:]) {
				t.Fatalf("frame header % x", b[:7])
			}
			b = b[7:]
		}
		var got []byte
		for len(b) > 5 {
			size := binary.LittleEndian.Uint32(b)
			n := int(size &^ lz4Uncompressed)
			out := make([]byte, lz4WriteBlock)
			if size&lz4Uncompressed != 0 {
				out = out[:copy(out, b[4:4+n])]
			} else {
				k, err := lz4.UncompressBlock(b[4:4+n], out)
				if err != nil {
					t.Fatal(err)
				}
				out = out[:k]
			}
			if len(out) == 0 || len(out) > lz4WriteBlock {
				t.Fatalf("block of %d bytes", len(out))
			}
			got, b = append(got, out...), b[4+n:]
		}
		want := []byte{1, 0, 0, 0x80, p[len(p)-1]}
		if !bytes.Equal(b, want) {
			t.Fatalf("chunk ends with % x, want % x", b, want)
		}
		if got = append(got, b[4]); !bytes.Equal(got, p) {
			t.Fatalf("blocks hold %d bytes, want %d", len(got), len(p))
		}
	}
	comp.Reset()
	again, _ := comp.Compress(nil, []byte("a 1 1\n"))
	if !bytes.HasPrefix(again, lz4FrameHeader[:]) {
		t.Fatalf("no frame header after Reset: % x", again)
	}
	a, b := net.Pipe()
	go func() {
		a.Write(stream)
		a.Close()
	}()
	z := Server(LZ4, b)
	defer z.Close()
	got, err := io.ReadAll(z)
	if want := append(append(append([]byte(nil), lines...), "x 1 2\n"...), '\n'); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}

// TestClose: Close ends a Read blocked on a silent peer, and the pump.
func TestClose(t *testing.T) {
	for _, kind := range kinds {
		a, b := net.Pipe()
		defer a.Close()
		z := Server(kind, b)
		errc := make(chan error)
		go func() { _, err := z.Read(make([]byte, 10)); errc <- err }()
		time.Sleep(20 * time.Millisecond)
		if err := z.Close(); err != nil {
			t.Errorf("%s: close: %v", kind, err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: read after close: %v", kind, err)
		}
		if err := z.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: second close: %v", kind, err)
		}
	}
}

// TestBackpressure: a stream that decompresses to far more than the
// buffer is not read ahead: the pump waits for Read.
func TestBackpressure(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			comp, _ := NewCompressor(kind)
			zeros := make([]byte, 1<<20)
			var stream []byte
			for range 8 {
				stream, _ = comp.Compress(stream, zeros)
			}
			a, b := net.Pipe()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < len(stream); i += 1024 {
					_, err := a.Write(stream[i:min(i+1024, len(stream))])
					if err != nil {
						return
					}
				}
			}()
			z := Server(kind, b)
			time.Sleep(100 * time.Millisecond)
			zc := z.(*conn)
			zc.mu.Lock()
			buffered := zc.n
			zc.mu.Unlock()
			if buffered != bufSize {
				t.Errorf("buffered %d bytes, want the buffer full (%d)", buffered, bufSize)
			}
			n, err := io.Copy(io.Discard, io.LimitReader(z, 8<<20))
			if err != nil || n != 8<<20 {
				t.Errorf("read %d, %v", n, err)
			}
			a.Close()
			z.Close()
			<-done
		})
	}
}

func TestCompressAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	lines := metricLines("alloc", 1000)
	for _, kind := range kinds {
		comp, _ := NewCompressor(kind)
		dst, _ := comp.Compress(nil, lines)
		if a := testing.AllocsPerRun(20, func() { dst, _ = comp.Compress(dst[:0], lines) }); a != 0 {
			t.Errorf("%s: %v allocations per Compress", kind, a)
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	lines := metricLines("bench", 1000)
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			comp, _ := NewCompressor(kind)
			var dst []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(lines)))
			for b.Loop() {
				dst, _ = comp.Compress(dst[:0], lines)
			}
			b.ReportMetric(float64(len(dst))/float64(len(lines)), "ratio")
		})
	}
}

// byteConn is a net.Conn reading from a byte slice.
type byteConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *byteConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *byteConn) Close() error               { return nil }

func BenchmarkServerRead(b *testing.B) {
	lines := metricLines("bench", 1000)
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			comp, _ := NewCompressor(kind)
			var stream []byte
			for range 100 {
				stream, _ = comp.Compress(stream, lines)
			}
			buf := make([]byte, 64<<10)
			b.ReportAllocs()
			b.SetBytes(int64(100 * len(lines)))
			for b.Loop() {
				z := Server(kind, &byteConn{r: bytes.NewReader(stream)})
				for {
					if _, err := z.Read(buf); err != nil {
						break
					}
				}
				z.Close()
			}
		})
	}
}
