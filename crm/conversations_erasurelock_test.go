package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestConversationIngestWaitsForErasure: on PostgreSQL, a batch into a
// conversation that an erasure holds (taken FOR UPDATE, its messages
// deleted, as the retention engine does) waits for the erasure, and once
// the erasure removes the conversation and commits, the batch's message
// is not left behind in the removed conversation: it is stored in a
// conversation opened again. The conversations' FOR KEY SHARE locks are
// what make it so; without them the message would be stored in the
// removed conversation, never deleted.
func TestConversationIngestWaitsForErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return // SQLite runs one writer at a time: no batch runs during an erasure
		}
		convs := e.store.Conversations()
		at := fakeclock.Start.Add(time.Minute)
		k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-erased"}
		msg := func(mid string) crm.Batch {
			return crm.Batch{Messages: []crm.NewMessage{{Conversation: k, Direction: crm.Inbound, ExternalID: mid, Text: "x", SentAt: at}}}
		}
		// Twice: the second batch travels as one into a conversation the
		// Store remembers.
		for _, mid := range []string{"mid.1", "mid.2"} {
			_, err := convs.Ingest(e.A, msg(mid))
			require.NoError(t, err)
		}
		c, err := convs.Find(e.A, k)
		require.NoError(t, err)

		ctx := e.A
		tid, err := tenancy.TenantID(ctx)
		require.NoError(t, err)
		// A plain connection, which the Guard does not watch, to see the
		// server's sessions.
		plain, err := pgx.Connect(ctx, e.db.DSN())
		require.NoError(t, err)
		defer plain.Close(context.Background())
		done := make(chan error, 1)
		err = tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, `SELECT id FROM socialcrm_crm_conversations WHERE tenant_id = ? AND id = ? FOR UPDATE`, tid, c.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM socialcrm_crm_messages WHERE tenant_id = ? AND conversation_id = ?`, tid, c.ID); err != nil {
				return err
			}
			go func() {
				_, err := convs.Ingest(e.A, msg("mid.3"))
				done <- err
			}()
			// The batch waits for the erasure's lock (or, were it not to,
			// would be done).
			waiting := false
			for deadline := time.Now().Add(5 * time.Second); !waiting && time.Now().Before(deadline); {
				select {
				case err := <-done:
					done <- err
					waiting = true // done without waiting: the check below finds its message
					continue
				default:
				}
				var n int
				if err := plain.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
					return err
				}
				waiting = n > 0
				time.Sleep(10 * time.Millisecond)
			}
			require.True(t, waiting, "the batch neither waited nor finished")
			res, err := tx.ExecContext(ctx, `DELETE FROM socialcrm_crm_conversations WHERE tenant_id = ? AND id = ?`, tid, c.ID)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			require.NoError(t, err)
			require.EqualValues(t, 1, n, "the conversation removed")
			return nil
		})
		require.NoError(t, err)
		require.NoError(t, <-done)

		var orphans int
		require.NoError(t, tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw(`SELECT count(*) FROM socialcrm_crm_messages AS m WHERE m.tenant_id = ?
				AND NOT EXISTS (SELECT FROM socialcrm_crm_conversations AS c WHERE c.tenant_id = ? AND c.id = m.conversation_id)`, tid, tid).Scan(ctx, &orphans)
		}))
		require.Zero(t, orphans, "a message left without its conversation")
		again, err := convs.Find(e.A, k)
		require.NoError(t, err)
		require.NotEqual(t, c.ID, again.ID)
		ms, err := whole(convs.Messages(e.A, again.ID, crm.ListOptions{Limit: 10}))
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, "mid.3", ms[0].ExternalID)
	})
}
