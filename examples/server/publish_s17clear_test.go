package main

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestPublishFingerprintKeyedS17Clear: a publish record keeps its
// request's fingerprint only as a keyed hash under the tenant's key — not
// the unkeyed SHA-256 of the title and video anyone could recompute — and
// a resent request still matches it. A fingerprint an older version
// stored unkeyed is keyed at start (keyFingerprints), once. On both
// databases.
func TestPublishFingerprintKeyedS17Clear(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		f := newPublishFixture(t, a)
		resp, first := f.post("key-s17", "Launch day")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", first)
		stored := func() string {
			var fp string
			f.record(func(ctx context.Context, tx bun.Tx) error {
				return tx.NewSelect().Model((*publishRecord)(nil)).Column("fingerprint").Where("idem_key = ?", "key-s17").Scan(ctx, &fp)
			})
			return fp
		}
		fp := stored()
		require.Regexp(t, `^k1:`, fp)
		require.False(t, regexp.MustCompile(`[0-9a-f]{64}`).MatchString(fp), "an unkeyed SHA-256 stored: %q", fp)
		resp, again := f.post("key-s17", "Launch day")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", again)
		require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"), "the keyed fingerprint matches the resent request")

		// As an older version stored it: the digest in clear.
		const legacy = "5d41402abc4b2a76b9719d911017c592a8a9b7c1d0e3f2a4b6c8d0e2f4a6b8c0"
		f.record(func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewUpdate().Model((*publishRecord)(nil)).Set("fingerprint = ?", legacy).Where("idem_key = ?", "key-s17").Exec(ctx)
			return err
		})
		require.NoError(t, keyFingerprints(context.Background(), a.sdk))
		want, err := keyFingerprint(tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: f.tenant}), a.sdk.Vault, legacy)
		require.NoError(t, err)
		require.Equal(t, want, stored())
		require.NoError(t, keyFingerprints(context.Background(), a.sdk))
		require.Equal(t, want, stored(), "a second run changes nothing")
	})
}
