package crm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// requireFTSIntegrity runs FTS5's integrity-check of the SQLite name
// index against the contacts' name_index column, as the owner.
func requireFTSIntegrity(t *testing.T, e *env, step string) {
	t.Helper()
	if e.db.Name != "sqlite" {
		return
	}
	// FTS5's check compares the index with every contact: the pending
	// ones go in first.
	crm.FlushNameFTS(t, e.db.Admin(t))
	_, err := e.db.Admin(t).ExecContext(context.Background(),
		"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('integrity-check', 1)")
	require.NoError(t, err, "FTS5 integrity-check after %s", step)
}

// TestNameFTSHostileNameIndexOfOneTenant: on SQLite the FTS5 index reads
// the contacts' name_index column as it is, and tenant A's code may write
// its own contacts' column through the guarded handle with anything: words
// repeated, FTS5 keywords, empty, blanks, a 40,000-letter word, Unicode,
// a number, a blob, 5,000 words, NULL, and move the row to another rowid.
// None of it reaches B: after each write FTS5's integrity-check passes,
// B's name searches stay exact, and A's own contact made by the SDK is
// still found.
func TestNameFTSHostileNameIndexOfOneTenant(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mine, _, _, _, a, _ := attackEnv(t, e)
		for _, n := range []string{"Ada Byron", "Grace Brewster", "Alan Turing"} {
			f := strings.Fields(n)
			_, err := e.store.Contacts().Create(e.B, crm.ContactInput{FirstName: f[0], LastName: f[1]})
			require.NoError(t, err)
		}
		victim, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Victim", LastName: "Row"})
		require.NoError(t, err)
		word := "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		var many []string
		for i := range 5000 {
			many = append(many, word[i%26:]+strings.Repeat("Q", i%7)+word[:i%26])
		}
		set := func(expr string, args ...any) error {
			return tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewRaw("UPDATE "+crm.TableContacts+" SET name_index = "+expr+" WHERE tenant_id = ? AND id = ?",
					append(args, a, victim.ID)...).Exec(ctx)
				return err
			})
		}
		for _, w := range []struct {
			name string
			expr string
			args []any
		}{
			{"a word repeated", "?", []any{word + " " + word + " " + strings.ToLower(word)}},
			{"FTS5 keywords and syntax", "?", []any{`NEAR OR AND NOT * ^ : "x" (y) - +` + word}},
			{"empty", "''", nil},
			{"blanks", "?", []any{"   \t\n  "}},
			{"a 40,000-letter word", "?", []any{strings.Repeat("Z", 40000)}},
			{"Unicode", "?", []any{"Ĳsbrand ÆØÅ ∂x ﬁ 𝔘 " + word}},
			{"a number", "12345678901234567890123456", nil},
			{"a blob", "X'00FF41424344'", nil},
			{"5,000 words", "?", []any{strings.Join(many, " ")}},
			{"NULL", "NULL", nil},
			{"words again", "?", []any{word}},
		} {
			err := set(w.expr, w.args...)
			if e.db.Name == "postgres" {
				// name_index is a text[] there: none of it is an array.
				if w.name != "NULL" {
					require.Error(t, err, "%s", w.name)
				}
				continue
			}
			require.NoError(t, err, "%s", w.name)
			requireFTSIntegrity(t, e, w.name)
			requireSearchExact(t, e, e.B)
			require.Contains(t, searchIDs(t, e, e.A, "ada love"), mine.ID, "after %s", w.name)
		}
		// The row moved to another rowid, then deleted. A tenant's
		// statement may not name rowid (tenancy's Guard: it counts every
		// tenant's rows), so the owner's handle moves it.
		move := "UPDATE " + crm.TableContacts + " SET rowid = rowid + 1000000 WHERE tenant_id = ? AND id = ?"
		err = tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw(move, a, victim.ID).Exec(ctx)
			return err
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		if e.db.Name == "sqlite" {
			_, err = e.db.Admin(t).NewRaw(move, a, victim.ID).Exec(context.Background())
			require.NoError(t, err)
		}
		requireFTSIntegrity(t, e, "a new rowid")
		err = tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("DELETE FROM "+crm.TableContacts+" WHERE tenant_id = ? AND id = ?", a, victim.ID).Exec(ctx)
			return err
		})
		require.NoError(t, err)
		requireFTSIntegrity(t, e, "the delete")
		requireSearchExact(t, e, e.B)
		requireSearchExact(t, e, e.A)
	})
}
