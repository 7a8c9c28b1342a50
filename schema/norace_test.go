//go:build !race

package schema

// raceEnabled: the race detector slows the engine several times over, so
// the corpus tests then check a sample of their cases.
const raceEnabled = false
