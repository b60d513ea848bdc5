// Package migrations runs the versioned schema migrations that each socialcrm
// package owns, under one bun migrate history.
package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dberr"
)

// Table records the applied migrations; its companion Table+"_locks" keeps
// two processes from migrating at once. Both carry the socialcrm_ prefix so
// they never collide with a host application's bun migrations.
const Table = "socialcrm_migrations"

// Add registers a migration named version (a UTC timestamp such as
// "20261123000100", unique across socialcrm) with a comment naming its
// package and purpose. up runs in a transaction; it must be idempotent
// (IF NOT EXISTS), because a crash between its commit and the migration's
// record would run it again.
func Add(ms *migrate.Migrations, version, comment string, up func(ctx context.Context, tx bun.Tx) error) {
	ms.Add(migrate.Migration{
		Name:    version,
		Comment: comment,
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return up(ctx, tx)
			})
		},
	})
}

// Run applies every migration of sets that db has not applied yet, in
// version order. Running it again is a no-op. Two processes running it at
// once are serialized by a lock row.
func Run(ctx context.Context, db *bun.DB, sets ...*migrate.Migrations) error {
	all := migrate.NewMigrations()
	seen := map[string]string{}
	for _, set := range sets {
		for _, m := range set.Sorted() {
			if prev, dup := seen[m.Name]; dup {
				return fmt.Errorf("migrations: version %s used by both %s and %s", m.Name, prev, m.Comment)
			}
			seen[m.Name] = m.Comment
			all.Add(m)
		}
	}
	// Everything applied already: nothing to lock or create, which lets
	// an application role that may not create tables start on a database
	// its owner role migrated.
	if done, err := allApplied(ctx, db, seen); err == nil && done {
		return nil
	}
	mg := migrate.NewMigrator(db, all,
		migrate.WithTableName(Table),
		migrate.WithLocksTableName(Table+"_locks"),
		migrate.WithMarkAppliedOnSuccess(true),
	)
	if db.Dialect().Name() == dialect.PG {
		// A session advisory lock: concurrent CREATE TABLE IF NOT EXISTS
		// races on PostgreSQL's catalog, and the lock ends with the session
		// if the process dies, unlike a lock row.
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrations: lock: %w", err)
		}
		defer conn.Close()
		// Polled rather than waited for in one statement: the driver's read
		// timeout would end a wait while another process migrates a fresh
		// database (replicas started together).
		deadline := time.Now().Add(pgLockWait)
		for {
			var got bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(?)", advisoryKey).Scan(&got); err != nil {
				return fmt.Errorf("migrations: lock: %w", err)
			}
			if got {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("migrations: another process has been migrating for over %s", pgLockWait)
			}
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("migrations: waiting for lock: %w", ctx.Err())
			case <-t.C:
			}
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", advisoryKey) //nolint:errcheck // ends with the session anyway
		if err := mg.Init(ctx); err != nil {
			return fmt.Errorf("migrations: init: %w", err)
		}
	} else {
		// Another process migrating holds SQLite's write lock, possibly past
		// the busy timeout: creating the history tables waits for it as the
		// lock below does.
		deadline := time.Now().Add(lockWait)
		for {
			err := mg.Init(ctx)
			if err == nil {
				break
			}
			if !dberr.IsBusy(err) || time.Now().After(deadline) {
				return fmt.Errorf("migrations: init: %w", err)
			}
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("migrations: waiting for init: %w", ctx.Err())
			case <-t.C:
			}
		}
		if err := lock(ctx, mg); err != nil {
			return err
		}
		defer mg.Unlock(context.WithoutCancel(ctx)) //nolint:errcheck // best effort; the lock row is removed on success
	}
	if _, err := mg.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// allApplied reports whether the history table records every version of
// want. An error (no history table yet) means it cannot tell.
func allApplied(ctx context.Context, db *bun.DB, want map[string]string) (bool, error) {
	var names []string
	if err := db.NewSelect().Table(Table).Column("name").Scan(ctx, &names); err != nil {
		return false, err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	for v := range want {
		if !have[v] {
			return false, nil
		}
	}
	return true, nil
}

// lock takes the migration lock, waiting up to lockWait for another process
// to finish. A lock left by a crashed process must be removed by hand from
// Table+"_locks"; the error says so.
func lock(ctx context.Context, mg *migrate.Migrator) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := mg.Lock(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("migrations: lock held for over %s (if no process is migrating, delete the row in %s_locks): %w", lockWait, Table, err)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("migrations: waiting for lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

const lockWait = 30 * time.Second

// pgLockWait bounds the wait for the PostgreSQL migration lock.
const pgLockWait = 5 * time.Minute

// advisoryKey is the PostgreSQL advisory lock taken while migrating
// (the first 8 bytes of "socialcrm" as an int64).
const advisoryKey int64 = 0x736f6369616c6372
