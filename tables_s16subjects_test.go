package socialcrm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
)

// TestS16UnmappedTablesHoldNoIdentifier: the tables the data map does not
// list (s15Unmapped) hold nothing a reader of the database alone can tie
// to a person. A person's Messenger events (a message, a read receipt,
// whose key hashes her PSID with a guessable timestamp) are recorded
// through social.Store.Deliver, and a TikTok event of hers through Once,
// with the keys the platforms' webhooks make of them; then no cell of any
// unmapped table holds her PSID or open_id, their SHA-256, or any of the
// keys as given (an unkeyed hash of her id a dictionary of ids
// reverses). The deliveries still work by those keys: a redelivery is
// not first, a processed Once does not run again, ForgetDelivery forgets.
func TestS16UnmappedTablesHoldNoIdentifier(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t)})
		require.NoError(t, err)
		const psid, openID, page = "7100000000000016", "open-s16-person", "1600000000"
		at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
		events := []meta.Event{
			{Kind: meta.EventMessage, PageID: page, PSID: psid, Message: &meta.Message{MID: "m_s16"}},
			{Kind: meta.EventRead, PageID: page, PSID: psid, Read: &meta.Read{Watermark: at}},
		}
		var keys []string
		for _, ev := range events {
			keys = append(keys, ev.DedupeKey())
		}
		deliver := func() []bool {
			var got []bool
			require.NoError(t, sdk.Social.Deliver(ctx, social.Delivery{Platform: meta.Platform, Keys: keys},
				func(_ context.Context, _ bun.IDB, first []bool) error { got = first; return nil }))
			return got
		}
		require.Equal(t, []bool{true, true}, deliver())
		require.Equal(t, []bool{false, false}, deliver(), "a redelivery is processed once")

		sum := sha256.Sum256([]byte("authorization.removed\x00" + openID + "\x00" + "1764000000\x00{}"))
		ttKey := hex.EncodeToString(sum[:])
		runs := 0
		once := func() {
			require.NoError(t, sdk.Social.Once(ctx, tiktok.Platform, ttKey, 0, func(context.Context) error { runs++; return nil }))
		}
		once()
		once()
		require.Equal(t, 1, runs, "a processed delivery is not processed again")

		mapped := map[string]bool{}
		for _, c := range sdk.Retention.DataMap().Categories {
			mapped[c.Table] = true
		}
		hashed := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
		canaries := append([]string{psid, openID, hashed(psid), hashed(openID), ttKey}, keys...)
		seen := 0
		for cell := range s15Cells(t, ctx, db.Admin(t)) {
			table, _, _ := strings.Cut(cell, ".")
			if mapped[table] {
				continue
			}
			if table == social.TableDeliveries {
				seen++
			}
			for _, c := range canaries {
				require.NotContains(t, cell, c, "an unmapped table holds the person's id or an unkeyed hash of it")
			}
		}
		require.NotZero(t, seen, "the deliveries were recorded")

		require.NoError(t, sdk.Social.ForgetDelivery(ctx, meta.Platform, keys[0]))
		require.Equal(t, []bool{true, false}, deliver(), "a forgotten delivery is processed again")
	}, migrated)
}
