package tiktok_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestConnectionsAreTenantOwned(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		other := owner(tenancy.NewID())

		_, err := e.store.Get(other, conn.ID)
		require.ErrorIs(t, err, social.ErrNotFound)
		list, err := e.store.List(other, social.ConnectionFilter{})
		require.NoError(t, err)
		require.Empty(t, list)
		_, err = e.store.Token(other, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNotFound)
		_, err = e.store.Disconnect(other, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNotFound)
		_, err = e.store.Get(t.Context(), conn.ID)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)

		mine, err := e.store.List(e.ctx, social.ConnectionFilter{Platform: "tiktok", Status: social.StatusActive})
		require.NoError(t, err)
		require.Len(t, mine, 1)
		found, err := e.store.Find(e.ctx, "tiktok", openID)
		require.NoError(t, err)
		require.Equal(t, conn.ID, found.ID)
		require.NoError(t, e.store.MarkSynced(e.ctx, conn.ID, "Ana B", ""))
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, "Ana B", got.DisplayName)
		require.Equal(t, e.clk.Now(), got.LastSyncAt)

		// A sealed token copied to another row does not open.
		conn2 := conn
		conn2.ID = tenancy.NewID()
		conn2.AccountID = "copy"
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx contextT, tx bunTx) error {
			_, err := tx.NewInsert().Model(&conn2).Exec(ctx)
			return err
		}))
		_, err = e.store.Token(e.ctx, conn2.ID, e.prov)
		require.Error(t, err)
	})
}
