package socialcrm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantCannotReachSharedWebhookState: three tables of the webhook and
// callback paths belong to no single tenant's rows under row-level
// security, and the Guard let tenant B's ordinary statements through. The
// webhook deliveries already processed: B deleted A's (A's redeliveries ran
// again) and recorded the key of a delivery still to come — a TikTok key
// hashes the event, the user's open_id (the same for every tenant of the
// app), the second and the content — so that A's deauthorization was
// skipped as processed and A's data never purged. The plaintext that the
// sealing migration left waiting (TableUnsealed): B read A's names, titles
// and raw responses in it and could delete them. The records of Meta's data
// deletion callbacks: B read every tenant's, and re-pointed or deleted A's,
// so that A's status URL and ResumeDeletions lost A's erasure. Under a
// tenant's principal the deliveries may not be named at all and the waiting
// plaintext and the deletion records are confined to the tenant's rows; the
// webhook path (no principal) and PendingTenants still reach every row.
func TestTenantCannotReachSharedWebhookState(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "hook-a"), dsarTenant(t, sdk, "hook-b")
		aID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		bID, err := tenancy.TenantID(b)
		require.NoError(t, err)
		ctx := context.Background()
		_, err = db.Owner.ExecContext(ctx, "INSERT INTO "+social.TableUnsealed+" (tenant_id, tbl, record, field, value) VALUES (?, ?, 'r1', 'display_name', 'Annabel Secret'), (?, ?, 'r2', 'display_name', 'Bob')",
			aID, social.TableConnections, bID, social.TableConnections)
		require.NoError(t, err)
		require.NoError(t, sdk.Social.Once(ctx, "tiktok", "done-of-a", 0, func(context.Context) error { return nil }))
		_, err = db.Owner.ExecContext(ctx, "INSERT INTO "+meta.TableDeletions+" (code, tenant_id, request_id, received_at) VALUES ('code-a', ?, 'req-a', '2026-12-06 00:00:00'), ('code-b', ?, 'req-b', '2026-12-06 00:00:00')", aID, bID)
		require.NoError(t, err)

		for name, q := range map[string]string{
			"read A's plaintext":       "SELECT value FROM " + social.TableUnsealed,
			"read it by A's id":        "SELECT value FROM " + social.TableUnsealed + " WHERE tenant_id = '" + aID + "'",
			"delete A's plaintext":     "DELETE FROM " + social.TableUnsealed + " WHERE tenant_id <> '" + bID + "'",
			"move A's plaintext to B":  "UPDATE " + social.TableUnsealed + " SET tenant_id = '" + bID + "' WHERE tenant_id = '" + aID + "'",
			"record A's next delivery": "INSERT INTO " + social.TableDeliveries + " (platform, key, received_at, pending) VALUES ('tiktok', 'next-of-a', '2026-12-06 00:00:00', FALSE)",
			"forget A's deliveries":    "DELETE FROM " + social.TableDeliveries,
			"hold A's deliveries":      "UPDATE " + social.TableDeliveries + " SET pending = TRUE, received_at = '2999-01-01 00:00:00'",
			"read the deliveries":      "SELECT key, received_at FROM " + social.TableDeliveries,
			"read every deletion":      "SELECT code, tenant_id, request_id FROM " + meta.TableDeletions,
			"re-point A's deletion":    "UPDATE " + meta.TableDeletions + " SET request_id = 'req-b' WHERE code = 'code-a'",
			"drop A's deletion":        "DELETE FROM " + meta.TableDeletions + " WHERE tenant_id = '" + aID + "'",
			"deliveries in a subquery": "SELECT count(*) FROM " + social.TableAccounts + " WHERE platform IN (SELECT platform FROM " + social.TableDeliveries + ")",
		} {
			err := tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, q)
				if err != nil {
					return err
				}
				return rows.Close()
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
		}
		// B's own waiting plaintext stays B's to read.
		var mine []string
		require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT value FROM "+social.TableUnsealed+" WHERE tenant_id = ?", bID).Scan(ctx, &mine)
		}))
		require.Equal(t, []string{"Bob"}, mine)
		var codes []string
		require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT code FROM "+meta.TableDeletions+" WHERE tenant_id = ?", bID).Scan(ctx, &codes)
		}))
		require.Equal(t, []string{"code-b"}, codes)
		var reqs []string
		require.NoError(t, db.NewRaw("SELECT request_id FROM "+meta.TableDeletions+" WHERE code = 'code-a'").Scan(ctx, &reqs))
		require.Equal(t, []string{"req-a"}, reqs)

		// A's next delivery runs once; the processed one does not run again.
		runs := 0
		count := func(context.Context) error { runs++; return nil }
		require.NoError(t, sdk.Social.Once(ctx, "tiktok", "next-of-a", 0, count))
		require.NoError(t, sdk.Social.Once(ctx, "tiktok", "next-of-a", 0, count))
		require.NoError(t, sdk.Social.Once(ctx, "tiktok", "done-of-a", 0, count))
		require.Equal(t, 1, runs)
		pending, err := sdk.Social.PendingTenants(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{aID, bID}, pending)
	}, migrated)
}
