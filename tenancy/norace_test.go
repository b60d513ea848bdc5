//go:build !race

package tenancy_test

// raceEnabled: see race_test.go.
const raceEnabled = false
