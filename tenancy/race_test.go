//go:build race

package tenancy_test

// raceEnabled is true when the tests run under the race detector, which
// makes every database operation several times slower: long randomized
// tests then run fewer operations (each run draws a new seed).
const raceEnabled = true
