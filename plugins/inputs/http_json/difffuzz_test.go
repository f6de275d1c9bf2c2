package http_json

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/plugintest"

	"github.com/metricsrouter/router/plugins/netx"
)

// memConn is a connection that reads data, then EOF, and drops what is
// written to it; done is closed when it is closed.
type memConn struct {
	r    *bytes.Reader
	done chan struct{}
	once sync.Once
}

func newMemConn(data []byte) *memConn {
	return &memConn{r: bytes.NewReader(data), done: make(chan struct{})}
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { c.once.Do(func() { close(c.done) }); return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8825} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// recorder is the handler of a differential run: it records what the
// real handler would read of each request (method, path, query, host, the
// header fields it reads, framing, body), then lets it answer, so the
// connection goes on (or is closed) as it would in production.
type recorder struct {
	h    *handler
	mu   sync.Mutex
	seen []string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, held, status := readBody(r, rc.h.cfg.maxBody, rc.h.budget)
	rc.h.budget.Release(held)
	rec := fmt.Sprintf("%s %q query=%q host=%q proto=%d.%d origin=%q ctype=%q token=%q te=%q/%v length=%d body=%d:%q",
		r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.ProtoMajor, r.ProtoMinor,
		r.Header.Get("Origin"), r.Header.Get("Content-Type"), r.Header[tokenHeader],
		r.TransferEncoding, r.Header["Transfer-Encoding"] != nil, r.ContentLength, status, body)
	rc.mu.Lock()
	rc.seen = append(rc.seen, rec)
	rc.mu.Unlock()
	r.Body = readCloser{bytes.NewReader(body)}
	rc.h.ServeHTTP(w, r)
}

func (rc *recorder) take() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.seen
	rc.seen = nil
	return s
}

// diffServers is the plain-HTTP path of the input (the fast path, handing
// off to net/http) and net/http alone, each with its recorder.
type diffServers struct {
	fast            *fastServer
	fastRec, stdRec *recorder
	std             *netx.Handoff
	stop            func()
}

func newDiffServers(t testing.TB) *diffServers {
	env, _ := plugintest.Env(t, "inputs.http_json")
	env.Log = zerolog.Nop()
	cfg := handlerConfig{maxBody: 1 << 20, maxInflight: -1, maxBatch: 100, emitTimeout: time.Second}
	newRec := func() *recorder {
		h := newHandler(cfg, env)
		h.start(nopEmitter{}, nil)
		return &recorder{h: h}
	}
	d := &diffServers{fastRec: newRec(), stdRec: newRec()}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8825}
	d.fast = newFastServer(fastConfig{
		handler: d.fastRec, log: zerolog.Nop(), base: context.Background(),
		maxHead: maxHeaderBytes, maxBody: cfg.maxBody, addr: addr, handoffs: new(atomic.Uint64),
	})
	d.std = netx.NewHandoff(addr)
	srvFast := &http.Server{Handler: d.fastRec, MaxHeaderBytes: maxHeaderBytes, ErrorLog: nopLog()}
	srvStd := &http.Server{Handler: d.stdRec, MaxHeaderBytes: maxHeaderBytes, ErrorLog: nopLog()}
	go srvFast.Serve(d.fast.handoff)
	go srvStd.Serve(d.std)
	d.stop = func() {
		srvFast.Close()
		srvStd.Close()
		d.fast.shutdown(context.Background())
		d.fastRec.h.stop()
		d.stdRec.h.stop()
	}
	return d
}

// serve runs data through both servers as one connection's bytes and
// returns what each served.
func (d *diffServers) serve(t testing.TB, data []byte) (fast, std []string) {
	fc := newMemConn(data)
	c := &fastConn{c: fc}
	d.fast.mu.Lock()
	d.fast.conns[c] = struct{}{}
	d.fast.wg.Add(1)
	d.fast.mu.Unlock()
	go d.fast.serveConn(c)
	sc := newMemConn(data)
	if !d.std.Push(sc) {
		t.Fatal("net/http stopped")
	}
	for _, done := range []chan struct{}{fc.done, sc.done} {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("a connection was not closed within 10s: %q", data)
		}
	}
	// a connection is closed just before its handler's record is read
	// back: wait for the fast path's goroutine too
	d.fast.wg.Wait()
	return d.fastRec.take(), d.stdRec.take()
}

// FuzzServeVsNetHTTP: the same bytes, sent as one connection to the plain
// HTTP path of the input (the fast path, which hands the connection to
// net/http at the first request it does not serve itself) and to net/http
// alone, make the handler see the same requests: same method, path,
// query, host, header fields it reads, framing and body, in the same order,
// or none at all. So the fast path frames nothing differently from
// net/http (no request hidden in a body, no body cut short) and refuses
// nothing net/http would serve.
func FuzzServeVsNetHTTP(f *testing.F) {
	for _, s := range []string{
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1" +
			"GET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /count/b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nvalue\r\n0\r\n\r\nGET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /count/a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n",
		"PUT /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxPOST /count/b?token=t HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"POST /count/a%20b?token=x HTTP/1.1\r\nHost: [::1]:80\r\nX-JWT-Token: a.b.c\r\nOrigin: http://o\r\nContent-Length: 2\r\n\r\nabGET /heartbeat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
		"POST /batch HTTP/1.1\nHost: x\nContent-Length: 2\n\n[]",
		"POST /count/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	d := newDiffServers(f)
	defer d.stop()
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, std := d.serve(t, data)
		if fmt.Sprint(fast) != fmt.Sprint(std) {
			t.Fatalf("%q:\nfast path served %d:\n%s\nnet/http served %d:\n%s", data, len(fast), lines2(fast), len(std), lines2(std))
		}
	})
}

func lines2(s []string) string {
	var b bytes.Buffer
	for _, l := range s {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// nopLog discards net/http's server errors.
func nopLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestDiffServers: the harness of FuzzServeVsNetHTTP records what the
// handler reads on both sides (it cannot pass by comparing nothing).
func TestDiffServers(t *testing.T) {
	d := newDiffServers(t)
	defer d.stop()
	fast, std := d.serve(t, []byte("POST /count/a?token=t HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nvalue=1"+
		"PUT /x HTTP/1.1\r\nHost: y\r\nContent-Length: 2\r\n\r\nab"))
	want := []string{
		`POST "/count/a" query="token=t" host="x" proto=1.1 origin="" ctype="application/x-www-form-urlencoded" token=[] te=[]/false length=7 body=0:"value=1"`,
		`PUT "/x" query="" host="y" proto=1.1 origin="" ctype="" token=[] te=[]/false length=2 body=0:"ab"`,
	}
	if fmt.Sprint(fast) != fmt.Sprint(want) || fmt.Sprint(std) != fmt.Sprint(want) {
		t.Fatalf("fast path:\n%snet/http:\n%swant:\n%s", lines2(fast), lines2(std), lines2(want))
	}
	if d.fast.handoffs.Load() != 1 {
		t.Errorf("handoffs %d, want 1", d.fast.handoffs.Load())
	}
}
