package crelay

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/metricsrouter/router/internal/crelaytest"
)

// fullBin returns a carbon-c-relay 3.7.3 built with its gzip, lz4 and
// snappy transports (Debian's lacks them): $CRELAY_FULL, else where
// /work/shared/tools/build-carbon-c-relay.sh caches it. It skips the test
// when there is none, and fails under CI.
func fullBin(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("CRELAY_FULL")}
	if d, err := os.UserCacheDir(); err == nil {
		cands = append(cands, filepath.Join(d, "carbon-c-relay-full", "relay"))
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "-v").CombinedOutput(); err == nil && len(out) > 0 {
			return c
		}
	}
	const msg = "no carbon-c-relay with transports: set CRELAY_FULL (build-carbon-c-relay.sh builds one)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestGoldenInputsCRelay: the golden inputs of the transport, ssl and
// proto clauses are accepted by carbon-c-relay 3.7.3 itself and parsed as
// it parses them (-t): Debian's binary where its build has the clause,
// else the full build.
func TestGoldenInputsCRelay(t *testing.T) {
	for _, c := range []struct {
		name string
		full bool // needs gzip, lz4 or snappy
	}{
		{"transport", true},
		{"ssl", false},
		{"ssl-noca", false},
		{"proto", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := crelaytest.Bin(t)
			if c.full {
				bin = fullBin(t)
			}
			text, err := os.ReadFile(filepath.Join("testdata", "golden", c.name+".conf"))
			if err != nil {
				t.Fatal(err)
			}
			d, ok := differ(t, bin, t.TempDir(), string(text))
			if d != "" {
				t.Fatal(d)
			}
			if !ok {
				t.Fatalf("%s -t refuses testdata/golden/%s.conf", bin, c.name)
			}
		})
	}
}
