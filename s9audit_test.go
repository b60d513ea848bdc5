package socialcrm_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS9AuditContactDeleteLeavesNoTrace: deleting one contact (a record
// delete, not an erasure request) leaves nothing of it behind — no row in
// any table names it or holds its blind indexes (the audit log names it
// by id, by design), and on SQLite neither the database file nor its
// write-ahead log keeps the deleted row's bytes (its sealed profile, the
// blind indexes of its e-mail address and phone number) once SQLite's
// automatic checkpoint has run. Another contact of the tenant is kept.
func TestS9AuditContactDeleteLeavesNoTrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		ctx := dsarTenant(t, sdk, "s9audit-delete")
		c := sdk.CRM.Contacts()
		gone, err := c.Create(ctx, crm.ContactInput{FirstName: "Zqdelfirst", LastName: "Zqdellast", Email: "zq.deleted@example.com",
			Phone: "+14155550199", Tags: []string{"zqdeltag"}, Preferences: map[string]string{"lang": "zqdelpref"}})
		require.NoError(t, err)
		kept, err := c.Create(ctx, crm.ContactInput{FirstName: "Zqkeptfirst", Email: "zq.kept@example.com"})
		require.NoError(t, err)
		_, err = sdk.CRM.Notes().Create(ctx, crm.NoteInput{ContactID: kept.ID, Body: "zq kept note"})
		require.NoError(t, err)

		admin := db.Admin(t)
		var row struct {
			Profile []byte `bun:"profile_sealed"`
			Email   string `bun:"email_index"`
			Phone   string `bun:"phone_index"`
		}
		require.NoError(t, admin.NewRaw("SELECT profile_sealed, email_index, phone_index FROM ? WHERE id = ?",
			bun.Ident(crm.TableContacts), gone.ID).Scan(context.Background(), &row.Profile, &row.Email, &row.Phone))
		require.Greater(t, len(row.Profile), 32)
		require.NotEmpty(t, row.Email)
		require.NotEmpty(t, row.Phone)
		traces := []string{string(row.Profile), row.Email, row.Phone}
		inFiles := func() []string {
			var in []string
			for _, p := range []string{db.Path, db.Path + "-wal"} {
				b, err := os.ReadFile(p)
				if !os.IsNotExist(err) {
					require.NoError(t, err)
				}
				for i, tr := range traces {
					if bytes.Contains(b, []byte(tr)) {
						in = append(in, []string{"sealed profile", "e-mail index", "phone index"}[i]+" in "+strings.TrimPrefix(p, db.Path)+" (\"\" is the database file)")
					}
				}
			}
			return in
		}
		if db.Name == "sqlite" {
			require.NotEmpty(t, inFiles(), "the contact is in the file or its log before the delete: the scan is not vacuous")
		}

		require.NoError(t, c.Delete(ctx, gone.ID))
		_, err = c.Get(ctx, gone.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)

		hits, err := leakscan.Tables(context.Background(), admin, []string{gone.ID, row.Email, row.Phone})
		require.NoError(t, err)
		for _, h := range hits {
			if strings.HasPrefix(h.Where, tenancy.TableAuditLog+".") {
				continue // the audit log names records by id, by design
			}
			t.Errorf("a trace of the deleted contact: %s", h)
		}
		if db.Name == "sqlite" {
			_, err = db.DB.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)") // what SQLite's automatic checkpoint does
			require.NoError(t, err)
			require.Empty(t, inFiles(), "the deleted contact lingers on disk")
		}

		// The other contact and its note are kept.
		got, err := c.Get(ctx, kept.ID)
		require.NoError(t, err)
		require.Equal(t, "Zqkeptfirst", got.FirstName)
		notes, err := sdk.CRM.Notes().List(ctx, crm.NoteFilter{ContactID: kept.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, notes.Items, 1)
	}, migrated)
}
