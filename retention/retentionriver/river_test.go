package retentionriver_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
	"github.com/socialcrm/socialcrm/tenancy"
)

type response struct {
	bun.BaseModel `bun:"table:test_river_responses,alias:tr"`
	tenancy.Owned
	ID        string    `bun:"id,pk"`
	AccountID string    `bun:"account_id,notnull"`
	FetchedAt time.Time `bun:"fetched_at,notnull"`
}

func testMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "29990101000310", "retentionriver_test_models", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx, `CREATE TABLE IF NOT EXISTS test_river_responses (tenant_id TEXT NOT NULL, id TEXT NOT NULL, account_id TEXT NOT NULL, fetched_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, id))`); err != nil {
			return err
		}
		return tenancy.EnableRowSecurity(ctx, tx, "test_river_responses")
	})
	return ms
}

func setup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), retention.Migrations(), testMigrations()); err != nil {
		return err
	}
	_, err := tenancy.InstallGuard(db, append(retention.Models(), (*response)(nil), (*tenancy.Member)(nil), (*tenancy.AuditEntry)(nil))...)
	return err
}

// now is in the past of the wall clock, so that River runs jobs scheduled
// at times of the test clock at once.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// startRetention starts River on db's database with the retention
// workers over e.
func startRetention(t *testing.T, db *dbtest.DB, e *retention.Engine) (insert func(river.JobArgs, *river.InsertOpts), events <-chan *river.Event) {
	t.Helper()
	workers := river.NewWorkers()
	require.NoError(t, retentionriver.AddWorkers(workers, e, retentionriver.WithClock(func() time.Time { return now })))
	return startRiver(t, db, &river.Config{
		Queues:   map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:  workers,
		TestOnly: true,
	})
}

// startRiver migrates River's tables on db's database and starts a client
// with cfg; it is stopped when t ends.
func startRiver(t *testing.T, db *dbtest.DB, cfg *river.Config) (insert func(river.JobArgs, *river.InsertOpts), events <-chan *river.Event) {
	t.Helper()
	ctx := t.Context()
	if db.Name == "sqlite" {
		pool, err := sql.Open("sqlite", "file:"+db.Path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		require.NoError(t, err)
		pool.SetMaxOpenConns(1) // riversqlite's advice: one connection
		t.Cleanup(func() { pool.Close() })
		return runClient(t, riversqlite.New(pool), cfg)
	}
	// River's tables are created by the owner role and granted to the
	// application role, like socialcrm's own.
	ownerPool, err := pgxpool.New(ctx, db.OwnerDSN())
	require.NoError(t, err)
	m, err := rivermigrate.New(riverpgxv5.New(ownerPool), nil)
	require.NoError(t, err)
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	ownerPool.Close()
	require.NoError(t, err)
	dbtest.GrantApp(t, db)
	pool, err := pgxpool.New(ctx, db.DSN())
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return runClient(t, riverpgxv5.New(pool), cfg)
}

func runClient[TTx any](t *testing.T, driver riverdriver.Driver[TTx], cfg *river.Config) (func(river.JobArgs, *river.InsertOpts), <-chan *river.Event) {
	t.Helper()
	ctx := context.Background()
	m, err := rivermigrate.New(driver, nil)
	require.NoError(t, err)
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	client, err := river.NewClient(driver, cfg)
	require.NoError(t, err)
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobSnoozed, river.EventKindJobCancelled)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		cancel()
		stop, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = client.Stop(stop)
	})
	return func(args river.JobArgs, opts *river.InsertOpts) {
		_, err := client.Insert(ctx, args, opts)
		require.NoError(t, err)
	}, events
}

// await returns the next job event of kind, failing after a generous
// deadline (the jobs take milliseconds).
func await(t *testing.T, events <-chan *river.Event, kind string) *river.Event {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Job.Kind == kind {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no event for a %s job", kind)
		}
	}
}

func TestJobs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		store, err := tenancy.NewStore(db, tenancy.WithClock(func() time.Time { return now }))
		require.NoError(t, err)
		e, err := retention.New(db, retention.WithStore(store), retention.WithClock(func() time.Time { return now }),
			retention.WithPolicy(retention.Policy{Name: "river", Rules: []retention.Rule{{Category: "social.raw_response", Period: 90 * retention.Day}}}))
		require.NoError(t, err)
		require.NoError(t, e.Register(retention.Category{Name: "social.raw_response", Table: "test_river_responses", Time: "fetched_at",
			Subject: map[string]string{"account_id": "account_id"}}))
		tn, m, err := store.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "acme", Owner: tenancy.NewMember{Email: "o@example.com", Name: "O"}})
		require.NoError(t, err)
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})
		count := func() int64 {
			var n int64
			require.NoError(t, tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
				n, err = tx.NewSelect().Model((*response)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
				return err
			}))
			return n
		}
		require.NoError(t, tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&[]response{
				{ID: "old", AccountID: "a", FetchedAt: now.Add(-100 * retention.Day)},
				{ID: "new", AccountID: "b", FetchedAt: now},
			}).Exec(ctx)
			return err
		}))

		insert, events := startRetention(t, db, e)

		// The sweep job.
		insert(retentionriver.SweepArgs{}, nil)
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindSweep).Kind)
		require.EqualValues(t, 1, count())

		// One job per erasure request: snoozed until verified, then erased.
		req, err := e.Submit(ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"account_id": "b"}})
		require.NoError(t, err)
		insert(retentionriver.RequestArgs{TenantID: tn.ID, RequestID: req.ID}, nil)
		require.Equal(t, river.EventKindJobSnoozed, await(t, events, retentionriver.KindRequest).Kind)
		_, err = e.SetVerification(ctx, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		insert(retentionriver.RequestArgs{TenantID: tn.ID, RequestID: req.ID}, nil)
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindRequest).Kind)
		require.EqualValues(t, 0, count())
		req, err = e.Get(ctx, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusCompleted, req.Status)

		// The resume job finishes verified erasures left open.
		require.NoError(t, tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&response{ID: "later", AccountID: "c", FetchedAt: now}).Exec(ctx)
			return err
		}))
		req, err = e.Submit(ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"account_id": "c"}})
		require.NoError(t, err)
		_, err = e.SetVerification(ctx, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		insert(retentionriver.ResumeArgs{}, nil)
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindResume).Kind)
		require.EqualValues(t, 0, count())
		req, err = e.Get(ctx, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusCompleted, req.Status)

		// The purge job, scheduled at the tenant's purge time.
		closed, err := store.CloseTenant(ctx, 0)
		require.NoError(t, err)
		insert(retentionriver.PurgeArgs{}, retentionriver.PurgeAt(closed))
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindPurge).Kind)
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "test"), tn.ID)
		require.NoError(t, err)
		got, err := store.Tenant(sys)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusPurged, got.Status)
	}, setup)
}

func TestPeriodicJobs(t *testing.T) {
	jobs := retentionriver.PeriodicJobs(time.Hour)
	require.Len(t, jobs, 3, "sweep, purge, resume erasures")
	require.Error(t, retentionriver.AddWorkers(river.NewWorkers(), nil))
	require.Error(t, retentionriver.AddWorkers(river.NewWorkers(), &retention.Engine{}, retentionriver.WithClock(nil)))
}
