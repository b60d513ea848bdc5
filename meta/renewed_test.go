package meta_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// TestRefusedTokenReplacedMeanwhile: a 190 for a token that the user
// replaced by logging in again (in another request or process) sends the
// call again with the stored token instead of giving the connection up.
func TestRefusedTokenReplacedMeanwhile(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user := e.connect(userID, allFeatures)
		c := e.client(user)
		_, _, err := c.Pages.List(e.ctx, meta.ListOptions{})
		require.NoError(t, err)
		again := e.connect(userID, allFeatures) // a new login stores a new token
		require.Equal(t, user.ID, again.ID)
		require.Greater(t, again.TokenVersion, user.TokenVersion)

		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/me/accounts", Code: 190, Subcode: meta.SubcodeExpired, Count: 1}))
		before := len(e.srv.Requests())
		_, _, err = c.Pages.List(e.ctx, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, e.srv.Requests(), before+2, "refused once, sent again once")
		got, err := e.store.Get(e.ctx, user.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.NotContains(t, e.auditActions(), "connection.needs_reauth")
	})
}
