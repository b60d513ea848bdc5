package socialcrm_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/retention"
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

// TestS9AuditRawPagesLogAndDeadTuples plants a canary in every personal
// field of the crm records and scans what a file-level reader of the
// database gets, below the SQL the other scans use: on SQLite the
// database file, its write-ahead log and its shared-memory index; on
// PostgreSQL the raw pages of every relation of the schema (tables,
// indexes, TOAST tables and their indexes — free space and dead tuples
// included, as a copy of the relation files holds them) and the
// write-ahead log segments written since the test began. None holds a
// canary in clear, before or after one person is erased. After the
// erasure, the erased contact's row is gone from the SQLite file and
// log; on PostgreSQL it stays as a dead tuple holding only sealed
// bytes and keyed indexes until VACUUM (autovacuum, or the owner role)
// reclaims it, which the test shows, as retention's doc says.
func TestS9AuditRawPagesLogAndDeadTuples(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		admin := db.Admin(t)
		var started string // PostgreSQL: the write-ahead log segment written when the test began
		if db.Name == "postgres" {
			_, err := admin.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pageinspect")
			require.NoError(t, err, "pageinspect (PostgreSQL's contrib) reads the raw pages")
			require.NoError(t, admin.NewRaw("SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(ctx, &started))
		}
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "s9audit-raw-a")
		b := dsarTenant(t, sdk, "s9audit-raw-b")
		var c, k canaries
		seedEveryField(t, a, sdk.CRM, &c)
		seedEveryField(t, b, sdk.CRM, &k)
		all := slices.Concat(c.all, k.all) // the same values in both tenants: seedEveryField numbers them alike
		page, err := sdk.CRM.Contacts().List(a, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		ann := page.Items[0]
		require.Equal(t, c.all[0], ann.FirstName, "the API gives the values back: the scans are not vacuous")
		var sealed []byte
		require.NoError(t, admin.NewRaw("SELECT profile_sealed FROM ? WHERE id = ?", bun.Ident(crm.TableContacts), ann.ID).Scan(ctx, &sealed))
		require.Greater(t, len(sealed), 32)

		scan := func(when string) (sealedFound bool) {
			t.Helper()
			var where []string
			var blobs [][]byte
			if db.Name == "sqlite" {
				for _, p := range []string{db.Path, db.Path + "-wal", db.Path + "-shm"} {
					b, err := os.ReadFile(p)
					if !os.IsNotExist(err) {
						require.NoError(t, err)
					}
					where, blobs = append(where, "sqlite file"+strings.TrimPrefix(p, db.Path)), append(blobs, b)
				}
			} else {
				var rels []string
				require.NoError(t, admin.NewRaw(`
					WITH own AS (
						SELECT oid, reltoastrelid FROM pg_class
						WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'i', 'm')
					), toast AS (
						SELECT reltoastrelid AS oid FROM own WHERE reltoastrelid <> 0
					)
					SELECT oid::regclass::text FROM own
					UNION SELECT oid::regclass::text FROM toast
					UNION SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid IN (SELECT oid FROM toast)
					ORDER BY 1`).Scan(ctx, &rels))
				require.Greater(t, len(rels), 50, "every relation of the migrated schema")
				for _, rel := range rels {
					var pages [][]byte
					require.NoError(t, admin.NewRaw(`SELECT get_raw_page(?, n::int) FROM generate_series(0, pg_relation_size(?::regclass) / current_setting('block_size')::int - 1) AS n`,
						rel, rel).Scan(ctx, &pages), rel)
					for _, p := range pages {
						where, blobs = append(where, "pages of "+rel), append(blobs, p)
					}
				}
				// Tests commit without waiting for the log to reach the
				// disk: write it out before reading its files.
				db.FlushLog(t)
				var segs []string
				require.NoError(t, admin.NewRaw("SELECT name FROM pg_ls_waldir() WHERE name >= ? AND name <= pg_walfile_name(pg_current_wal_lsn()) ORDER BY name",
					started).Scan(ctx, &segs))
				require.NotEmpty(t, segs, "the write-ahead log written since the test began")
				for _, s := range segs {
					var b []byte
					// missing_ok: a segment may be recycled meanwhile.
					require.NoError(t, admin.NewRaw("SELECT pg_read_binary_file(?::text, 0, 67108864, true)", "pg_wal/"+s).Scan(ctx, &b))
					where, blobs = append(where, "write-ahead log "+s), append(blobs, b)
				}
			}
			for i, b := range blobs {
				for _, h := range leakscan.Bytes(where[i], b, all) {
					t.Errorf("%s: plaintext on disk: %s", when, h)
				}
				if bytes.Contains(b, sealed) && !strings.HasPrefix(where[i], "write-ahead log") {
					sealedFound = true
					t.Logf("%s: the contact's sealed profile is in %s", when, where[i])
				}
			}
			return sealedFound
		}
		require.True(t, scan("seeded"), "the sealed profile is found where the scan looks: the scan is not vacuous")

		x := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{crm.SubjectEmail: " " + strings.ToUpper(ann.Email)})
		rc, err := sdk.Retention.Erase(a, x.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, rc.Outcome)
		_, err = sdk.CRM.Contacts().Get(a, ann.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		left := scan("erased")
		if db.Name == "sqlite" {
			require.False(t, left, "the erased contact's row is gone from the SQLite file and its log (secure_delete, TRUNCATE checkpoint)")
			return
		}
		// PostgreSQL: the erased row is a dead tuple, sealed, until VACUUM
		// reclaims it; the application role may not run it (it owns no
		// table), the owner role and autovacuum do.
		var dead int
		require.NoError(t, admin.NewRaw(`SELECT count(*) FROM generate_series(0, pg_relation_size(?::regclass) / current_setting('block_size')::int - 1) AS n,
			heap_page_items(get_raw_page(?, n::int)) AS h WHERE h.t_data IS NOT NULL AND position(? IN h.t_data) > 0`,
			crm.TableContacts, crm.TableContacts, sealed).Scan(ctx, &dead))
		require.Equal(t, 1, dead, "after the erasure, the row is a dead tuple, its profile sealed")
		// The application role, on a plain connection: PostgreSQL skips a
		// table its role does not own (a warning, no error).
		conn, err := pgx.Connect(ctx, db.DSN())
		require.NoError(t, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "VACUUM "+crm.TableContacts)
		require.NoError(t, err)
		require.NoError(t, admin.NewRaw(`SELECT count(*) FROM generate_series(0, pg_relation_size(?::regclass) / current_setting('block_size')::int - 1) AS n,
			heap_page_items(get_raw_page(?, n::int)) AS h WHERE h.t_data IS NOT NULL AND position(? IN h.t_data) > 0`,
			crm.TableContacts, crm.TableContacts, sealed).Scan(ctx, &dead))
		require.Equal(t, 1, dead, "the application role cannot vacuum: it owns no table")
		_, err = db.Owner.ExecContext(ctx, "VACUUM "+crm.TableContacts)
		require.NoError(t, err)
		require.NoError(t, admin.NewRaw(`SELECT count(*) FROM generate_series(0, pg_relation_size(?::regclass) / current_setting('block_size')::int - 1) AS n,
			heap_page_items(get_raw_page(?, n::int)) AS h WHERE h.t_data IS NOT NULL AND position(? IN h.t_data) > 0`,
			crm.TableContacts, crm.TableContacts, sealed).Scan(ctx, &dead))
		require.Equal(t, 0, dead, "VACUUM by the owner role reclaims the dead tuple")
		scan("vacuumed")
	}, migrated)
}
