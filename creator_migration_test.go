package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// connectionMemberMigration is the social migration that records the
// member who connected each connection.
const connectionMemberMigration = "20261209030000"

// TestConnectionMemberMigration: connections, media, snapshots and raw
// answers stored before connections recorded their member keep every row
// through the migration, as the tenant's own (member ""): staff read them
// as before, a creator reaches none of them, and a staff sync's upsert of
// an existing media row still meets it (the new conflict target).
func TestConnectionMemberMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		tid, tctx := migrateOlder(t, db, func(name string) bool { return name < connectionMemberMigration })
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO socialcrm_social_connections (tenant_id, id, platform, account_id, scopes, requested, purposes, status, token_version, created_at, updated_at)
					VALUES (?, 'c1', 'tiktok', 'open-old', 'user.info.basic', 'user.info.basic', 'analytics', 'active', 1, ?, ?)`, []any{tid, now, now}},
				{`INSERT INTO socialcrm_social_media (tenant_id, id, connection_id, external_id, platform, kind, duration_sec, views, purposes, fetched_at)
					VALUES (?, 'c1:v1', 'c1', 'v1', 'tiktok', 'video', 10, 42, 'analytics', ?)`, []any{tid, now}},
				{`INSERT INTO socialcrm_social_snapshots (tenant_id, id, connection_id, platform, taken_at, followers, engagement_rate, purposes)
					VALUES (?, 's1', 'c1', 'tiktok', ?, 7, 0, 'analytics')`, []any{tid, now}},
				{`INSERT INTO socialcrm_social_raw_responses (tenant_id, id, connection_id, platform, endpoint, fetched_at)
					VALUES (?, 'r1', 'c1', 'tiktok', '/v2/user/info/', ?)`, []any{tid, now}},
			} {
				if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
					return err
				}
			}
			return nil
		}))

		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		dbtest.GrantApp(t, db)
		clk := fakeclock.New()
		v, err := vault.New(db.DB, testkit.NewKEK(t), vault.WithClock(clk.Now))
		require.NoError(t, err)
		st, err := social.New(db.DB, v, social.WithClock(clk.Now))
		require.NoError(t, err)

		_, err = st.SealPending(tctx, 0, nil) // as Open does: the account id is sealed
		require.NoError(t, err)
		c, err := st.Get(tctx, "c1")
		require.NoError(t, err)
		require.Empty(t, c.MemberID, "a connection from before is the tenant's own")
		require.Equal(t, "open-old", c.AccountID)
		media, err := st.Media(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, social.KnownCount(42), media[0].Views)
		require.Empty(t, media[0].MemberID)
		snaps, err := st.Snapshots(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, snaps, 1)
		n, err := st.RawResponses(tctx, "c1")
		require.NoError(t, err)
		require.Equal(t, 1, n)

		creator := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleCreator})
		_, err = st.Get(creator, "c1")
		require.ErrorIs(t, err, social.ErrNotFound, "no creator connected it")
		media, err = st.Media(creator, "c1")
		require.NoError(t, err)
		require.Empty(t, media)
		snaps, err = st.Snapshots(creator, "c1")
		require.NoError(t, err)
		require.Empty(t, snaps)

		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			m := social.Media{ConnectionID: "c1", ExternalID: "v1", Platform: "tiktok", Kind: "video", Views: social.KnownCount(43), Purposes: social.Purposes{"analytics"}, FetchedAt: now}
			_, err := tx.NewInsert().Model(&m).On("CONFLICT (tenant_id, member_id, connection_id, external_id) DO UPDATE").Set("views = EXCLUDED.views").Exec(ctx)
			return err
		}), "the upsert's new target meets the row from before")
		media, err = st.Media(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, social.KnownCount(43), media[0].Views)
	})
}
