package admin

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestRunstats: runstats_addr answers as the original's runstats port
// (testdata/polymur/runstats): "stats" gives the same JSON object, keys,
// order, indentation and value types, and is answered as soon as it
// arrives, newline or not; anything else is "Not a command".
func TestRunstats(t *testing.T) {
	addr := plugintest.FreeAddr(t)
	started := time.Now().Add(-90 * time.Second)
	rs, err := startRunstats(addr, started, plugintest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close()
	// ask writes each part (no newline unless given) without closing its
	// side, and reads the answer up to the end of the connection.
	ask := func(parts ...string) string {
		c := dial(t, addr)
		for i, p := range parts {
			if i > 0 {
				if got := readFor(c, 100*time.Millisecond); got != "" {
					t.Fatalf("%q answered before the rest (%q) came: %q", parts[:i], parts[i:], got)
				}
			}
			io.WriteString(c, p)
		}
		return readUntil(c, "\n}\n")
	}

	want := golden(t, "runstats/stats.json")
	for _, sent := range [][]string{{"stats\n"}, {"stats"}, {"stats\r\n"}, {"sta", "ts"}} {
		got := ask(sent...)
		if shape(got) != shape(want) {
			t.Fatalf("%q answered\n%s\nwant the shape of\n%s", sent, got, want)
		}
		var v struct {
			Mem     map[string]uint64 `json:"runtime-meminfo"`
			Service struct {
				Start  string `json:"start-time"`
				Uptime int64  `json:"uptime-seconds"`
			} `json:"service"`
		}
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Fatalf("%q: %v", sent, err)
		}
		if v.Mem["HeapAlloc"] == 0 || v.Mem["Sys"] == 0 {
			t.Errorf("memory figures are zero: %v", v.Mem)
		}
		if v.Service.Start != started.Format(time.RFC3339) || v.Service.Uptime < 90 || v.Service.Uptime > 600 {
			t.Errorf("service %+v, started %v", v.Service, started)
		}
	}

	c := dial(t, addr)
	io.WriteString(c, "bogus\n")
	if got, want := readUntil(c, "\n"), golden(t, "runstats/not-a-command.txt"); got != want {
		t.Fatalf("bogus: %q, want %q", got, want)
	}
	// a word that cannot grow into "stats" is answered at once too
	c = dial(t, addr)
	io.WriteString(c, "bogus")
	if got := readUntil(c, "\n"); got != "Not a command: bogus\n" {
		t.Fatalf("bogus without newline: %q", got)
	}
	// a line past 512 bytes closes the connection unanswered
	c = dial(t, addr)
	io.WriteString(c, strings.Repeat("s", 2000))
	if got := readUntil(c, "\n"); got != "" {
		t.Fatalf("over-long line: %q", got)
	}
}
