package admin

import (
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// startMgmt serves management_addr for a fake router on a free port (with
// token "s3cret" when token is true) and returns its address.
func startMgmt(t *testing.T, token bool) string {
	t.Helper()
	cfg := config.Agent{}
	if token {
		cfg.APIToken = "s3cret"
	}
	ctl, err := newControl(cfg, new(atomic.Uint64), plugintest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	addr := plugintest.FreeAddr(t)
	ms, err := startManagement(addr, &management{r: &fakeRouter{}, ctl: ctl, draining: new(atomic.Bool), started: time.Now(), log: plugintest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ms.close)
	return addr
}

// TestManagementAnswersAtOnce (issue #19 item 10): a command is answered as
// soon as it is whole, before the client closes its side, newline or not
// (proxy.js answers each read, go-statsd-proxy a connection's first);
// a command a read cut short waits for the rest. Each step writes its
// bytes, then reads what comes within the step's wait without closing.
func TestManagementAnswersAtOnce(t *testing.T) {
	type step struct{ send, want string }
	for _, tc := range []struct {
		name  string
		token bool
		steps []step
	}{
		{"health", false, []step{{"health", "health: up\n"}}},
		{"ping", false, []step{{"ping", "pong\n"}}},
		{"uppercase", false, []step{{"PING", "pong\n"}}},
		{"an argument-less command with arguments", false, []step{{"ping now", "pong\n"}}},
		{"unknown", false, []step{{"frobnicate", "ERROR\n"}}},
		{"with newline", false, []step{{"ping\n", "pong\n"}}},
		{"crlf", false, []step{{"ping\r\n", "pong\n"}}},
		{"two in one read", false, []step{{"ping\nhealth", "pong\nhealth: up\n"}}},
		{"a word cut short", false, []step{{"hea", ""}, {"lth", "health: up\n"}}},
		{"a word cut short, then its newline", false, []step{{"pi", ""}, {"ng\n", "pong\n"}}},
		{"stat is stats or status", false, []step{{"stat", ""}, {"s", "time running in seconds: "}}},
		{"newline after an answered command", false, []step{{"ping", "pong\n"}, {"\n", ""}, {"ping\n", "pong\n"}}},
		{"health, then down", false, []step{{"health", "health: up\n"}, {" down\n", "health: down\n"}}},
		{"health and a blank waits", false, []step{{"health ", ""}, {"down", "health: down\n"}}},
		{"health d", false, []step{{"health d", ""}, {"own", "health: down\n"}}},
		{"health with a bad argument", false, []step{{"health sideways", "ERROR\n"}}},
		{"a cut word and a blank", false, []step{{"pi ", "ERROR\n"}}},
		{"auth waits for its newline", true, []step{{"auth s3c", ""}, {"ret", ""}, {"\n", "OK\n"}, {"health down", "health: down\n"}}},
		{"health down needs auth", true, []step{{"health down", "ERROR a token is required: send \"auth TOKEN\" first\n"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, startMgmt(t, tc.token))
			for _, s := range tc.steps {
				io.WriteString(c, s.send)
				var got string
				switch {
				case s.want == "":
					got = readFor(c, 150*time.Millisecond)
				case strings.HasSuffix(s.want, ": "): // the beginning of stats: a number follows
					got = readUntil(c, "input graphite-1 received: 3\n")
					got = got[:min(len(got), len(s.want))]
				default:
					got = readUntil(c, s.want)
				}
				if got != s.want {
					t.Fatalf("after %q: got %q, want %q", s.send, got, s.want)
				}
			}
		})
	}
}

// TestManagementEnds: quit, a bad token and an over-long line close the
// connection; at the end of the connection an unended command is answered.
// (What the router leaves unread of an over-long line may reset the
// connection after its answer.)
func TestManagementEnds(t *testing.T) {
	addr := startMgmt(t, true)
	for _, tc := range []struct {
		name, send, want string
		halfClose        bool
	}{
		{"quit", "quit", "", false},
		{"bad token", "auth wrong\n", "ERROR bad token\n", false},
		{"auth cut by the end", "auth s3cret", "OK\n", true},
		{"over-long line", strings.Repeat("x", 3000), "ERROR line too long\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, tc.send)
			if tc.halfClose {
				c.(interface{ CloseWrite() error }).CloseWrite()
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) || string(b) != tc.want {
				t.Fatalf("got %q (%v), want %q and the end of the connection", b, err, tc.want)
			}
		})
	}
}
