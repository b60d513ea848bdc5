package socialcrm_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// unkeyedForms returns each value with its unkeyed SHA-256 in the forms a
// column could hold it (raw, hex, base64): what a reader without the
// tenant's key could match against a known id.
func unkeyedForms(values ...string) []string {
	out := append([]string(nil), values...)
	for _, v := range values {
		sum := sha256.Sum256([]byte(v))
		out = append(out, string(sum[:]), hex.EncodeToString(sum[:]),
			base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]))
	}
	return out
}

// TestAccountIDsSealedS17Clear: the platform account ids of connections
// (a TikTok open_id, a Meta app-scoped user id) and of the revoke queue
// are stored sealed, and found through a blind index under the tenant's
// key: connecting the same account again updates its connection, Find
// and the data-subject resolvers (open_id, account_id) find it, an
// export holds the id opened, and an erasure's revoke left queued is
// still counted for a later request naming only the open_id. No column
// of the social tables holds either id, nor its unkeyed hash. On both
// databases.
func TestAccountIDsSealedS17Clear(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		conn := w.connectTikTok([]string{"profile"})
		w.connectMeta()
		require.Equal(t, canaryOpenID, conn.AccountID, "the API returns the id in clear")
		again := w.connectTikTok([]string{"profile"})
		require.Equal(t, conn.ID, again.ID, "the same account connected again is the same connection")
		found, err := w.sdk.Social.Find(w.ctx, tiktok.Platform, canaryOpenID)
		require.NoError(t, err)
		require.Equal(t, conn.ID, found.ID)
		require.Equal(t, canaryOpenID, found.AccountID)
		got, err := w.sdk.Social.Get(w.ctx, w.conns["user"].ID)
		require.NoError(t, err)
		require.Equal(t, canaryFBUserID, got.AccountID)

		files := exportSubject(t, w, map[string]string{social.SubjectOpenID: canaryOpenID})
		require.Contains(t, files[social.CategoryConnection+".json"], canaryOpenID, "the resolver found it; the export opens it")
		require.NotContains(t, files[social.CategoryConnection+".json"], canaryFBUserID)
		files = exportSubject(t, w, map[string]string{social.SubjectAccount: canaryFBUserID})
		require.Contains(t, files[social.CategoryConnection+".json"], canaryFBUserID)

		// An erasure while TikTok is unreachable leaves the revoke queued.
		hc := w.tt.Client()
		inner := hc.Transport
		hc.Transport = eraseRoundTrip(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == tiktoktest.RevokePath {
				return nil, errors.New("network unreachable")
			}
			return inner.RoundTrip(r)
		})
		t.Cleanup(func() { hc.Transport = inner })
		er := submitVerified(t, w.sdk, w.ctx, "erasure", map[string]string{social.SubjectOpenID: canaryOpenID})
		rc, err := w.sdk.Retention.Erase(w.ctx, er.ID)
		require.NoError(t, err)
		require.Equal(t, int64(1), receiptOf(rc, social.CategoryConnection).Erased)
		n, err := w.sdk.Social.PendingRevocations(w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		// A later request names only the open_id: no connection is left,
		// the queued revoke is found by the account's blind index.
		pending := pendingOf(t, w.sdk, w.ctx, retention.Keys{social.SubjectOpenID: {canaryOpenID}})
		require.Equal(t, int64(1), pending, "the queued revoke is found by the open_id's blind index")

		for _, hit := range scanColumns(t, db, w.ctx, unkeyedForms(canaryOpenID, canaryFBUserID)...) {
			t.Errorf("account id (or its unkeyed hash) %q readable in %s.%s", hit.canary, hit.table, hit.column)
		}
	})
}

// pendingOf is the revoke queue's Pending count for keys (the category's
// own function, as an erasure's receipt calls it).
func pendingOf(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, keys retention.Keys) int64 {
	t.Helper()
	for _, c := range sdk.Social.Categories() {
		if c.Name == social.CategoryRevocation {
			n, err := c.Pending(ctx, keys)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no revocation category")
	return 0
}

// TestAccountIDsMigratedS17Clear: a database whose connections and
// revoke queue hold account ids in clear (as before they were sealed) is
// migrated: the ids leave the columns, Open seals them, and the
// connection reads and is found as before, its queued revoke counted by
// the account. On both databases.
func TestAccountIDsMigratedS17Clear(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		tid, tctx := migrateOlder(t, db, func(name string) bool { return name < "20261214070000" })
		now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		const openID, gone = "open-LEGACY-s17", "open-LEGACY-s17-gone"
		require.NoError(t, tenancy.RunInTx(tctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO socialcrm_social_connections (tenant_id, id, platform, account_id, scopes, requested, purposes, status, token_version, created_at, updated_at)
				VALUES (?, 'c1', 'tiktok', ?, '', '', '', 'active', 1, ?, ?)`, tid, openID, now, now); err != nil {
				return err
			}
			// A revoke of a connection already erased.
			_, err := tx.ExecContext(ctx, `INSERT INTO socialcrm_social_revocations (tenant_id, id, connection_id, platform, attempts, last_error, created_at, next_at, account_id)
				VALUES (?, 'r1', 'c-erased', 'tiktok', 1, '', ?, ?, ?)`, tid, now, now, gone)
			return err
		}))
		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		dbtest.GrantApp(t, db)
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)

		c, err := sdk.Social.Get(tctx, "c1")
		require.NoError(t, err)
		require.Equal(t, openID, c.AccountID)
		found, err := sdk.Social.Find(tctx, tiktok.Platform, openID)
		require.NoError(t, err)
		require.Equal(t, "c1", found.ID)
		require.Equal(t, int64(1), pendingOf(t, sdk, tctx, retention.Keys{social.SubjectOpenID: {gone}}))
		require.Zero(t, pendingOf(t, sdk, tctx, retention.Keys{social.SubjectOpenID: {openID}}))
		for _, hit := range scanColumns(t, db, tctx, unkeyedForms(openID, gone)...) {
			t.Errorf("account id (or its unkeyed hash) %q readable in %s.%s", hit.canary, hit.table, hit.column)
		}
	})
}

// sealConnAccount stores c's account id as the social store does (sealed
// to the connection, with its blind index under the context tenant's
// key), for tests that insert connections directly.
func sealConnAccount(t *testing.T, v *vault.Vault, ctx context.Context, c *social.Connection) {
	t.Helper()
	sealed, err := v.Seal(ctx, []byte(c.AccountID), vault.Binding{Record: c.ID, Field: "account_id"})
	require.NoError(t, err)
	idx, err := v.Index(ctx, c.AccountID, "social.connection.account")
	require.NoError(t, err)
	c.AccountIDSealed, c.AccountIndex = sealed, "bi1:"+idx
}
