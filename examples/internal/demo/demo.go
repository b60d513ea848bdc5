// Package demo holds what the example binaries share to run without
// platform credentials or a key-management service: a simulated clock that
// the SDK and the emulators read together, and a key-encryption key that
// lives only in memory. A real deployment has none of this.
package demo

import (
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

// Clock is an emulated run's clock, safe for concurrent use: pass its Now
// method to the SDK and the emulators alike, and Advance it to let a week
// pass in an instant. It is the manual clock socialcrm's own tests use.
type Clock = fakeclock.Clock

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock {
	c := fakeclock.New()
	c.Set(start)
	return c
}

// EphemeralKEK returns a key-encryption key that lives only in memory, for
// a throw-away database: the data goes with the process.
func EphemeralKEK() (tink.AEAD, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, err
	}
	return aead.New(h)
}
