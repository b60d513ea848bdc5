package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestConversationSweepUsesAnIndexRange: the retention sweep of
// conversations by age selects a tenant's due conversations along an
// index range — on PostgreSQL the index on (tenant_id, last_message_day)
// (conversationsDayMigration), since the one on the exact time went for
// HOT updates (conversationsHotMigration); on SQLite the index on
// (tenant_id, last_message_at, id) — not by reading every conversation of
// the tenant and filtering on the time: with 10,000 conversations in a
// tenant, 20 of them due, PostgreSQL read all 10,000 of A's (an index scan
// on tenant_id alone) on every batch of every sweep. The test seeds 1,000
// (ingesting is slow under the race detector); the plan it asserts names
// the time in the index condition whatever the count. The sweep still
// erases exactly the due conversations and their messages.
func TestConversationSweepUsesAnIndexRange(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		const n, due = 1000, 20
		at := make([]time.Time, n)
		for i := range at {
			switch {
			case i < due: // well past the year the policy keeps them
				at[i] = now.AddDate(-2, 0, 0).Add(time.Duration(i) * time.Hour)
			default: // the last 100 days
				at[i] = now.Add(-time.Duration(i%2400) * time.Hour).Add(-time.Duration(i) * time.Second)
			}
		}
		// Tenants the sweep visits: created in the tenancy store.
		ts, err := tenancy.NewStore(e.db.DB, tenancy.WithClock(e.clock.Now))
		require.NoError(t, err)
		tenant := func(name string) context.Context {
			tn, m, err := ts.CreateTenant(context.Background(), tenancy.SignUp{TenantName: name,
				Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner"}})
			require.NoError(t, err)
			ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})
			_, err = e.vault.EnsureKey(ctx)
			require.NoError(t, err)
			return ctx
		}
		A, B := tenant("alpha"), tenant("beta")
		ingestAt(t, A, e, at)
		ingestAt(t, B, e, at[:100])
		analyze := "ANALYZE"
		if e.db.Name == "postgres" {
			analyze = "ANALYZE " + crm.TableConversations + ", " + crm.TableMessages
		}
		_, err = e.db.Admin(t).ExecContext(context.Background(), analyze)
		require.NoError(t, err)

		p := retention.Policy{Name: "conversations a year", Rules: []retention.Rule{
			{Category: "crm.conversation", Period: retention.Year}}}
		eng, err := retention.New(e.db.DB, retention.WithClock(func() time.Time { return now }), retention.WithPolicy(p))
		require.NoError(t, err)
		require.NoError(t, eng.Register(e.store.Categories()...))
		h := &captureHook{}
		e.db.AddQueryHook(h)
		rep, err := eng.Sweep(tenancy.System(context.Background(), "sweep-plan-test"), now)
		require.NoError(t, err)
		require.EqualValues(t, 2*due, rep.Erased(), "A's and B's due conversations")
		a, _ := tenancy.TenantID(A)
		q := h.last("SELECT", "FROM "+crm.TableConversations+" AS r", "last_message_at", a)
		require.NotEmpty(t, q, "the sweep's selection of A's due conversations")

		page, err := e.store.Conversations().List(A, crm.ConversationFilter{}, crm.ListOptions{Limit: 1})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		var left, msgs int
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableConversations+" WHERE tenant_id = ?", a).Scan(context.Background(), &left))
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE tenant_id = ?", a).Scan(context.Background(), &msgs))
		require.Equal(t, n-due, left)
		require.Equal(t, n-due, msgs, "the swept conversations' messages went with them")

		plan := explainPlan(t, e, q, false)
		if e.db.Name == "sqlite" {
			require.Regexp(t, `SEARCH r USING (COVERING )?INDEX socialcrm_crm_conversations_last \(tenant_id=\? AND last_message_at<\?\)`, plan, "sweep selection:\n%s", plan)
			return
		}
		require.NotContains(t, plan, "Seq Scan", "sweep selection:\n%s", plan)
		require.Regexp(t, `Index Cond: \(\(tenant_id = '[^']+'::text\) AND \(last_message_day <= `, plan, "sweep selection:\n%s", plan)
	})
}
