//go:build race

package selector

// raceEnabled tells the tests that the race detector is on.
const raceEnabled = true
