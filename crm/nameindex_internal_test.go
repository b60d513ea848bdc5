package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestNameIndexMigrationMovesOldRows builds the schema of the release
// before migration 20261123000570, writes contacts as that release wrote
// them (the INSERT carried the tokens in name_tokens, its trigger wrote one
// TableContactNames row per token and cleared the column), then migrates:
// each contact's tokens are copied into its name_index, the rows stay and
// match the arrays exactly, the old trigger (and its function) and column
// are gone and the new triggers in place, name search finds every
// contact in its own tenant only, running the migration again changes
// nothing, and a rename afterwards moves the migrated contact's index.
func TestNameIndexMigrationMovesOldRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		// and the profile and the SQLite FTS5 index, which came later
		before := migrationsWithout("20261123000570", "20261123000580", "20261123000590", "20261123000595", "20261208010000")
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), before))
		dbtest.GrantApp(t, db)
		v, err := vault.New(db.DB, testkit.NewKEK(t))
		require.NoError(t, err)
		s, err := New(db.DB, v)
		require.NoError(t, err)
		pg := db.Name == "postgres"

		raw := db.Admin(t) // the old release's rows, written as it wrote them
		tenants := []context.Context{}
		ids := map[int][]string{}
		tokens := 0
		for ti := range 2 {
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			_, err := v.EnsureKey(tctx)
			require.NoError(t, err)
			tenants = append(tenants, tctx)
			tid, _ := tenancy.TenantID(tctx)
			for i := range 6 {
				c := Contact{ContactInput: ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("Lovelace%c", 'a'+i)}}
				if i == 5 {
					c.ContactInput = ContactInput{Email: fmt.Sprintf("noname%d@example.com", ti)} // no name: no tokens
				}
				c.normalize()
				c.stamp(time.Now().UTC())
				require.NoError(t, s.Contacts().seal(tctx, &c))
				var old any
				if len(c.nameTokens) > 0 {
					b, err := json.Marshal(c.nameTokens)
					require.NoError(t, err)
					old, tokens = string(b), tokens+len(c.nameTokens)
				}
				// That release sealed each field on its own.
				field := func(name, value string) any {
					if value == "" {
						return nil
					}
					sealed, err := v.Seal(tctx, []byte(value), vault.Binding{Record: c.ID, Field: name})
					require.NoError(t, err)
					return sealed
				}
				_, err := raw.ExecContext(ctx, `INSERT INTO socialcrm_crm_contacts (tenant_id, id, created_at, updated_at, version, stage, source,
					first_name_sealed, last_name_sealed, email_sealed, email_index, name_tokens) VALUES (?, ?, ?, ?, 1, 'lead', '', ?, ?, ?, ?, ?)`,
					tid, c.ID, c.CreatedAt, c.UpdatedAt, field("first_name", c.FirstName), field("last_name", c.LastName), field("email", c.Email),
					nullIfEmpty(c.EmailIndex), old)
				require.NoError(t, err)
				ids[ti] = append(ids[ti], c.ID)
			}
		}
		count := func(q string) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw(q).Scan(ctx, &n))
			return n
		}
		require.Equal(t, tokens, count("SELECT count(*) FROM socialcrm_crm_contact_names"), "the old release's index rows")
		require.Zero(t, count("SELECT count(*) FROM socialcrm_crm_contacts WHERE name_tokens IS NOT NULL"), "cleared at rest")

		migrated := func() {
			t.Helper()
			for _, col := range []string{"name_tokens"} {
				has, err := hasColumn(ctx, raw, TableContacts, col)
				require.NoError(t, err)
				require.False(t, has, col)
			}
			tokensOfRows := "SELECT c.tenant_id, j.value, c.id FROM socialcrm_crm_contacts c, json_each(c.name_index) j"
			triggers := "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?"
			if pg {
				tokensOfRows = "SELECT c.tenant_id, j, c.id FROM socialcrm_crm_contacts c, unnest(c.name_index) j"
				// This test's schema only: other tests' run beside it.
				triggers = "SELECT count(*) FROM pg_trigger WHERE tgname = ? AND tgrelid = 'socialcrm_crm_contacts'::regclass"
				require.Zero(t, count("SELECT count(*) FROM pg_proc WHERE proname = 'socialcrm_crm_contact_name_tokens' AND pronamespace = current_schema()::regnamespace"))
			}
			triggersWanted := map[string]int{"socialcrm_crm_contact_name_tokens": 0, "socialcrm_crm_contact_name_index_insert": 1,
				"socialcrm_crm_contact_name_index_update": 1, "socialcrm_crm_contact_name_index_delete": 1}
			if pg {
				require.Equal(t, tokens, count("SELECT count(*) FROM socialcrm_crm_contact_names"), "the rows stay")
				require.Equal(t, tokens, count("SELECT count(*) FROM ("+tokensOfRows+
					" INTERSECT SELECT tenant_id, token, contact_id FROM socialcrm_crm_contact_names) x"), "the rows are exactly the arrays' tokens")
			} else {
				// Migration 20261123000590 moved them into the FTS5 table.
				require.Zero(t, count("SELECT count(*) FROM socialcrm_crm_contact_names"), "the b-tree rows are gone")
				require.Equal(t, tokens, requireFTSExact(t, raw), "the FTS5 index holds exactly the arrays' tokens")
				for _, op := range []string{"insert", "update", "delete"} {
					triggersWanted["socialcrm_crm_contact_name_index_"+op] = 0
					triggersWanted["socialcrm_crm_contact_name_fts_"+op] = 1
				}
			}
			for trigger, n := range triggersWanted {
				var got int
				require.NoError(t, raw.NewRaw(triggers, trigger).Scan(ctx, &got))
				require.Equal(t, n, got, trigger)
			}
			require.Equal(t, 2, count("SELECT count(*) FROM socialcrm_crm_contacts WHERE name_index IS NULL"), "the contacts without a name")
			for ti, tctx := range tenants {
				for i := range 5 {
					p, err := s.Contacts().List(tctx, ContactFilter{NamePrefix: fmt.Sprintf("lovelace%c ad", 'a'+i)}, ListOptions{})
					require.NoError(t, err)
					require.Len(t, p.Items, 1)
					require.Equal(t, ids[ti][i], p.Items[0].ID, "found in its own tenant only")
				}
				p, err := s.Contacts().List(tctx, ContactFilter{NamePrefix: "lov"}, ListOptions{})
				require.NoError(t, err)
				require.Len(t, p.Items, 5)
			}
		}
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		migrated()
		// Run again (as a run that stopped after its work but before
		// recording it would be): nothing changes.
		require.NoError(t, db.Owner.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := migrateNameIndex(ctx, tx); err != nil {
				return err
			}
			return migrateNameFTS(ctx, tx)
		}))
		migrated()

		// A migrated contact renamed is found by its new name only.
		a := tenants[0]
		c, err := s.Contacts().Get(a, ids[0][0])
		require.NoError(t, err)
		_, err = s.Contacts().Update(a, c.ID, c.Version, ContactInput{FirstName: "Augusta", LastName: "King"})
		require.NoError(t, err)
		for q, want := range map[string]int{"lovelacea": 0, "augusta ki": 1, "ada": 4} {
			p, err := s.Contacts().List(a, ContactFilter{NamePrefix: q}, ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, want, q)
		}
	})
}
