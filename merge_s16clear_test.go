package socialcrm_test

import (
	"context"
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

// TestS16ClearMergeRecordsGoWithTheTenant: the ids Merge records (merged
// contact → kept contact) are in the data map, reach the kept contact
// through the SDK's resolvers (an export by the merged id finds her), and
// a tenant purge removes them, while another tenant's stay.
func TestS16ClearMergeRecordsGoWithTheTenant(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx, clk := context.Background(), fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		mapped := false
		for _, c := range sdk.Retention.DataMap().Categories {
			mapped = mapped || c.Table == crm.TableContactMerges
		}
		require.True(t, mapped, "the merge records are in the data map")
		merged := func(name string) (context.Context, string) {
			t.Helper()
			_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "O"}})
			require.NoError(t, err)
			a := tenancy.WithPrincipal(ctx, owner.Principal())
			keep, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: "Kept", Email: "kept@example.com"})
			require.NoError(t, err)
			dup, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: "Dup", Email: "dup@example.com"})
			require.NoError(t, err)
			_, err = sdk.CRM.Contacts().Merge(a, keep.ID, dup.ID)
			require.NoError(t, err)
			return a, dup.ID
		}
		a, dupID := merged("purged")
		merged("kept")
		count := func() map[string]int {
			t.Helper()
			var rows []struct {
				TenantID string `bun:"tenant_id"`
				N        int    `bun:"n"`
			}
			require.NoError(t, db.Admin(t).NewRaw("SELECT tenant_id, count(*) AS n FROM "+crm.TableContactMerges+" GROUP BY tenant_id").Scan(ctx, &rows))
			out := map[string]int{}
			for _, r := range rows {
				out[r.TenantID] = r.N
			}
			return out
		}
		require.Len(t, count(), 2)

		x := submitVerified(t, sdk, a, retention.KindExport, map[string]string{crm.SubjectContact: dupID})
		m, err := sdk.Retention.Export(a, x.ID, discard{})
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		rows := map[string]int64{}
		for _, c := range m.Categories {
			rows[c.Name] = c.Rows
		}
		require.EqualValues(t, 1, rows["crm.contact"], "the merged id reaches the kept contact: %v", rows)

		_, err = sdk.Tenants.CloseTenant(a, time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		res, err := sdk.Retention.PurgeTenants(tenancy.System(ctx, "test"), clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		p, _ := tenancy.FromContext(a)
		left := count()
		require.Zero(t, left[p.TenantID], "the purged tenant's merge record is gone")
		require.Len(t, left, 1, "the other tenant's stays")
	}, migrated)
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
