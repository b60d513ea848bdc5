package retention_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The test categories stand for those the SDK's packages declare; testPolicy
// gives them the SDK's default periods.
const (
	catRawResponse = "social.raw_response"
	catMetrics     = "social.metrics"
	catConnection  = "social.connection"
	catInvoice     = "billing.invoice"
)

func testPolicy() retention.Policy {
	return retention.Policy{
		Name:         "example-2026",
		ClosureGrace: 30 * retention.Day,
		Rules: []retention.Rule{
			{Category: catRawResponse, Period: 90 * retention.Day, Note: "raw platform responses at most 90 days"},
			{Category: catMetrics, Period: 24 * retention.Month, Note: "aggregated metrics up to 24 months"},
			{Category: catConnection, Period: 30 * retention.Day, Event: retention.EventDeauthorized, Note: "purged within 30 days of deauthorization"},
			{Category: catInvoice, Period: 7 * retention.Year, Keep: true, Note: "billing records kept 7 years"},
			{Category: retention.CategoryAudit, Period: 12 * retention.Month, Keep: true, Note: "security logs kept 12 months"},
			{Category: retention.CategoryAuditCheckpoint, Period: 12 * retention.Month, Keep: true, Note: "with the audit log"},
			{Category: retention.CategoryRequest, Period: 3 * retention.Year, Keep: true, Note: "evidence of how each request was answered"},
			{Category: retention.CategoryEvent, Period: 24 * retention.Month, Note: "triggers outliving every rule that uses them"},
		},
	}
}

// Test models: what crm and social will declare, in miniature.

type response struct {
	bun.BaseModel `bun:"table:test_responses,alias:tr"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	AccountID string    `bun:"account_id,notnull"`
	Body      string    `bun:"body,notnull"`
	FetchedAt time.Time `bun:"fetched_at,notnull"`
}

type metric struct {
	bun.BaseModel `bun:"table:test_metrics,alias:tm"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	AccountID string    `bun:"account_id,notnull"`
	Value     int64     `bun:"value,notnull"`
	Day       time.Time `bun:"day,notnull"`
}

type contact struct {
	bun.BaseModel `bun:"table:test_contacts,alias:tc"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	Email     *string   `bun:"email"`
	Name      string    `bun:"name,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

type note struct {
	bun.BaseModel `bun:"table:test_notes,alias:tno"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	ContactID string    `bun:"contact_id,notnull"`
	Body      string    `bun:"body,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

type invoice struct {
	bun.BaseModel `bun:"table:test_invoices,alias:ti"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	ContactID string    `bun:"contact_id,notnull"`
	Amount    int64     `bun:"amount,notnull"`
	IssuedAt  time.Time `bun:"issued_at,notnull"`
}

type conn struct {
	bun.BaseModel `bun:"table:test_connections,alias:tcn"`
	tenancy.Owned
	ID          string    `bun:"id,pk"`
	AccountID   string    `bun:"account_id,notnull"`
	Token       string    `bun:"token,notnull"`
	ConnectedAt time.Time `bun:"connected_at,notnull"`
}

var testTables = []string{"test_responses", "test_metrics", "test_contacts", "test_notes", "test_invoices", "test_connections"}

// testMigrations creates the host application's tables of the examples and
// tests with bun's own migrate API, as an application adds its tables to
// socialcrm.Migrate: a far-future version keeps them apart from
// socialcrm's own; TIMESTAMP is TIMESTAMPTZ on PostgreSQL.
func testMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	ms.Add(migrate.Migration{Name: "29990101000300", Comment: "retention_test_models", Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
		return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return createTestTables(ctx, tx) })
	}})
	return ms
}

func createTestTables(ctx context.Context, tx bun.Tx) error {
	exec := func(stmts ...string) error {
		for _, s := range stmts {
			if tx.Dialect().Name() == dialect.PG {
				s = strings.ReplaceAll(s, " TIMESTAMP", " TIMESTAMPTZ")
			}
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := exec(
		`CREATE TABLE IF NOT EXISTS test_responses (tenant_id TEXT NOT NULL, id TEXT NOT NULL, account_id TEXT NOT NULL, body TEXT NOT NULL, fetched_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE INDEX IF NOT EXISTS test_responses_at ON test_responses (tenant_id, fetched_at)`,
		`CREATE TABLE IF NOT EXISTS test_metrics (tenant_id TEXT NOT NULL, id TEXT NOT NULL, account_id TEXT NOT NULL, value BIGINT NOT NULL, day TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE TABLE IF NOT EXISTS test_contacts (tenant_id TEXT NOT NULL, id TEXT NOT NULL, email TEXT, name TEXT NOT NULL, updated_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE TABLE IF NOT EXISTS test_notes (tenant_id TEXT NOT NULL, id TEXT NOT NULL, contact_id TEXT NOT NULL, body TEXT NOT NULL, created_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE TABLE IF NOT EXISTS test_invoices (tenant_id TEXT NOT NULL, id TEXT NOT NULL, contact_id TEXT NOT NULL, amount BIGINT NOT NULL, issued_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE TABLE IF NOT EXISTS test_connections (tenant_id TEXT NOT NULL, id TEXT NOT NULL, account_id TEXT NOT NULL, token TEXT NOT NULL, connected_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`,
	); err != nil {
		return err
	}
	for _, t := range testTables {
		if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// setup migrates tenancy, retention and the test models and installs the
// Guard, as an application does at start-up.
func setup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), retention.Migrations(), testMigrations()); err != nil {
		return err
	}
	_, err := tenancy.InstallGuard(db, testModels()...)
	return err
}

// setupUnguarded is setup without the Guard, for the crash test's child
// processes: the Guard's SQL parser compiles itself once per process
// (seconds; far longer under the race detector), and a child that lives
// for one kill point would spend most of its life on it. The children test
// the engine's crash safety, which the Guard has no part in; the model
// hooks and, on PostgreSQL, row-level security still scope every query.
func setupUnguarded(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), retention.Migrations(), testMigrations()); err != nil {
		return err
	}
	db.RegisterModel(testModels()...)
	return nil
}

func testModels() []any {
	return append(retention.Models(), (*response)(nil), (*metric)(nil), (*contact)(nil), (*note)(nil),
		(*invoice)(nil), (*conn)(nil), (*tenancy.Member)(nil), (*tenancy.APIKey)(nil), (*tenancy.AuditEntry)(nil))
}

func each(t *testing.T, fn func(t *testing.T, db *dbtest.DB)) {
	dbtest.Each(t, fn, setup)
}

// revocations records the ids the connection category's hook revoked.
type revocations struct {
	mu      sync.Mutex
	ids     []string
	failing map[string]bool // ids whose revoke fails
}

// errRevokeFails is the failure of a revoke of an id in failing.
var errRevokeFails = errors.New("test: revoke failed")

// add revokes ids: it records those not failing, and returns an
// *retention.UnfinishedError naming the others.
func (r *revocations) add(ids []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var failed []string
	for _, id := range ids {
		if r.failing[id] {
			failed = append(failed, id)
			continue
		}
		r.ids = append(r.ids, id)
	}
	if len(failed) > 0 {
		return &retention.UnfinishedError{IDs: failed, Err: errRevokeFails}
	}
	return nil
}

// fail makes the revokes of ids fail (none: every revoke succeeds).
func (r *revocations) fail(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = map[string]bool{}
	for _, id := range ids {
		r.failing[id] = true
	}
}

func (r *revocations) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// testCategories declares the test models the way crm and social will.
func testCategories(rev *revocations) []retention.Category {
	return []retention.Category{
		{Name: catRawResponse, Table: "test_responses", Time: "fetched_at",
			Subject:    map[string]string{"account_id": "account_id"},
			LegalBasis: "contract", Purpose: "raw platform API responses, for debugging and reprocessing"},
		{Name: catMetrics, Table: "test_metrics", Time: "day",
			Subject:    map[string]string{"account_id": "account_id"},
			LegalBasis: "contract", Purpose: "aggregated account metrics"},
		{Name: "crm.contact", Table: "test_contacts", Time: "updated_at",
			Subject:    map[string]string{"email": "email", "contact_id": "id"},
			Erase:      retention.Erase{Anonymize: map[string]any{"email": nil, "name": "erased"}},
			LegalBasis: "contract", Purpose: "customer relationship"},
		{Name: "crm.note", Table: "test_notes", Time: "created_at",
			Subject: map[string]string{
				"contact_id": "contact_id",
				"email":      "r.contact_id IN (SELECT c.id FROM test_contacts c WHERE c.tenant_id = ?tenant AND c.email = ?value)",
			},
			LegalBasis: "contract", Purpose: "notes about contacts"},
		{Name: catInvoice, Table: "test_invoices", Time: "issued_at",
			Subject:    map[string]string{"contact_id": "contact_id"},
			LegalBasis: "legal obligation (tax law)", Purpose: "billing"},
		{Name: catConnection, Table: "test_connections", Time: "connected_at",
			Subject:    map[string]string{"account_id": "account_id"},
			Omit:       []string{"token"},
			LegalBasis: "contract", Purpose: "connected social accounts and their tokens",
			BeforeErase: func(_ context.Context, _ bun.Tx, ids []string) error {
				if rev != nil {
					return rev.add(ids)
				}
				return nil
			}},
	}
}

// clock is the shared manual test clock: tests advance it instead of sleeping.
type clock = fakeclock.Clock

var epoch = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newClock() *clock {
	c := fakeclock.New()
	c.Set(epoch)
	return c
}

type env struct {
	db    *dbtest.DB
	clock *clock
	e     *retention.Engine
	store *tenancy.Store
	rev   *revocations
}

func newEnv(t testing.TB, db *dbtest.DB, opts ...retention.Option) *env {
	t.Helper()
	c := newClock()
	store, err := tenancy.NewStore(db, tenancy.WithClock(c.Now))
	require.NoError(t, err)
	rev := &revocations{}
	opts = append([]retention.Option{retention.WithClock(c.Now), retention.WithStore(store),
		retention.WithPolicy(testPolicy()), retention.WithBatchSize(7)}, opts...)
	e, err := retention.New(db, opts...)
	require.NoError(t, err)
	require.NoError(t, e.Register(testCategories(rev)...))
	require.NoError(t, e.Register(retention.TenancyCategories(store.Audit())...))
	require.NoError(t, e.Register(retention.OwnCategories()...))
	return &env{db: db, clock: c, e: e, store: store, rev: rev}
}

// tenant creates a tenant and returns its id and a context acting as its
// owner.
func (v *env) tenant(t testing.TB, name string) (string, context.Context) {
	t.Helper()
	tn, m, err := v.store.CreateTenant(context.Background(), tenancy.SignUp{TenantName: name,
		Owner: tenancy.NewMember{Email: name + "@example.com", Name: name}})
	require.NoError(t, err)
	return tn.ID, tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})
}

func system() context.Context { return tenancy.System(context.Background(), "retention-test") }

func in(ctx context.Context, db bun.IDB, fn func(tx bun.Tx) error) error {
	return tenancy.RunInTx(ctx, db, nil, func(_ context.Context, tx bun.Tx) error { return fn(tx) })
}

func insert(t testing.TB, ctx context.Context, db bun.IDB, model any) {
	t.Helper()
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		_, err := tx.NewInsert().Model(model).Exec(ctx)
		return err
	}))
}

// ids returns the ids of the tenant's rows in table, sorted.
func ids(t testing.TB, ctx context.Context, db bun.IDB, table string) []string {
	t.Helper()
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	var out []string
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT id FROM ? WHERE tenant_id = ? ORDER BY id", bun.Ident(table), tid).Scan(ctx, &out)
	}))
	return out
}

// receipts returns the audit entries with action in ctx's tenant, after
// verifying the chain.
func receipts(t testing.TB, ctx context.Context, db bun.IDB, action string) []tenancy.AuditEntry {
	t.Helper()
	log, err := tenancy.NewAuditLog(db)
	require.NoError(t, err)
	_, err = log.Verify(ctx)
	require.NoError(t, err, "audit chain must verify")
	var out []tenancy.AuditEntry
	for after := int64(0); ; {
		es, err := log.List(ctx, tenancy.AuditListOptions{AfterSeq: after, Limit: 1000})
		require.NoError(t, err)
		for _, e := range es {
			if e.Action == action {
				out = append(out, e)
			}
		}
		if len(es) < 1000 {
			return out
		}
		after = es[len(es)-1].Seq
	}
}

// sumMeta sums a numeric metadata field over receipts of one category.
func sumMeta(es []tenancy.AuditEntry, category, field string) int64 {
	var n int64
	for _, e := range es {
		if e.Metadata["category"] == category {
			var v int64
			fmt.Sscan(e.Metadata[field], &v)
			n += v
		}
	}
	return n
}

func id(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// insertDueResponses inserts n raw responses r-0000… of account "acct",
// fetched 100 days before epoch: every one due for the sweep.
func insertDueResponses(t testing.TB, ctx context.Context, db bun.IDB, n int) {
	t.Helper()
	rs := make([]response, n)
	for i := range rs {
		rs[i] = response{ID: id("r", i), AccountID: "acct", Body: "{}", FetchedAt: epoch.Add(-100 * retention.Day)}
	}
	insert(t, ctx, db, &rs)
}
