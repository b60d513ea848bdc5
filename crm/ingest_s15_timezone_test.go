package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestIngestHoursAreUTCWhateverTheSessionZone: the hour within which
// Ingest leaves a conversation's stored time alone on PostgreSQL is an
// hour of UTC, not of the session's time zone. In a zone half an hour off
// UTC (Asia/Kolkata) the local hour 05:00–06:00 spans UTC midnight: a
// message at 23:40 UTC and the conversation's next at 00:20 UTC the next
// day fell in one local hour, the stored time kept the first day, and List
// (newest first, by day) put a conversation last heard from at 00:10 UTC
// before it. Reads still give the exact times, and the watermarks
// compare in the same zone-free way (an outbound message sent before the
// read watermark is read).
func TestIngestHoursAreUTCWhateverTheSessionZone(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		store := e.store
		if e.db.Name == "postgres" {
			db, err := dbtest.OpenPostgres(e.db.DSN() + "&timezone=Asia/Kolkata")
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			var zone string
			require.NoError(t, db.NewRaw("SELECT current_setting('TimeZone')").Scan(e.A, &zone))
			require.Equal(t, "Asia/Kolkata", zone)
			store, err = crm.New(db, e.vault, crm.WithClock(e.clock.Now))
			require.NoError(t, err)
		}
		convs := store.Conversations()
		night := time.Date(2026, 11, 23, 23, 40, 0, 0, time.UTC)
		ingest := func(b crm.Batch) crm.BatchResult {
			t.Helper()
			res, err := convs.Ingest(e.A, b)
			require.NoError(t, err)
			for _, r := range res.Rejected {
				require.NoError(t, r)
			}
			return res
		}
		msg := func(i int, mid string, dir crm.Direction, at time.Time) crm.NewMessage {
			return crm.NewMessage{Conversation: dayKey(i), Direction: dir, ExternalID: mid, Text: "hi", SentAt: at}
		}
		ingest(crm.Batch{Messages: []crm.NewMessage{msg(0, "a1", crm.Inbound, night), msg(0, "out", crm.Outbound, night.Add(time.Minute))}})
		ingest(crm.Batch{Messages: []crm.NewMessage{msg(1, "b1", crm.Inbound, night.Add(30*time.Minute))}})        // 00:10 the next day
		res := ingest(crm.Batch{Messages: []crm.NewMessage{msg(0, "a2", crm.Inbound, night.Add(40*time.Minute))}}) // 00:20
		require.Equal(t, int64(1), res.Stored)

		page, err := convs.List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 2)
		require.Equal(t, dayKey(0).ThreadID, page.Items[0].ThreadID, "the conversation last heard from at 00:20 UTC comes first")
		require.Equal(t, night.Add(40*time.Minute), page.Items[0].LastMessageAt.UTC())
		require.Equal(t, night.Add(30*time.Minute), page.Items[1].LastMessageAt.UTC())

		res = ingest(crm.Batch{Watermarks: []crm.Watermarks{{Conversation: dayKey(0), Read: night.Add(2 * time.Minute)}}})
		require.Equal(t, int64(1), res.Marked, "the outbound message before the read watermark")
		msgs, err := convs.Messages(e.A, page.Items[0].ID, crm.ListOptions{})
		require.NoError(t, err)
		status := map[string]crm.DeliveryStatus{}
		for _, m := range msgs.Items {
			status[m.ExternalID] = m.Status
		}
		require.Equal(t, crm.StatusRead, status["out"])
	})
}
