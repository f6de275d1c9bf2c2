package carbontest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RelayOptions are carbon-relay's settings for StartRelay.
type RelayOptions struct {
	// Method is RELAY_METHOD: "consistent-hashing" (the default here),
	// "rules", "aggregated-consistent-hashing", "fast-hashing" or
	// "fast-aggregated-hashing".
	Method string
	// Destinations is DESTINATIONS, each "host:port:instance" (the instance
	// may be left out), e.g. a Go listener's address plus ":a".
	Destinations []string
	// ReplicationFactor is REPLICATION_FACTOR; 0 is 1.
	ReplicationFactor int
	// DiverseReplicas sets DIVERSE_REPLICAS (carbon's default), which puts
	// the replicas of a name on distinct hosts: on loopback, one copy.
	DiverseReplicas bool
	// HashType is ROUTER_HASH_TYPE ("carbon_ch", "fnv1a_ch", "mmh3_ch");
	// "" leaves carbon's default for the method.
	HashType string
	// Rules is the relay-rules.conf text, required by Method "rules", e.g.
	//
	//	[x]
	//	pattern = ^x\.
	//	destinations = 127.0.0.1:2104:a
	//	[default]
	//	default = true
	//	destinations = 127.0.0.1:2204:b
	Rules string
	// AggregationRules is the aggregation-rules.conf text, which
	// Method "aggregated-consistent-hashing" reads.
	AggregationRules string
	// Protocol is DESTINATION_PROTOCOL: "pickle" (carbon's default) or
	// "line".
	Protocol string
	// MaxDatapointsPerMessage is MAX_DATAPOINTS_PER_MESSAGE, the most
	// datapoints in one pickle frame; 0 is carbon's 500.
	MaxDatapointsPerMessage int
	// MaxQueueSize is MAX_QUEUE_SIZE, the datapoints queued per destination
	// beyond which carbon-relay drops them; 0 is 10,000,000 (see the package
	// doc), carbon's own default is 1000.
	MaxQueueSize int
	// TagRelayNormalized sets TAG_RELAY_NORMALIZED: tagged names are
	// normalised (TaggedSeries.parse(name).path) before hashing and sending.
	TagRelayNormalized bool
}

// Relay is a carbon-relay running in the foreground until the test ends.
type Relay struct {
	// Addr is its plaintext line receiver, 127.0.0.1:port.
	Addr string
	// PickleAddr is its pickle receiver, 127.0.0.1:port.
	PickleAddr string

	proc *proc
}

// StartRelay runs Debian's carbon-relay on a temporary carbon.conf (section
// [relay]: its line and pickle receivers on free loopback ports, no UDP, the
// queue and flow-control settings of the package doc) towards
// opts.Destinations, and returns once both receivers accept connections.
// The relay connects to its destinations in the background, retrying, and
// queues meanwhile. It gets SIGTERM when the test ends (or at Stop); its
// log is written to the test log if the test failed.
func StartRelay(t testing.TB, opts RelayOptions) *Relay {
	t.Helper()
	RelayBins(t)
	if len(opts.Destinations) == 0 {
		t.Fatal("carbontest.StartRelay: no destinations")
	}
	method := opts.Method
	if method == "" {
		method = "consistent-hashing"
	}
	rf := opts.ReplicationFactor
	if rf == 0 {
		rf = 1
	}
	proto := opts.Protocol
	if proto == "" {
		proto = "pickle"
	}
	perMsg := opts.MaxDatapointsPerMessage
	if perMsg == 0 {
		perMsg = 500
	}
	maxQueue := opts.MaxQueueSize
	if maxQueue == 0 {
		maxQueue = 10_000_000
	}
	dir := t.TempDir()
	confDir := filepath.Join(dir, "conf")
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Relay{}
	line, pickle := freePort(t), freePort(t)
	r.Addr = fmt.Sprintf("127.0.0.1:%d", line)
	r.PickleAddr = fmt.Sprintf("127.0.0.1:%d", pickle)
	var hash string
	if opts.HashType != "" {
		hash = "ROUTER_HASH_TYPE = " + opts.HashType + "\n"
	}
	conf := fmt.Sprintf(`[relay]
STORAGE_DIR = %s
LOCAL_DATA_DIR = %s
LOG_DIR = %s
PID_DIR = %s
ENABLE_LOGROTATION = False
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = %d
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = %d
ENABLE_UDP_LISTENER = False
RELAY_METHOD = %s
REPLICATION_FACTOR = %d
DIVERSE_REPLICAS = %s
%sDESTINATIONS = %s
DESTINATION_PROTOCOL = %s
MAX_QUEUE_SIZE = %d
MAX_DATAPOINTS_PER_MESSAGE = %d
QUEUE_LOW_WATERMARK_PCT = 0.8
USE_FLOW_CONTROL = True
USE_RATIO_RESET = False
TAG_RELAY_NORMALIZED = %s
CARBON_METRIC_INTERVAL = 0
LOG_LISTENER_CONN_SUCCESS = True
`, storage, filepath.Join(storage, "whisper"), filepath.Join(dir, "log"), filepath.Join(dir, "run"),
		line, pickle, method, rf, pyBool(opts.DiverseReplicas), hash,
		strings.Join(opts.Destinations, ", "), proto, maxQueue, perMsg, pyBool(opts.TagRelayNormalized))
	writeFile(t, filepath.Join(confDir, "carbon.conf"), conf)
	// carbon-relay refuses to start without a storage-schemas.conf, which it
	// does not use
	writeFile(t, filepath.Join(confDir, "storage-schemas.conf"), "[all]\npattern = .*\nretentions = 1m:1d\n")
	if opts.Rules != "" {
		writeFile(t, filepath.Join(confDir, "relay-rules.conf"), opts.Rules)
	}
	if opts.AggregationRules != "" {
		writeFile(t, filepath.Join(confDir, "aggregation-rules.conf"), opts.AggregationRules)
	}
	r.proc = startProc(t, "carbon-relay", CarbonRelayBin, dir, filepath.Join(confDir, "carbon.conf"),
		[]string{r.Addr, r.PickleAddr})
	return r
}

// Stop sends the relay SIGTERM and waits until it has exited (10 s, then
// SIGKILL); it then has closed its connections, so a destination sees EOF.
// carbon-relay's client service waits for a destination's queue to empty
// before it disconnects (carbon/client.py, CarbonClientFactory.disconnect),
// but lines still unread in its receive buffers at SIGTERM are lost: wait
// for what the test expects first. Calling Stop again does nothing.
func (r *Relay) Stop(t testing.TB) {
	t.Helper()
	r.proc.stop()
}

// Log is what carbon-relay printed so far (its log, in the foreground).
func (r *Relay) Log() string {
	return r.proc.out.String()
}
