package socialcrm_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestMaintain: one call retries the queued revocations of every tenant
// through the registered providers and prunes spent OAuth states.
func TestMaintain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek := testkit.NewKEK(t)
		clk := fakeclock.New()
		clk.Set(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
		const redirect = "https://crm.example/cb/"
		srv := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now),
			tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs", RedirectURIs: []string{redirect},
				Scopes: []string{tiktok.ScopeUserInfoBasic, tiktok.ScopeUserInfoProfile}}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: "open-1", DisplayName: "Ana"}))
		prov, err := tiktok.NewProvider(tiktok.Config{ClientKey: "ck", ClientSecret: "cs", RedirectURL: redirect,
			BaseURL: srv.BaseURL(), AuthorizeURL: srv.AuthorizeURL()}, tiktok.WithHTTPClient(srv.Client()), tiktok.WithClock(clk.Now),
			tiktok.WithRetry(1, nil))
		require.NoError(t, err)
		_, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now, Providers: []social.Provider{prov, prov}})
		require.ErrorIs(t, err, social.ErrConfig, "one provider per platform")
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now,
			Providers: []social.Provider{prov}, RefreshWindow: time.Minute})
		require.NoError(t, err)

		var octxs []context.Context
		for _, name := range []string{"Acme", "Bolt"} {
			_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner"}})
			require.NoError(t, err)
			octx := tenancy.WithPrincipal(ctx, owner.Principal())
			octxs = append(octxs, octx)
			flow, err := sdk.Social.NewFlow(prov, social.FlowConfig{Features: []string{"profile"}})
			require.NoError(t, err)
			u, err := flow.Begin(octx)
			require.NoError(t, err)
			cb, err := srv.Consent(u, "open-1", tiktoktest.ConsentOptions{})
			require.NoError(t, err)
			cbURL, err := url.Parse(cb)
			require.NoError(t, err)
			conn, err := flow.Complete(octx, cbURL.Query())
			require.NoError(t, err)
			srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
			_, err = sdk.Social.Disconnect(octx, conn.ID, nil)
			require.NoError(t, err)
		}
		clk.Advance(social.StateLifetime + time.Second)
		m, err := sdk.Maintain(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, m.Revoked, "both tenants' revocations retried")
		require.EqualValues(t, 2, m.StatesPruned)
		for _, octx := range octxs {
			n, err := sdk.Social.PendingRevocations(octx)
			require.NoError(t, err)
			require.Zero(t, n)
		}
		m, err = sdk.Maintain(ctx)
		require.NoError(t, err)
		require.Zero(t, m.Revoked)
		require.Len(t, srv.RequestsTo(tiktoktest.RevokePath), 4)
	}, migrated)
}
