package tenancy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestFailedSignInsAreAudited: every failed sign-in into an existing
// tenant — unknown e-mail, wrong password, unknown or revoked API key —
// leaves an entry naming the action, the target and the reason, and none
// of the e-mail address, password or key tried.
func TestFailedSignInsAreAudited(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		s, err := tenancy.NewStore(db, cheapPasswords)
		require.NoError(t, err)
		tn, owner := signUp(t, s, "Acme")
		req := tenancy.RequestInfo{IP: "198.51.100.4", UserAgent: "probe"}
		const (
			unknownEmail = "canary-nobody-5d1e@acme.example"
			badPassword  = "canary-password-93ab1"
		)
		_, err = s.Authenticate(context.Background(), tn.ID, unknownEmail, badPassword, req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		_, err = s.Authenticate(context.Background(), tn.ID, "owner@acme.example", badPassword, req)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)

		key, rec, err := s.CreateAPIKey(owner, "ci", tenancy.RoleStaff)
		require.NoError(t, err)
		wrong := key[:len(key)-6] + "AAAAAA" // the right tenant, a wrong secret
		_, err = s.AuthenticateAPIKey(context.Background(), wrong)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		require.NoError(t, s.RevokeAPIKey(owner, rec.ID))
		_, err = s.AuthenticateAPIKey(context.Background(), key)
		require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)

		before, err := s.Audit().List(owner, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		// Keys that name no tenant of this database, or nothing at all,
		// have no log to go to.
		for _, bad := range []string{"sck_nonsense", strings.Replace(key, key[4:12], "00000000", 1)} {
			_, err = s.AuthenticateAPIKey(context.Background(), bad)
			require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
		}
		entries, err := s.Audit().List(owner, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		require.Len(t, entries, len(before))

		var failed []string
		for _, e := range entries {
			if strings.HasSuffix(e.Action, ".failed") {
				failed = append(failed, e.Action+" "+e.Target+" "+e.Metadata["reason"])
			}
			js, err := json.Marshal(e)
			require.NoError(t, err)
			for _, canary := range []string{unknownEmail, badPassword, key, key[len(key)-20:], wrong[len(wrong)-20:], "owner@acme.example"} {
				require.NotContains(t, string(js), canary, e.Action)
			}
		}
		require.Len(t, failed, 4)
		require.Equal(t, "login.failed email unknown email", failed[0])
		require.True(t, strings.HasPrefix(failed[1], "login.failed member:"), failed[1])
		require.Equal(t, "apikey.failed apikey unknown or revoked key", failed[2])
		require.Equal(t, "apikey.failed apikey unknown or revoked key", failed[3])
	})
}
