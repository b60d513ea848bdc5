package migrations

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// AppendOnlyTrigger names the trigger that marks a table as append-only:
// Grant gives an application role no UPDATE or DELETE on a table that has
// it.
const AppendOnlyTrigger = "socialcrm_append_only"

// Tables returns the tables and views of db's current schema whose names
// start with prefix ("" for every table), sorted. On SQLite it returns
// nil.
func Tables(ctx context.Context, db bun.IDB, prefix string) ([]string, error) {
	if db.Dialect().Name() != dialect.PG {
		return nil, nil
	}
	var names []string
	err := db.NewRaw(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v') AND starts_with(c.relname, ?)
		ORDER BY c.relname`, prefix).Scan(ctx, &names)
	if err != nil {
		return nil, fmt.Errorf("migrations: list tables: %w", err)
	}
	return names, nil
}

// Grant gives the PostgreSQL role the privileges an application needs on
// tables of db's current schema, and no more: USAGE on the schema,
// SELECT, INSERT, UPDATE and DELETE on each table, except SELECT and
// INSERT only on tables marked append-only (AppendOnlyTrigger), SELECT only
// on the migration history and on views (a view reads its tables with its
// owner's privileges, and one PostgreSQL can update writes them so), and
// USAGE on the schema's sequences. It grants
// nothing that lets the role change a table, a policy or a trigger: those
// stay with the owner. db must be connected as the tables' owner. Running
// it again is harmless. On SQLite, which has no roles, it does nothing.
//
// Two processes granting at once (replicas starting together) would fail
// with "tuple concurrently updated": the grants run in one transaction
// under an advisory lock, one process after the other.
func Grant(ctx context.Context, db bun.IDB, role string, tables []string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	if role == "" {
		return fmt.Errorf("migrations: grant: role is required")
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", grantLock); err != nil {
			return fmt.Errorf("migrations: grant: lock: %w", err)
		}
		return grant(ctx, tx, role, tables)
	})
}

// grantLock is the advisory lock key that serializes Grant across
// processes ("socialcrm grant" in ASCII).
const grantLock int64 = 0x736372677261

func grant(ctx context.Context, db bun.IDB, role string, tables []string) error {
	var appendOnly []string
	if err := db.NewRaw(`SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND t.tgname = ?`, AppendOnlyTrigger).Scan(ctx, &appendOnly); err != nil {
		return fmt.Errorf("migrations: grant: %w", err)
	}
	isAppendOnly := map[string]bool{}
	for _, t := range appendOnly {
		isAppendOnly[t] = true
	}
	var views []string
	if err := db.NewRaw(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'v'`).Scan(ctx, &views); err != nil {
		return fmt.Errorf("migrations: grant: %w", err)
	}
	isView := map[string]bool{}
	for _, v := range views {
		isView[v] = true
	}
	var schema string
	if err := db.NewRaw("SELECT quote_ident(current_schema())").Scan(ctx, &schema); err != nil {
		return fmt.Errorf("migrations: grant: current schema: %w", err)
	}
	r := bun.Ident(role)
	exec := func(q string, args ...any) error {
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("migrations: grant: %w", err)
		}
		return nil
	}
	if err := exec("GRANT USAGE ON SCHEMA "+schema+" TO ?", r); err != nil {
		return err
	}
	for _, t := range tables {
		privs := "SELECT, INSERT, UPDATE, DELETE"
		switch {
		case t == Table || t == Table+"_locks", isView[t]:
			privs = "SELECT"
		case isAppendOnly[t]:
			privs = "SELECT, INSERT"
		}
		if err := exec("REVOKE ALL ON TABLE ? FROM ?", bun.Ident(t), r); err != nil {
			return err
		}
		if err := exec("GRANT "+privs+" ON TABLE ? TO ?", bun.Ident(t), r); err != nil {
			return err
		}
	}
	return exec("GRANT USAGE ON ALL SEQUENCES IN SCHEMA "+schema+" TO ?", r)
}
