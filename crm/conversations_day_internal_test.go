package crm

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestConversationsDayMigrationFillsOldRows stores conversations in two
// tenants with the schema of the release before migration 20261123000620,
// then migrates: on PostgreSQL every row's last_message_day is the day of
// its last message time (unixDay), the index by day is there, and running
// the migration again changes nothing; on both databases List then gives
// each tenant its own conversations, latest first, page after page.
func TestConversationsDayMigrationFillsOldRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		before := migrationsWithout("20261123000620")
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), before))
		dbtest.GrantApp(t, db)
		v, err := vault.New(db.DB, testkit.NewKEK(t), vault.WithColumns(SealedColumns()...))
		require.NoError(t, err)
		s, err := New(db.DB, v)
		require.NoError(t, err)
		pg := db.Name == "postgres"
		raw := db.Admin(t)

		base := time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC)
		var tenants []context.Context
		for ti := range 2 {
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			tenants = append(tenants, tctx)
			var b Batch
			for i := range 12 + ti {
				b.Messages = append(b.Messages, NewMessage{Direction: Inbound, ExternalID: fmt.Sprintf("mid.%d", i), Text: "hi",
					Conversation: ConversationKey{Channel: ChannelMessenger, AccountID: "page", ThreadID: fmt.Sprintf("psid-%d", i)},
					SentAt:       base.Add(time.Duration(i*i) * 20 * time.Minute)})
			}
			_, err := s.Conversations().Ingest(tctx, b)
			require.NoError(t, err)
		}
		count := func(q string) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw(q).Scan(ctx, &n))
			return n
		}
		if pg {
			has, err := hasColumn(ctx, raw, TableConversations, "last_message_day")
			require.NoError(t, err)
			require.False(t, has, "the release before")
		}

		migrated := func() {
			t.Helper()
			if pg {
				rows, err := raw.QueryContext(ctx, "SELECT last_message_at, last_message_day FROM "+TableConversations)
				require.NoError(t, err)
				n := 0
				for rows.Next() {
					var at time.Time
					var day int64
					require.NoError(t, rows.Scan(&at, &day))
					require.Equal(t, unixDay(at), day, "day of %v", at)
					n++
				}
				require.NoError(t, rows.Err())
				require.NoError(t, rows.Close())
				require.Equal(t, 25, n)
				require.Equal(t, 1, count("SELECT count(*) FROM pg_indexes WHERE indexname = 'socialcrm_crm_conversations_day' AND schemaname = current_schema()"))
			}
			for ti, tctx := range tenants {
				var all []Conversation
				o := ListOptions{Limit: 5}
				for {
					p, err := s.Conversations().List(tctx, ConversationFilter{}, o)
					require.NoError(t, err)
					all = append(all, p.Items...)
					if p.NextCursor == "" {
						break
					}
					o.Cursor = p.NextCursor
				}
				require.Len(t, all, 12+ti, "its own tenant's only")
				require.True(t, slices.IsSortedFunc(all, func(a, b Conversation) int { return b.LastMessageAt.Compare(a.LastMessageAt) }))
				require.Equal(t, fmt.Sprintf("psid-%d", 11+ti), all[0].ThreadID)
			}
		}
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		migrated()
		// Run again (as a run that stopped after its work but before
		// recording it would be): nothing changes.
		require.NoError(t, db.Owner.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return conversationsDayMigration(ctx, tx)
		}))
		migrated()
	})
}
