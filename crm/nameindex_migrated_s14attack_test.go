package crm

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestS14AttackNamesOfMigratedContacts: contacts written by the release
// before migration 20261123000570 (one name index row per prefix of every
// name word, written from name_tokens; no name_index) and migrated to
// this release (whose name index rows have no b-tree on contact_id, found
// through the tokens of name_index alone) leave no name index row behind
// when erased by contact id, deleted, renamed, or merged away as a
// duplicate; a renamed one's export holds exactly her new rows; a
// namesake in another tenant keeps hers; and the rows stay exactly the
// contacts' keyed tokens, none twice. On SQLite (no rows in that table)
// the FTS5 index is checked instead.
func TestS14AttackNamesOfMigratedContacts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		// The release before 20261123000570 had none of the migrations
		// from it on: an upgrade runs them all, in order (the keyed
		// triggers of 20261209010000 and the drop of the contact_id
		// b-tree of 20261211010000 after the name_index column exists).
		var later []string
		for _, m := range append(append(coreMigrations(), commerceMigrations()...), claimMigrations()...) {
			if m.version >= "20261123000570" {
				later = append(later, m.version)
			}
		}
		before := migrationsWithout(later...)
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), before))
		dbtest.GrantApp(t, db)
		v, err := vault.New(db.DB, testkit.NewKEK(t))
		require.NoError(t, err)
		s, err := New(db.DB, v)
		require.NoError(t, err)
		pg := db.Name == "postgres"
		raw := db.Admin(t)

		var tenants []context.Context
		var ids [][]string
		for ti := range 2 {
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			_, err := v.EnsureKey(tctx)
			require.NoError(t, err)
			tid, _ := tenancy.TenantID(tctx)
			var tids []string
			for i := range 5 {
				c := Contact{ContactInput: ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d.%d@example.com", ti, i)}}
				c.normalize()
				c.stamp(time.Now().UTC())
				require.NoError(t, s.Contacts().seal(tctx, &c))
				b, err := json.Marshal(c.nameTokens)
				require.NoError(t, err)
				field := func(name, value string) any {
					sealed, err := v.Seal(tctx, []byte(value), vault.Binding{Record: c.ID, Field: name})
					require.NoError(t, err)
					return sealed
				}
				_, err = raw.ExecContext(ctx, `INSERT INTO socialcrm_crm_contacts (tenant_id, id, created_at, updated_at, version, stage, source,
					first_name_sealed, last_name_sealed, email_sealed, email_index, name_tokens) VALUES (?, ?, ?, ?, 1, 'lead', '', ?, ?, ?, ?, ?)`,
					tid, c.ID, c.CreatedAt, c.UpdatedAt, field("first_name", c.FirstName), field("last_name", c.LastName), field("email", c.Email),
					c.EmailIndex, string(b))
				require.NoError(t, err)
				tids = append(tids, c.ID)
			}
			tenants, ids = append(tenants, tctx), append(ids, tids)
		}
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		dbtest.GrantApp(t, db) // the tables the upgrade created

		rows := func(id string) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+TableContactNames+" WHERE contact_id = ?", id).Scan(ctx, &n))
			return n
		}
		exact := func() {
			t.Helper()
			if !pg {
				requireFTSExact(t, raw)
				var n int
				require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+TableContactNames).Scan(ctx, &n))
				require.Zero(t, n, "the b-tree table stays empty on SQLite")
				return
			}
			tokens := "SELECT c.tenant_id, j, c.id FROM socialcrm_crm_contacts c," +
				" unnest(c.name_index[1:coalesce(array_position(c.name_index, '') - 1, cardinality(c.name_index))]) j"
			all := "SELECT tenant_id, token, contact_id FROM " + TableContactNames
			for q, what := range map[string]string{
				"SELECT count(*) FROM (" + tokens + " EXCEPT " + all + ") x":                                     "tokens missing from the name index",
				"SELECT count(*) FROM (" + all + " EXCEPT " + tokens + ") x":                                     "name index rows of no contact's tokens",
				"SELECT count(*) FROM (" + all + " GROUP BY tenant_id, token, contact_id HAVING count(*) > 1) x": "name index rows written twice",
			} {
				var n int
				require.NoError(t, raw.NewRaw(q).Scan(ctx, &n))
				require.Zero(t, n, what)
			}
		}
		exact()
		a, tid := tenants[0], ids[0]
		tenants0ID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		if pg {
			for _, id := range tid {
				require.Equal(t, len("ada")+len("lovelace"), rows(id), "a migrated contact keeps a row per prefix")
			}
		}
		namesake := rows(ids[1][0])

		eng, err := retention.New(db.DB)
		require.NoError(t, err)
		require.NoError(t, eng.Register(s.Categories()...))
		for kind, r := range s.Resolvers() {
			require.NoError(t, eng.RegisterResolver(kind, r))
		}
		submit := func(kind retention.RequestKind, subject map[string]string) retention.Request {
			t.Helper()
			r, err := eng.Submit(a, retention.Request{Kind: kind, Subject: subject})
			require.NoError(t, err)
			r, err = eng.SetVerification(a, r.ID, retention.VerificationVerified)
			require.NoError(t, err)
			return r
		}

		// Erased by contact id, and by e-mail address.
		for _, subject := range []map[string]string{{SubjectContact: tid[0]}, {SubjectEmail: "ada0.1@example.com"}} {
			rc, err := eng.Erase(a, submit(retention.KindErasure, subject).ID)
			require.NoError(t, err)
			var names int64
			for _, c := range rc.Categories {
				if c.Category == "crm.contact_name" {
					names += c.Erased
				}
			}
			if pg {
				require.Equal(t, int64(len("ada")+len("lovelace")), names, "the receipt counts every old row of %v", subject)
			}
		}
		// Deleted.
		require.NoError(t, s.Contacts().Delete(a, tid[2]))
		// Renamed.
		c, err := s.Contacts().Get(a, tid[3])
		require.NoError(t, err)
		_, err = s.Contacts().Update(a, c.ID, c.Version, ContactInput{FirstName: "Augusta", LastName: "King", Email: c.Email})
		require.NoError(t, err)
		// Merged away as a duplicate of the renamed one.
		_, err = s.Contacts().Merge(a, tid[3], tid[4])
		require.NoError(t, err)
		for _, id := range []string{tid[0], tid[1], tid[2], tid[4]} {
			require.Zero(t, rows(id), "a name row of %s is left", id)
		}
		exact()
		renamed := rows(tid[3])
		if pg {
			require.Equal(t, NameRows("augusta", "king"), renamed, "the renamed contact's rows are her new name's keyed prefixes")
		}
		// Her export holds exactly her rows; then her erasure takes them.
		var buf bytes.Buffer
		_, err = eng.Export(a, submit(retention.KindAccess, map[string]string{SubjectContact: tid[3]}).ID, &buf)
		require.NoError(t, err)
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err)
		exported := map[string]int{}
		for _, f := range zr.File {
			if f.Name != "crm.contact_name.json" {
				continue
			}
			rc, err := f.Open()
			require.NoError(t, err)
			var rows []map[string]any
			require.NoError(t, json.NewDecoder(rc).Decode(&rows))
			rc.Close()
			for _, r := range rows {
				exported[fmt.Sprint(r["contact_id"])]++
			}
		}
		want := map[string]int{}
		if renamed > 0 {
			want[tid[3]] = renamed
		}
		require.Equal(t, want, exported, "her export holds exactly her name rows")
		_, err = eng.Erase(a, submit(retention.KindErasure, map[string]string{SubjectContact: tid[3]}).ID)
		require.NoError(t, err)
		require.Zero(t, rows(tid[3]))
		var left int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+TableContactNames+" WHERE tenant_id = ?", tenants0ID).Scan(ctx, &left))
		require.Zero(t, left, "a name row is left in the tenant")
		require.Equal(t, namesake, rows(ids[1][0]), "the other tenant's namesake keeps her rows")
		exact()
	})
}
