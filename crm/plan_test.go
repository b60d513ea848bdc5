package crm_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
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

// explainPlan returns the query plan of q on e's database, one line per
// node. On PostgreSQL, with forceIndex, the plan is asked for with
// sequential scans disabled (as the superuser); without, as the
// application's role in the transaction of q's tenant, as the Store runs
// it.
func explainPlan(t *testing.T, e *env, q string, forceIndex bool) string {
	t.Helper()
	require.NotEmpty(t, q)
	var lines []string
	ctx := context.Background()
	admin := e.db.Admin(t)
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
	if !forceIndex {
		// As the application's role, in a tenant's transaction: row-level
		// security binds it, and the planner may use an index for a
		// condition under it only if the condition's operator is
		// leakproof (the superuser's plan would not show that).
		var lines []string
		require.NoError(t, tenancy.RunInTx(owner(tenantOf(q)), e.db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("EXPLAIN "+q).Scan(ctx, &lines)
		}))
		return strings.Join(lines, "\n")
	}
	conn, err := admin.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	if forceIndex {
		_, err = conn.ExecContext(ctx, "SET enable_seqscan = off")
		require.NoError(t, err)
		defer conn.ExecContext(ctx, "RESET enable_seqscan") //nolint:errcheck // the connection is closed next
	}
	require.NoError(t, conn.NewRaw("EXPLAIN "+q).Scan(ctx, &lines))
	return strings.Join(lines, "\n")
}

// requireIndexPlans checks the plans of an e-mail lookup's query and of a
// name-prefix lookup's.
func requireIndexPlans(t *testing.T, e *env, emailQuery, nameQuery string, forceIndex bool) {
	t.Helper()
	plan := explainPlan(t, e, emailQuery, forceIndex)
	require.Contains(t, plan, "socialcrm_crm_contacts_email_id", "e-mail lookup:\n%s", plan)
	if e.db.Name == "sqlite" {
		require.NotRegexp(t, `SCAN ct\b`, plan, "e-mail lookup:\n%s", plan)
	} else {
		require.NotContains(t, plan, "Seq Scan", "e-mail lookup:\n%s", plan)
	}

	plan = explainPlan(t, e, nameQuery, forceIndex)
	if e.db.Name == "sqlite" {
		// One look-up of the FTS5 name index (M: its MATCH), then each
		// contact id it yields through the primary key: no scan of the
		// tenant's contacts, neither of the table nor along an index by
		// tenant_id alone.
		require.Regexp(t, `SCAN `+crm.TableContactNameFTS+` VIRTUAL TABLE INDEX \d+:M`, plan, "name prefix:\n%s", plan)
		require.Contains(t, plan, "SEARCH ct USING INDEX sqlite_autoindex_socialcrm_crm_contacts_1 (tenant_id=? AND id=?)", "name prefix:\n%s", plan)
		require.NotRegexp(t, `SCAN ct\b`, plan, "name prefix:\n%s", plan)
		require.NotRegexp(t, `SEARCH ct USING (COVERING )?INDEX \S+ \(tenant_id=\?\)`, plan, "name prefix:\n%s", plan)
		// The pending contacts (above the watermark): a scan of the FTS5
		// table bounded on both sides of the rowid, which reads those
		// rows of the contacts table alone.
		require.Regexp(t, `SCAN `+crm.TableContactNameFTS+` VIRTUAL TABLE INDEX \d+:><`, plan, "name prefix:\n%s", plan)
		require.NotRegexp(t, `SCAN `+crm.TableContactNameFTS+` VIRTUAL TABLE INDEX \d+:\n`, plan, "name prefix:\n%s", plan)
	} else {
		require.NotContains(t, plan, "Seq Scan", "name prefix:\n%s", plan)
		require.Contains(t, plan, "socialcrm_crm_contact_names", "name prefix:\n%s", plan)
	}
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

		page, err := e.store.Contacts().List(e.A, crm.ContactFilter{Email: "ann@example.com"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		emailQuery := h.last("SELECT", "email_index")
		page, err = e.store.Contacts().List(e.A, crm.ContactFilter{NamePrefix: "le"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		requireIndexPlans(t, e, emailQuery, h.last("SELECT", nameTable(e)), true)
	})
}

// TestContactLookupsUseIndexesOnAnalyzedTables: with 200 contacts in a
// tenant (and 50 in another) and the tables' statistics taken (ANALYZE, as
// after a bulk load), both databases choose the indexes for the e-mail and
// name-prefix lookups by themselves, sequential scans allowed.
func TestContactLookupsUseIndexesOnAnalyzedTables(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for _, seed := range []struct {
			ctx context.Context
			n   int
		}{{e.A, 200}, {e.B, 50}} {
			require.NoError(t, tenancy.RunInTx(seed.ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				for i := range seed.n {
					in := crm.ContactInput{FirstName: "Ada", LastName: scaleName(i), Email: fmt.Sprintf("plan%d@example.com", i)}
					if _, err := e.store.Using(tx).Contacts().Create(ctx, in); err != nil {
						return err
					}
				}
				return nil
			}))
		}
		analyze := "ANALYZE"
		if e.db.Name == "postgres" {
			analyze = "ANALYZE " + crm.TableContacts + ", " + crm.TableContactNames
		}
		_, err := e.db.Admin(t).ExecContext(ctx, analyze)
		require.NoError(t, err)

		h := &captureHook{}
		e.db.AddQueryHook(h)
		page, err := e.store.Contacts().List(e.A, crm.ContactFilter{Email: "plan123@example.com"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, scaleName(123), page.Items[0].LastName)
		emailQuery := h.last("SELECT", "email_index")
		page, err = e.store.Contacts().List(e.A, crm.ContactFilter{NamePrefix: scaleName(45)}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, "plan45@example.com", page.Items[0].Email)
		requireIndexPlans(t, e, emailQuery, h.last("SELECT", nameTable(e)), false)
	})
}

// nameTable is the table of the name index a name search reads: the FTS5
// table on SQLite, the b-tree table on PostgreSQL.
func nameTable(e *env) string {
	if e.db.Name == "sqlite" {
		return crm.TableContactNameFTS
	}
	return crm.TableContactNames
}

// tenantOf returns the tenant id q confines itself to (tenant_id = '…').
func tenantOf(q string) string {
	i := strings.Index(q, "tenant_id = '")
	if i < 0 {
		return ""
	}
	rest := q[i+len("tenant_id = '"):]
	return rest[:strings.IndexByte(rest, '\'')]
}
