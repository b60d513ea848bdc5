package crm_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// ingestStatements records the text of each statement that writes
// messages.
type ingestStatements struct {
	mu    sync.Mutex
	texts []string
}

func (h *ingestStatements) BeforeQuery(ctx context.Context, ev *bun.QueryEvent) context.Context {
	if strings.Contains(ev.Query, "INSERT INTO socialcrm_crm_messages") || strings.Contains(ev.Query, `INSERT INTO "socialcrm_crm_messages"`) {
		h.mu.Lock()
		h.texts = append(h.texts, ev.Query)
		h.mu.Unlock()
	}
	return ctx
}

func (*ingestStatements) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestConversationIngestRowsTravelApart: on PostgreSQL the batch's rows
// are parameters of Ingest's statement, not part of its text, which is
// then the same for every batch of a tenant — two batches of different
// sizes, messages and watermarks send one text, which holds none of
// their values (so it is written, checked and parsed once per
// connection). On both databases each batch is stored whole.
func TestConversationIngestRowsTravelApart(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		h := &ingestStatements{}
		e.db.DB.AddQueryHook(h)
		convs := e.store.Conversations()
		at := fakeclock.Start.Add(time.Minute)
		batch := func(n int, tag string) crm.Batch {
			var b crm.Batch
			for i := range n {
				k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%s-%d", tag, i)}
				b.Messages = append(b.Messages, crm.NewMessage{Conversation: k, Direction: crm.Inbound,
					ExternalID: fmt.Sprintf("mid.%s.%d", tag, i), Text: "text " + tag, SentAt: at.Add(time.Duration(i) * time.Second)})
				b.Watermarks = append(b.Watermarks, crm.Watermarks{Conversation: k, Delivered: at, Read: at})
			}
			return b
		}
		for _, c := range []struct {
			n   int
			tag string
		}{{3, "first"}, {7, "second"}} {
			res, err := convs.Ingest(e.A, batch(c.n, c.tag))
			require.NoError(t, err)
			require.EqualValues(t, c.n, res.Stored)
			for i := range c.n {
				conv, err := convs.Find(e.A, crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%s-%d", c.tag, i)})
				require.NoError(t, err)
				ms, err := whole(convs.Messages(e.A, conv.ID, crm.ListOptions{Limit: 10}))
				require.NoError(t, err)
				require.Len(t, ms, 1)
				require.Equal(t, fmt.Sprintf("mid.%s.%d", c.tag, i), ms[0].ExternalID)
			}
		}
		if e.db.Name != "postgres" {
			return // SQLite writes its rows into its statements: no round trip to save
		}
		require.Len(t, h.texts, 2)
		require.Equal(t, h.texts[0], h.texts[1], "two batches sent two statement texts")
		for _, v := range []string{"mid.first.0", "mid.second.0", "psid-first", "2026-"} {
			require.NotContains(t, h.texts[1], v, "a value of the batch is in the statement's text")
		}

		// On a plain pgx handle, which binds no parameters of a context,
		// the rows are written into the statement, and stored the same.
		cfg, err := pgx.ParseConfig(e.db.DSN())
		require.NoError(t, err)
		plain := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
		t.Cleanup(func() { plain.Close() })
		require.False(t, sqldb.Folds(plain.DB))
		ps, err := crm.New(plain, e.vault, crm.WithClock(e.clock.Now))
		require.NoError(t, err)
		res, err := ps.Conversations().Ingest(e.A, batch(4, "plain"))
		require.NoError(t, err)
		require.EqualValues(t, 4, res.Stored)
		conv, err := convs.Find(e.A, crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-plain-3"})
		require.NoError(t, err)
		ms, err := whole(convs.Messages(e.A, conv.ID, crm.ListOptions{Limit: 10}))
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, "text plain", ms[0].Text)
	})
}

// TestConversationIngestTextPerTenantAndRequire: the statement text that
// Ingest keeps on PostgreSQL is one per tenant and Require. Tenant B's
// batch after tenant A's identical one is stored in B alone, and a
// Require that does not hold, after one that held for the same tenant,
// stores nothing.
func TestConversationIngestTextPerTenantAndRequire(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		h := &ingestStatements{}
		e.db.DB.AddQueryHook(h)
		convs := e.store.Conversations()
		k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-1"}
		batch := func(mid string, req schema.QueryAppender) crm.Batch {
			return crm.Batch{Require: req, Messages: []crm.NewMessage{{Conversation: k, Direction: crm.Inbound, ExternalID: mid,
				Text: "hello", SentAt: fakeclock.Start.Add(time.Minute)}}}
		}
		for _, ctx := range []context.Context{e.A, e.B} {
			res, err := convs.Ingest(ctx, batch("mid.1", bun.Safe("1 = 1")))
			require.NoError(t, err)
			require.False(t, res.Unmet)
			require.EqualValues(t, 1, res.Stored)
		}
		for _, ctx := range []context.Context{e.A, e.B} {
			conv, err := convs.Find(ctx, k)
			require.NoError(t, err)
			ms, err := whole(convs.Messages(ctx, conv.ID, crm.ListOptions{Limit: 10}))
			require.NoError(t, err)
			require.Len(t, ms, 1, "each tenant holds its own message, once")
		}
		res, err := convs.Ingest(e.A, batch("mid.2", bun.Safe("1 = 0")))
		require.NoError(t, err)
		require.True(t, res.Unmet)
		require.Zero(t, res.Stored)
		conv, err := convs.Find(e.A, k)
		require.NoError(t, err)
		ms, err := whole(convs.Messages(e.A, conv.ID, crm.ListOptions{Limit: 10}))
		require.NoError(t, err)
		require.Len(t, ms, 1, "a batch whose Require did not hold stored a message")
		if e.db.Name == "postgres" {
			require.Len(t, h.texts, 3)
			require.NotEqual(t, h.texts[0], h.texts[1], "two tenants' batches sent one text")
			require.NotEqual(t, h.texts[0], h.texts[2], "two Requires' batches sent one text")
		}
	})
}
