package tenancy_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestListAPIKeys: the owner lists the tenant's keys, oldest first,
// revoked ones marked, never a key or its hash; another tenant's keys are
// not listed; staff may not list them.
func TestListAPIKeys(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		// Owners without a password: no bcrypt to pay for.
		tenant := func(name string) (tenancy.Tenant, context.Context) {
			tn, m, err := s.CreateTenant(context.Background(), tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner"}})
			require.NoError(t, err)
			return tn, tenancy.WithPrincipal(context.Background(), m.Principal())
		}
		tn, owner := tenant("acme")
		_, other := tenant("other")

		empty, err := s.APIKeys(owner)
		require.NoError(t, err)
		require.NotNil(t, empty)
		require.Empty(t, empty)

		k1, ci, err := s.CreateAPIKey(owner, "ci", tenancy.RoleStaff)
		require.NoError(t, err)
		clk.Advance(time.Minute)
		k2, deploy, err := s.CreateAPIKey(owner, "deploy", tenancy.RoleAdmin)
		require.NoError(t, err)
		_, _, err = s.CreateAPIKey(other, "elsewhere", tenancy.RoleStaff)
		require.NoError(t, err)
		require.NoError(t, s.RevokeAPIKey(owner, ci.ID))

		keys, err := s.APIKeys(owner)
		require.NoError(t, err)
		require.Len(t, keys, 2, "the other tenant's key is not listed")
		require.Equal(t, []string{ci.ID, deploy.ID}, []string{keys[0].ID, keys[1].ID}, "oldest first")
		require.Equal(t, "ci", keys[0].Name)
		require.Equal(t, tenancy.RoleStaff, keys[0].Role)
		require.NotNil(t, keys[0].RevokedAt, "revoked")
		require.Nil(t, keys[1].RevokedAt)
		require.Equal(t, deploy.Hint, keys[1].Hint)
		require.Equal(t, tn.ID, keys[1].TenantID)
		for _, k := range keys {
			require.Empty(t, k.Hash, "no hash leaves the store")
			js, err := json.Marshal(k)
			require.NoError(t, err)
			for _, key := range []string{k1, k2} {
				require.NotContains(t, string(js), key[4:])
			}
		}

		staff := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: tenancy.NewID(), Role: tenancy.RoleStaff})
		_, err = s.APIKeys(staff)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		_, err = s.APIKeys(context.Background())
		require.Error(t, err)
	})
}
