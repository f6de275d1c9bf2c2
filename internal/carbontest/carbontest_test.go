package carbontest

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCache sends plaintext lines to a real carbon-cache and reads them back
// from its whisper files: names map to paths, values keep every bit, and
// each timestamp lands in its own one-second slot.
func TestCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-cache")
	}
	c := Start(t, "[all]\npattern = .*\nretentions = 1s:10m\n")
	now := time.Now().Unix()
	conn, err := net.Dial("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	exact := 28.722813232690143 // more digits than whisper-fetch's text form keeps
	_, err = fmt.Fprintf(conn, "a.b.c 1.5 %d\na.b.c 2.5 %d\nx.exact %v %d\nx.tiny 1e-07 %d\n",
		now-3, now-2, exact, now-2, now-2)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := c.WaitPoints(t, "a.b.c", 2, 10*time.Second)
	if want := []Point{{now - 3, 1.5}, {now - 2, 2.5}}; !slices.Equal(got, want) {
		t.Fatalf("a.b.c: %v, want %v", got, want)
	}
	if got := c.WaitPoints(t, "x.exact", 1, 10*time.Second); len(got) != 1 || got[0].Value != exact {
		t.Fatalf("x.exact: %v, want %v", got, exact)
	}
	if got := c.WaitPoints(t, "x.tiny", 1, 10*time.Second); len(got) != 1 || got[0].Value != 1e-7 {
		t.Fatalf("x.tiny: %v, want 1e-07", got)
	}
	if got, want := c.Series(t, ""), []string{"a.b.c", "x.exact", "x.tiny"}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	if got, want := c.Series(t, "x"), []string{"x.exact", "x.tiny"}; !slices.Equal(got, want) {
		t.Fatalf("series under x %v, want %v", got, want)
	}
	if got := c.Series(t, "nothing.here"); len(got) != 0 {
		t.Fatalf("series under nothing.here: %v", got)
	}
}

func TestParseFetchJSON(t *testing.T) {
	out := `{
    "start" : 100,
    "end" : 106,
    "step" : 2,
    "values" : [null, 1.5, 1e-07, inf, -inf, nan]
  }`
	got, err := parseFetchJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0] != (Point{102, 1.5}) || got[1] != (Point{104, 1e-7}) ||
		!math.IsInf(got[2].Value, 1) || !math.IsInf(got[3].Value, -1) || !math.IsNaN(got[4].Value) || got[4].Time != 110 {
		t.Fatalf("got %v", got)
	}
	if got, err := parseFetchJSON([]byte(`{"start": 1, "end": 2, "step": 1, "values": []}`)); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{``, `{"start": 1}`, `{"start": 1, "step": 1, "values": [1.5`, `{"start": 1, "step": 1, "values": [x]}`} {
		if _, err := parseFetchJSON([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// frameServer is a destination for carbon-relay: it reads the frames of
// carbon's pickle protocol (4-byte big-endian length, then a pickle of
// protocol 2) and appends each whole frame to a file, for
// DecodePickleFrames.
type frameServer struct {
	ln   net.Listener
	path string

	mu     sync.Mutex
	f      *os.File
	bytes  int64
	frames int
	open   int
	err    error
	wg     sync.WaitGroup
}

func newFrameServer(t *testing.T) *frameServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &frameServer{ln: ln, path: filepath.Join(t.TempDir(), "frames")}
	if s.f, err = os.Create(s.path); err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open++
			s.mu.Unlock()
			s.wg.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
		s.f.Close()
	})
	return s
}

func (s *frameServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		s.open--
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err != io.EOF {
				s.fail(fmt.Errorf("frame header: %w", err))
			}
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 1<<20 {
			s.fail(fmt.Errorf("frame of %d bytes, over carbon's PICKLE_RECEIVER_MAX_LENGTH", n))
			return
		}
		frame := make([]byte, 4+n)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(r, frame[4:]); err != nil {
			s.fail(fmt.Errorf("frame of %d bytes: %w", n, err))
			return
		}
		if n < 2 || frame[4] != 0x80 || frame[5] != 2 {
			// pickle.dumps(..., protocol=2) starts with PROTO 2
			s.fail(fmt.Errorf("frame of %d bytes does not start with pickle's PROTO 2: % x", n, frame[4:min(len(frame), 12)]))
			return
		}
		s.mu.Lock()
		_, err := s.f.Write(frame)
		s.bytes += int64(len(frame))
		s.frames++
		s.mu.Unlock()
		if err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *frameServer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// state returns the bytes and frames written, the open connections and the
// first error.
func (s *frameServer) state() (bytes int64, frames, open int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.frames, s.open, s.err
}

func (s *frameServer) dest(instance string) string {
	return s.ln.Addr().String() + ":" + instance
}

// waitQuiet waits until none of the servers has received a byte for quiet,
// and returns false if that did not happen before the deadline.
func waitQuiet(servers []*frameServer, quiet time.Duration, deadline time.Time) bool {
	last, since := int64(-1), time.Now()
	for time.Now().Before(deadline) {
		var total int64
		for _, s := range servers {
			b, _, _, _ := s.state()
			total += b
		}
		if total != last {
			last, since = total, time.Now()
		} else if total > 0 && time.Since(since) >= quiet {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func sortDatapoints(dps []Datapoint) {
	slices.SortFunc(dps, func(a, b Datapoint) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
}

// TestRelayPickle100k sends 100k lines at full speed to a real carbon-relay
// (consistent-hashing over two destinations, the relay's default pickle
// protocol) and decodes what two Go listeners receive with python3's
// unpickler: every datapoint arrives exactly once, with every bit of its
// value, each name at one destination only.
func TestRelayPickle100k(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-relay")
	}
	const n = 100_000
	a, b := newFrameServer(t), newFrameServer(t)
	r := StartRelay(t, RelayOptions{
		Method:       "consistent-hashing",
		Destinations: []string{a.dest("a"), b.dest("b")},
	})
	rng := rand.New(rand.NewPCG(22, 1))
	base := float64(time.Now().Unix() - 3600)
	sent := make([]Datapoint, n)
	var buf []byte
	for i := range sent {
		dp := Datapoint{
			Name:  fmt.Sprintf("carbontest.s%d.m", i%5000),
			Time:  base + float64(i/5000),
			Value: rng.NormFloat64() * 1e6,
		}
		sent[i] = dp
		buf = fmt.Appendf(buf, "%s %s %d\n", dp.Name, strconv.FormatFloat(dp.Value, 'g', -1, 64), int64(dp.Time))
	}
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	servers := []*frameServer{a, b}
	deadline := time.Now().Add(15 * time.Second)
	var got []Datapoint
	for {
		if !waitQuiet(servers, 500*time.Millisecond, deadline) {
			t.Fatalf("carbon-relay still sending or silent after %v", time.Since(start))
		}
		got = got[:0]
		for _, s := range servers {
			got = append(got, DecodePickleFrames(t, s.path)...)
		}
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d datapoints relayed in %v", len(got), time.Since(start))
	// the relay sends what it still holds, then closes its connections
	r.Stop(t)
	for _, s := range servers {
		for {
			_, _, open, err := s.state()
			if err != nil {
				t.Fatal(err)
			}
			if open == 0 {
				break
			}
			if time.Now().After(deadline.Add(5 * time.Second)) {
				t.Fatalf("carbon-relay left %d connections open after SIGTERM", open)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	at := map[string]string{}
	got = got[:0]
	for i, s := range servers {
		_, frames, _, _ := s.state()
		dps := DecodePickleFrames(t, s.path)
		if len(dps) == 0 {
			t.Errorf("destination %d got nothing", i)
		}
		if frames*500 < len(dps) {
			t.Errorf("destination %d: %d datapoints in %d frames, over MAX_DATAPOINTS_PER_MESSAGE 500", i, len(dps), frames)
		}
		for _, dp := range dps {
			if prev, ok := at[dp.Name]; ok && prev != s.path {
				t.Fatalf("%s reached both destinations", dp.Name)
			}
			at[dp.Name] = s.path
		}
		got = append(got, dps...)
	}
	sortDatapoints(sent)
	sortDatapoints(got)
	if len(got) != len(sent) {
		t.Fatalf("%d datapoints out, %d in", len(got), len(sent))
	}
	for i := range sent {
		if got[i] != sent[i] {
			t.Fatalf("datapoint %d: got %+v, sent %+v", i, got[i], sent[i])
		}
	}
}

// TestCachePickle writes pickle messages built by python3 (protocols 0, 1
// and 2) to a real carbon-cache's pickle receiver and reads the values back
// from whisper, a tagged name included: carbon normalises it, stores it
// under _tagged/ and, with ENABLE_TAGS, posts it to the tag database.
func TestCachePickle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-cache")
	}
	var mu sync.Mutex
	tagged := map[string]bool{}
	tagdb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tags/tagMultiSeries" && r.ParseMultipartForm(1<<20) == nil {
			mu.Lock()
			for _, p := range r.MultipartForm.Value["path"] {
				tagged[p] = true
			}
			mu.Unlock()
		}
		fmt.Fprint(w, "[]")
	}))
	t.Cleanup(tagdb.Close)
	c := StartWith(t, "[all]\npattern = .*\nretentions = 1s:10m\n", Options{Pickle: true, Tags: true, GraphiteURL: tagdb.URL})
	now := float64(time.Now().Unix())
	exact := 28.722813232690143
	var msgs []byte
	msgs = append(msgs, PickleDatapoints(t, []Datapoint{{"p.a", now - 3, 1.5}, {"p.a", now - 2, -2.5}}, 2)...)
	msgs = append(msgs, PickleDatapoints(t, []Datapoint{{"p.exact", now - 2, exact}, {"p.tag;z=1;a=b", now - 2, 7}}, 1)...)
	msgs = append(msgs, Pickle(t, fmt.Sprintf("[('p.proto0', (%d.0, 1e-07))]", int64(now-2)), 0)...)
	conn, err := net.Dial("tcp", c.PickleAddr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Write(msgs)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	sec := int64(now)
	if got, want := c.WaitPoints(t, "p.a", 2, 10*time.Second), []Point{{sec - 3, 1.5}, {sec - 2, -2.5}}; !slices.Equal(got, want) {
		t.Fatalf("p.a: %v, want %v", got, want)
	}
	if got := c.WaitPoints(t, "p.exact", 1, 10*time.Second); len(got) != 1 || got[0] != (Point{sec - 2, exact}) {
		t.Fatalf("p.exact: %v", got)
	}
	if got := c.WaitPoints(t, "p.proto0", 1, 10*time.Second); len(got) != 1 || got[0] != (Point{sec - 2, 1e-7}) {
		t.Fatalf("p.proto0: %v", got)
	}
	// the name as sent and its normalised form are the same series
	if got := c.WaitPoints(t, "p.tag;z=1;a=b", 1, 10*time.Second); len(got) != 1 || got[0] != (Point{sec - 2, 7}) {
		t.Fatalf("p.tag;a=b;z=1: %v", got)
	}
	h := sha256.Sum256([]byte("p.tag;a=b;z=1"))
	hx := hex.EncodeToString(h[:])
	if want := filepath.Join(c.DataDir, "_tagged", hx[:3], hx[3:6], "p_DOT_tag;a=b;z=1.wsp"); c.Path("p.tag;a=b;z=1") != want {
		t.Fatalf("path %s, want %s", c.Path("p.tag;a=b;z=1"), want)
	}
	if got, want := c.Series(t, ""), []string{"p.a", "p.exact", "p.proto0", "p.tag;a=b;z=1"}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok, seen := tagged["p.tag;a=b;z=1"], fmt.Sprint(tagged)
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tagMultiSeries for p.tag;a=b;z=1 within 10s, got %s", seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCacheTagsWithoutGraphiteWeb: ENABLE_TAGS with no tag database
// listening logs "Error tagging" and still writes the whisper file, under
// its hashed name with TAG_HASH_FILENAMES.
func TestCacheTagsWithoutGraphiteWeb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-cache")
	}
	c := StartWith(t, "[all]\npattern = .*\nretentions = 1s:10m\n", Options{Tags: true, TagHashFilenames: true})
	now := time.Now().Unix()
	conn, err := net.Dial("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(conn, "q.tag;k=v 4 %d\nq.plain 5 %d\n", now-2, now-2)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.WaitPoints(t, "q.tag;k=v", 1, 10*time.Second); len(got) != 1 || got[0] != (Point{now - 2, 4}) {
		t.Fatalf("q.tag;k=v: %v", got)
	}
	h := sha256.Sum256([]byte("q.tag;k=v"))
	hx := hex.EncodeToString(h[:])
	if got, want := c.Series(t, ""), []string{"_tagged." + hx[:3] + "." + hx[3:6] + "." + hx, "q.plain"}; !slices.Equal(got, want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	logged := func() bool {
		for line := range strings.Lines(c.Log()) {
			if strings.Contains(line, "Error tagging ") && strings.Contains(line, "q.tag;k=v") {
				return true
			}
		}
		return false
	}
	for !logged() {
		if time.Now().After(deadline) {
			t.Fatalf("no \"Error tagging\" in carbon-cache's log:\n%s", c.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTaggedPathLikeCarbon checks normalizeTagged and encodeSeries against
// carbon's own carbon.util.TaggedSeries (graphite-carbon's python3 module).
func TestTaggedPathLikeCarbon(t *testing.T) {
	Bins(t)
	names := []string{
		"a.b.c", ".lead.dot", "a.b;k=v", "a.b;z=1;a=2;m=3", "a.b;k=1;k=2", "~x.y;k=v", "a.b;name=x;k=v",
		"a.b;name=x", "a.b;k=v=w", "a.b;k=v.w;j=ü", "a.b;B=1;a=1;_=1",
		// refused by carbon, hence stored as they came (the tags out of order)
		"a.b;z=1;k=", "a.b;z=1;=v", "a.b;z=1;k", "a.b;z=1;", ";z=1;k=v", "a.b;z=1;k=~v", "a.b;z=1;k!=v",
		"a.b;z=1;k^x=v", "~;z=1;k=v",
	}
	const py = `import sys
from carbon.util import TaggedSeries
for name in sys.stdin.read().split("\n"):
    try:
        norm = TaggedSeries.parse(name).path
    except Exception:
        norm = name
    print("%s\t%s\t%s" % (norm, TaggedSeries.encode(norm, "/", False), TaggedSeries.encode(norm, "/", True)))
`
	cmd := exec.Command(Python3Bin, "-c", py)
	cmd.Dir = t.TempDir() // not a directory with an http.py
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(names) {
		t.Fatalf("%d lines for %d names:\n%s", len(lines), len(names), out)
	}
	for i, name := range names {
		norm, ok := normalizeTagged(name)
		if !ok {
			norm = name
		}
		got := norm + "\t" + encodeSeries(norm, false) + "\t" + encodeSeries(norm, true)
		if got != lines[i] {
			t.Errorf("%q: got %q, carbon %q", name, got, lines[i])
		}
		if want := strings.Split(lines[i], "\t")[0]; strings.Contains(want, ";") && decodeSeries(encodeSeries(norm, false)) != want {
			t.Errorf("%q: decodes to %q", name, decodeSeries(encodeSeries(norm, false)))
		}
	}
}

// TestRelayRules: RELAY_METHOD rules sends x.* to one destination and the
// rest to the default one, in pickle.
func TestRelayRules(t *testing.T) {
	if testing.Short() {
		t.Skip("starts carbon-relay")
	}
	a, b := newFrameServer(t), newFrameServer(t)
	r := StartRelay(t, RelayOptions{
		Method:       "rules",
		Destinations: []string{a.dest("a"), b.dest("b")},
		Rules: fmt.Sprintf("[x]\npattern = ^x\\.\ndestinations = %s\n[default]\ndefault = true\ndestinations = %s\n",
			a.dest("a"), b.dest("b")),
	})
	conn, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprint(conn, "x.one 1 1700000000\ny.two 2.5 1700000001\nx.three -3 1700000002\n")
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !waitQuiet([]*frameServer{a, b}, 300*time.Millisecond, time.Now().Add(10*time.Second)) {
		t.Fatal("nothing relayed within 10s")
	}
	for {
		ga, gb := DecodePickleFrames(t, a.path), DecodePickleFrames(t, b.path)
		if len(ga)+len(gb) == 3 {
			if want := []Datapoint{{"x.one", 1700000000, 1}, {"x.three", 1700000002, -3}}; !slices.Equal(ga, want) {
				t.Errorf("a: %v, want %v", ga, want)
			}
			if want := []Datapoint{{"y.two", 1700000001, 2.5}}; !slices.Equal(gb, want) {
				t.Errorf("b: %v, want %v", gb, want)
			}
			return
		}
		if !waitQuiet([]*frameServer{a, b}, 300*time.Millisecond, time.Now().Add(5*time.Second)) {
			t.Fatalf("a %v, b %v", ga, gb)
		}
	}
}

// TestPickleHelpers round-trips datapoints through python3's pickle.dumps
// and loads, and checks that the decoder refuses a global and a cut frame.
func TestPickleHelpers(t *testing.T) {
	need(t, Python3Bin)
	dps := []Datapoint{{"a.b", 1700000000, 1.5}, {"ü.tab\t;k=v", 1700000000.25, -1e-300}, {"c", -1, 28.722813232690143}}
	dir := t.TempDir()
	for proto := range 3 {
		path := filepath.Join(dir, fmt.Sprint(proto))
		frame := PickleDatapoints(t, dps, proto)
		if got := int(binary.BigEndian.Uint32(frame)); got != len(frame)-4 {
			t.Fatalf("protocol %d: length %d, frame %d bytes", proto, got, len(frame))
		}
		writeFile(t, path, string(frame)+string(frame))
		if got := DecodePickleFrames(t, path); !slices.Equal(got, append(slices.Clone(dps), dps...)) {
			t.Fatalf("protocol %d: %v", proto, got)
		}
	}
	// os.system via GLOBAL and REDUCE, protocol 0
	evil := []byte("cos\nsystem\n(S'touch " + filepath.Join(dir, "pwned") + "'\ntR.")
	for _, bad := range []struct {
		frame []byte
		err   string
	}{
		{append(binary.BigEndian.AppendUint32(nil, uint32(len(evil))), evil...), "global os.system refused"},
		{PickleDatapoints(t, dps, 2)[:20], "cut short"},
	} {
		path := filepath.Join(dir, "bad")
		writeFile(t, path, string(bad.frame))
		cmd := exec.Command(Python3Bin, "-c", pickleLoadPy, path)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), bad.err) {
			t.Errorf("%q: %v, want an error with %q: %s", bad.frame, err, bad.err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Fatal("the GLOBAL os.system ran")
	}
}
