package http_json

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/netx"
)

// fastServer serves plain-HTTP (no TLS) connections itself as long as their
// requests are the plain HTTP/1.1 the router gets almost always: GET, HEAD,
// POST or OPTIONS of an origin-form path, a Host, a Content-Length body
// within max_body_bytes, CRLF lines, no Transfer-Encoding, Expect or
// Upgrade. At the first request that is anything else, it hands the
// connection, with the bytes it has read, to net/http, which serves it from
// then on with the same handler. net/http alone costs more CPU per small
// request than the router's target allows (see README: W4).
//
// Timeouts are those of net/http (read: from a request's first byte to its
// end; write: from the end of its headers to the end of the answer; idle:
// between requests), enforced by a reaper that closes late connections
// every tick instead of a deadline per request.
type fastServer struct {
	h        http.Handler
	log      zerolog.Logger
	read     time.Duration // 0 = none
	write    time.Duration
	idle     time.Duration
	maxHead  int   // request line + headers
	maxBody  int64 // larger bodies are net/http's (413)
	base     context.Context
	handoff  *netx.Handoff  // net/http serves what is handed off
	handoffs *atomic.Uint64 // connections handed off
	date     atomic.Pointer[[]byte]
	clock    atomic.Int64 // UnixNano of the last tick plus one tick: never early
	tickLen  time.Duration
	closing  atomic.Bool
	// next, set before shutdown when the listener has a successor (the
	// next instance, at a reload): idle connections are handed to it
	// (netx.Listener.HandOver) instead of being closed.
	next     atomic.Pointer[netx.Listener]
	mu       sync.Mutex
	conns    map[*fastConn]struct{}
	wg       sync.WaitGroup // connections
	stopTick chan struct{}
	tickDone chan struct{}
}

// Connection states for the reaper.
const (
	stateIdle    int32 = iota // waiting for a request
	stateReading              // reading a request
	stateServing              // handling it and writing the answer
	stateLeaving              // idle at shutdown: to be handed over (next)
)

type fastConn struct {
	c     net.Conn
	state atomic.Int32
	since atomic.Int64 // UnixNano when state was entered
}

func (fc *fastConn) set(s int32, now int64) {
	fc.since.Store(now)
	fc.state.Store(s)
}

// fastConfig is what newFastServer needs.
type fastConfig struct {
	handler           http.Handler
	log               zerolog.Logger
	base              context.Context // requests' context
	read, write, idle time.Duration   // 0 = no limit
	maxHead           int             // request line + headers
	maxBody           int64
	addr              net.Addr       // of the listener, for net/http
	handoffs          *atomic.Uint64 // counts handed-off connections
}

func newFastServer(c fastConfig) *fastServer {
	s := &fastServer{
		h: c.handler, log: c.log, base: c.base, read: c.read, write: c.write, idle: c.idle,
		maxHead: c.maxHead, maxBody: c.maxBody, handoffs: c.handoffs,
		handoff:  netx.NewHandoff(c.addr),
		conns:    make(map[*fastConn]struct{}),
		stopTick: make(chan struct{}),
		tickDone: make(chan struct{}),
	}
	s.tickLen = s.tick()
	s.setClock(time.Now())
	go s.reaper()
	return s
}

// setClock keeps the Date header and the coarse clock that connections
// read instead of calling time.Now three times per request. The clock runs
// one tick ahead, so a timeout fires between one and two ticks late, never
// early.
func (s *fastServer) setClock(now time.Time) {
	d := now.UTC().AppendFormat(make([]byte, 0, 40), http.TimeFormat)
	s.date.Store(&d)
	s.clock.Store(now.UnixNano() + int64(s.tickLen))
}

// tick is how often the reaper looks: a quarter of the shortest timeout,
// between 10 ms and 1 s.
func (s *fastServer) tick() time.Duration {
	t := time.Second
	for _, d := range []time.Duration{s.read, s.write, s.idle} {
		if d > 0 && d/4 < t {
			t = d / 4
		}
	}
	return max(t, 10*time.Millisecond)
}

// reaper closes connections past their timeout and keeps the Date header.
func (s *fastServer) reaper() {
	defer close(s.tickDone)
	t := time.NewTicker(s.tickLen)
	defer t.Stop()
	var late []*fastConn
	for {
		select {
		case <-s.stopTick:
			return
		case now := <-t.C:
			s.setClock(now)
			n := now.UnixNano()
			late = late[:0]
			s.mu.Lock()
			for fc := range s.conns {
				var limit time.Duration
				switch fc.state.Load() {
				case stateIdle:
					limit = s.idle
				case stateReading:
					limit = s.read
				case stateServing:
					limit = s.write
				}
				if limit > 0 && n-fc.since.Load() > int64(limit) {
					late = append(late, fc)
				}
			}
			s.mu.Unlock()
			for _, fc := range late {
				_ = fc.c.Close()
			}
		}
	}
}

// serve accepts connections until ln is closed. ln is a netx listener:
// temporary accept errors (no file descriptor left...) are retried there,
// so an error here means the listener is gone.
func (s *fastServer) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		fc := &fastConn{c: c}
		fc.set(stateIdle, s.clock.Load())
		s.mu.Lock()
		if s.closing.Load() {
			// accepted just before the listener closed: the successor
			// serves it, if there is one (at a reload), else it is closed
			s.mu.Unlock()
			if ln := s.next.Load(); ln == nil || !ln.HandOver(c, nil, nil) {
				_ = c.Close()
			}
			continue
		}
		s.conns[fc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(fc)
	}
}

// handOverTo makes shutdown hand connections over to the successor of ln
// (the next instance of the input, at a reload) instead of closing them:
// idle ones at once, the others after the request they are on (kept
// alive). Call it before shutdown, once ln.CanHandOver said yes.
func (s *fastServer) handOverTo(ln *netx.Listener) { s.next.Store(ln) }

// leave hands fc, between two requests, to the listener's successor with
// what br read of the next request; false: there is none (fc is to be
// closed).
func (s *fastServer) leave(fc *fastConn, br *bufio.Reader) bool {
	ln := s.next.Load()
	if ln == nil {
		return false
	}
	pending, _ := br.Peek(br.Buffered())
	if !ln.HandOver(fc.c, pending, nil) {
		return false
	}
	s.drop(fc)
	return true
}

// shutdown closes idle connections (or hands them over: handOverTo), lets
// the others finish the request they are on (their answer says Connection:
// close), and waits for them until ctx ends, then closes them. The listener
// must be closed first.
func (s *fastServer) shutdown(ctx context.Context) {
	s.closing.Store(true)
	handOver := s.next.Load() != nil
	s.mu.Lock()
	for fc := range s.conns {
		switch {
		case handOver:
			// wake its reader, which hands it over; one that has
			// started reading a request (CAS lost) serves it first
			if fc.state.CompareAndSwap(stateIdle, stateLeaving) {
				_ = fc.c.SetReadDeadline(time.Unix(1, 0))
			}
		case fc.state.Load() == stateIdle:
			_ = fc.c.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for fc := range s.conns {
			_ = fc.c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	close(s.stopTick)
	<-s.tickDone
}

func (s *fastServer) drop(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
}

// serveConn serves one connection until it closes, fails, times out or is
// handed to net/http.
func (s *fastServer) serveConn(fc *fastConn) {
	defer s.wg.Done()
	c := fc.c
	br := bufio.NewReaderSize(c, s.maxHead)
	w := &fastWriter{header: make(http.Header, 8)}
	base := (&http.Request{RemoteAddr: c.RemoteAddr().String()}).WithContext(s.base)
	req := new(http.Request)
	body := &bodyReader{fc: fc, br: br, clock: &s.clock}
	var p fastRequest
	handedOff, afterPost := false, false
	defer func() {
		if handedOff {
			return
		}
		s.drop(fc)
		_ = c.Close()
		if v := recover(); v != nil {
			s.log.Error().Interface("panic", v).Msg("handler panicked: connection closed")
		}
	}()
	for {
		if s.closing.Load() {
			handedOff = s.leave(fc, br)
			return
		}
		fc.set(stateIdle, s.clock.Load())
		if s.closing.Load() { // shutdown may have missed this connection's idle state
			handedOff = s.leave(fc, br)
			return
		}
		first, err := br.Peek(1)
		fc.since.Store(s.clock.Load()) // first: the reaper reads state, then since
		if !fc.state.CompareAndSwap(stateIdle, stateReading) {
			// shutdown woke it to hand it over: no byte of a request
			// is parsed yet, what is read goes along
			handedOff = s.leave(fc, br)
			return
		}
		if err != nil {
			return
		}
		if afterPost && (first[0] == '\r' || first[0] == '\n') {
			// as net/http: up to 4 CR or LF after a POST are dropped
			// (RFC 7230 3.5, clients that end a body with a CRLF)
			peek, _ := br.Peek(4)
			_, _ = br.Discard(leadingCRLF(peek))
		}
		ok, err := p.read(br, s.maxBody)
		if err != nil {
			return
		}
		if !ok {
			// not ours: net/http reads it again from the start
			s.drop(fc)
			handedOff = true
			s.handoffs.Add(1)
			if !s.handoff.Push(&netx.PrefixConn{Conn: c, R: br}) {
				_ = c.Close()
			}
			return
		}
		afterPost = p.method == http.MethodPost
		*req = *base
		p.fill(req, body)
		if p.contentLength == 0 {
			fc.set(stateServing, s.clock.Load())
		} // else the body is read within read_timeout: bodyReader moves on to serving
		w.reset(req.Method == http.MethodHead)
		s.h.ServeHTTP(w, req)
		// what the handler left of the body (a refused request) is read
		// and dropped if small, else the connection is closed
		unread := body.finish()
		closing := s.closing.Load() && s.next.Load() == nil // else kept alive, handed over
		closeAfter := p.close || closing || unread > drainBody || body.err != nil || w.closing()
		out := w.finish(p.out[:0], *s.date.Load(), closeAfter)
		p.out = out
		if _, err := c.Write(out); err != nil || closeAfter {
			return
		}
		if unread > 0 {
			fc.set(stateReading, s.clock.Load())
			if _, err := br.Discard(int(unread)); err != nil {
				return
			}
		}
		if br.Buffered() == 0 {
			// A keep-alive client sends its next request only now that it
			// has the answer: reading at once would mostly get EAGAIN and
			// park. Letting the other connections run first often finds it
			// arrived (less CPU per request: bench/run.sh w4).
			runtime.Gosched()
		}
	}
}

// drainBody is the most of an unread body (a request refused before its
// body was read) that is read and dropped to keep the connection; above,
// the connection is closed after the answer.
const drainBody = 64 << 10

// fastRequest is one parsed request head; its strings point into one
// string made from the head's bytes.
type fastRequest struct {
	head          string
	method        string
	target        string
	host          string
	contentLength int64
	close         bool
	keys, vals    []string // header fields in order, keys canonical
	parsedURL     *url.URL // target with '%' or '?'; nil: url is the plain path
	url           url.URL
	header        http.Header // reused: the handler keeps nothing of a request
	headLen       int         // bytes of the head in the reader
	out           []byte      // answer buffer, reused
}

// read reads one request head from br, and none of its body: the handler
// reads that (bodyReader) once it has checked the token. ok is false, with
// nothing consumed, when the request is not one the fast path serves.
func (p *fastRequest) read(br *bufio.Reader, maxBody int64) (ok bool, err error) {
	// wait for the whole head: lines end with CRLF, an empty line ends it
	scanned := 0
	var buf []byte
	for {
		buf, _ = br.Peek(br.Buffered())
		end, bad := headEnd(buf, scanned)
		if bad {
			return false, nil
		}
		if end > 0 {
			p.headLen = end
			break
		}
		scanned = max(len(buf)-3, 0)
		if len(buf) >= br.Size() {
			return false, nil // too large: net/http answers 431
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return false, err
		}
	}
	return p.parse(buf[:p.headLen], maxBody), nil
}

// leadingCRLF counts the CR and LF bytes at the start of b.
func leadingCRLF(b []byte) int {
	for i, c := range b {
		if c != '\r' && c != '\n' {
			return i
		}
	}
	return len(b)
}

// headEnd returns the length of the head (through the empty line) if buf
// holds all of it, from offset from on; bad reports a bare LF or CR, which
// net/http handles.
func headEnd(buf []byte, from int) (end int, bad bool) {
	for i := from; i < len(buf); i++ {
		switch buf[i] {
		case '\n':
			if i == 0 || buf[i-1] != '\r' {
				return 0, true
			}
			if i >= 3 && buf[i-2] == '\n' && buf[i-3] == '\r' {
				return i + 1, false
			}
		case '\r':
			if i+1 < len(buf) && buf[i+1] != '\n' {
				return 0, true
			}
		}
	}
	return 0, false
}

// parse reads the head (request line and header fields, CRLF terminated).
// It accepts only what net/http would read the same way.
func (p *fastRequest) parse(h []byte, maxBody int64) bool {
	p.head = string(h)
	s := p.head
	p.keys, p.vals = p.keys[:0], p.vals[:0]
	p.host, p.contentLength, p.close = "", 0, false
	eol := indexCRLF(s)
	line := s[:eol]
	s = s[eol+2:]
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	p.method = line[:sp1]
	switch p.method {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	rest := line[sp1+1:]
	sp2 := indexByte(rest, ' ')
	if sp2 <= 0 || rest[sp2+1:] != "HTTP/1.1" {
		return false
	}
	p.target = rest[:sp2]
	if p.target[0] != '/' || len(p.target) > 1 && p.target[1] == '/' {
		return false
	}
	for i := 0; i < len(p.target); i++ {
		if c := p.target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	p.parsedURL = nil
	if !plainPath(p.target) {
		u, err := url.ParseRequestURI(p.target)
		if err != nil {
			return false // net/http answers 400
		}
		p.parsedURL = u
	}
	hasHost, hasLength := false, false
	for len(s) > 2 { // the final CRLF remains
		eol := indexCRLF(s)
		line := s[:eol]
		s = s[eol+2:]
		colon := indexByte(line, ':')
		if colon <= 0 {
			return false
		}
		key := line[:colon]
		for i := 0; i < len(key); i++ {
			if !tokenByte(key[i]) {
				return false
			}
		}
		val := trimOWS(line[colon+1:])
		for i := 0; i < len(val); i++ {
			if c := val[i]; c < ' ' && c != '\t' || c == 0x7f {
				return false
			}
		}
		key = canonicalKey(key)
		switch key {
		case "Host":
			if hasHost || !validHost(val) {
				return false
			}
			hasHost = true
			p.host = val
		case "Content-Length":
			if hasLength || val == "" || len(val) > 18 {
				return false
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 || n > maxBody || val[0] == '+' || val[0] == '-' {
				return false
			}
			hasLength = true
			p.contentLength = n
		case "Connection":
			switch {
			case asciiEqualFold(val, "close"):
				p.close = true
			case asciiEqualFold(val, "keep-alive"):
			default:
				return false
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer", "Http2-Settings":
			return false
		}
		if key == "Host" {
			continue // req.Host, not a header (as net/http does)
		}
		p.keys = append(p.keys, key)
		p.vals = append(p.vals, val)
		if len(p.keys) > 100 {
			return false
		}
	}
	return hasHost
}

// fill sets up req (a copy of the connection's base request) and the body,
// which is still in the reader behind the head.
func (p *fastRequest) fill(req *http.Request, body *bodyReader) {
	req.Method = p.method
	req.RequestURI = p.target
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.Host = p.host
	req.Close = p.close
	if p.parsedURL != nil {
		req.URL = p.parsedURL
	} else {
		p.url = url.URL{Path: p.target}
		req.URL = &p.url
	}
	if p.header == nil {
		p.header = make(http.Header, 8)
	}
	h := p.header
	clear(h)
	for i, k := range p.keys {
		if old, ok := h[k]; ok {
			h[k] = append(old, p.vals[i])
		} else {
			h[k] = p.vals[i : i+1 : i+1]
		}
	}
	req.Header = h
	req.ContentLength = p.contentLength
	body.reset(p.headLen, p.contentLength)
	if p.contentLength == 0 {
		req.Body = http.NoBody
	} else {
		req.Body = body
	}
}

// bodyReader is the body of a fast-path request, still in the connection's
// reader behind the request's head (headLen bytes) when the handler starts.
// Nothing is read or allocated for it before the handler asks: the handler
// checks the token first. A body that fits in the reader's buffer with its
// head is read there in place (inPlace); a larger one is read as it
// arrives into memory the handler takes from max_inflight_bytes (Read).
type bodyReader struct {
	fc      *fastConn
	br      *bufio.Reader
	clock   *atomic.Int64
	headLen int   // head bytes still in br (0 once dropped)
	left    int64 // body bytes not yet read
	inBuf   int   // read in place: head and body bytes to drop from br
	err     error
}

func (b *bodyReader) reset(headLen int, n int64) {
	b.headLen, b.left, b.inBuf, b.err = headLen, n, 0, nil
}

// inPlace returns the body read into the reader's buffer if it fits there
// with the head; the slice is valid until the handler returns.
func (b *bodyReader) inPlace() ([]byte, bool) {
	if b.err != nil || b.headLen == 0 || int64(b.headLen)+b.left > int64(b.br.Size()) {
		return nil, false
	}
	n := b.headLen + int(b.left)
	buf, err := b.br.Peek(n)
	if err != nil {
		b.err = err
		return nil, false
	}
	b.inBuf, b.left = n, 0
	b.done()
	return buf[b.headLen:n], true
}

// Read reads the body as it arrives, after dropping the head from br.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.headLen > 0 {
		if _, err := b.br.Discard(b.headLen); err != nil {
			b.err = err
			return 0, err
		}
		b.headLen = 0
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if b.left == 0 {
		b.done()
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// done: the body is read; write_timeout applies from now on.
func (b *bodyReader) done() { b.fc.set(stateServing, b.clock.Load()) }

// finish drops what was read of the request from br and returns the body
// bytes left unread.
func (b *bodyReader) finish() int64 {
	if b.err != nil {
		return b.left
	}
	if b.inBuf > 0 {
		_, _ = b.br.Discard(b.inBuf)
		b.headLen, b.inBuf = 0, 0
		return 0
	}
	if b.headLen > 0 {
		if _, err := b.br.Discard(b.headLen); err != nil {
			b.err = err
		}
		b.headLen = 0
	}
	return b.left
}

func (*bodyReader) Close() error { return nil }

// plainPath reports whether a target is a path that URL parsing leaves as
// it is: letters, digits, "-._~" and '/'. Others go through url.ParseRequestURI.
func plainPath(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
			return false
		}
	}
	return true
}

func indexCRLF(s string) int {
	if i := strings.Index(s, "\r\n"); i >= 0 {
		return i
	}
	return len(s)
}

func indexByte(s string, c byte) int { return strings.IndexByte(s, c) }

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// tokenByte reports whether c may appear in a header field name (RFC 9110 token).
func tokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// canonicalKey returns key in canonical form, without allocating when it
// already is or is one of the fields this input reads.
func canonicalKey(key string) string {
	upper := true
	for i := 0; i < len(key); i++ {
		c := key[i]
		if upper && c >= 'a' && c <= 'z' || !upper && c >= 'A' && c <= 'Z' {
			for _, k := range knownKeys {
				if len(k) == len(key) && asciiEqualFoldAny(key, k) {
					return k
				}
			}
			return textproto.CanonicalMIMEHeaderKey(key)
		}
		upper = c == '-'
	}
	return key
}

// knownKeys are header fields clients send in other cases ("X-JWT-Token",
// HTTP/2-style lower case): their canonical forms.
var knownKeys = [...]string{
	"X-Jwt-Token", "Content-Type", "Content-Length", "Origin", "Host", "Accept",
	"Accept-Encoding", "Accept-Language", "User-Agent", "Connection", "Referer",
	"Access-Control-Request-Method", "Access-Control-Request-Headers",
}

func asciiEqualFoldAny(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// validHost accepts the hosts clients send ("127.0.0.1:8825",
// "metrics.example.com", "[::1]:8825"); anything else goes to net/http.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// fastWriter is the ResponseWriter of the fast path: it collects the answer
// and writes it with one syscall once the handler returns.
type fastWriter struct {
	header http.Header
	status int
	body   []byte
	head   bool // HEAD: no body on the wire
}

func (w *fastWriter) reset(head bool) {
	clear(w.header)
	w.status = 0
	w.body = w.body[:0]
	w.head = head
}

func (w *fastWriter) Header() http.Header { return w.header }

// closing reports whether the handler asked to close the connection.
func (w *fastWriter) closing() bool {
	v := w.header["Connection"]
	return len(v) > 0 && asciiEqualFold(v[0], "close")
}

func (w *fastWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *fastWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// finish renders the answer into dst.
func (w *fastWriter) finish(dst, date []byte, closeConn bool) []byte {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(w.status), 10)
	dst = append(dst, ' ')
	dst = append(dst, http.StatusText(w.status)...)
	dst = append(dst, "\r\n"...)
	for k, vs := range w.header {
		if k == "Content-Length" || k == "Date" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			for i := 0; i < len(v); i++ {
				c := v[i]
				if c == '\r' || c == '\n' {
					c = ' '
				}
				dst = append(dst, c)
			}
			dst = append(dst, "\r\n"...)
		}
	}
	noBody := w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200
	if !noBody {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(w.body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "Date: "...)
	dst = append(dst, date...)
	dst = append(dst, "\r\n"...)
	if closeConn {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	if !noBody && !w.head {
		dst = append(dst, w.body...)
	}
	return dst
}
