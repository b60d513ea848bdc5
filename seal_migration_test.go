package socialcrm_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/vault"
)

// sealingMigration is the social migration that moves platform data to
// sealed columns.
const sealingMigration = "20261206030000"

// migrateOlder migrates db's database as an older version left it: as the
// owner, with every package's migrations but only the social migrations
// keep accepts, and grants the application role. It returns a new tenant
// and a context acting as its owner.
func migrateOlder(t *testing.T, db *dbtest.DB, keep func(name string) bool) (string, context.Context) {
	t.Helper()
	ctx := context.Background()
	older := migrate.NewMigrations()
	for _, m := range social.Migrations().Sorted() {
		if keep(m.Name) {
			older.Add(m)
		}
	}
	require.NoError(t, migrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(),
		older, crm.Migrations(), meta.CallbackMigrations()))
	dbtest.GrantApp(t, db)
	tid := tenancy.NewID()
	return tid, tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
}

// TestSealPlatformDataMigratesPlaintext: a database written before
// platform data was sealed (profiles, media texts, raw bodies and account
// ids in clear) is migrated: the plaintext columns are dropped, and the
// values are sealed in batches that an interruption leaves consistent;
// Open finishes the work, callers read the same values, nothing is left in
// clear, and sealing again does nothing.
func TestSealPlatformDataMigratesPlaintext(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		// The database as it was before the sealing and every later migration.
		tid, tctx := migrateOlder(t, db, func(name string) bool { return name < sealingMigration })
		now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		const (
			name, avatar = "LEGACY-display-name", "https://cdn.example/LEGACY-avatar.jpg"
			title, desc  = "LEGACY-title", "LEGACY-description"
			share, body  = "https://www.tiktok.com/LEGACY-share", `{"data":{"user":{"display_name":"LEGACY-raw-body"}}}`
			openID       = "open-LEGACY-1"
		)
		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO socialcrm_social_connections (tenant_id, id, platform, account_id, display_name, avatar_url, scopes, requested, purposes, status, token_version, created_at, updated_at)
					VALUES (?, 'c1', 'tiktok', ?, ?, ?, '', '', '', 'active', 1, ?, ?)`, []any{tid, openID, name, avatar, now, now}},
				{`INSERT INTO socialcrm_social_connections (tenant_id, id, platform, account_id, display_name, avatar_url, scopes, requested, purposes, status, token_version, created_at, updated_at)
					VALUES (?, 'c2', 'tiktok', 'open-LEGACY-2', '', '', '', '', '', 'active', 1, ?, ?)`, []any{tid, now, now}},
				{`INSERT INTO socialcrm_social_media (tenant_id, connection_id, external_id, platform, kind, title, description, share_url, duration_sec, views, likes, comments, shares, purposes, fetched_at)
					VALUES (?, 'c1', 'v1', 'tiktok', 'video', ?, ?, ?, 10, 100, 5, 1, 1, '', ?)`, []any{tid, title, desc, share, now}},
				{`INSERT INTO socialcrm_social_raw_responses (tenant_id, id, connection_id, platform, endpoint, body, fetched_at)
					VALUES (?, 'r1', 'c1', 'tiktok', '/v2/user/info/', ?, ?)`, []any{tid, body, now}},
				{`INSERT INTO socialcrm_social_snapshots (tenant_id, id, connection_id, platform, taken_at, followers, following, likes, media_count, views, engagement_rate, purposes)
					VALUES (?, 's1', 'c1', 'tiktok', ?, 5, 6, 7, 8, 9, 0.5, '')`, []any{tid, now}},
			} {
				if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
					return err
				}
			}
			return nil
		}))
		_, err := db.DB.ExecContext(ctx, `INSERT INTO socialcrm_social_accounts (platform, account_id, tenant_id, connection_id) VALUES ('tiktok', ?, ?, 'c1')`, openID, tid)
		require.NoError(t, err)

		// The schema migration moves the plaintext aside and drops the
		// columns; an interrupted sealing pass leaves whole batches.
		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		dbtest.GrantApp(t, db)
		kek := testkit.NewKEK(t)
		clk := fakeclock.New()
		v, err := vault.New(db.DB, kek, vault.WithClock(clk.Now))
		require.NoError(t, err)
		st, err := social.New(db.DB, v, social.WithClock(clk.Now))
		require.NoError(t, err)
		pending, err := st.PendingTenants(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{tid}, pending)
		stop, cancel := context.WithCancelCause(tctx)
		interrupted := errors.New("interrupted")
		var seen []int
		n, err := st.SealPending(stop, 2, func(done int) { seen = append(seen, done); cancel(interrupted) })
		require.Error(t, err, "the second batch does not start")
		require.Equal(t, 2, n)
		require.Equal(t, []int{2}, seen)

		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now})
		require.NoError(t, err)
		pending, err = sdk.Social.PendingTenants(ctx)
		require.NoError(t, err)
		require.Empty(t, pending, "Open sealed the rest")
		again, err := sdk.SealPlatformData(ctx, nil)
		require.NoError(t, err)
		require.Zero(t, again, "a second run finds nothing to do")

		c, err := sdk.Social.Get(tctx, "c1")
		require.NoError(t, err)
		require.Equal(t, name, c.DisplayName)
		require.Equal(t, avatar, c.AvatarURL)
		require.Equal(t, openID, c.AccountID, "the account id, sealed by the pass, reads back")
		found, err := sdk.Social.Find(tctx, tiktok.Platform, openID)
		require.NoError(t, err)
		require.Equal(t, "c1", found.ID, "and is found by its blind index")
		media, err := sdk.Social.Media(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, [3]string{title, desc, share}, [3]string{media[0].Title, media[0].Description, media[0].ShareURL})
		raws, err := sdk.Social.RawResponseBodies(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, raws, 1)
		require.Equal(t, body, raws[0].Body)
		snaps, err := sdk.Social.Snapshots(tctx, "c1")
		require.NoError(t, err)
		require.Len(t, snaps, 1)
		require.Equal(t, social.KnownCount(5), snaps[0].Followers, "stored counts survive the nullable columns")
		ts, err := sdk.Social.AccountTenants(ctx, tiktok.Platform, openID)
		require.NoError(t, err)
		require.Equal(t, []social.AccountTenant{{TenantID: tid, ConnectionID: "c1"}}, ts)

		legacy := []string{name, avatar, title, desc, share, "LEGACY-raw-body"}
		hits := scanColumns(t, db, tctx, append(legacy, openID)...)
		for _, h := range hits {
			t.Errorf("%q still in clear in %s.%s", h.canary, h.table, h.column)
		}
		if db.Name == "sqlite" {
			// Nor in the file's free pages: the pass rewrote the file.
			for _, path := range []string{db.Path, db.Path + "-wal"} {
				b, err := os.ReadFile(path)
				if os.IsNotExist(err) {
					continue
				}
				require.NoError(t, err)
				for _, c := range legacy {
					require.False(t, bytes.Contains(b, []byte(c)), "%q in %s", c, path)
				}
			}
		}
	})
}
