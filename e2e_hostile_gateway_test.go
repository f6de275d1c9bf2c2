package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// gwRuntimeMem asks the router's runstats port for the Go runtime's bytes
// allocated so far and heap obtained from the OS.
func gwRuntimeMem(t *testing.T, addr string) (totalAlloc, heapSys uint64) {
	t.Helper()
	var ms struct{ TotalAlloc, HeapSys uint64 }
	if err := json.Unmarshal([]byte(lineCommand(t, addr, "stats")), &ms); err != nil {
		t.Fatal(err)
	}
	return ms.TotalAlloc, ms.HeapSys
}

func gwGzip(level int, parts ...[]byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, level)
	for _, p := range parts {
		zw.Write(p)
	}
	zw.Close()
	return b.Bytes()
}

// gwBomb is one gzip member of 1 GiB of zeros in about 1 MB.
var gwBomb = sync.OnceValue(func() []byte { return plugintest.GzipBomb(1024) })

// gwLineBomb is 64 MiB of short valid Graphite lines: 64 gzip members of the
// same 1 MiB of lines (one member of it all takes long to compress under
// the race detector).
var gwLineBomb = sync.OnceValue(func() []byte {
	var plain bytes.Buffer
	for i := 0; plain.Len() < 1<<20; i++ {
		fmt.Fprintf(&plain, "b.%d 1 1700000000\n", i%1000)
	}
	member := gwGzip(gzip.BestCompression, plain.Bytes())
	return bytes.Repeat(member, 64)
})

// gwIngest POSTs body to the gateway's /ingest with the test key.
func gwIngest(addr string, body []byte) (int, error) { return gwIngestKey(addr, testKey, body) }

// gwConcurrently sends body n times at once and returns the statuses.
func gwConcurrently(t *testing.T, addr string, body []byte, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			st, err := gwIngest(addr, body)
			if err != nil {
				st = -1 // the gateway closed the connection while the body was sent
			}
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// TestGatewayHostileMemory: the real binary, every limit at its default, one
// process per attack so that its peak RSS (VmHWM) is the attack's: 8 gzip
// bombs of 1 GiB at once, 4 rounds of 8 bodies whose gzip trailer claims 256
// MiB, 100 connections announcing 32 MiB that never send it (bytes
// allocated: the runtime's TotalAlloc through runstats_addr, since memory
// allocated and never touched does not show in RSS), and 8 gzip bodies of
// 64 MiB of valid short lines, whose memory max_inflight_bytes (128 MiB)
// bounds: peak RSS within twice that plus 64 MiB. Each is refused and
// counted; legitimate batches (plain, gzip, two gzip members) go through
// afterwards.
func TestGatewayHostileMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary per attack")
	}
	cases := []struct {
		name     string
		attack   func(t *testing.T, addr, stats string) string
		maxRSS   int64  // peak RSS of the process
		maxAlloc uint64 // bytes allocated during the attack
	}{
		{"gzip bomb 1 GiB x8", func(t *testing.T, addr, _ string) string {
			st := gwConcurrently(t, addr, gwBomb(), 8)
			if st[413] != 8 {
				t.Fatalf("statuses %v, want 8 x 413", st)
			}
			return fmt.Sprint(st)
		}, 96 << 20, 32 << 20},
		{"gzip trailer claims 256 MiB x8 x4", func(t *testing.T, addr, _ string) string {
			lying := gwGzip(gzip.DefaultCompression, []byte("a.b 1 1700000000\n"))
			binary.LittleEndian.PutUint32(lying[len(lying)-4:], 256<<20)
			total := map[int]int{}
			for range 4 {
				for k, v := range gwConcurrently(t, addr, lying, 8) {
					total[k] += v
				}
			}
			if total[400] != 32 {
				t.Fatalf("statuses %v, want 32 x 400", total)
			}
			return fmt.Sprintf("%d-byte body: %v", len(lying), total)
		}, 96 << 20, 32 << 20},
		{"content-length 32 MiB never sent x100", func(t *testing.T, addr, stats string) string {
			var conns []net.Conn
			for range 100 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /ingest HTTP/1.1\r\nHost: gw\r\nX-Polymur-Key: %s\r\nContent-Length: %d\r\n\r\n", testKey, 32<<20-1)
				c.Write(gwGzip(1, []byte("a 1 1\n"))[:10]) // a gzip header, then nothing
				conns = append(conns, c)
			}
			inflight := series("inflight_requests", "inputs.https_batch", "https_batch-1")
			if !waitFor(20*time.Second, func() bool { return scrape(t, stats)[inflight] == 100 }) {
				t.Fatalf("inflight_requests = %v, want 100", scrape(t, stats)[inflight])
			}
			for _, c := range conns {
				c.Close()
			}
			waitCounter(t, stats, series("malformed_total", "inputs.https_batch", "https_batch-1"), 100, 20*time.Second)
			return "100 requests reading, then closed by the client (400, counted)"
		}, 96 << 20, 64 << 20},
		{"gzip 64 MiB of short lines x8", func(t *testing.T, addr, _ string) string {
			st := gwConcurrently(t, addr, gwLineBomb(), 8)
			if st[200] != 0 || st[413]+st[503]+st[-1] != 8 {
				t.Fatalf("statuses %v, want 8 x 413 or 503", st)
			}
			return fmt.Sprintf("%d-byte body: %v", len(gwLineBomb()), st)
		}, 2*128<<20 + 64<<20, 0}, // 0: the budget bounds what is held, not what was allocated
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sink := plugintest.NewLineSink(t)
			addr, stats, runstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
			// a gateway with every limit at its default
			p := startBinary(t, writeConfig(t, gatewayConfig(addr, "", stats, runstats, sink.Addr)))
			waitListen(t, addr)
			waitListen(t, runstats)
			alloc0, _ := gwRuntimeMem(t, runstats)
			rss0 := peakRSS(t, p.cmd.Process.Pid)
			start := time.Now()
			what := c.attack(t, addr, stats)
			elapsed := time.Since(start)
			alloc1, heapSys := gwRuntimeMem(t, runstats)
			peak := peakRSS(t, p.cmd.Process.Pid)
			t.Logf("%s: %s in %v; peak RSS %d MiB (%d MiB before), %d KiB allocated, heap from the OS %d MiB",
				c.name, what, elapsed.Round(time.Millisecond), peak>>20, rss0>>20, (alloc1-alloc0)>>10, heapSys>>20)
			if peak > c.maxRSS {
				t.Errorf("peak RSS %d MiB over %d MiB", peak>>20, c.maxRSS>>20)
			}
			if c.maxAlloc > 0 && alloc1-alloc0 > c.maxAlloc {
				t.Errorf("%d MiB allocated, over %d MiB", (alloc1-alloc0)>>20, c.maxAlloc>>20)
			}
			// legitimate batches still go through
			two := append(gwGzip(1, []byte("ok.two 1 1700000000\nok.")), gwGzip(1, []byte("three 1 1700000000\n"))...)
			for _, body := range [][]byte{[]byte("ok.plain 1 1700000000\n"), gwGzip(1, []byte("ok.gzip 1 1700000000\n")), two} {
				if st, err := gwIngest(addr, body); err != nil || st != 200 {
					t.Fatalf("legitimate batch after the attack: %d %v", st, err)
				}
			}
			if !sink.WaitLen(4, 10*time.Second) {
				t.Fatalf("sink got %d of 4 lines", sink.Len())
			}
			if got := strings.Join(sortedCopy(sink.Lines()), "|"); got != "ok.gzip 1 1700000000|ok.plain 1 1700000000|ok.three 1 1700000000|ok.two 1 1700000000" {
				t.Fatalf("sink got %q", got)
			}
		})
	}
}

// TestGatewayExampleWarnings: etc/polymur-gateway-file.toml listens on
// loopback unless told otherwise and, run as shipped (but for its ports),
// warns at start about the example key file's published key (by name) and
// about the file's mode if group or others may read it; the key itself is
// never logged, and the example works.
func TestGatewayExampleWarnings(t *testing.T) {
	text, err := os.ReadFile("etc/polymur-gateway-file.toml")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := agent.ExpandEnv(string(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(defaults, `listen = "127.0.0.1:8080"`) {
		t.Fatalf("the example does not listen on loopback by default:\n%s", defaults)
	}
	sink := plugintest.NewLineSink(t)
	addr := plugintest.FreeAddr(t)
	t.Setenv("GATEWAY_LISTEN", addr)
	t.Setenv("ROUTER_STATS_ADDR", plugintest.FreeAddr(t))
	t.Setenv("CARBON_A", sink.Addr+":a")
	t.Setenv("CARBON_B", sink.Addr+":b")
	fi, err := os.Stat("etc/keys/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, "etc/polymur-gateway-file.toml")
	p.waitLog(t, `"message":"gateway listening"`, 1)
	p.waitLog(t, `"message":"weak api key accepted`, 1)
	if n := p.count(`"name":"dev"`); n != 1 {
		t.Fatalf("%d warnings naming the key dev, want 1", n)
	}
	if fi.Mode().Perm()&0o066 != 0 {
		if p.count(`"path":"etc/keys/example.toml"`) == 0 || p.count(`secret file open to group or others`) != 1 {
			t.Fatalf("no warning about the key file's mode %v", fi.Mode().Perm())
		}
	}
	if st, err := gwIngestKey(addr, "123", []byte("example.metric 1 1700000000\n")); err != nil || st != 200 {
		t.Fatalf("ingest with the example key: %d %v", st, err)
	}
	if !sink.WaitLen(1, 10*time.Second) {
		t.Fatal("the example gateway did not forward")
	}
	if n := p.count(`"123"`); n != 0 {
		t.Fatalf("the key is in the log %d times", n)
	}
}

// gwIngestKey POSTs body to the gateway's /ingest with key.
func gwIngestKey(addr, key string, body []byte) (int, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/ingest", bytes.NewReader(body))
	req.Header.Set("X-Polymur-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
