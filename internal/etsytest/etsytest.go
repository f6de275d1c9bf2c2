// Package etsytest finds Etsy statsd (the npm package, whose proxy.js is the
// reference of the StatsD proxy's differential tests) for tests.
package etsytest

import (
	"os"
	"os/exec"
	"testing"
)

// StatsdDir returns $STATSD_DIR, the directory of the npm package statsd
// (scripts/install-statsd.sh prints it), after checking that node runs.
// Without it the test is skipped, or fails under CI=true.
func StatsdDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STATSD_DIR")
	if dir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("STATSD_DIR is not set: STATSD_DIR=$(scripts/install-statsd.sh) go test ...")
		}
		t.Skip("STATSD_DIR is not set: STATSD_DIR=$(scripts/install-statsd.sh) go test ...")
	}
	if _, err := os.Stat(dir + "/proxy.js"); err != nil {
		t.Fatalf("STATSD_DIR=%s: %v", dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("STATSD_DIR is set but node is not installed:", err)
	}
	return dir
}
