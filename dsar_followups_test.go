package socialcrm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// receiptOf returns the receipt's line for category (zero if none).
func receiptOf(rc retention.Receipt, category string) retention.CategoryReceipt {
	for _, c := range rc.Categories {
		if c.Category == category {
			return c
		}
	}
	return retention.CategoryReceipt{}
}

// TestEraseMetaUserCascadesToDerived: erasing a Facebook user's data by her
// app-scoped id erases the Page and Instagram connections made through her
// login, as Disconnect disconnects them, and the receipt counts the three.
func TestEraseMetaUserCascadesToDerived(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		w.connectMeta()
		tt := w.connectTikTok([]string{"profile"})
		tables := dsarTables(t, w.sdk)

		_, rc, _ := eraseCounted(t, w.sdk, w.ctx, tables, map[string]string{social.SubjectAccount: canaryFBUserID})
		require.Equal(t, int64(3), receiptOf(rc, social.CategoryConnection).Erased, "the user, her Page and its Instagram account: %+v", rc.Categories)
		for _, kind := range []string{"user", "page", "instagram"} {
			_, err := w.sdk.Social.Get(w.ctx, w.conns[kind].ID)
			require.ErrorIs(t, err, social.ErrNotFound, kind)
		}
		_, err := w.sdk.Social.Get(w.ctx, tt.ID)
		require.NoError(t, err, "a connection not made through hers stays")
	}, migrated)
}

// TestPurgeMakesQueuedRevokes: a revoke that failed at disconnect and
// waits in the queue is made by the tenant's purge before the tenant's key
// is destroyed; while the platform still fails, the purge stops before
// the key, keeping the queue, and the next run makes it. The platform
// counts one successful revoke.
func TestPurgeMakesQueuedRevokes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		conn := w.connectTikTok([]string{"profile"})
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})
		_, err := w.sdk.Social.Disconnect(w.ctx, conn.ID, w.ttProv)
		require.NoError(t, err)
		n, err := w.sdk.Social.PendingRevocations(w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		bind := vault.Binding{Record: "probe", Field: "probe"}
		sealed, err := w.sdk.Vault.Seal(w.ctx, []byte("probe"), bind)
		require.NoError(t, err)
		_, err = w.sdk.Tenants.CloseTenant(w.ctx, time.Hour)
		require.NoError(t, err)
		w.clk.Advance(2 * time.Hour)
		sys := tenancy.System(context.Background(), "retention")
		succeeded := func() int {
			n := 0
			for _, r := range w.tt.RequestsTo(tiktoktest.RevokePath) {
				if r.Status == http.StatusOK {
					n++
				}
			}
			return n
		}

		// The platform still fails: the purge keeps the queue and the key.
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		res, err := w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		_, err = w.sdk.Vault.Open(w.ctx, sealed, bind)
		require.NoError(t, err, "the key outlives a purge that could not revoke")
		require.Zero(t, succeeded())
		tctx, err := tenancy.AsTenant(sys, res[0].Tenant)
		require.NoError(t, err)
		n, err = w.sdk.Social.PendingRevocations(tctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "the queued revoke is kept")

		res, err = w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		require.Equal(t, 1, succeeded(), "the platform revoked the grant once")
		require.Len(t, w.tt.RequestsTo(tiktoktest.RevokePath), 3)
		_, err = w.sdk.Vault.Open(w.ctx, sealed, bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	}, migrated)
}

// TestEraseSparesLastOwner: an erasure by the e-mail address of the
// tenant's only owner keeps her member account (counted as kept, the
// receipt saying why) and erases the rest of her data (her contact); once
// the tenant has another owner, the same request erases the account.
func TestEraseSparesLastOwner(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		ctx := dsarTenant(t, sdk, "lastowner")
		const email = "owner@lastowner.example"
		owner, ok := tenancy.FromContext(ctx)
		require.True(t, ok)
		_, err := sdk.CRM.Contacts().Create(ctx, crm.ContactInput{FirstName: "Olga", Email: email})
		require.NoError(t, err)
		tables := dsarTables(t, sdk)

		_, rc, _ := eraseCounted(t, sdk, ctx, tables, map[string]string{crm.SubjectEmail: strings.ToUpper(email)})
		m := receiptOf(rc, "tenancy.member")
		require.Equal(t, int64(0), m.Erased, "%+v", rc.Categories)
		require.Equal(t, int64(1), m.Kept)
		require.True(t, strings.HasSuffix(m.Rule, "spared: "+retention.SpareLastOwner), m.Rule)
		require.Equal(t, int64(1), receiptOf(rc, "crm.contact").Erased, "the rest of her data goes")
		members, err := sdk.Tenants.Members(ctx)
		require.NoError(t, err)
		require.Len(t, members, 1)
		require.Equal(t, owner.MemberID, members[0].ID)
		require.Equal(t, tenancy.RoleOwner, members[0].Role)

		// A second owner: now she may go.
		_, err = sdk.Tenants.AddMember(ctx, tenancy.NewMember{Email: "second@lastowner.example", Name: "Sam", Role: tenancy.RoleOwner})
		require.NoError(t, err)
		_, rc, _ = eraseCounted(t, sdk, ctx, tables, map[string]string{crm.SubjectEmail: email})
		m = receiptOf(rc, "tenancy.member")
		require.Equal(t, int64(1), m.Erased, "%+v", rc.Categories)
		require.Zero(t, m.Kept)
		members, err = sdk.Tenants.Members(ctx)
		require.NoError(t, err)
		require.Len(t, members, 1)
		require.Equal(t, "second@lastowner.example", members[0].Email)
	}, migrated)
}

// TestEraseClientContact: a client whose billing e-mail address and phone
// number are a person's is found by either; her export holds them, and her
// erasure clears them while the client, its campaign and its invoice (kept
// for their legal period) stay. A client of another address is untouched.
func TestEraseClientContact(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		ctx := dsarTenant(t, sdk, "clients")
		const email, phone = "Pia.Billing@Example.com", "+14155550199"
		client, err := sdk.CRM.Clients().Create(ctx, crm.ClientInput{Name: "Pia's Studio", Email: email, Phone: phone})
		require.NoError(t, err)
		other, err := sdk.CRM.Clients().Create(ctx, crm.ClientInput{Name: "Other Ltd", Email: "billing@other.example", Phone: "+14155550100"})
		require.NoError(t, err)
		campaign, err := sdk.CRM.Campaigns().Create(ctx, crm.CampaignInput{ClientID: client.ID, Name: "Spring", Status: "planned", Currency: "EUR"})
		require.NoError(t, err)
		invoice, err := sdk.CRM.Invoices().Create(ctx, crm.InvoiceInput{Number: "INV-1", ClientID: client.ID, Currency: "EUR",
			Lines: []crm.LineItem{{Description: "post", Quantity: 1, UnitPrice: 1000}}, BillTo: crm.BillTo{Name: "Pia's Studio"}})
		require.NoError(t, err)

		for _, subject := range []map[string]string{{crm.SubjectEmail: " pia.billing@example.com "}, {crm.SubjectPhone: "+1 (415) 555-0199"}} {
			text, names, m := exportOf(t, sdk, ctx, subject)
			require.Equal(t, retention.OutcomeDataFound, m.Outcome, "%v", subject)
			require.ElementsMatch(t, []string{email, phone}, found(text, []string{email, phone}), "%v: %v", subject, names)
			require.Empty(t, found(text, []string{"billing@other.example", "+14155550100"}), "nothing of the other client")
		}

		er := submitVerified(t, sdk, ctx, retention.KindErasure, map[string]string{crm.SubjectEmail: email})
		rc, err := sdk.Retention.Erase(ctx, er.ID)
		require.NoError(t, err)
		require.Equal(t, int64(1), receiptOf(rc, crm.CategoryClientContact).Erased, "%+v", rc.Categories)
		require.Equal(t, int64(1), rc.Erased(), "only her details: %+v", rc.Categories)
		got, err := sdk.CRM.Clients().Get(ctx, client.ID)
		require.NoError(t, err)
		require.Equal(t, "Pia's Studio", got.Name, "the client stays")
		require.Empty(t, got.Email)
		require.Empty(t, got.Phone)
		_, err = sdk.CRM.Campaigns().Get(ctx, campaign.ID)
		require.NoError(t, err, "its campaign stays")
		_, err = sdk.CRM.Invoices().Get(ctx, invoice.ID)
		require.NoError(t, err, "its invoice stays")
		o, err := sdk.CRM.Clients().Get(ctx, other.ID)
		require.NoError(t, err)
		require.Equal(t, "billing@other.example", o.Email)
		text, _, m := exportOf(t, sdk, ctx, map[string]string{crm.SubjectPhone: phone})
		require.Equal(t, retention.OutcomeNoDataFound, m.Outcome, "nothing left to find by her phone number: %s", text)
	}, migrated)
}
