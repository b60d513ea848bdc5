package tiktok_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestClientMemberReachesNoConnection: a client member (an agency's client
// on the portal, who should see only the records of its own client
// relationship) reached every connection of the tenant through
// social.Store: it listed the creators' connected accounts, read one,
// took a session with its token (and so synced and published through
// it), read its media and snapshots, began a flow to connect an account
// into the tenant, and disconnected one. Each is now refused with
// tenancy.ErrForbidden; the tenant's staff and the system still reach
// them.
func TestClientMemberReachesNoConnection(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		tid, err := tenancy.TenantID(e.ctx)
		require.NoError(t, err)
		client := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleClient})
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"video.read"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)

		calls := map[string]func() error{
			"List": func() error {
				_, err := e.store.List(client, social.ConnectionFilter{}, social.ListOptions{})
				return err
			},
			"Get":        func() error { _, err := e.store.Get(client, conn.ID); return err },
			"Find":       func() error { _, err := e.store.Find(client, "tiktok", openID); return err },
			"Token":      func() error { _, err := e.store.Token(client, conn.ID, e.prov); return err },
			"Session":    func() error { _, err := e.store.Session(client, conn.ID, e.prov); return err },
			"Media":      func() error { _, err := e.store.Media(client, conn.ID); return err },
			"Snapshots":  func() error { _, err := e.store.Snapshots(client, conn.ID); return err },
			"MarkSynced": func() error { return e.store.MarkSynced(client, conn.ID, "Mallory", "") },
			"Begin":      func() error { _, err := flow.Begin(client); return err },
			"Disconnect": func() error { _, err := e.store.Disconnect(client, conn.ID, e.prov); return err },
			"Revocations": func() error {
				_, err := e.store.Revocations(client, social.ListOptions{})
				return err
			},
		}
		for name, call := range calls {
			require.ErrorIs(t, call(), tenancy.ErrForbidden, name)
		}
		staff := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleStaff})
		got, err := e.store.Get(staff, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status, "the client's disconnect did nothing")
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "test"), tid)
		require.NoError(t, err)
		_, err = e.store.Get(sys, conn.ID)
		require.NoError(t, err)
	})
}
