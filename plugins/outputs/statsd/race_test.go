//go:build race

package statsd

// raceEnabled tells the tests that the race detector is on.
const raceEnabled = true
