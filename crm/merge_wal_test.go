package crm_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestMergeLeavesNoDuplicateInTheLog: Merge deletes the duplicate
// contact, and secure_delete zeroes its row in the database file once the
// pages are checkpointed — but SQLite's write-ahead log kept the frames
// that wrote it, its sealed profile among them, until a later writer
// happened to start the log over: after a merge and the PASSIVE
// checkpoint SQLite runs on its own, the duplicate's sealed profile was
// still in the -wal file. Merge cuts the log now (a TRUNCATE checkpoint,
// as erasures, purges and sweeps do). SQLite only: PostgreSQL's WAL is
// the server's (its backups are covered by crypto-shredding).
func TestMergeLeavesNoDuplicateInTheLog(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	e := newEnv(t, db)
	c := e.store.Contacts()
	keep, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	require.NoError(t, err)
	dup, err := c.Create(e.A, crm.ContactInput{FirstName: "Augusta", LastName: "King", Phone: "+15551234567"})
	require.NoError(t, err)
	// The canary: the duplicate's sealed profile, as stored (no other row
	// holds these bytes).
	var canary []byte
	require.NoError(t, db.Admin(t).NewRaw("SELECT profile_sealed FROM "+crm.TableContacts+" WHERE id = ?", dup.ID).Scan(context.Background(), &canary))
	require.Greater(t, len(canary), 32)
	traces := func() (in []string) {
		for _, p := range []string{db.Path, db.Path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				require.NoError(t, err)
			}
			if bytes.Contains(b, canary) {
				in = append(in, p[len(db.Path):])
			}
		}
		return in
	}
	require.NotEmpty(t, traces(), "the duplicate is in the file or its log before the merge")

	merged, err := c.Merge(e.A, keep.ID, dup.ID)
	require.NoError(t, err)
	require.Equal(t, "+15551234567", merged.Phone)
	_, err = c.Get(e.A, dup.ID)
	require.ErrorIs(t, err, crm.ErrNotFound)
	_, err = db.DB.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)") // what SQLite's automatic checkpoint does
	require.NoError(t, err)
	require.Empty(t, traces(), "the merged-away duplicate's sealed profile is left in the database file (\"\") or its write-ahead log (\"-wal\")")
}
