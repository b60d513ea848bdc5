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

// TestNamesNarrowMigration: the name search, renames and deletes find
// exactly the contacts they should on both databases; on PostgreSQL the
// name index table has, after migrations 20261207010000 and
// 20261211010000, no primary key and one b-tree, on token (without
// tenant_id), the search looks the token up in it, so does the delete of
// the rename and delete triggers (planned as the application's role), and
// the migrations convert a table of the old shape with its rows in place,
// and change nothing when run again.
func TestNamesNarrowMigration(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		contacts := e.store.Contacts()
		names := func(tctx context.Context, prefix string) []string {
			t.Helper()
			p, err := contacts.List(tctx, crm.ContactFilter{NamePrefix: prefix}, crm.ListOptions{Limit: 100})
			require.NoError(t, err)
			var out []string
			for _, c := range p.Items {
				out = append(out, c.FirstName+" "+c.LastName)
			}
			return out
		}
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Adam", LastName: "Smith"})
		require.NoError(t, err)
		_, err = contacts.Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: "Byron"})
		require.NoError(t, err)
		check := func() {
			t.Helper()
			require.ElementsMatch(t, []string{"Ada Lovelace", "Adam Smith"}, names(e.A, "ad"))
			require.Equal(t, []string{"Ada Lovelace"}, names(e.A, "ada lov"))
			require.Equal(t, []string{"Ada Byron"}, names(e.B, "ada"), "B's search finds B's contact only")
			require.Empty(t, names(e.A, "byr"), "A's search finds none of B's")
			requireNameIndexExact(t, e)
		}
		check()
		if e.db.Name == "postgres" {
			raw := e.db.Admin(t)
			shape := func() (pkeys int, indexes []string) {
				t.Helper()
				require.NoError(t, raw.NewRaw(`SELECT count(*) FROM pg_constraint
					WHERE conrelid = 'socialcrm_crm_contact_names'::regclass AND contype = 'p'`).Scan(ctx, &pkeys))
				require.NoError(t, raw.NewRaw(`SELECT indexname || ' ' || regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes
					WHERE schemaname = current_schema() AND tablename = 'socialcrm_crm_contact_names' ORDER BY indexname`).Scan(ctx, &indexes))
				return pkeys, indexes
			}
			want := []string{"socialcrm_crm_contact_names_token btree (token)"}
			pkeys, indexes := shape()
			require.Zero(t, pkeys)
			require.Equal(t, want, indexes)

			// The search's look-up, planned as the application's role under
			// row-level security (sequential scans off: the table is tiny).
			h := &captureHook{}
			e.db.AddQueryHook(h)
			names(e.A, "lov")
			plan := explainPlan(t, e, h.last("SELECT", crm.TableContactNames), true)
			require.Regexp(t, `Index (Only )?Scan (using|on) socialcrm_crm_contact_names_token\b`, plan, "name prefix:\n%s", plan)
			require.Contains(t, plan, "Index Cond: (token = ", "name prefix:\n%s", plan)

			// The triggers' delete of a contact's rows (pgNameIndexFunc's,
			// with the contact's values), as the application's role in the
			// contact's tenant under row-level security: through the token
			// b-tree, not a scan of the table.
			var tenant, index string
			require.NoError(t, raw.NewRaw("SELECT tenant_id, name_index::text FROM socialcrm_crm_contacts WHERE id = ?", ada.ID).Scan(ctx, &tenant, &index))
			var lines []string
			require.NoError(t, tenancy.RunInTx(owner(tenant), e.db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
					return err
				}
				return tx.NewRaw(`EXPLAIN DELETE FROM socialcrm_crm_contact_names
					WHERE token = ANY(?::text[]) AND tenant_id = ? AND contact_id = ?`, index, tenant, ada.ID).Scan(ctx, &lines)
			}))
			plan = strings.Join(lines, "\n")
			require.Regexp(t, `(Bitmap Index|Index) Scan (using|on) socialcrm_crm_contact_names_token\b`, plan, "trigger's delete:\n%s", plan)
			require.Contains(t, plan, "(token = ANY (", "trigger's delete:\n%s", plan)
			require.NotContains(t, plan, "Seq Scan", "trigger's delete:\n%s", plan)

			// The old shape, rows in place: the migration converts it, and
			// run again changes nothing.
			owner := e.db.ReopenOwner(t)
			for _, q := range []string{
				`DROP INDEX socialcrm_crm_contact_names_token`,
				`ALTER TABLE socialcrm_crm_contact_names ADD PRIMARY KEY (tenant_id, token, contact_id)`,
				`CREATE INDEX socialcrm_crm_contact_names_contact ON socialcrm_crm_contact_names (tenant_id, contact_id)`,
			} {
				_, err := owner.ExecContext(ctx, q)
				require.NoError(t, err, q)
			}
			pkeys, _ = shape()
			require.Equal(t, 1, pkeys)
			for range 2 {
				require.NoError(t, crm.RunMigration(ctx, owner, "20261207010000"))
				require.NoError(t, crm.RunMigration(ctx, owner, "20261211010000"))
				pkeys, indexes = shape()
				require.Zero(t, pkeys)
				require.Equal(t, want, indexes)
				check()
			}
		}
		// A rename and a delete rewrite and remove the contact's rows
		// (found by their tokens on PostgreSQL).
		ada, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Ada", LastName: "King"})
		require.NoError(t, err)
		require.Empty(t, names(e.A, "lov"))
		require.Equal(t, []string{"Ada King"}, names(e.A, "kin"))
		requireNameIndexExact(t, e)
		require.NoError(t, contacts.Delete(e.A, ada.ID))
		require.Equal(t, []string{"Adam Smith"}, names(e.A, "ad"))
		require.Equal(t, []string{"Ada Byron"}, names(e.B, "ada"))
		requireNameIndexExact(t, e)
	})
}
