// Package demo holds what the example binaries share to run without
// platform credentials or a key-management service: a simulated clock that
// the SDK and the emulators read together, and a key-encryption key that
// lives only in memory. A real deployment has none of this.
package demo

import (
	"os"
	"path/filepath"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
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

// Open opens an example's database and key-encryption key. With dsn set,
// it opens dsn (a SQLite file or a postgres:// URL) and the local key file
// kekFile (created if missing). With dsn empty, it opens a throw-away
// SQLite file named name.db in a new temporary directory, with an
// EphemeralKEK: the data goes with the file. done closes the database and
// removes the temporary directory.
func Open(dsn, kekFile, name string) (db *bun.DB, kek tink.AEAD, done func(), err error) {
	dir := ""
	if dsn == "" {
		if dir, err = os.MkdirTemp("", name+"-example"); err != nil {
			return nil, nil, nil, err
		}
		dsn = filepath.Join(dir, name+".db")
		kek, err = EphemeralKEK()
	} else {
		kek, err = insecurekeyfile.Open(kekFile)
	}
	if err == nil {
		db, err = socialcrm.OpenDB(dsn)
	}
	removeDir := func() {
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	if err != nil {
		removeDir()
		return nil, nil, nil, err
	}
	return db, kek, func() { db.Close(); removeDir() }, nil
}
