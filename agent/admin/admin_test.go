package admin

import (
	"errors"
	"net"
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
)

// fakeRouter is a Router with one distributor, "destinations", whose
// destinations are up when listed in up.
type fakeRouter struct {
	mu    sync.Mutex
	dests []string
	up    map[string]bool
}

func (f *fakeRouter) Healthy() bool          { return true }
func (f *fakeRouter) Config() *config.Config { return &config.Config{File: "fake.toml"} }
func (f *fakeRouter) Inputs() []InputStatus  { return []InputStatus{{ID: "graphite-1", Received: 3}} }
func (f *fakeRouter) DistributorIDs() []string {
	return []string{"destinations"}
}

func (f *fakeRouter) Outputs() []OutputStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []OutputStatus
	for _, d := range f.dests {
		out = append(out, OutputStatus{ID: "destinations/" + d, Spec: d, Healthy: f.up[d]})
	}
	return out
}

func (f *fakeRouter) Destinations(id string) ([]string, error) {
	if id != "destinations" {
		return nil, ErrNoSuchOutput
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dests), nil
}

func (f *fakeRouter) SetDestinations(id string, dests []string) error {
	if id != "destinations" {
		return errors.New("no such output")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dests = slices.Clone(dests)
	return nil
}

// golden reads testdata/polymur/NAME (see its README.md).
func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/polymur/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	timeValue   = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"`)
	numberValue = regexp.MustCompile(`": \d+`)
)

// shape is an answer with its times and numbers replaced by placeholders:
// keys, order, indentation and every other value still count.
func shape(s string) string {
	return numberValue.ReplaceAllString(timeValue.ReplaceAllString(s, `"<time>"`), `": <number>`)
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readFor reads from c what arrives within d (without waiting for the
// peer to close).
func readFor(c net.Conn, d time.Duration) string {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return string(out)
		}
	}
}

// readUntil reads from c until what arrived ends with suffix, the
// connection ends or 5 s pass, and returns what arrived.
func readUntil(c net.Conn, suffix string) string {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil || len(out) >= len(suffix) && string(out[len(out)-len(suffix):]) == suffix {
			return string(out)
		}
	}
}
