package admin

import (
	"strings"
	"testing"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestDestAPIWords: the line commands of api_addr answer in the words and
// shapes of the original's API (testdata/polymur/api), asked in the same
// order against the same destinations.
func TestDestAPIWords(t *testing.T) {
	r := &fakeRouter{
		dests: []string{"127.0.0.1:23003", "127.0.0.1:23004:b"},
		up:    map[string]bool{"127.0.0.1:23003": true},
	}
	d := newDestAPI(r, plugintest.Logger(t))
	for _, tc := range []struct {
		cmd, golden string
		prefix      bool // the router says more after the original's words
	}{
		{"getdest", "api/getdest.txt", false},
		{"putdest 127.0.0.1:23005", "api/putdest.txt", false},
		{"deldest 127.0.0.1:23004:b", "api/deldest.txt", false},
		{"deldest", "api/deldest-no-destination.txt", false},
		{"putdest", "api/putdest-no-destination.txt", false},
		{"deldest bad", "api/deldest-not-valid.txt", true},
		{"frob", "api/not-a-command.txt", false},
	} {
		got, want := d.command(tc.cmd+"\n", "127.0.0.1:1"), golden(t, tc.golden)
		switch {
		case tc.prefix:
			if w := strings.TrimRight(want, "\n"); !strings.HasPrefix(got, w) || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
				t.Errorf("%s: %q, want %q and a reason", tc.cmd, got, w)
			}
		case shape(got) != shape(want):
			t.Errorf("%s:\n%s\nwant the shape of\n%s", tc.cmd, got, want)
		}
	}
	if got := strings.Join(r.dests, ","); got != "127.0.0.1:23003,127.0.0.1:23005" {
		t.Errorf("destinations after putdest and deldest: %s", got)
	}
	// what the original has no words for
	if got := d.command("deldest 127.0.0.1:9", "127.0.0.1:1"); got != "error: 127.0.0.1:9 is not a destination of destinations\n" {
		t.Errorf("deldest of a stranger: %q", got)
	}
	if got := d.command("getdest nosuch", "127.0.0.1:1"); !strings.HasPrefix(got, "error: ") {
		t.Errorf("getdest of no such output: %q", got)
	}
}
