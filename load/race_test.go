//go:build race

package load

// raceEnabled: the race detector slows the generator several times, so
// timing-sensitive tests widen their bounds.
const raceEnabled = true
