package crm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// tokenTraces returns, of the SQLite file and its WAL, the FTS5 words of
// words whose trace is there: the last 16 characters of the word, in
// either case (the contact row holds the word in upper case, FTS5 folds
// it to lower case, and stores a term after the prefix it shares with the
// one before it, so the whole word need not be there).
func tokenTraces(t *testing.T, path string, words []string) []string {
	t.Helper()
	var file []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		file = append(file, b...)
	}
	var found []string
	for _, w := range words {
		tail := w[len(w)-16:]
		if bytes.Contains(file, []byte(strings.ToLower(tail))) || bytes.Contains(file, []byte(strings.ToUpper(tail))) {
			found = append(found, w)
		}
	}
	return found
}

// holders counts A's contacts whose name index holds the FTS5 word w,
// through the look-up List runs.
func holders(t *testing.T, e *env, w string) int {
	t.Helper()
	a, _ := tenancy.TenantID(e.A)
	var n int
	require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw("SELECT count(*) FROM "+crm.TableContacts+" AS ct WHERE ct.tenant_id = '"+a+"' AND ct.rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+w+"')").Scan(ctx, &n)
	}))
	return n
}

// checkpoint writes the WAL into the file and truncates it, as a backup
// would before copying the file.
func checkpoint(t *testing.T, e *env) {
	t.Helper()
	_, err := e.db.Admin(t).ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(t, err)
}

// eraseNameFTS creates, in tenant A, 200 contacts and Zenobia Quuxbridge
// among them (so the FTS5 index has segments of several pages and merges),
// and in tenant B another Zenobia; then, after attack (run as tenant A
// through the guarded handle, may be nil), erases A's Zenobia through the
// retention engine, and returns the traces of her tokens left in the
// SQLite file and its WAL after a checkpoint, with a check that they
// were all there before.
func eraseNameFTS(t *testing.T, e *env, attack func(), passive bool) []string {
	t.Helper()
	c := e.store.Contacts()
	for i := range 200 {
		_, err := c.Create(e.A, crm.ContactInput{FirstName: fmt.Sprintf("First%03d", i), LastName: fmt.Sprintf("Zed%d Last%03d", i%7, i)})
		require.NoError(t, err)
		if i == 100 {
			_, err := c.Create(e.B, crm.ContactInput{FirstName: "Zenobia", LastName: "Quuxbridge"})
			require.NoError(t, err)
		}
	}
	zen, err := c.Create(e.A, crm.ContactInput{FirstName: "Zenobia", LastName: "Quuxbridge", Email: "zenobia@example.com"})
	require.NoError(t, err)
	for i := range 50 { // more segments after hers
		_, err := c.Create(e.A, crm.ContactInput{FirstName: fmt.Sprintf("After%03d", i), LastName: "Zimmer"})
		require.NoError(t, err)
	}
	crm.FlushNameFTS(t, e.db.Admin(t)) // her words in the FTS5 index too, not only in her row
	// Her tokens no other contact of A holds ("z", "ze" are Zed's too).
	var toks []string
	for _, w := range ftsHexTokens(t, e, e.A, zen.ID) {
		if holders(t, e, w) == 1 {
			toks = append(toks, w)
		}
	}
	require.Len(t, toks, 15, "zen, zeno, …, zenobia; q, qu, …, quuxbridge")
	require.Equal(t, []string{zen.ID}, searchIDs(t, e, e.A, "zenobia quux"))
	if !passive {
		checkpoint(t, e)
	}
	require.ElementsMatch(t, toks, tokenTraces(t, e.db.Path, toks), "every token of hers is in the file before the erasure")

	if attack != nil {
		attack()
	}
	eng := commerceEngine(t, e)
	r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: zen.ID})
	_, err = eng.Erase(e.A, r.ID)
	require.NoError(t, err)
	_, err = c.Get(e.A, zen.ID)
	require.ErrorIs(t, err, crm.ErrNotFound)
	require.Empty(t, searchIDs(t, e, e.A, "zenobia"))
	require.Len(t, searchIDs(t, e, e.B, "zenobia quux"), 1, "B's Zenobia is another person")
	require.Len(t, searchIDs(t, e, e.A, "zimmer"), 50)
	if passive {
		// What SQLite's automatic checkpoint does: the pages go into the
		// file, the log stays as it is until a writer starts it over.
		_, err := e.db.Admin(t).ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		require.NoError(t, err)
	} else {
		checkpoint(t, e)
	}
	return tokenTraces(t, e.db.Path, toks)
}

// TestNameFTSErasureLeavesNoTokenInTheFile: after a contact is erased
// through the retention engine, none of her name tokens is left in the
// SQLite file or its WAL (FTS5's secure-delete and SQLite's secure_delete
// overwrite them), not just tombstoned in the index.
func TestNameFTSErasureLeavesNoTokenInTheFile(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "sqlite" {
			t.Skip("bytes of the database file: SQLite's FTS5 index; PostgreSQL keeps the b-tree table, whose erasure the retention tests check")
		}
		require.Empty(t, eraseNameFTS(t, e, nil, false), "tokens of the erased contact left in the file")
	})
}

// TestNameFTSErasureSurvivesAPragmaOfAnotherTenant: tenant A's
// application code, through the guarded handle, turned secure_delete off
// on the pooled connection ("PRAGMA secure_delete = OFF" passed the
// Guard); the erasure that ran on that connection next left the erased
// contact's tokens (and the rest of her row) in the file's free space.
// The Guard refuses the pragma now, and the erasure leaves nothing.
func TestNameFTSErasureSurvivesAPragmaOfAnotherTenant(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "sqlite" {
			t.Skip("secure_delete is SQLite's; PostgreSQL has no such setting")
		}
		e.db.DB.SetMaxOpenConns(1) // the connection the erasure gets next is the one A's statement ran on
		var errs []error
		traces := eraseNameFTS(t, e, func() {
			for _, q := range []string{"PRAGMA secure_delete = OFF", "PRAGMA main.secure_delete = 0", "pragma SECURE_DELETE=fast", `PRAGMA "secure_delete" = 'off'`, "PRAGMA secure_delete(0)"} {
				_, err := e.db.DB.ExecContext(e.B, q) // the erasure is in A; the pragma comes from another tenant
				errs = append(errs, err)
			}
		}, false)
		require.Empty(t, traces, "tokens of the erased contact left in the file")
		for _, err := range errs {
			require.ErrorIs(t, err, tenancy.ErrUnscoped)
		}
	})
}

// TestNameFTSErasureLeavesNoWordInTheWAL: the erased contact's words were
// written to the write-ahead log when she was created; after her erasure
// and an ordinary (PASSIVE, as SQLite's automatic one) checkpoint the
// database file is clean, but the log file still held those frames, all 15
// words in them, until a writer happened to overwrite them or someone ran
// a TRUNCATE checkpoint. The retention engine truncates the log after an
// erasure now (retention/walflush.go).
func TestNameFTSErasureLeavesNoWordInTheWAL(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "sqlite" {
			t.Skip("SQLite's write-ahead log file; PostgreSQL's WAL is the server's")
		}
		require.Empty(t, eraseNameFTS(t, e, nil, true), "words of the erased contact left in the file or its WAL")
	})
}

// TestNameFTSRenameLeavesNoOldWords: a rename (a rectification) takes the
// old name's words out of the file too, not only out of the index: after
// Zenobia Quuxbridge becomes Zenobia Smith, none of the ten words of
// "quuxbridge" (q … quuxbridge) is left in the SQLite file or its WAL.
func TestNameFTSRenameLeavesNoOldWords(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "sqlite" {
			t.Skip("bytes of the database file: SQLite's FTS5 index")
		}
		c := e.store.Contacts()
		for i := range 100 {
			_, err := c.Create(e.A, crm.ContactInput{FirstName: fmt.Sprintf("Other%03d", i), LastName: "Person"})
			require.NoError(t, err)
		}
		zen, err := c.Create(e.A, crm.ContactInput{FirstName: "Zenobia", LastName: "Quuxbridge"})
		require.NoError(t, err)
		crm.FlushNameFTS(t, e.db.Admin(t)) // her words in the FTS5 index, not only in her row
		var old []string
		for _, w := range ftsHexTokens(t, e, e.A, zen.ID) {
			if holders(t, e, w) == 1 {
				old = append(old, w)
			}
		}
		require.Len(t, old, 7+10, "zenobia's and quuxbridge's prefixes")
		checkpoint(t, e)
		require.ElementsMatch(t, old, tokenTraces(t, e.db.Path, old), "her words are in the file before the rename")
		_, err = c.Update(e.A, zen.ID, zen.Version, crm.ContactInput{FirstName: "Zenobia", LastName: "Smith"})
		require.NoError(t, err)
		require.Empty(t, searchIDs(t, e, e.A, "quux"))
		require.Equal(t, []string{zen.ID}, searchIDs(t, e, e.A, "zenobia smi"))
		now := ftsHexTokens(t, e, e.A, zen.ID)
		var gone []string
		for _, w := range old {
			if !slices.Contains(now, w) {
				gone = append(gone, w)
			}
		}
		require.Len(t, gone, 10, "quuxbridge's prefixes")
		checkpoint(t, e)
		require.Empty(t, tokenTraces(t, e.db.Path, gone), "words of the old name left in the file")
	})
}
