package registry

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestCheckHelpers(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{CheckHostPort("listen", ""), `listen "": missing port in address (want host:port)`},
		{CheckHostPort("address", "nohost"), `address "nohost": missing port in address (want host:port)`},
		{CheckHostPort("listen", ":99999"), `listen ":99999": port 99999: want 0-65535`},
		{CheckHostPort("listen", ":-1"), `listen ":-1": port "-1" is neither a number nor a service name this system knows (/etc/services)`},
		{CheckHostPort("listen", "127.0.0.1:"), `listen "127.0.0.1:": no port (want host:port)`},
		{CheckAddress("address", "localhost:abc"), `address "localhost:abc": port "abc" is neither a number nor a service name this system knows (/etc/services)`},
		{CheckAddress("address", "localhost:0"), `address "localhost:0": port 0: want 1-65535`},
		{CheckAddress("address", "localhost:65536"), `address "localhost:65536": port 65536: want 1-65535`},
		{CheckOneOf("protocol", "sctp", "tcp", "udp"), `protocol "sctp": want "tcp" or "udp"`},
		{CheckOneOf("format", "x", "native", "graphite", "statsd"), `format "x": want "native", "graphite" or "statsd"`},
		{CheckOneOf("mode", "b", "a"), `mode "b": want "a"`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got %v, want %s", c.err, c.want)
		}
	}
	for _, err := range []error{
		CheckHostPort("listen", "127.0.0.1:0"),
		CheckHostPort("listen", ":2003"),
		CheckHostPort("listen", "[::1]:65535"),
		CheckAddress("address", "localhost:2003"),
		CheckAddress("address", "[::1]:1"),
		CheckOneOf("protocol", "udp", "tcp", "udp"),
	} {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
	}
}

// TestWarnLaxFile: a secret file open to its group or others is warned
// about with its path; a private one and a missing one (its reader fails)
// are not.
func TestWarnLaxFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		mode os.FileMode // 0: the file does not exist
		warn bool
	}{
		{"private", 0o600, false},
		{"group-readable", 0o640, true},
		{"world-readable", 0o644, true},
		{"missing", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".pem")
			if tc.mode != 0 {
				if err := os.WriteFile(path, []byte("secret"), tc.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, tc.mode)
			}
			var logs bytes.Buffer
			got := WarnLaxFile(zerolog.New(&logs), "tls_key", path)
			if got != tc.warn || (logs.Len() > 0) != tc.warn {
				t.Fatalf("WarnLaxFile = %v, log %q", got, logs.String())
			}
			if tc.warn && (!strings.Contains(logs.String(), path) || strings.Contains(logs.String(), "secret\"")) {
				t.Fatalf("log %q", logs.String())
			}
		})
	}
}
