package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestRetentionAgesPlatformData ages platform data past every period of
// the default policy with the clock and checks that each category goes
// when it is due, and not before: expired OAuth states a day after expiry;
// a disconnected Meta user's connections 30 days after the disconnect,
// with their media, snapshots, raw responses, account-index rows and the
// Messenger threads of their Page; TikTok raw responses after 90 days;
// media and metric snapshots after 24 months — except a media item under a
// legal hold, and a thread of a Page that was never connected.
func TestRetentionAgesPlatformData(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		tt := w.connectTikTok([]string{"profile", "stats", "video.read"})
		w.connectMeta()
		require.NoError(t, w.tt.AddVideo(canaryOpenID, tiktoktest.Video{ID: "7000000000000000002", CreateTime: w.clk.Now().Add(-time.Minute),
			Title: "second", ViewCount: 10}))
		_, _, err := w.tiktokClient(true).Sync(w.ctx)
		require.NoError(t, err)
		_, _, err = w.metaClient("page").Pages.Publish(w.ctx, fbPageID, meta.PostRequest{Message: "hello"})
		require.NoError(t, err)
		for _, kind := range []string{"user", "page", "instagram"} {
			_, _, err := w.metaClient(kind).Sync(w.ctx)
			require.NoError(t, err, kind)
		}
		page := w.conns["page"]
		convs := w.sdk.CRM.Conversations()
		for _, key := range []crm.ConversationKey{inbox.Key(fbPageID, "psid-1"), inbox.Key("9999", "psid-2")} {
			_, err := convs.Record(w.ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, Text: "hi", SentAt: w.clk.Now()})
			require.NoError(t, err)
		}
		flow, err := w.sdk.Social.NewFlow(w.ttProv, social.FlowConfig{Features: []string{"profile"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)
		_, err = flow.Begin(w.ctx) // never completed
		require.NoError(t, err)
		held, err := w.sdk.Social.Media(w.ctx, tt.ID)
		require.NoError(t, err)
		require.Len(t, held, 2)
		_, err = w.sdk.Retention.PlaceHold(w.ctx, retention.Hold{Scope: retention.HoldRecord, Category: social.CategoryMedia,
			RecordID: held[0].ID, Reason: "litigation"})
		require.NoError(t, err)
		start := w.clk.Now()

		sys := tenancy.System(context.Background(), "retention")
		sweep := func(at time.Duration) {
			t.Helper()
			w.clk.Set(start.Add(at))
			_, err := w.sdk.Retention.Sweep(sys, w.clk.Now())
			require.NoError(t, err)
		}
		count := func(table, where string, args ...any) int {
			t.Helper()
			n := 0
			require.NoError(t, tenancy.RunInTx(w.ctx, db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
				tid, _ := tenancy.TenantID(ctx)
				return tx.NewRaw("SELECT count(*) FROM ? WHERE tenant_id = ? AND "+where, append([]any{bun.Ident(table), tid}, args...)...).Scan(ctx, &n)
			}))
			return n
		}
		metaIDs := []string{w.conns["user"].ID, page.ID, w.conns["instagram"].ID}
		present := func(kinds ...string) {
			t.Helper()
			for _, k := range kinds {
				id := w.conns[k].ID
				require.Equal(t, 1, count(social.TableConnections, "id = ?", id), "%s connection", k)
				require.Equal(t, 1, count(social.TableAccounts, "connection_id = ?", id), "%s account index", k)
			}
		}
		thread := func(pageID, psid string) bool {
			_, err := convs.Find(w.ctx, inbox.Key(pageID, psid))
			if err != nil {
				require.ErrorIs(t, err, crm.ErrNotFound)
			}
			return err == nil
		}
		require.Equal(t, 3, count(social.TableStates, "1 = 1"), "two used states and one never completed")

		sweep(retention.Day + time.Hour)
		require.Zero(t, count(social.TableStates, "1 = 1"), "expired OAuth states go a day after expiry")
		present("tiktok", "user", "page", "instagram")

		// The Facebook user disconnects: the Page and Instagram account go too.
		_, err = w.sdk.Social.Disconnect(w.ctx, w.conns["user"].ID, w.fbProv)
		require.NoError(t, err)
		disconnected := w.clk.Now()
		sweep(disconnected.Sub(start) + 29*retention.Day)
		present("user", "page", "instagram")
		require.True(t, thread(fbPageID, "psid-1"), "within 30 days the Page's threads stay")
		require.Positive(t, count(social.TableMedia, "connection_id = ?", page.ID))

		sweep(disconnected.Sub(start) + 31*retention.Day)
		for _, id := range metaIDs {
			for _, table := range []string{social.TableConnections} {
				require.Zero(t, count(table, "id = ?", id), table)
			}
			for _, table := range []string{social.TableMedia, social.TableSnapshots, social.TableRawResponses, social.TableAccounts} {
				require.Zero(t, count(table, "connection_id = ?", id), "%s of a purged connection", table)
			}
		}
		ts, err := w.sdk.Social.AccountTenants(context.Background(), meta.Platform, fbPageID)
		require.NoError(t, err)
		require.Empty(t, ts, "the account index forgets the purged Page")
		require.False(t, thread(fbPageID, "psid-1"), "the disconnected Page's thread is erased 30 days after")
		require.Zero(t, count(crm.TableMessages, "1 = 1 AND conversation_id NOT IN (SELECT id FROM "+crm.TableConversations+")"), "with its messages")
		require.True(t, thread("9999", "psid-2"), "a thread of no connection is not touched")
		present("tiktok")
		require.Equal(t, 2, count(social.TableRawResponses, "connection_id = ?", tt.ID))

		sweep(91 * retention.Day)
		require.Zero(t, count(social.TableRawResponses, "connection_id = ?", tt.ID), "raw responses go after 90 days")
		require.Equal(t, 2, count(social.TableMedia, "connection_id = ?", tt.ID))
		require.Equal(t, 1, count(social.TableSnapshots, "connection_id = ?", tt.ID))

		sweep(24*retention.Month - retention.Day)
		require.Equal(t, 1, count(social.TableSnapshots, "connection_id = ?", tt.ID), "metrics are kept 24 months")
		require.Equal(t, 2, count(social.TableMedia, "connection_id = ?", tt.ID), "media are kept 24 months")

		sweep(24*retention.Month + retention.Day)
		require.Zero(t, count(social.TableSnapshots, "connection_id = ?", tt.ID), "metrics go after 24 months")
		media, err := w.sdk.Social.Media(w.ctx, tt.ID)
		require.NoError(t, err)
		require.Len(t, media, 1, "media go after 24 months, but the held item is kept")
		require.Equal(t, held[0].ID, media[0].ID)
		present("tiktok")
		ts, err = w.sdk.Social.AccountTenants(context.Background(), tiktok.Platform, canaryOpenID)
		require.NoError(t, err)
		require.Len(t, ts, 1, "a live connection keeps its account-index row")
	}, migrated)
}
