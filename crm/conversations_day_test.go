package crm_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// dayKey is the key of the i-th conversation of the tests below.
func dayKey(i int) crm.ConversationKey {
	return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-day", ThreadID: fmt.Sprintf("psid-%d", i)}
}

// ingestAt stores one inbound message in each conversation i of at, sent
// at at[i], in batches.
func ingestAt(t *testing.T, ctx context.Context, e *env, at []time.Time) {
	t.Helper()
	for lo := 0; lo < len(at); lo += 500 {
		var b crm.Batch
		for i := lo; i < min(lo+500, len(at)); i++ {
			b.Messages = append(b.Messages, crm.NewMessage{Conversation: dayKey(i), Direction: crm.Inbound,
				ExternalID: fmt.Sprintf("mid.%d.%d", i, at[i].UnixNano()), Text: "hi", SentAt: at[i]})
		}
		res, err := e.store.Conversations().Ingest(ctx, b)
		require.NoError(t, err)
		require.Equal(t, int64(len(b.Messages)), res.Stored)
	}
}

// unixDay is the whole days from 1970-01-01 UTC to t, rounded down.
func unixDay(t time.Time) int64 {
	d := t.Unix() / 86400
	if t.Unix()%86400 < 0 {
		d--
	}
	return d
}

// TestConversationListOrderAcrossDays: conversations whose last messages
// fall on many days — either side of midnight, before 1970, several at the
// very same time — are listed page after page in the order of
// (LastMessageAt DESC, ID DESC), each once, on both databases; on
// PostgreSQL each row's last_message_day is the day of its time, and
// follows the time when a message moves it to another day.
func TestConversationListOrderAcrossDays(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		base := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
		at := []time.Time{
			base, base.Add(-time.Microsecond), base.Add(-time.Microsecond), base.Add(time.Microsecond),
			base.Add(24*time.Hour - time.Microsecond), base.Add(24 * time.Hour),
			time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		for i := range 40 {
			at = append(at, base.Add(-time.Duration(i%9)*24*time.Hour+time.Duration(i%4)*7*time.Hour)) // repeats
		}
		ingestAt(t, e.A, e, at)
		ingestAt(t, e.B, e, at[:5])

		listAll := func(limit int) []crm.Conversation {
			var all []crm.Conversation
			o := crm.ListOptions{Limit: limit}
			for {
				p, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, o)
				require.NoError(t, err)
				all = append(all, p.Items...)
				if p.NextCursor == "" {
					return all
				}
				o.Cursor = p.NextCursor
			}
		}
		check := func(all []crm.Conversation, want map[string]time.Time) {
			t.Helper()
			require.Len(t, all, len(want))
			seen := map[string]bool{}
			for i, c := range all {
				require.False(t, seen[c.ThreadID], "listed twice: %s", c.ThreadID)
				seen[c.ThreadID] = true
				require.True(t, want[c.ThreadID].Equal(c.LastMessageAt), "%s: %v, want %v", c.ThreadID, c.LastMessageAt, want[c.ThreadID])
				if i > 0 {
					p := all[i-1]
					require.True(t, c.LastMessageAt.Before(p.LastMessageAt) || c.LastMessageAt.Equal(p.LastMessageAt) && c.ID < p.ID,
						"out of order at %d: %v %s after %v %s", i, c.LastMessageAt, c.ID, p.LastMessageAt, p.ID)
				}
			}
		}
		want := map[string]time.Time{}
		for i, a := range at {
			want[dayKey(i).ThreadID] = a
		}
		for _, limit := range []int{1, 3, 7, 100} {
			check(listAll(limit), want)
		}

		// A message on the next day moves a conversation to that day.
		moved := at[1].Add(36 * time.Hour)
		_, err := e.store.Conversations().Record(e.A, crm.NewMessage{Conversation: dayKey(1), Direction: crm.Inbound,
			ExternalID: "mid.moved", Text: "later", SentAt: moved})
		require.NoError(t, err)
		want[dayKey(1).ThreadID] = moved
		check(listAll(4), want)

		if e.db.Name == "postgres" {
			rows, err := e.db.Admin(t).QueryContext(context.Background(),
				"SELECT last_message_at, last_message_day FROM "+crm.TableConversations)
			require.NoError(t, err)
			defer rows.Close()
			n := 0
			for rows.Next() {
				var ts time.Time
				var day int64
				require.NoError(t, rows.Scan(&ts, &day))
				require.Equal(t, unixDay(ts), day, "day of %v", ts)
				n++
			}
			require.NoError(t, rows.Err())
			require.Equal(t, len(at)+5, n)
		}
	})
}

// TestConversationListUsesDayIndex: with 3,000 conversations of a tenant
// spread over 300 days (and 500 of another), the tables ANALYZEd, the first
// page of Conversations.List and a later one are read on PostgreSQL, as the
// application's role under row-level security, along the index on
// (tenant_id, last_message_day DESC) with an incremental sort within the
// day — no sort of all of the tenant's conversations, no sequential scan;
// the later page starts at its cursor's day (an index condition). SQLite
// reads them along its index on (tenant_id, last_message_at, id), with no
// sort.
func TestConversationListUsesDayIndex(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		base := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		seed := func(ctx context.Context, n int) {
			at := make([]time.Time, n)
			for i := range at {
				at[i] = base.Add(-time.Duration(i%300)*24*time.Hour - time.Duration(i*37)*time.Second)
			}
			ingestAt(t, ctx, e, at)
		}
		seed(e.A, 3000)
		seed(e.B, 500)
		analyze := "ANALYZE"
		if e.db.Name == "postgres" {
			analyze = "ANALYZE " + crm.TableConversations
		}
		_, err := e.db.Admin(t).ExecContext(context.Background(), analyze)
		require.NoError(t, err)

		h := &captureHook{}
		e.db.AddQueryHook(h)
		first, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, first.Items, crm.DefaultLimit)
		firstQuery := h.last("SELECT", crm.TableConversations, "ORDER BY")
		o := crm.ListOptions{Cursor: first.NextCursor}
		for range 20 { // a page far down the list
			p, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, o)
			require.NoError(t, err)
			require.Len(t, p.Items, crm.DefaultLimit)
			o.Cursor = p.NextCursor
		}
		laterQuery := h.last("SELECT", crm.TableConversations, "ORDER BY")
		require.NotEqual(t, firstQuery, laterQuery)

		for name, q := range map[string]string{"first page": firstQuery, "later page": laterQuery} {
			plan := explainPlan(t, e, q, false)
			if e.db.Name == "sqlite" {
				require.Contains(t, plan, "socialcrm_crm_conversations_last", "%s:\n%s", name, plan)
				require.NotContains(t, plan, "TEMP B-TREE", "%s:\n%s", name, plan)
				continue
			}
			require.Contains(t, plan, "Incremental Sort", "%s:\n%s", name, plan)
			require.Contains(t, plan, "socialcrm_crm_conversations_day", "%s:\n%s", name, plan)
			require.NotContains(t, plan, "Seq Scan", "%s:\n%s", name, plan)
			require.NotRegexp(t, regexp.MustCompile(`(?m)^\s*(->\s+)?Sort\s+\(`), plan, "%s: a full sort\n%s", name, plan)
			if name == "later page" {
				require.Regexp(t, `Index Cond: .*last_message_day <= `, plan, "%s:\n%s", name, plan)
			}
		}
	})
}

// TestConversationMessageUpdateIsHOT: on PostgreSQL, the update a message
// makes to its conversation's last message time is a heap-only tuple (no
// index entry) while the day does not change, in both Record and Ingest;
// a message on a later day changes the indexed day, and that update is
// not. On SQLite (which updates rows in place) the times move all the
// same.
func TestConversationMessageUpdateIsHOT(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
		ingestAt(t, e.A, e, []time.Time{base, base})
		pg := e.db.Name == "postgres"
		// A handle without the Guard, which refuses the statistics
		// functions (they count every tenant's rows); row-level security
		// still binds it.
		db := e.db.Reopen(t)
		require.NoError(t, tenancy.RunInTx(e.A, db, nil, func(ctx context.Context, tx bun.Tx) error {
			convs := e.store.Using(tx).Conversations()
			// counts returns the rows of the table this transaction updated,
			// and of those the heap-only ones.
			counts := func() (upd, hot int64) {
				if pg {
					require.NoError(t, tx.NewRaw(`SELECT pg_stat_get_xact_tuples_updated(?::regclass), pg_stat_get_xact_tuples_hot_updated(?::regclass)`,
						crm.TableConversations, crm.TableConversations).Scan(ctx, &upd, &hot))
				}
				return upd, hot
			}
			step := func(name string, sent time.Time, ingest, wantHOT bool) {
				u0, h0 := counts()
				in := crm.NewMessage{Conversation: dayKey(0), Direction: crm.Inbound, ExternalID: "mid." + name, Text: "x", SentAt: sent}
				if ingest {
					in.Conversation = dayKey(1)
					_, err := convs.Ingest(ctx, crm.Batch{Messages: []crm.NewMessage{in}})
					require.NoError(t, err, name)
				} else {
					_, err := convs.Record(ctx, in)
					require.NoError(t, err, name)
				}
				c, err := convs.Find(ctx, in.Conversation)
				require.NoError(t, err, name)
				require.True(t, sent.Equal(c.LastMessageAt), name)
				if !pg {
					return
				}
				u1, h1 := counts()
				require.Equal(t, int64(1), u1-u0, "%s: rows updated", name)
				if wantHOT {
					require.Equal(t, int64(1), h1-h0, "%s: HOT", name)
				} else {
					require.Zero(t, h1-h0, "%s: HOT", name)
				}
			}
			step("record-same-day", base.Add(time.Hour), false, true)
			step("ingest-same-day", base.Add(2*time.Hour), true, true)
			step("record-next-day", base.Add(24*time.Hour), false, false)
			step("ingest-next-day", base.Add(25*time.Hour), true, false)
			step("record-same-day-again", base.Add(30*time.Hour), false, true)
			return nil
		}))
	})
}
