package socialcrm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17ClearAuditKeepsNoAddress: sign-ins and failed sign-ins record in
// the audit log neither the client's IP address, nor its network in
// clear, nor its user agent, nor an unkeyed hash of any of them: the
// entry keeps the network (/24) as a keyed hash, alike for two addresses
// of one network and different for another, and the chain still
// verifies. On both databases.
func TestS17ClearAuditKeepsNoAddress(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: fakeclock.New().Now})
		require.NoError(t, err)
		const password = "zq long enough secret"
		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Audited",
			Owner: tenancy.NewMember{Email: "owner@audited.example", Name: "O", Password: password}})
		require.NoError(t, err)
		a := tenancy.WithPrincipal(ctx, owner.Principal())
		const (
			ip1, ip2, ip3 = "198.51.100.77", "198.51.100.78", "203.0.113.9"
			agent         = "ZqAgentCanary/1.0 (Jane's laptop)"
		)
		_, err = sdk.Tenants.Authenticate(ctx, tn.ID, "owner@audited.example", password, tenancy.RequestInfo{IP: ip1, UserAgent: agent})
		require.NoError(t, err)
		_, err = sdk.Tenants.Authenticate(ctx, tn.ID, "owner@audited.example", "wrong", tenancy.RequestInfo{IP: ip2, UserAgent: agent})
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		_, err = sdk.Tenants.Authenticate(ctx, tn.ID, "owner@audited.example", password, tenancy.RequestInfo{IP: ip3, UserAgent: agent})
		require.NoError(t, err)

		es, err := sdk.Audit.List(a, tenancy.AuditListOptions{Limit: 100})
		require.NoError(t, err)
		var ips []string
		for _, e := range es {
			if strings.HasPrefix(e.Action, "login.") {
				ips = append(ips, e.IP)
				require.Empty(t, e.UserAgent)
			}
		}
		require.Len(t, ips, 3)
		for _, ip := range ips {
			require.True(t, strings.HasPrefix(ip, "ipk:"), "a keyed network: %q", ip)
		}
		require.Equal(t, ips[0], ips[1], "one network, one pseudonym")
		require.NotEqual(t, ips[0], ips[2], "another network, another")
		_, err = sdk.Audit.Verify(a)
		require.NoError(t, err)

		canaries := unkeyedForms(ip1, ip2, ip3, "198.51.100.0/24", "198.51.100.0", "203.0.113.0/24", agent)
		canaries = append(canaries, "ZqAgentCanary", "198.51.100.", "203.0.113.")
		hits, err := leakscan.Tables(ctx, db.Admin(t), canaries, "socialcrm_audit")
		require.NoError(t, err)
		require.Empty(t, hits)
	})
}

// TestS17ClearAuditIP: the network an entry keeps of an address.
func TestS17ClearAuditIP(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"198.51.100.77":      "198.51.100.0/24",
		"::ffff:192.0.2.9":   "192.0.2.0/24",
		"2001:db8:1:2::7":    "2001:db8:1::/48",
		"fe80::1%eth0":       "fe80::/48",
		"not an address":     "invalid",
		" 198.51.100.77 ":    "198.51.100.0/24",
		"198.51.100.77:4431": "invalid",
	} {
		require.Equal(t, want, tenancy.AuditIP(in), "AuditIP(%q)", in)
	}
}
