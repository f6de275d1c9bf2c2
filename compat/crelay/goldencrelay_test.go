package crelay

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/metricsrouter/router/internal/crelaytest"
)

// fullBin returns a carbon-c-relay 3.7.3 built with its transports
// (crelaytest.FullBin).
func fullBin(t *testing.T) string { return crelaytest.FullBin(t) }

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
