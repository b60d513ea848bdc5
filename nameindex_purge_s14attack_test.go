package socialcrm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS14AttackPurgeUnderHoldLeavesNoNameRows: a closed tenant's purge
// under a subject hold on one of its contacts keeps that contact and
// exactly her name index rows (found, like the erasure's, through her
// name_index) and erases every other contact's — namesakes sharing all
// her tokens, and one renamed and one with her name removed before the
// closure; once the hold is released, the next purge leaves no name row
// of the tenant. The other tenant's namesake keeps hers throughout.
// SQLite keeps no rows in that table (its FTS5 index is attacked by
// TestTenantPurgeLeavesNoNameTokens): there the test checks the contacts.
func TestS14AttackPurgeUnderHoldLeavesNoNameRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		var tenants []string
		var owners []context.Context
		for _, name := range []string{"Kept", "Purged"} {
			tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: strings.ToLower(name) + "@example.com", Name: "O"}})
			require.NoError(t, err)
			tenants, owners = append(tenants, tn.ID), append(owners, tenancy.WithPrincipal(ctx, owner.Principal()))
		}
		contacts := sdk.CRM.Contacts()
		kept, err := contacts.Create(owners[0], crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		a := owners[1]
		var cs []crm.Contact
		for i := range 4 {
			c, err := contacts.Create(a, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", i)})
			require.NoError(t, err)
			cs = append(cs, c)
		}
		_, err = contacts.Update(a, cs[2].ID, cs[2].Version, crm.ContactInput{FirstName: "Ada", LastName: "King", Email: cs[2].Email})
		require.NoError(t, err)
		_, err = contacts.Update(a, cs[3].ID, cs[3].Version, crm.ContactInput{Email: cs[3].Email})
		require.NoError(t, err)

		raw := db.Admin(t)
		rows := func(where string, arg any) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE "+where+" = ?", arg).Scan(ctx, &n))
			return n
		}
		heldRows, keptRows := rows("contact_id", cs[0].ID), rows("contact_id", kept.ID)
		if db.Name == "postgres" {
			require.Greater(t, heldRows, 3, "one row per keyed prefix of her name")
		}
		h, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: crm.SubjectContact,
			SubjectValue: cs[0].ID, Reason: "litigation"})
		require.NoError(t, err)
		_, err = sdk.Tenants.CloseTenant(a, time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		sys := tenancy.System(ctx, "retention")
		_, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)

		// Under the hold: she and exactly her rows stay, nobody else's.
		require.Equal(t, heldRows, rows("contact_id", cs[0].ID), "the held contact's rows stay, all of them")
		require.Equal(t, heldRows, rows("tenant_id", tenants[1]), "no other contact's row is left in the purged tenant")
		var left []string
		require.NoError(t, raw.NewRaw("SELECT id FROM "+crm.TableContacts+" WHERE tenant_id = ?", tenants[1]).Scan(ctx, &left))
		require.Equal(t, []string{cs[0].ID}, left, "only the held contact stays")
		require.Equal(t, keptRows, rows("contact_id", kept.ID))

		_, err = sdk.Retention.ReleaseHold(a, h.ID)
		require.NoError(t, err)
		_, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Zero(t, rows("tenant_id", tenants[1]), "a name row of the purged tenant is left")
		left = nil
		require.NoError(t, raw.NewRaw("SELECT id FROM "+crm.TableContacts+" WHERE tenant_id = ?", tenants[1]).Scan(ctx, &left))
		require.Empty(t, left)
		require.Equal(t, keptRows, rows("contact_id", kept.ID), "the other tenant's namesake keeps her rows")
		p, err := contacts.List(owners[0], crm.ContactFilter{NamePrefix: "ada lov"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
	}, migrated)
}
