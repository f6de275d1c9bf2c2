package https_batch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	codec "github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// faultyListener fails its first accepts with errs, then accepts.
type faultyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (f *faultyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		e := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, e
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// acceptErrors are accept(2) failures as package net reports them: ENOBUFS
// and ENOMEM are not Temporary(), so net/http's Serve returns on them.
func acceptErrors() []error {
	var errs []error
	for _, e := range []syscall.Errno{syscall.ENOBUFS, syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOMEM} {
		errs = append(errs, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)})
	}
	return errs
}

// tlsClient trusts the test CA.
func tlsClient(t *testing.T, pki plugintest.TLSFiles) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool}
}

// TestAcceptErrorsNeverEndRun: accept failures on both listeners (ENOBUFS
// first, which ended net/http's Serve and Run with it) are retried and
// counted; both listeners serve afterwards and Run returns nil at the end.
func TestAcceptErrorsNeverEndRun(t *testing.T) {
	pki := plugintest.NewTLS(t)
	g := startGateway(t, func(g *Gateway) {
		g.TLSListen = "127.0.0.1:0"
		g.TLSCert, g.TLSKey = pki.Cert, pki.Key
		g.listen = func(ctx context.Context, addr string) (net.Listener, error) {
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &faultyListener{Listener: ln, errs: acceptErrors()}, nil
		}
	}, nil)
	if st, body := post(t, "http://"+g.addr+"/ingest", "123", gz(t, "plain.listener 1 1700000000\n"), nil); st != 200 {
		t.Fatalf("plain listener after accept errors: %d %q", st, body)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsClient(t, pki)}}
	req, _ := http.NewRequest("POST", "https://"+g.g.Addr("tls_listen").String()+"/ingest", bytes.NewReader(gz(t, "tls.listener 1 1700000000\n")))
	req.Header.Set("X-Polymur-Key", "123")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("tls listener after accept errors: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("tls listener after accept errors: %d", resp.StatusCode)
	}
	want := uint64(2 * len(acceptErrors()))
	if got := g.m.Get("accept_errors_total"); got != want {
		t.Fatalf("accept_errors_total = %d, want %d", got, want)
	}
	if !g.cap.WaitFor(2, 5*time.Second) {
		t.Fatalf("captured %d metrics, want 2", g.cap.Len())
	}
}

// dialer opens a raw connection to one of the gateway's listeners.
type dialer func(t *testing.T) net.Conn

// exchange writes req on a fresh connection and reads up to n responses;
// after one saying Connection: close it checks that the gateway closes the
// connection without sending anything more (within 5 s).
func exchange(t *testing.T, dial dialer, req string, n int) (resps []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c := dial(t)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for len(resps) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			return resps, bodies, !(errors.As(err, &ne) && ne.Timeout())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
		if resp.Close {
			break
		}
	}
	if len(resps) > 0 && resps[len(resps)-1].Close {
		_, err := br.ReadByte()
		var ne net.Error
		closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	return resps, bodies, closed
}

// TestFraming: a request framed by Transfer-Encoding is refused with 400 and
// its connection closed, on the plain and the TLS listener, so a request
// hidden after its body (Content-Length and Transfer-Encoding disagreeing)
// is never served; an HTTP/1.0 request, whose Transfer-Encoding net/http
// hides, gets its connection closed after the answer. Two pipelined
// requests with Content-Length are both served (the check can see a second
// response).
func TestFraming(t *testing.T) {
	pki := plugintest.NewTLS(t)
	g := startGateway(t, func(g *Gateway) {
		g.TLSListen = "127.0.0.1:0"
		g.TLSCert, g.TLSKey = pki.Cert, pki.Key
	}, nil)
	tlsAddr := g.g.Addr("tls_listen").String()
	clientTLS := tlsClient(t, pki)
	listeners := []struct {
		name string
		dial dialer
	}{
		{"plain", func(t *testing.T) net.Conn {
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"tls", func(t *testing.T) net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	hidden := func(line string) string {
		return fmt.Sprintf("POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: 123\r\nContent-Length: %d\r\n\r\n%s", len(line), line)
	}
	cases := []struct {
		name     string
		req      func(tag string) string
		statuses []int
		emitted  []string // lines the gateway may take (with the tag)
	}{
		{
			name: "content-length and transfer-encoding hide a request",
			req: func(tag string) string {
				body := "0\r\n\r\n" + hidden("smuggled."+tag+" 1 1700000000\n")
				return fmt.Sprintf("POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: 123\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(body), body)
			},
			statuses: []int{400},
		},
		{
			name: "transfer-encoding alone",
			req: func(tag string) string {
				line := "chunked." + tag + " 1 1700000000\n"
				return fmt.Sprintf("POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: 123\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(line), line) +
					hidden("after."+tag+" 1 1700000000\n")
			},
			statuses: []int{400},
		},
		{
			name: "http/1.0 with both, keep-alive",
			req: func(tag string) string {
				line := "first." + tag + " 1 1700000000\n"
				return fmt.Sprintf("POST /ingest HTTP/1.0\r\nHost: gw\r\nConnection: keep-alive\r\nX-Polymur-Key: 123\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(line), line) +
					hidden("smuggled."+tag+" 1 1700000000\n")
			},
			statuses: []int{200},
			emitted:  []string{"first.%s 1 1700000000"},
		},
		{
			name: "two pipelined requests with content-length",
			req: func(tag string) string {
				return hidden("one."+tag+" 1 1700000000\n") + hidden("two."+tag+" 1 1700000000\n")
			},
			statuses: []int{200, 200},
			emitted:  []string{"one.%s 1 1700000000", "two.%s 1 1700000000"},
		},
	}
	var want []string
	for _, l := range listeners {
		for i, c := range cases {
			t.Run(l.name+"/"+c.name, func(t *testing.T) {
				tag := fmt.Sprintf("%s%d", l.name, i)
				before := g.m.Get("bad_framing_total")
				resps, bodies, closed := exchange(t, l.dial, c.req(tag), len(c.statuses))
				var got []int
				for _, r := range resps {
					got = append(got, r.StatusCode)
				}
				if fmt.Sprint(got) != fmt.Sprint(c.statuses) {
					t.Fatalf("statuses %v (%q), want %v", got, bodies, c.statuses)
				}
				refused := c.statuses[0] == 400
				if refused || strings.Contains(c.name, "1.0") {
					if !resps[0].Close || !closed {
						t.Fatalf("connection kept open (Connection: close %v, closed %v)", resps[0].Close, closed)
					}
				}
				if refused && g.m.Get("bad_framing_total") != before+1 {
					t.Fatalf("bad_framing_total %d, want %d", g.m.Get("bad_framing_total"), before+1)
				}
				for _, e := range c.emitted {
					want = append(want, fmt.Sprintf(e, tag))
				}
			})
		}
	}
	if !g.cap.WaitFor(len(want), 5*time.Second) {
		t.Fatalf("captured %d metrics, want %d", g.cap.Len(), len(want))
	}
	if got := strings.Join(sortedStrings(g.cap.Raw()), "|"); got != strings.Join(sortedStrings(want), "|") {
		t.Fatalf("emitted %s\nwant    %s", got, strings.Join(sortedStrings(want), "|"))
	}
}

func sortedStrings(s []string) []string {
	c := append([]string(nil), s...)
	slices.Sort(c)
	return c
}

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// lyingTrailer is a valid tiny gzip body whose trailer claims size bytes.
func lyingTrailer(t testing.TB, size uint32) []byte {
	b := gz(t, "a.b 1 1700000000\n")
	binary.LittleEndian.PutUint32(b[len(b)-4:], size)
	return b
}

// TestBodyMemory: what a hostile body makes the gateway allocate, measured
// in-process (runtime TotalAlloc): a gzip bomb, a gzip trailer claiming 256
// MiB, 32 MiB of empty lines, and a Content-Length of 32 MiB whose body
// never comes each cost a request's window and reader, not what they claim
// or inflate to.
func TestBodyMemory(t *testing.T) {
	g := startGateway(t, nil, nil)
	url := "http://" + g.addr + "/ingest"
	gbomb := plugintest.GzipBomb(1024)
	lying := lyingTrailer(t, 256<<20)
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
	zw.Write(bytes.Repeat([]byte{'\n'}, 32<<20-1))
	zw.Close()
	empty := zb.Bytes()
	t.Logf("gzip bomb: %d bytes for 1 GiB; lying trailer: %d bytes", len(gbomb), len(lying))
	cases := []struct {
		name   string
		send   func(t *testing.T)
		bound  uint64
		status string // counter that must have grown
	}{
		{"gzip bomb 1 GiB", func(t *testing.T) {
			if st, body := post(t, url, "123", gbomb, nil); st != 413 {
				t.Fatalf("gzip bomb: %d %q", st, body)
			}
		}, 4 << 20, "too_large_total"},
		{"gzip trailer claims 256 MiB", func(t *testing.T) {
			if st, body := post(t, url, "123", lying, nil); st != 400 {
				t.Fatalf("lying trailer: %d %q", st, body)
			}
		}, 4 << 20, "malformed_total"},
		{"32 MiB of empty lines", func(t *testing.T) {
			if st, body := post(t, url, "123", empty, nil); st != 200 {
				t.Fatalf("empty lines: %d %q", st, body)
			}
		}, 4 << 20, "batches_total"},
		{"content-length 32 MiB, body never sent", func(t *testing.T) {
			before := g.m.Get("malformed_total")
			c, err := net.Dial("tcp", g.addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: 123\r\nContent-Length: %d\r\n\r\n", 32<<20-1)
			c.Write(gz(t, "a 1 1\n")[:10]) // a gzip header, then nothing
			// the handler is reading the body: wait until it holds its window
			waitGauge(t, g.m, "inflight_requests", 1)
			c.Close()
			waitCounter(t, g.m, "malformed_total", before+1)
		}, 4 << 20, "malformed_total"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := g.m.Get(c.status)
			n := allocated(func() { c.send(t) })
			t.Logf("%s: %d KiB allocated", c.name, n>>10)
			if n > c.bound {
				t.Fatalf("%s: %d KiB allocated, bound %d KiB", c.name, n>>10, c.bound>>10)
			}
			if g.m.Get(c.status) <= before {
				t.Fatalf("%s not counted", c.status)
			}
		})
	}
	// legitimate batches still go through
	two := append(gz(t, "multi.a 1 1700000000\nmulti."), gz(t, "b 2 1700000000\n")...)
	for _, body := range [][]byte{[]byte("plain.a 1 1700000000\n"), gz(t, "gzip.a 1 1700000000\n"), two} {
		if st, resp := post(t, url, "123", body, nil); st != 200 {
			t.Fatalf("legitimate batch: %d %q", st, resp)
		}
	}
	if !g.cap.WaitFor(4, 5*time.Second) {
		t.Fatalf("captured %d", g.cap.Len())
	}
	if got := strings.Join(g.cap.Raw(), "|"); got != "plain.a 1 1700000000|gzip.a 1 1700000000|multi.a 1 1700000000|multi.b 2 1700000000" {
		t.Fatalf("emitted %q", got)
	}
}

func waitCounter(t *testing.T, m *plugintest.Metrics, name string, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); m.Get(name) < want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", name, m.Get(name), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitGauge(t *testing.T, m *plugintest.Metrics, name string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		v, _ := m.GaugeValue(name)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestInflightBudget: with max_inflight_bytes = 1 MiB, four requests whose
// bodies trickle in hold it (each its window and reader); a fifth gets 503
// with Retry-After and its connection closed, counted; once the four finish
// (200) the budget is free again. A batch that alone needs more than the
// budget gets 413, not a 503 that would be resent forever.
func TestInflightBudget(t *testing.T) {
	g := startGateway(t, func(g *Gateway) { g.MaxInflightBytes = 1 << 20 }, nil)
	fits := int((1 << 20) / g.g.fixed)
	if fits != 4 {
		t.Fatalf("a request's fixed cost %d: %d fit in 1 MiB, the test wants 4", g.g.fixed, fits)
	}
	var conns []net.Conn
	for i := range fits {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		line := fmt.Sprintf("slow.%d 1 1700000000\n", i)
		fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: 123\r\nContent-Length: %d\r\n\r\n%s", len(line), line[:5])
		conns = append(conns, c)
	}
	waitGauge(t, g.m, "inflight_requests", float64(fits))
	waitGauge(t, g.m, "inflight_bytes", float64(int64(fits)*g.g.fixed))
	req, _ := http.NewRequest("POST", "http://"+g.addr+"/ingest", bytes.NewReader(gz(t, "refused 1 1700000000\n")))
	req.Header.Set("X-Polymur-Key", "123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Fatalf("over max_inflight_bytes: %d, Retry-After %q, close %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
	if g.m.Get("inflight_full_total") != 1 {
		t.Fatalf("inflight_full_total = %d", g.m.Get("inflight_full_total"))
	}
	for i, c := range conns {
		line := fmt.Sprintf("slow.%d 1 1700000000\n", i)
		io.WriteString(c, line[5:])
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("slow request %d: %v %v", i, resp, err)
		}
	}
	waitGauge(t, g.m, "inflight_bytes", 0)
	if st, _ := post(t, "http://"+g.addr+"/ingest", "123", gz(t, "after 1 1700000000\n"), nil); st != 200 {
		t.Fatalf("after the slow requests: %d", st)
	}
	// 40000 lines need 40000 x 56 bytes of metrics alone: more than 1 MiB
	big := gz(t, strings.Repeat("a.b 1 1\n", 40000))
	if st, body := post(t, "http://"+g.addr+"/ingest", "123", big, nil); st != 413 {
		t.Fatalf("batch larger than the budget: %d %q", st, body)
	}
	if g.m.Get("too_large_total") != 1 || g.m.Get("inflight_full_total") != 1 {
		t.Fatalf("too_large_total %d, inflight_full_total %d", g.m.Get("too_large_total"), g.m.Get("inflight_full_total"))
	}
	if !g.cap.WaitFor(fits+1, 5*time.Second) {
		t.Fatalf("captured %d", g.cap.Len())
	}
}

// reference frames and parses data the simple way (the whole body in
// memory): what the streaming reader must produce.
func reference(data []byte, maxLine int) (raw []string, lines, tooLong, bad int) {
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue
		}
		lines++
		if len(line) > maxLine {
			tooLong++
			continue
		}
		var m metric.Metric
		if codec.Parse(line, &m) != nil {
			bad++
			continue
		}
		raw = append(raw, string(line))
	}
	return raw, lines, tooLong, bad
}

// gzMembers gzips data in parts split at the given offsets, one member each.
func gzMembers(t testing.TB, data []byte, cuts ...int) []byte {
	var out []byte
	prev := 0
	for _, c := range append(cuts, len(data)) {
		c = max(prev, min(c, len(data)))
		out = append(out, gz(t, string(data[prev:c]))...)
		prev = c
	}
	return out
}

// TestStreamingFraming: bodies larger than the window, lines across window
// and gzip member boundaries, lines over max_line_length (one longer than
// the window), CRLF, empty and malformed lines, no final newline: the
// streaming reader gives what framing the whole body at once gives, plain
// and gzipped in one or several members.
func TestStreamingFraming(t *testing.T) {
	const maxLine = 1000
	var varied bytes.Buffer
	for i := range 30000 {
		fmt.Fprintf(&varied, "%s.%d %d 1700000000\n", strings.Repeat("p", i%300), i, i)
	}
	var long bytes.Buffer
	long.WriteString("before 1 1700000000\n")
	long.WriteString(strings.Repeat("x", maxLine-20) + " 1 1700000000\n") // exactly at the limit
	long.WriteString(strings.Repeat("y", maxLine-19) + " 1 1700000000\n") // one over
	long.WriteString(strings.Repeat("z", 300<<10) + " 1 1700000000\n")    // longer than the window
	long.WriteString("after 2 1700000000\r\n\r\n\n")
	long.WriteString(strings.Repeat("w", 200<<10)) // too long, and the last line
	var junk bytes.Buffer
	for i := range 5000 {
		if i%1000 == 0 {
			fmt.Fprintf(&junk, "valid.%d 1 1700000000\n", i)
		}
		junk.WriteString("this is not a metric line at all\n")
	}
	bodies := []struct {
		name string
		data []byte
	}{
		{"varied lines, several windows", varied.Bytes()},
		{"long lines", long.Bytes()},
		{"junk with a few valid lines", junk.Bytes()},
		{"no final newline", []byte("a 1 1700000000\nb 2 1700000000")},
		{"only junk", bytes.Repeat([]byte("junk\n"), 100000)},
		{"empty lines only", []byte("\n\r\n\n")},
	}
	h, m := quietHandler(t, func(g *Gateway) {
		g.MaxLineLength = maxLine
		g.MaxDecompressedBytes = 64 << 20
	})
	g := h.g
	for _, b := range bodies {
		wantRaw, wantLines, wantLong, wantBad := reference(b.data, maxLine)
		mid := len(b.data) / 2
		encodings := []struct {
			name string
			body []byte
		}{
			{"plain", b.data},
			{"gzip", gz(t, string(b.data))},
			{"gzip members", gzMembers(t, b.data, mid/3, mid, mid+7)},
		}
		for _, e := range encodings {
			t.Run(b.name+"/"+e.name, func(t *testing.T) {
				long0, bad0 := m.Get("lines_too_long_total"), m.Get("parse_errors_total")
				r, _ := http.NewRequest("POST", "/ingest", bytes.NewReader(e.body))
				res := reservation{b: g.budget}
				defer res.release()
				got, lines, err := h.readBatch(r, &res)
				if err != nil {
					t.Fatal(err)
				}
				raw := make([]string, len(got))
				for i := range got {
					raw[i] = string(got[i].Raw())
				}
				for i := range max(len(raw), len(wantRaw)) {
					if i >= len(raw) || i >= len(wantRaw) || raw[i] != wantRaw[i] {
						t.Fatalf("%d metrics, want %d; first difference at %d", len(raw), len(wantRaw), i)
					}
				}
				if cap(got)-len(got) > len(got)/16 {
					t.Fatalf("batch cap %d for %d metrics", cap(got), len(got))
				}
				if lines != wantLines || m.Get("lines_too_long_total")-long0 != uint64(wantLong) || m.Get("parse_errors_total")-bad0 != uint64(wantBad) {
					t.Fatalf("lines %d too long %d bad %d, want %d %d %d", lines, m.Get("lines_too_long_total")-long0,
						m.Get("parse_errors_total")-bad0, wantLines, wantLong, wantBad)
				}
			})
		}
	}
}

// TestRetainedIsLines: a batch keeps alive about its lines and metrics, not
// the window nor the malformed lines around them (the queue accounts line
// bytes plus the metric). Measured with the heap after a collection, with
// the batch alive and then dropped.
func TestRetainedIsLines(t *testing.T) {
	var junk bytes.Buffer
	for i := range 30000 {
		if i%3000 == 0 {
			fmt.Fprintf(&junk, "valid.%d 1 1700000000\n", i)
		}
		fmt.Fprintf(&junk, "junk line %d that is not a metric\n", i)
	}
	h, _ := quietHandler(t, nil)
	g := h.g
	for _, enc := range []string{"plain", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			body := junk.Bytes()
			if enc == "gzip" {
				body = gz(t, junk.String())
			}
			heap := func() uint64 {
				runtime.GC()
				runtime.GC() // the second empties the readers' pool too
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			r, _ := http.NewRequest("POST", "/ingest", bytes.NewReader(body))
			res := reservation{b: g.budget}
			b, _, err := h.readBatch(r, &res)
			res.release()
			if err != nil || len(b) != 10 {
				t.Fatalf("%d metrics, %v", len(b), err)
			}
			var lineBytes int
			for i := range b {
				lineBytes += len(b[i].Line())
			}
			r, body = nil, nil
			with := heap()
			runtime.KeepAlive(b)
			b = nil
			without := heap()
			kept := int64(with) - int64(without)
			t.Logf("%d metrics of %d line bytes keep %d bytes (%d KiB of body)", 10, lineBytes, kept, junk.Len()>>10)
			if kept > 4<<10 {
				t.Fatalf("the batch keeps %d bytes for %d line bytes", kept, lineBytes)
			}
		})
	}
}

// TestStartWarnings: a TLS private key that group or others may read, and
// the dev_mode key, each get one warning when the gateway starts (the key
// by its name only); a 0600 TLS key gets none.
func TestStartWarnings(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			pki := plugintest.NewTLS(t)
			if err := os.Chmod(pki.Key, mode); err != nil {
				t.Fatal(err)
			}
			var logs plugintest.SyncBuffer
			g := registryNew()
			g.TLSListen = "127.0.0.1:0"
			g.TLSCert, g.TLSKey = pki.Cert, pki.Key
			g.Keystore.Type = "static"
			g.Keystore.DevMode = true
			env := registry.Env{ID: "t", Plugin: "inputs.https_batch", Log: zerolog.New(&logs), Metrics: plugintest.NewMetrics()}
			if err := g.Init(env); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx, plugintest.NewCapture()) }()
			if g.Addr("tls_listen") == nil {
				t.Fatal("gateway did not start")
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			lax := strings.Count(out, "secret file open to group or others")
			if want := map[bool]int{true: 1, false: 0}[mode&0o066 != 0]; lax != want ||
				(lax == 1 && !strings.Contains(out, `"setting":"tls_key","path":"`+pki.Key+`"`)) {
				t.Fatalf("%d warnings about the TLS key's mode %v:\n%s", lax, mode, out)
			}
			if strings.Count(out, `"name":"dev","reason":"the dev_mode key`) != 1 || strings.Contains(out, `"123"`) {
				t.Fatalf("dev_mode warning:\n%s", out)
			}
		})
	}
}
