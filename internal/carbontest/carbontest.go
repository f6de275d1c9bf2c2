// Package carbontest runs a real carbon-cache (Debian's graphite-carbon) for
// tests and reads the whisper files it writes with whisper-fetch (Debian's
// python3-whisper), so a test can check what a Graphite backend finally
// stores rather than what crossed a socket.
package carbontest

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// The Debian paths; scripts/test.sh installs graphite-carbon, which brings
// python3-whisper.
const (
	CarbonCacheBin  = "/usr/bin/carbon-cache"
	WhisperFetchBin = "/usr/bin/whisper-fetch"
)

// Bins checks that carbon-cache and whisper-fetch are installed. Without
// them the test is skipped, or fails under CI=true.
func Bins(t testing.TB) {
	t.Helper()
	for _, b := range []string{CarbonCacheBin, WhisperFetchBin} {
		if _, err := os.Stat(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing: apt-get install graphite-carbon (scripts/test.sh does)", b)
			}
			t.Skipf("%s is missing: apt-get install graphite-carbon", b)
		}
	}
}

// Cache is a carbon-cache running in the foreground until the test ends.
type Cache struct {
	// Addr is the plaintext line receiver, 127.0.0.1:port.
	Addr string
	// DataDir is LOCAL_DATA_DIR, the root of the whisper tree.
	DataDir string
}

// Start runs carbon-cache on a temporary carbon.conf: its own storage, log
// and pid directories, the line receiver on a free loopback port, the
// pickle receiver off, the cache query port on a port the kernel picks,
// no tags (a name with ';' is a plain file name), no limit on creates and
// a high update rate, so a flush lands on disk within a second. schemas is
// the storage-schemas.conf text, e.g.
//
//	[all]
//	pattern = .*
//	retentions = 1s:1h
//
// Start returns once the line receiver accepts connections. The cache gets
// SIGTERM when the test ends; its output is logged if the test failed.
func Start(t testing.TB, schemas string) *Cache {
	t.Helper()
	Bins(t)
	dir := t.TempDir()
	confDir := filepath.Join(dir, "conf")
	storage := filepath.Join(dir, "storage")
	c := &Cache{DataDir: filepath.Join(storage, "whisper")}
	for _, d := range []string{confDir, c.DataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	c.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`[cache]
STORAGE_DIR = %s
LOCAL_DATA_DIR = %s
LOG_DIR = %s
PID_DIR = %s
ENABLE_LOGROTATION = False
USER =
DATABASE = whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 100000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %d
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 0
ENABLE_TAGS = False
LOG_UPDATES = False
LOG_CREATES = True
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
LOG_LISTENER_CONN_SUCCESS = False
`, storage, c.DataDir, filepath.Join(dir, "log"), filepath.Join(dir, "run"), port)
	if err := os.WriteFile(filepath.Join(confDir, "carbon.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "storage-schemas.conf"), []byte(schemas), 0o644); err != nil {
		t.Fatal(err)
	}
	// carbon reads its other files (storage-schemas.conf, ...) from the
	// directory of --config
	cmd := exec.Command(CarbonCacheBin, "--config="+filepath.Join(confDir, "carbon.conf"), "--nodaemon", "start")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
	var out plugintest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("carbon-cache output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
		if err == nil {
			conn.Close()
			return c
		}
		select {
		case <-exited:
			t.Fatalf("carbon-cache exited:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-cache did not listen on %s within 30s:\n%s", c.Addr, out.String())
		}
	}
}

// Path is the whisper file of the dotted series name.
func (c *Cache) Path(name string) string {
	return filepath.Join(c.DataDir, filepath.FromSlash(strings.ReplaceAll(name, ".", "/"))+".wsp")
}

// Series lists the dotted names of the whisper files under the dotted
// prefix ("" = all of them), sorted.
func (c *Cache) Series(t testing.TB, prefix string) []string {
	t.Helper()
	root := c.DataDir
	if prefix != "" {
		root = filepath.Join(c.DataDir, filepath.FromSlash(strings.ReplaceAll(prefix, ".", "/")))
	}
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".wsp") {
			return nil
		}
		rel, err := filepath.Rel(c.DataDir, strings.TrimSuffix(p, ".wsp"))
		if err != nil {
			return err
		}
		names = append(names, strings.ReplaceAll(filepath.ToSlash(rel), "/", "."))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// Point is one datapoint of a whisper file.
type Point struct {
	Time  int64
	Value float64
}

// Fetch reads the series name with whisper-fetch --json (its whole
// retention, up to now) and returns its points, without the empty slots.
func (c *Cache) Fetch(t testing.TB, name string) []Point {
	t.Helper()
	return Fetch(t, c.Path(name))
}

// Fetch reads the whisper file path with whisper-fetch --json (its whole
// retention, up to now) and returns its points, without the empty slots.
// The JSON form prints every value in full (Python's repr) where the text
// form rounds to six decimals.
func Fetch(t testing.TB, path string) []Point {
	t.Helper()
	// --from a year back: whisper starts at the file's oldest slot
	from := time.Now().Add(-365 * 24 * time.Hour).Unix()
	cmd := exec.Command(WhisperFetchBin, "--json", fmt.Sprintf("--from=%d", from), path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("whisper-fetch %s: %v\n%s%s", path, err, out, stderr.Bytes())
	}
	pts, err := parseFetchJSON(out)
	if err != nil {
		t.Fatalf("whisper-fetch %s: %v\n%s", path, err, out)
	}
	return pts
}

// parseFetchJSON reads whisper-fetch --json's output: start, end and step,
// then values, a Python list whose items are null, numbers in Python's repr,
// or inf, -inf and nan (not JSON, hence no encoding/json).
func parseFetchJSON(b []byte) ([]Point, error) {
	field := func(key string) (string, error) {
		_, rest, ok := strings.Cut(string(b), `"`+key+`"`)
		if !ok {
			return "", fmt.Errorf("no %q", key)
		}
		_, rest, ok = strings.Cut(rest, ":")
		if !ok {
			return "", fmt.Errorf("no value for %q", key)
		}
		return strings.TrimSpace(rest), nil
	}
	num := func(key string) (int64, error) {
		s, err := field(key)
		if err != nil {
			return 0, err
		}
		s, _, _ = strings.Cut(s, ",")
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	}
	start, err := num("start")
	if err != nil {
		return nil, err
	}
	step, err := num("step")
	if err != nil {
		return nil, err
	}
	list, err := field("values")
	if err != nil {
		return nil, err
	}
	list, _, ok := strings.Cut(strings.TrimPrefix(list, "["), "]")
	if !ok {
		return nil, fmt.Errorf("values: no closing bracket")
	}
	var pts []Point
	if strings.TrimSpace(list) == "" {
		return pts, nil
	}
	for i, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "null" || item == "None" {
			continue
		}
		v, err := strconv.ParseFloat(item, 64)
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		pts = append(pts, Point{Time: start + int64(i)*step, Value: v})
	}
	return pts, nil
}

// WaitExists waits until the whisper file of the series name exists.
func (c *Cache) WaitExists(t testing.TB, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(c.Path(name)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("carbon-cache wrote no %s within %v", name, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitPoints waits until the series name has at least n points and returns
// them.
func (c *Cache) WaitPoints(t testing.TB, name string, n int, within time.Duration) []Point {
	t.Helper()
	deadline := time.Now().Add(within)
	c.WaitExists(t, name, within)
	for {
		pts := c.Fetch(t, name)
		if len(pts) >= n {
			return pts
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d points after %v, want %d: %v", name, len(pts), within, n, pts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
