// Package carbontest runs Debian's graphite-carbon for tests: a real
// carbon-cache, whose whisper files it reads with whisper-fetch (Debian's
// python3-whisper), so a test can check what a Graphite backend finally
// stores rather than what crossed a socket; and a real carbon-relay, so a
// test can receive what carbon's own relay sends.
//
// # carbon-cache
//
// Start and StartWith run carbon-cache (graphite-carbon 1.1.7) in the
// foreground on a temporary carbon.conf: a line receiver, optionally the
// pickle receiver (Options.Pickle, Cache.PickleAddr), both on free loopback
// ports. The pickle receiver reads what carbon's relays write: a 4-byte
// big-endian length, then a pickled list of (path, (timestamp, value))
// (carbon/protocols.py, MetricPickleReceiver); carbon's SafeUnpickler
// refuses globals other than copy_reg._reconstructor and
// __builtin__.object, and a length over PICKLE_RECEIVER_MAX_LENGTH (1 MiB)
// closes the connection (Twisted's Int32StringReceiver). Pickle builds
// such a message with python3's own pickle.dumps, DecodePickleFrames reads
// a file of them with python3's unpickler.
//
// # Tagged series in carbon-cache
//
// Whatever ENABLE_TAGS says, carbon-cache's write pipeline
// (carbon/cache.py, CacheFeedingProcessor) normalises every name with
// carbon.util.TaggedSeries.parse(name).path: "a.b;k=v;c=d" becomes
// "a.b;c=d;k=v" (the tags sorted as ";k=v" strings, a repeated tag keeps
// its last value, a tag called "name" is replaced by the metric name, and
// leading '~' are stripped from the metric). A name that does not parse
// (an empty tag or value, a value starting with '~', a tag with one of
// ";!^=") is logged ("Error parsing metric") and stored as it came. A name
// that still holds a ';' is stored outside the dotted tree
// (TaggedSeries.encode): under _tagged/H[0:3]/H[3:6]/, where H is the hex
// SHA-256 of the normalised name, in a file named H.wsp when
// TAG_HASH_FILENAMES is on (carbon's default) or, with it off, the name
// with every '.' replaced by "_DOT_": a.b;k=v lands in
// _tagged/H[0:3]/H[3:6]/a_DOT_b;k=v.wsp. Cache.Path and Cache.Series follow
// these rules; StartWith turns TAG_HASH_FILENAMES off unless
// Options.TagHashFilenames asks for carbon's default.
//
// ENABLE_TAGS (Options.Tags) only adds the tag database: after creating a
// whisper file, and on every 100th update, a writer thread POSTs the names,
// tagged or not, in batches of up to 100 to
// GRAPHITE_URL/tags/tagMultiSeries (path=NAME form fields), which is
// graphite-web's TagDB API (carbon/database.py, TimeSeriesDatabase.tag).
// Without a graphite-web there, carbon logs "Error tagging NAME, ...: ..."
// per batch and goes on: the whisper files are written all the same.
// StartWith points GRAPHITE_URL at Options.GraphiteURL, or else at a
// loopback port nothing listens on, so the harness never posts to a
// stranger's port 80.
//
// # carbon-relay
//
// StartRelay runs carbon-relay with RELAY_METHOD consistent-hashing (or
// rules, ...) towards DESTINATIONS. carbon-relay sends pickle, not lines, to
// its destinations (DESTINATION_PROTOCOL = pickle, carbon/client.py,
// CarbonPickleClientProtocol): Twisted's Int32StringReceiver frames, a
// 4-byte big-endian length followed by pickle.dumps(list, protocol=2),
// where list holds up to MAX_DATAPOINTS_PER_MESSAGE tuples
// (path, (timestamp, value)) of str and floats (its receivers turn both
// numbers into floats). Its hash ring keys nodes by (host, instance)
// (fnv1a_ch: the instance alone), never the port, and hashes the name as
// received unless TAG_RELAY_NORMALIZED.
//
// carbon-relay drops datapoints once a destination's queue holds
// MAX_QUEUE_SIZE of them (1000 by default): it logs "send queue is full"
// when the queue fills and counts the drops only as fullQueueDrops in its
// own metrics. USE_FLOW_CONTROL does not help a relay: only
// carbon-cache's writer wires the "queue full" event to pausing the
// receivers (carbon/service.py, setupWriterProcessor), and
// QUEUE_LOW_WATERMARK_PCT only decides when the relay logs that there is
// space again. A line sender at full speed outruns the relay's sending
// loop (with carbon's 1000, TestRelayPickle100k loses datapoints), so
// StartRelay sets MAX_QUEUE_SIZE to 10,000,000 per destination
// (RelayOptions.MaxQueueSize): below that nothing sent to a test relay is
// dropped, and delivery is exact as long as the destination reads. The other settings keep it
// exact and quiet: CARBON_METRIC_INTERVAL = 0 (no carbon.relays.* metrics of
// its own mixed into the output), USE_RATIO_RESET = False (no reconnects
// when the destination lags), DIVERSE_REPLICAS = False unless asked (every
// destination of a test is on 127.0.0.1, and diverse replicas count hosts,
// so replication would collapse to one copy), MAX_DATAPOINTS_PER_MESSAGE =
// carbon's 500 unless asked (500 datapoints with 20-byte names pickle to
// under 30 KB, far below a receiver's 1 MiB).
package carbontest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// The Debian paths; scripts/test.sh installs graphite-carbon, which brings
// python3-whisper and python3.
const (
	CarbonCacheBin  = "/usr/bin/carbon-cache"
	CarbonRelayBin  = "/usr/bin/carbon-relay"
	WhisperFetchBin = "/usr/bin/whisper-fetch"
	Python3Bin      = "/usr/bin/python3"
)

// Bins checks that carbon-cache, whisper-fetch and python3 are installed.
// Without them the test is skipped, or fails under CI=true.
func Bins(t testing.TB) {
	t.Helper()
	need(t, CarbonCacheBin, WhisperFetchBin, Python3Bin)
}

// RelayBins checks that carbon-relay and python3 are installed, as Bins does.
func RelayBins(t testing.TB) {
	t.Helper()
	need(t, CarbonRelayBin, Python3Bin)
}

func need(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
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
	// PickleAddr is the pickle receiver, 127.0.0.1:port, when
	// Options.Pickle asked for it, else "".
	PickleAddr string
	// DataDir is LOCAL_DATA_DIR, the root of the whisper tree.
	DataDir string

	hashTagged bool
	proc       *proc
}

// Options are the settings of StartWith; the zero value is Start's.
type Options struct {
	// Pickle opens the pickle receiver on a free loopback port.
	Pickle bool
	// Tags sets ENABLE_TAGS: the cache posts the names it creates to
	// GraphiteURL's tag database (see the package doc).
	Tags bool
	// GraphiteURL is GRAPHITE_URL, e.g. an httptest server's URL that
	// records /tags/tagMultiSeries; "" is a loopback port nothing listens on.
	GraphiteURL string
	// TagHashFilenames sets TAG_HASH_FILENAMES (carbon's default): a tagged
	// series is stored as _tagged/.../SHA256.wsp instead of its readable
	// name.
	TagHashFilenames bool
}

// Start runs carbon-cache on a temporary carbon.conf: its own storage, log
// and pid directories, the line receiver on a free loopback port, the
// pickle receiver off, the cache query port on a port the kernel picks,
// ENABLE_TAGS off, no limit on creates, a high update rate, so a flush lands
// on disk within a second, and no carbon.agents.* metrics of its own. schemas
// is the storage-schemas.conf text, e.g.
//
//	[all]
//	pattern = .*
//	retentions = 1s:1h
//
// Start returns once the line receiver accepts connections. The cache gets
// SIGTERM when the test ends; its output is logged if the test failed.
func Start(t testing.TB, schemas string) *Cache {
	t.Helper()
	return StartWith(t, schemas, Options{})
}

// StartWith is Start with the pickle receiver and tags as opts says. It
// returns once every receiver accepts connections.
func StartWith(t testing.TB, schemas string, opts Options) *Cache {
	t.Helper()
	Bins(t)
	dir := t.TempDir()
	confDir := filepath.Join(dir, "conf")
	storage := filepath.Join(dir, "storage")
	c := &Cache{DataDir: filepath.Join(storage, "whisper"), hashTagged: opts.TagHashFilenames}
	for _, d := range []string{confDir, c.DataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	c.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	addrs := []string{c.Addr}
	picklePort := 0
	if opts.Pickle {
		picklePort = freePort(t)
		c.PickleAddr = fmt.Sprintf("127.0.0.1:%d", picklePort)
		addrs = append(addrs, c.PickleAddr)
	}
	graphiteURL := opts.GraphiteURL
	if graphiteURL == "" {
		graphiteURL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	}
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
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %d
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 0
ENABLE_TAGS = %s
TAG_HASH_FILENAMES = %s
GRAPHITE_URL = %s
CARBON_METRIC_INTERVAL = 0
LOG_UPDATES = False
LOG_CREATES = True
LOG_CACHE_HITS = False
LOG_CACHE_QUEUE_SORTS = False
LOG_LISTENER_CONN_SUCCESS = False
`, storage, c.DataDir, filepath.Join(dir, "log"), filepath.Join(dir, "run"), port, picklePort,
		pyBool(opts.Tags), pyBool(opts.TagHashFilenames), graphiteURL)
	writeFile(t, filepath.Join(confDir, "carbon.conf"), conf)
	writeFile(t, filepath.Join(confDir, "storage-schemas.conf"), schemas)
	c.proc = startProc(t, "carbon-cache", CarbonCacheBin, dir, filepath.Join(confDir, "carbon.conf"), addrs)
	return c
}

// Stop sends the cache SIGTERM and waits until it has exited (10 s, then
// SIGKILL); the whisper files stay. Calling it again does nothing.
func (c *Cache) Stop(t testing.TB) {
	t.Helper()
	c.proc.stop()
}

// Log is what carbon-cache printed so far (its log, in the foreground).
func (c *Cache) Log() string {
	return c.proc.out.String()
}

// proc is a carbon daemon running in the foreground.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    plugintest.SyncBuffer
	exited chan struct{}
	once   sync.Once
}

// startProc runs bin --config=conf --nodaemon start in dir and waits until
// every one of addrs accepts connections. SIGTERM ends it when the test
// ends; its output (carbon logs to stdout in the foreground) is logged if
// the test failed.
func startProc(t testing.TB, name, bin, dir, conf string, addrs []string) *proc {
	t.Helper()
	// carbon reads its other files (storage-schemas.conf, relay-rules.conf,
	// ...) from the directory of --config
	p := &proc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "--config="+conf, "--nodaemon", "start")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range addrs {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("%s exited:\n%s", name, p.out.String())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not listen on %s within 30s:\n%s", name, addr, p.out.String())
			}
		}
	}
	return p
}

func (p *proc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// Path is the whisper file of the series name: a dotted name maps to
// directories, a tagged one (a name with ';') to its file under _tagged/,
// normalised as carbon-cache does (see the package doc). Names in
// OpenMetrics form (metric{tag="value"}) are not normalised.
func (c *Cache) Path(name string) string {
	if norm, ok := normalizeTagged(name); ok {
		name = norm
	}
	return filepath.Join(c.DataDir, filepath.FromSlash(encodeSeries(name, c.hashTagged))+".wsp")
}

// Series lists the names of the whisper files under the dotted prefix
// ("" = all of them), sorted. A tagged series is listed by its normalised
// name (a.b;k=v), or as _tagged.H[0:3].H[3:6].H when its file name is
// its hash.
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
		names = append(names, decodeSeries(filepath.ToSlash(rel)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// normalizeTagged is carbon.util.TaggedSeries.parse_carbon(name).path
// (carbon 1.1.7): the metric, then its tags sorted as ";tag=value" strings,
// a repeated tag keeping its last value and a tag called "name" replaced
// by the metric (leading '~' stripped). ok is false for a name without
// ';' or one carbon refuses to parse (and then stores as it came).
func normalizeTagged(name string) (norm string, ok bool) {
	if !strings.Contains(name, ";") {
		return "", false
	}
	segs := strings.Split(name, ";")
	if segs[0] == "" {
		return "", false
	}
	tags := map[string]string{}
	for _, seg := range segs[1:] {
		tag, value, found := strings.Cut(seg, "=")
		if !found || tag == "" || value == "" || strings.ContainsAny(tag, ";!^=") || value[0] == '~' {
			return "", false
		}
		tags[tag] = value
	}
	metric := strings.TrimLeft(segs[0], "~")
	if metric == "" {
		return "", false
	}
	tags["name"] = metric
	parts := make([]string, 0, len(tags))
	for tag, value := range tags {
		if tag != "name" {
			parts = append(parts, ";"+tag+"="+value)
		}
	}
	slices.Sort(parts)
	return metric + strings.Join(parts, ""), true
}

// encodeSeries is carbon.util.TaggedSeries.encode(name, "/", hashOnly): the
// path of the series' whisper file below LOCAL_DATA_DIR, without ".wsp".
func encodeSeries(name string, hashOnly bool) string {
	if !strings.Contains(name, ";") {
		return strings.TrimLeft(strings.ReplaceAll(name, ".", "/"), "/")
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])
	file := strings.ReplaceAll(name, ".", "_DOT_")
	if hashOnly {
		file = h
	}
	return "_tagged/" + h[0:3] + "/" + h[3:6] + "/" + file
}

// decodeSeries is carbon.util.TaggedSeries.decode(rel, "/"), rel being a
// file's path below LOCAL_DATA_DIR without ".wsp"; a hashed file name
// stays _tagged.H[0:3].H[3:6].H.
func decodeSeries(rel string) string {
	if strings.HasPrefix(rel, "_tagged/") {
		parts := strings.SplitN(rel, "/", 4)
		if len(parts) == 4 && strings.Contains(parts[3], ";") {
			return strings.ReplaceAll(parts[3], "_DOT_", ".")
		}
	}
	return strings.ReplaceAll(rel, "/", ".")
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
