package crm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

// TestConversationIngestWatermarksOfRemovedConversation: the watermarks
// of a conversation that no longer exists are ignored and the rest of the
// batch is stored. On PostgreSQL, where Ingest locks the batch's existing
// conversations (FOR KEY SHARE), a conversation whose removal is
// uncommitted when the statement begins makes the statement wait for it;
// once the removal commits, the conversation is neither opened again by
// its watermarks nor given them, and the other conversation's message is
// stored. A second delivery stores nothing more.
func TestConversationIngestWatermarksOfRemovedConversation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := fakeclock.Start.Add(time.Minute)
		key := func(thread string) crm.ConversationKey {
			return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: thread}
		}
		_, err := convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: key("gone"), Direction: crm.Outbound, ExternalID: "out.1", Text: "hello", SentAt: at},
			{Conversation: key("kept"), Direction: crm.Inbound, ExternalID: "in.1", Text: "hi", SentAt: at},
		}})
		require.NoError(t, err)
		gone, err := convs.Find(e.A, key("gone"))
		require.NoError(t, err)
		kept, err := convs.Find(e.A, key("kept"))
		require.NoError(t, err)
		batch := crm.Batch{
			Messages:   []crm.NewMessage{{Conversation: key("kept"), Direction: crm.Inbound, ExternalID: "in.2", Text: "again", SentAt: at.Add(time.Second)}},
			Watermarks: []crm.Watermarks{{Conversation: key("gone"), Delivered: at, Read: at}},
		}
		admin := e.db.Admin(t)
		ctx := context.Background()
		if e.db.Name == "postgres" {
			tx, err := admin.BeginTx(ctx, nil)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			_, err = tx.ExecContext(ctx, "DELETE FROM socialcrm_crm_conversations WHERE id = ?", gone.ID)
			require.NoError(t, err)
			var xid string
			require.NoError(t, tx.NewRaw("SELECT pg_current_xact_id()::text").Scan(ctx, &xid))
			type result struct {
				crm.BatchResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := convs.Ingest(e.A, batch)
				done <- result{res, err}
			}()
			// Wait until Ingest waits for the removal (its
			// lock of the removed row), then commit the removal.
			for waiting := false; !waiting; {
				select {
				case res := <-done:
					t.Fatalf("Ingest returned %v before the removal committed", res.err)
				default:
				}
				require.NoError(t, admin.NewRaw(`SELECT EXISTS (SELECT 1 FROM pg_locks
					WHERE locktype = 'transactionid' AND transactionid::text = ? AND NOT granted)`, xid).Scan(ctx, &waiting))
			}
			require.NoError(t, tx.Commit())
			res := <-done
			require.NoError(t, res.err)
			require.Equal(t, int64(1), res.Stored)
		} else {
			_, err := admin.ExecContext(ctx, "DELETE FROM socialcrm_crm_conversations WHERE id = ?", gone.ID)
			require.NoError(t, err)
			res, err := convs.Ingest(e.A, batch)
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Stored)
		}
		// Delivered again: nothing more is stored.
		res, err := convs.Ingest(e.A, batch)
		require.NoError(t, err)
		require.Equal(t, int64(0), res.Stored)
		_, err = convs.Find(e.A, key("gone"))
		require.True(t, errors.Is(err, crm.ErrNotFound), "Find of the removed conversation returned %v, want crm.ErrNotFound", err)
		ms, err := whole(convs.Messages(e.A, kept.ID, crm.ListOptions{Limit: 10}))
		require.NoError(t, err)
		require.Len(t, ms, 2)
	})
}
