package crm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestCreatePlanOnColdTable: on a table of a few contacts whose statistics
// were never taken (a new installation; the plan a connection keeps for
// Create's prepared statement until the next ANALYZE), Create's duplicate
// checks look the e-mail address up in the e-mail index and the phone
// number in the phone index, as the application's role plans them, not in
// another index of the tenant's contacts filtered row by row (which grew
// with the tenant: migration 20261123000595).
func TestCreatePlanOnColdTable(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		h := &captureHook{}
		e.db.AddQueryHook(h)
		for i := range 6 {
			in := crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprint("Lovelace", i), Email: fmt.Sprintf("cold%d@example.com", i),
				Phone: fmt.Sprintf("+1415555%04d", i), Birthday: crm.Birthday{Month: 12, Day: 10}}
			_, err := e.store.Contacts().Create(e.A, in)
			require.NoError(t, err)
		}
		q := h.last("INSERT INTO", crm.TableContacts, "email_index")
		if e.db.Name == "postgres" {
			// Create's statement looks nothing up: the holders' unique
			// index checks it (create_pgclaim.go). The look-ups run in
			// socialcrm_crm_contact_unclaimed, called by a create in a
			// caller's transaction: plan its query with the last
			// contact's values.
			require.Contains(t, q, "email_claim, phone_claim", "the create's statement marks its contact:\n%s", q)
			require.NotContains(t, q, "socialcrm_crm_contact_unclaimed", "the create's statement:\n%s", q)
			var tid, email, phone string
			require.NoError(t, e.db.Admin(t).NewRaw("SELECT tenant_id, email_index, phone_index FROM "+crm.TableContacts+" ORDER BY id DESC LIMIT 1").
				Scan(context.Background(), &tid, &email, &phone))
			lit := func(s string) string { return "'" + s + "'" }
			q = "SELECT " + strings.NewReplacer("p_tenant", lit(tid), "p_email", lit(email), "p_phone", lit(phone)).Replace(crm.PgUnclaimedLookup) +
				" FROM " + crm.TableContacts + " WHERE tenant_id = " + lit(tid) + " LIMIT 1"
		}
		plan := explainPlan(t, e, q, false)
		if e.db.Name == "sqlite" {
			require.Regexp(t, `SEARCH ct USING (COVERING )?INDEX socialcrm_crm_contacts_email_id \(tenant_id=\? AND email_index=\?\)`, plan, "create:\n%s", plan)
			require.Regexp(t, `SEARCH ct USING (COVERING )?INDEX socialcrm_crm_contacts_phone_id \(tenant_id=\? AND phone_index=\?\)`, plan, "create:\n%s", plan)
			return
		}
		require.Regexp(t, `Index (Only )?Scan using socialcrm_crm_contacts_email_id on socialcrm_crm_contacts ct\b`, plan, "create:\n%s", plan)
		require.Regexp(t, `Index (Only )?Scan using socialcrm_crm_contacts_phone_id on socialcrm_crm_contacts ct_1\b`, plan, "create:\n%s", plan)
		require.NotContains(t, plan, "Filter: ((email_index", "create:\n%s", plan)
		require.NotContains(t, plan, "Filter: ((phone_index", "create:\n%s", plan)
		require.NotContains(t, plan, "Seq Scan", "create:\n%s", plan)
	})
}

// TestNamesBeforeInsertMigration: on PostgreSQL the name index rows of a
// new contact are written by a BEFORE INSERT trigger (migration
// 20261206080200), the index stays exact through creates that insert and
// creates that a duplicate stops, and the migration run again changes
// nothing.
func TestNamesBeforeInsertMigration(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return
		}
		ctx := context.Background()
		raw := e.db.Admin(t)
		timing := func() (before bool, n int) {
			t.Helper()
			require.NoError(t, raw.NewRaw(`SELECT count(*), coalesce(bool_and(tgtype & 2 = 2), false) FROM pg_trigger
				WHERE tgname = 'socialcrm_crm_contact_name_index_insert' AND tgrelid = 'socialcrm_crm_contacts'::regclass`).Scan(ctx, &n, &before))
			return before, n
		}
		before, n := timing()
		require.Equal(t, 1, n)
		require.True(t, before, "the insert trigger runs before the row is inserted")
		contacts := e.store.Contacts()
		_, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
		require.NoError(t, err)
		require.NoError(t, crm.RunMigration(ctx, e.db.ReopenOwner(t), "20261206080200"), "run again")
		before, n = timing()
		require.Equal(t, [2]any{1, true}, [2]any{n, before})
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Byron", Email: "ada@example.com"})
		var dup *crm.DuplicateError
		require.ErrorAs(t, err, &dup, "a duplicate stores nothing, name index rows included")
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Grace", LastName: "Hopper"})
		require.NoError(t, err)
		requireNameIndexExact(t, e)
		var rows int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names").Scan(ctx, &rows))
		require.Equal(t, nameRows(e, "ada", "lovelace", "grace", "hopper"), rows)
	})
}

// TestOwnerFilterUsesPartialIndex: the contacts' owner index holds only
// contacts that have an owner (on PostgreSQL since migration
// 20261208020000; on SQLite since the name index's), a list filtered by
// owner still finds exactly the owner's contacts through it, and on
// PostgreSQL the migration run again changes nothing.
func TestOwnerFilterUsesPartialIndex(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		h := &captureHook{}
		e.db.AddQueryHook(h)
		owner := tenancy.NewID()
		contacts := e.store.Contacts()
		for i := range 4 {
			in := crm.ContactInput{FirstName: fmt.Sprint("Owned", i)}
			if i%2 == 0 {
				in.OwnerID = owner
			}
			_, err := contacts.Create(e.A, in)
			require.NoError(t, err)
		}
		check := func() {
			t.Helper()
			page, err := contacts.List(e.A, crm.ContactFilter{OwnerID: owner}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, page.Items, 2)
			for _, c := range page.Items {
				require.Equal(t, owner, c.OwnerID)
			}
			plan := explainPlan(t, e, h.last("SELECT", crm.TableContacts, "owner_id = '"+owner+"'"), true)
			require.Contains(t, plan, "socialcrm_crm_contacts_owner", "owner filter:\n%s", plan)
			var def string
			if e.db.Name == "sqlite" {
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT sql FROM sqlite_master WHERE name = 'socialcrm_crm_contacts_owner'").Scan(ctx, &def))
			} else {
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT indexdef FROM pg_indexes WHERE indexname = 'socialcrm_crm_contacts_owner'").Scan(ctx, &def))
			}
			require.Regexp(t, `WHERE \(?owner_id IS NOT NULL\)?$`, def)
		}
		check()
		if e.db.Name == "postgres" {
			require.NoError(t, crm.RunMigration(ctx, e.db.ReopenOwner(t), "20261208020000"), "run again")
			check()
		}
	})
}
