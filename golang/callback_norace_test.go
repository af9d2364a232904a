//go:build !race

package ferry

// raceEnabled is true under -race: the long callback tests then run fewer items.
const raceEnabled = false
