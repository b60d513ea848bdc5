package crm_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
)

// captureHook records the SQL of the queries a handle runs (bun formats the
// arguments into it).
type captureHook struct {
	mu      sync.Mutex
	queries []string
}

func (h *captureHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h *captureHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries = append(h.queries, e.Query)
}

// last returns the last query that mentions all of words.
func (h *captureHook) last(words ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.queries) - 1; i >= 0; i-- {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(h.queries[i], w)
		}
		if ok {
			return h.queries[i]
		}
	}
	return ""
}

// TestContactLookupsUseIndexes: the contact list filtered by e-mail address
// (blind index) and by name prefix (name index table) is planned as index
// look-ups, not scans of every contact, on both databases. PostgreSQL plans
// a tiny table as a sequential scan whatever its indexes, so the plan is
// asked for with sequential scans disabled: what is checked is that an
// index serves the query.
func TestContactLookupsUseIndexes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		h := &captureHook{}
		e.db.AddQueryHook(h)
		for _, c := range []crm.ContactInput{{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"}, {FirstName: "Bob", Email: "bob@example.com"}} {
			_, err := e.store.Contacts().Create(e.A, c)
			require.NoError(t, err)
		}
		admin := e.db.Admin(t)
		explain := func(q string) string {
			t.Helper()
			require.NotEmpty(t, q)
			var lines []string
			ctx := context.Background()
			if e.db.Name == "sqlite" {
				rows, err := admin.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q)
				require.NoError(t, err)
				defer rows.Close()
				for rows.Next() {
					var id, parent, notused int
					var detail string
					require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
					lines = append(lines, detail)
				}
				require.NoError(t, rows.Err())
				return strings.Join(lines, "\n")
			}
			conn, err := admin.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			_, err = conn.ExecContext(ctx, "SET enable_seqscan = off")
			require.NoError(t, err)
			defer conn.ExecContext(ctx, "RESET enable_seqscan") //nolint:errcheck // the connection is closed next
			require.NoError(t, conn.NewRaw("EXPLAIN "+q).Scan(ctx, &lines))
			return strings.Join(lines, "\n")
		}

		page, err := e.store.Contacts().List(e.A, crm.ContactFilter{Email: "ann@example.com"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		plan := explain(h.last("SELECT", "email_index"))
		require.Contains(t, plan, "socialcrm_crm_contacts_email_id", "e-mail lookup:\n%s", plan)

		page, err = e.store.Contacts().List(e.A, crm.ContactFilter{NamePrefix: "le"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		plan = explain(h.last("SELECT", crm.TableContactNames))
		if e.db.Name == "sqlite" {
			require.Regexp(t, `SEARCH ctn USING (COVERING )?INDEX`, plan, "name prefix:\n%s", plan)
			require.NotRegexp(t, `SCAN ct\b`, plan, "name prefix:\n%s", plan)
		} else {
			require.NotContains(t, plan, "Seq Scan", "name prefix:\n%s", plan)
			require.Contains(t, plan, "socialcrm_crm_contact_names", "name prefix:\n%s", plan)
		}
	})
}
