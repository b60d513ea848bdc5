package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// jobReport is what this replica's scheduled jobs did, for /readyz: when
// each kind last completed here, and how many runs failed (River retries
// them with backoff). A job runs on one replica only, so another replica's
// report may not list it.
type jobReport struct {
	At        time.Time            `json:"at"`
	Completed map[string]time.Time `json:"completed,omitempty"`
	Failed    int                  `json:"failed"`
}

// Kinds of the example server's own jobs, beside retentionriver's.
const (
	kindProtect   = "example.protect_identifiers"
	kindDeletions = "example.meta_deletions"
	kindOverdue   = "example.overdue_requests"
	kindSync      = "example.sync_connections"
	kindLogins    = "example.prune_login_attempts"
)

// taskArgs is one of the example server's own periodic jobs.
type taskArgs struct {
	Task string `json:"task"`
}

func (taskArgs) Kind() string { return "example.task" }

// jobs is the River client of this replica: every piece of background
// work is a River job in the database, so that each run happens once
// across any number of replicas (the periodic jobs are enqueued by the
// elected leader, and each job is worked by one replica), and a failing
// run is retried with backoff.
type jobs struct {
	stop   func(ctx context.Context) error
	insert func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error
	close  func()
}

// startJobs migrates River's tables (under a lock, through the owner role
// on PostgreSQL), starts this replica's River client and returns it. The
// periodic jobs run every interval and once at start: the retention sweep,
// purges of closed tenants past their grace, verified erasures left open
// (an erasure cut short by a crash or a deploy finishes by itself), the
// SDK's maintenance (revocation retries, OAuth state and webhook delivery
// pruning), Meta data-deletion callbacks left unfinished, the sealing of
// request identifiers an older version kept in clear, the data-subject
// deadline check (overdue requests are logged for the tenant's staff), a
// sync of every active connection, and the pruning of old login-attempt
// windows.
func (a *app) startJobs(ctx context.Context, every time.Duration) (*jobs, error) {
	workers := river.NewWorkers()
	if err := retentionriver.AddWorkers(workers, a.sdk.Retention, retentionriver.WithClock(a.now)); err != nil {
		return nil, err
	}
	if err := retentionriver.AddMaintenance(workers, func(ctx context.Context) error {
		_, err := a.sdk.Maintain(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &taskWorker{a: a}); err != nil {
		return nil, err
	}
	periodic := append(retentionriver.PeriodicJobs(every), retentionriver.MaintenanceJobs(every)...)
	for _, task := range []string{kindProtect, kindDeletions, kindOverdue, kindSync, kindLogins} {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
			return taskArgs{Task: task}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: every}}
		}, &river.PeriodicJobOpts{ID: task, RunOnStart: true}))
	}
	cfg := &river.Config{
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
		Workers:      workers,
		PeriodicJobs: periodic,
		Logger:       slog.New(stoppingHandler{a.log.Handler()}).With("component", "river"),
	}
	if a.tel != nil {
		// A span per job and River's job metrics, through the server's
		// providers.
		if mw := retentionriver.Telemetry(a.tel.tp, a.tel.mp); mw != nil {
			cfg.Middleware = append(cfg.Middleware, mw)
		}
	}
	if a.db.Dialect().Name() == dialect.PG {
		return a.startPGJobs(ctx, cfg)
	}
	// SQLite: River's own connection (one, as riversqlite advises) to the
	// same file, beside the SDK's guarded handle.
	path := strings.TrimPrefix(strings.TrimPrefix(a.cfg.DSN, "sqlite:"), "file:")
	pool, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	pool.SetMaxOpenConns(1)
	if err := migrateRiverSQLite(ctx, path); err != nil {
		pool.Close()
		return nil, err
	}
	j, err := runRiver(ctx, a, riversqlite.New(pool), nil, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	j.close = func() { pool.Close() }
	return j, nil
}

// startPGJobs runs River over pgx: its tables are migrated by the owner
// role when there is one (and granted to the application role), under a
// PostgreSQL advisory lock so that replicas starting together migrate one
// at a time.
func (a *app) startPGJobs(ctx context.Context, cfg *river.Config) (*jobs, error) {
	pool, err := pgxpool.New(ctx, a.cfg.DSN)
	if err != nil {
		return nil, err
	}
	migrator, ownerPool := pool, (*pgxpool.Pool)(nil)
	if a.cfg.OwnerDSN != "" {
		if ownerPool, err = pgxpool.New(ctx, a.cfg.OwnerDSN); err != nil {
			pool.Close()
			return nil, err
		}
		defer ownerPool.Close()
		migrator = ownerPool
	}
	if err := migrateRiverPG(ctx, migrator, a.cfg.OwnerDSN != "", pool); err != nil {
		pool.Close()
		return nil, err
	}
	j, err := runRiver(ctx, a, riverpgxv5.New(pool), nil, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	j.close = pool.Close
	return j, nil
}

// riverLockKey is the advisory lock held while River's tables migrate.
const riverLockKey int64 = 0x7269766572 // "river"

func migrateRiverPG(ctx context.Context, migrator *pgxpool.Pool, grant bool, app *pgxpool.Pool) error {
	conn, err := migrator.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", riverLockKey); err != nil {
		return fmt.Errorf("river: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", riverLockKey) //nolint:errcheck // ends with the session anyway
	// River's migrations alter its tables and sequences while another
	// replica's socialcrm.Open may be granting on every sequence of the
	// schema, River's included: two catalog updates of one object at once
	// fail with "tuple concurrently updated" (seen on version 005 with
	// three replicas starting together). So they run under the grant lock
	// as well, held for the session (the grants below take it again in
	// their transaction; a session may hold a lock it already holds).
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", grantLockKey); err != nil {
		return fmt.Errorf("river: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", grantLockKey) //nolint:errcheck // ends with the session anyway
	m, err := rivermigrate.New(riverpgxv5.New(migrator), nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river: migrate: %w", err)
	}
	if !grant {
		return nil
	}
	var role string
	if err := app.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		return fmt.Errorf("river: grant: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, c.relkind FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'river\_%' AND c.relkind IN ('r', 'S')`)
	if err != nil {
		return fmt.Errorf("river: grant: %w", err)
	}
	type rel struct{ name, kind string }
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.name, &r.kind); err != nil {
			rows.Close()
			return fmt.Errorf("river: grant: %w", err)
		}
		rels = append(rels, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("river: grant: %w", err)
	}
	// Under the lock socialcrm's grants take: they grant on every
	// sequence of the schema, River's included, and two transactions
	// granting on one sequence at once fail with "tuple concurrently
	// updated" (replicas starting together).
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("river: grant: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", grantLockKey); err != nil {
		return fmt.Errorf("river: grant: lock: %w", err)
	}
	for _, r := range rels {
		priv := "SELECT, INSERT, UPDATE, DELETE"
		if r.kind == "S" {
			priv = "USAGE, SELECT, UPDATE"
		}
		id := `"` + strings.ReplaceAll(r.name, `"`, `""`) + `"`
		role := `"` + strings.ReplaceAll(role, `"`, `""`) + `"`
		if _, err := tx.Exec(ctx, "GRANT "+priv+" ON "+id+" TO "+role); err != nil {
			return fmt.Errorf("river: grant %s: %w", r.name, err)
		}
	}
	return tx.Commit(ctx)
}

// grantLockKey is the transaction-level advisory lock under which
// socialcrm grants privileges to the application role ("socialcrm grant"
// in ASCII, the key its internal migrations package takes): the server's
// own grants take it too.
const grantLockKey int64 = 0x736372677261

// migrateRiverSQLite migrates River's tables in the SQLite file at path in
// one transaction that takes the file's write lock when it begins
// (BEGIN IMMEDIATE): two processes starting together on one file migrate
// one after the other, the second finding the work done. Migrated
// separately, each read River's versions before the other wrote them and
// the second failed on a table or version row the first had created.
func migrateRiverSQLite(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	m, err := rivermigrate.New(riversqlite.New(db), nil)
	if err != nil {
		return err
	}
	// Another process migrating may hold the write lock past the busy
	// timeout on a loaded machine: wait for it as the SDK's migrations do.
	deadline := time.Now().Add(time.Minute)
	for {
		err := migrateRiverSQLiteTx(ctx, db, m)
		if err == nil {
			return nil
		}
		if !dberr.IsBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("river: migrate: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("river: migrate: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func migrateRiverSQLiteTx(ctx context.Context, db *sql.DB, m *rivermigrate.Migrator[*sql.Tx]) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	return tx.Commit()
}

// runRiver migrates through migrateDriver (nil: migrated already), starts
// a River client over driver and follows its job events for /readyz.
func runRiver[TTx any](ctx context.Context, a *app, driver, migrateDriver riverdriver.Driver[TTx], cfg *river.Config) (*jobs, error) {
	if migrateDriver != nil {
		m, err := rivermigrate.New(migrateDriver, nil)
		if err != nil {
			return nil, err
		}
		if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return nil, fmt.Errorf("river: migrate: %w", err)
		}
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, err
	}
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	if err := client.Start(ctx); err != nil {
		cancel()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range events {
			a.recordJob(ev)
		}
	})
	return &jobs{
		stop: func(ctx context.Context) error {
			err := client.Stop(ctx)
			cancel()
			wg.Wait()
			return err
		},
		insert: func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
			_, err := client.Insert(ctx, args, opts)
			return err
		},
	}, nil
}

// recordJob notes a finished job in this replica's report and logs it.
func (a *app) recordJob(ev *river.Event) {
	if ev == nil || ev.Job == nil {
		return
	}
	kind := ev.Job.Kind
	if kind == (taskArgs{}).Kind() {
		var args taskArgs
		if err := json.Unmarshal(ev.Job.EncodedArgs, &args); err == nil && args.Task != "" {
			kind = args.Task
		}
	}
	run := jobRun{kind: kind, attempt: ev.Job.Attempt}
	if ev.Kind == river.EventKindJobFailed {
		run.failed = true
		// River retries the job with backoff unless it gave up on it
		// (discarded: attempts spent) or it was cancelled.
		run.final = ev.Job.State == rivertype.JobStateDiscarded || ev.Job.State == rivertype.JobStateCancelled
		if n := len(ev.Job.Errors); n > 0 {
			run.err = ev.Job.Errors[n-1].Error
		}
	}
	a.noteJob(run)
}

// jobRun is one run of a job as noteJob records it.
type jobRun struct {
	kind    string
	attempt int
	failed  bool
	// final: River will not run the job again (discarded or cancelled).
	final bool
	// err is the failed attempt's error text (the SDK's errors carry no
	// personal data or secrets).
	err string
}

// noteJob notes a run of a job in this replica's report and logs it: a
// failed attempt River will retry as a warning (a replica stopping in the
// middle of a job, a transient database error), a job River gave up on as
// an error.
func (a *app) noteJob(run jobRun) {
	a.jobsMu.Lock()
	defer a.jobsMu.Unlock()
	a.lastJob.At = a.now()
	if run.failed {
		a.lastJob.Failed++
		level := slog.LevelWarn
		msg := "scheduled job attempt failed; River retries it"
		if run.final {
			level, msg = slog.LevelError, "scheduled job failed for good"
		}
		a.log.Log(context.Background(), level, msg, "job", run.kind, "attempt", run.attempt, "err", run.err)
		return
	}
	if a.lastJob.Completed == nil {
		a.lastJob.Completed = map[string]time.Time{}
	}
	a.lastJob.Completed[run.kind] = a.lastJob.At
	a.log.Info("scheduled job ran", "job", run.kind)
}

// jobReport returns a copy of this replica's job report: recordJob goes on
// writing the report's map while the copy is encoded.
func (a *app) jobReport() jobReport {
	a.jobsMu.Lock()
	defer a.jobsMu.Unlock()
	r := a.lastJob
	r.Completed = maps.Clone(r.Completed)
	return r
}

// schedulePurge enqueues the purge of a closed tenant at the end of its
// grace period (the periodic purge would find it too, up to an interval
// later). Without a River client (in-process tests) it does nothing.
func (a *app) schedulePurge(ctx context.Context, t tenancy.Tenant) {
	if a.jobs == nil || t.PurgeAfter == nil {
		return
	}
	if err := a.jobs.insert(ctx, retentionriver.PurgeArgs{}, retentionriver.PurgeAt(t)); err != nil {
		a.log.Error("schedule purge", "tenant", t.ID, "err", err)
	}
}

type taskWorker struct {
	river.WorkerDefaults[taskArgs]
	a *app
}

func (w *taskWorker) Work(ctx context.Context, job *river.Job[taskArgs]) error {
	return w.a.runTask(ctx, job.Args.Task)
}

// runTask runs one of the example server's own jobs. Each is idempotent.
func (a *app) runTask(ctx context.Context, task string) error {
	sys := tenancy.System(ctx, "example-jobs")
	switch task {
	case kindProtect:
		// Requests recorded by an older version keep their identifiers in
		// clear until sealed here (once; then a no-op).
		_, err := a.sdk.Retention.ProtectIdentifiers(sys)
		return err
	case kindDeletions:
		_, err := a.callbacks.ResumeDeletions(sys)
		return err
	case kindLogins:
		return a.logins.prune(ctx)
	case kindOverdue, kindSync:
		tenants, err := a.sdk.Tenants.Tenants(sys, tenancy.TenantFilter{Status: tenancy.StatusActive})
		if err != nil {
			return err
		}
		var errs []error
		for _, t := range tenants {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			tctx, err := tenancy.AsTenant(sys, t.ID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if task == kindOverdue {
				overdue, err := a.sdk.Retention.Overdue(tctx, a.now())
				errs = append(errs, err)
				for _, r := range overdue {
					a.log.Warn("data-subject request overdue", "tenant", t.ID, "request", r.ID, "kind", r.Kind, "due_at", r.DueAt)
				}
				continue
			}
			errs = append(errs, a.syncTenant(tctx))
		}
		return errors.Join(errs...)
	}
	return river.JobCancel(fmt.Errorf("unknown task %q", task))
}

// syncTenant syncs every active connection of the context's tenant: a
// revoked authorization is detected here (the connection is marked, its
// data starts its retention clock), not only when someone looks. A
// platform's refusal of one connection is logged, not retried: the next
// run tries again.
func (a *app) syncTenant(ctx context.Context) error {
	conns, err := a.connections(ctx, social.ConnectionFilter{Status: social.StatusActive})
	if err != nil {
		return err
	}
	for _, c := range conns {
		var err error
		switch c.Platform {
		case tiktok.Platform:
			_, _, err = a.syncTikTok(ctx, c)
		default:
			_, err = a.syncMeta(ctx, c)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Warn("scheduled sync failed", "connection", c.ID, "platform", c.Platform, "err", err)
		}
	}
	return nil
}

// runJobsOnce runs every scheduled job once, in this process and in
// order, without River: for tests that check the jobs' effects directly.
func (a *app) runJobsOnce(ctx context.Context) jobReport {
	sys := tenancy.System(ctx, "example-jobs")
	rep := jobReport{At: a.now(), Completed: map[string]time.Time{}}
	note := func(kind string, err error) {
		if err != nil {
			rep.Failed++
			a.log.Error("scheduled job failed", "job", kind, "err", err)
			return
		}
		rep.Completed[kind] = a.now()
	}
	_, err := a.sdk.Retention.Sweep(sys, a.now())
	note(retentionriver.KindSweep, err)
	_, err = a.sdk.Retention.PurgeTenants(sys, a.now())
	note(retentionriver.KindPurge, err)
	_, err = a.sdk.Retention.ResumeErasures(sys)
	note(retentionriver.KindResume, err)
	_, err = a.sdk.Maintain(ctx)
	note(retentionriver.KindMaintain, err)
	for _, task := range []string{kindProtect, kindDeletions, kindOverdue, kindSync, kindLogins} {
		note(task, a.runTask(ctx, task))
	}
	a.jobsMu.Lock()
	a.lastJob = rep
	a.jobsMu.Unlock()
	return rep
}

// stoppingHandler passes River's log records on, except that an error
// record whose error is a cancelled context becomes a warning: River logs
// those when its client stops in the middle of a tick or of a job insert
// notification (PostgreSQL's NOTIFY) — a graceful shutdown, not a failure.
// An operator who alerts on ERROR lines saw one at every deploy.
type stoppingHandler struct{ slog.Handler }

func (h stoppingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		canceled := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" || a.Key == "error" {
				v := a.Value.Resolve()
				if err, ok := v.Any().(error); ok && errors.Is(err, context.Canceled) || v.String() == context.Canceled.Error() {
					canceled = true
					return false
				}
			}
			return true
		})
		if canceled {
			r2 := slog.NewRecord(r.Time, slog.LevelWarn, r.Message, r.PC)
			r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
			r = r2
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h stoppingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return stoppingHandler{h.Handler.WithAttrs(as)}
}

func (h stoppingHandler) WithGroup(name string) slog.Handler {
	return stoppingHandler{h.Handler.WithGroup(name)}
}
