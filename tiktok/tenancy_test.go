package tiktok_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestConnectionsAreTenantOwned(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		other := owner(tenancy.NewID())

		_, err := e.store.Get(other, conn.ID)
		require.ErrorIs(t, err, social.ErrNotFound)
		list, err := e.store.List(other, social.ConnectionFilter{}, social.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, list.Items)
		_, err = e.store.Token(other, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNotFound)
		_, err = e.store.Disconnect(other, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNotFound)
		_, err = e.store.Get(t.Context(), conn.ID)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)

		mine, err := e.store.List(e.ctx, social.ConnectionFilter{Platform: "tiktok", Status: social.StatusActive}, social.ListOptions{})
		require.NoError(t, err)
		require.Len(t, mine.Items, 1)
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
		conn2.AccountID, conn2.AccountIndex = "copy", "copy"
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx contextT, tx bunTx) error {
			_, err := tx.NewInsert().Model(&conn2).Exec(ctx)
			return err
		}))
		_, err = e.store.Token(e.ctx, conn2.ID, e.prov)
		require.Error(t, err)
	})
}

func TestConnectionsPage(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		users := []string{"open-a", "open-b", "open-c", "open-d", "open-e"}
		var opts []tiktoktest.Option
		for _, u := range users {
			opts = append(opts, tiktoktest.WithUser(tiktoktest.User{OpenID: u, DisplayName: u}))
		}
		e := newEnv(t, db, opts...)
		for _, u := range users {
			flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"profile"}})
			require.NoError(t, err)
			authURL, err := flow.Begin(e.ctx)
			require.NoError(t, err)
			cb, err := e.srv.Consent(authURL, u, tiktoktest.ConsentOptions{})
			require.NoError(t, err)
			_, err = flow.Complete(e.ctx, callbackQuery(t, cb))
			require.NoError(t, err)
			e.clk.Advance(time.Second)
		}

		var paged []string
		sizes := []int{}
		o := social.ListOptions{Limit: 2}
		for {
			p, err := e.store.List(e.ctx, social.ConnectionFilter{Platform: "tiktok"}, o)
			require.NoError(t, err)
			sizes = append(sizes, len(p.Items))
			for _, c := range p.Items {
				paged = append(paged, c.AccountID)
			}
			if p.NextCursor == "" {
				break
			}
			o.Cursor = p.NextCursor
		}
		require.Equal(t, []int{2, 2, 1}, sizes)
		require.Equal(t, users, paged, "pages run oldest first, each connection once")

		var walked []string
		for c, err := range e.store.All(e.ctx, social.ConnectionFilter{Status: social.StatusActive}, social.ListOptions{Limit: 3}) {
			require.NoError(t, err)
			walked = append(walked, c.AccountID)
		}
		require.Equal(t, users, walked)

		for c, err := range e.store.All(e.ctx, social.ConnectionFilter{Status: social.StatusRevoked}, social.ListOptions{}) {
			t.Fatalf("All over an empty filter yielded %v, %v", c, err)
		}

		_, err := e.store.List(e.ctx, social.ConnectionFilter{}, social.ListOptions{Limit: social.MaxLimit + 1})
		require.ErrorIs(t, err, social.ErrListOptions)
		_, err = e.store.List(e.ctx, social.ConnectionFilter{}, social.ListOptions{Cursor: "not-a-cursor"})
		require.ErrorIs(t, err, social.ErrListOptions)
		var errs int
		for _, err := range e.store.All(e.ctx, social.ConnectionFilter{}, social.ListOptions{Limit: -1}) {
			require.ErrorIs(t, err, social.ErrListOptions)
			errs++
		}
		require.Equal(t, 1, errs, "All yields a bad page's error once")
	})
}
