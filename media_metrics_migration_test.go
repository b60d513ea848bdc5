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

// mediaMetricsMigration is the social migration that makes the media
// metrics nullable.
const mediaMetricsMigration = "20261206070000"

// TestMediaMetricsMigrationKeepsValues: media stored while the metrics were
// NOT NULL keep every value (metrics, ids, sealed texts) through the
// migration that makes them nullable, read back as known counts, and an
// unknown metric can be stored afterwards.
func TestMediaMetricsMigrationKeepsValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		tid, tctx := migrateOlder(t, db, func(name string) bool { return name < mediaMetricsMigration })
		now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		sealed := []byte("opaque-sealed-bytes")
		insert := `INSERT INTO socialcrm_social_media (tenant_id, id, connection_id, external_id, platform, kind, published_at, duration_sec,
			views, likes, comments, shares, purposes, fetched_at, title_sealed) VALUES (?, ?, ?, ?, 'tiktok', 'video', ?, 10, ?, ?, ?, ?, 'analytics', ?, ?)`
		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, insert, tid, "c1:v1", "c1", "v1", now, 1200, 0, 7, 3, now, nil); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, insert, tid, "c2:v2", "c2", "v2", now, 5, 4, 3, 2, now, sealed)
			return err
		}))

		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		dbtest.GrantApp(t, db)
		clk := fakeclock.New()
		v, err := vault.New(db.DB, testkit.NewKEK(t), vault.WithClock(clk.Now))
		require.NoError(t, err)
		st, err := social.New(db.DB, v, social.WithClock(clk.Now))
		require.NoError(t, err)

		media, err := st.Media(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, media, 1)
		m := media[0]
		require.Equal(t, [4]social.Count{social.KnownCount(1200), social.KnownCount(0), social.KnownCount(7), social.KnownCount(3)},
			[4]social.Count{m.Views, m.Likes, m.Comments, m.Shares}, "stored values kept, a stored 0 stays a known 0")
		require.Equal(t, "c1:v1", m.ID)
		require.Equal(t, now, m.PublishedAt.UTC())
		require.Equal(t, int64(10), m.DurationSec)
		require.Equal(t, social.Purposes{"analytics"}, m.Purposes)

		var got struct {
			Views, Likes, Comments, Shares int64
			Sealed                         []byte
		}
		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := tx.QueryRowContext(ctx, "SELECT views, likes, comments, shares, title_sealed FROM socialcrm_social_media WHERE id = 'c2:v2'").
				Scan(&got.Views, &got.Likes, &got.Comments, &got.Shares, &got.Sealed); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "UPDATE socialcrm_social_media SET views = NULL, shares = NULL WHERE id = 'c1:v1'")
			return err
		}), "the columns are nullable now")
		require.Equal(t, [4]int64{5, 4, 3, 2}, [4]int64{got.Views, got.Likes, got.Comments, got.Shares})
		require.Equal(t, sealed, got.Sealed, "the sealed texts survive the migration byte for byte")

		media, err = st.Media(tctx, "c1")
		require.NoError(t, err)
		require.False(t, media[0].Views.Known)
		require.False(t, media[0].Shares.Known)
		require.Equal(t, social.KnownCount(7), media[0].Comments)
	})
}
