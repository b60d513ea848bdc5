package tenancy

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// RunInTx runs fn in a transaction scoped to the context's tenant. On
// PostgreSQL it sets app.tenant_id, which the row-level-security policies
// of tenant-owned tables compare with, so even a raw "SELECT *" inside fn
// sees only the tenant's rows. On a handle from socialcrm.OpenDB the BEGIN
// and the setting travel with fn's first statement, in its round trip (the
// setting only when the connection's session does not hold the tenant
// already; see the package's Security section: every later statement on
// the connection sets its own tenant or none, so nothing leaks to the next
// user of the pooled connection); a transaction in which fn sends nothing
// sends nothing. On any other PostgreSQL handle the setting is
// transaction-local (set_config(..., true)) and ends with the transaction.
//
// Without a tenant in ctx, RunInTx fails with ErrNoTenant and fn is not
// called. fn receives ctx unchanged (in a bun.Tx of such a handle, with the
// setting for the driver added). When db is already a bun.Tx, RunInTx
// runs fn in a savepoint of it, and when fn returns the outer transaction's
// tenant is in force again: RunInTx(A) around RunInTx(B) sees A's rows
// after B's part (a failed savepoint rolls the setting back with it).
func RunInTx(ctx context.Context, db bun.IDB, opts *sql.TxOptions, fn func(ctx context.Context, tx bun.Tx) error) error {
	tid, err := TenantID(ctx)
	if err != nil {
		return err
	}
	tx, nested := db.(bun.Tx)
	if !nested && folds(db) {
		// The driver sends BEGIN and the setting with the first statement.
		return db.RunInTx(withSettings(ctx, tid), opts, func(_ context.Context, tx bun.Tx) error {
			return fn(ctx, tx)
		})
	}
	if nested && folds(tx) {
		// The driver sends the savepoint and the setting with the first
		// statement fn sends under the context it gets, and the outer
		// transaction's setting again with the next statement outside it.
		return tx.RunInTx(ctx, opts, func(_ context.Context, sp bun.Tx) error {
			return fn(withSettings(ctx, tid), sp)
		})
	}
	return db.RunInTx(ctx, opts, func(_ context.Context, tx bun.Tx) error {
		prev, err := setTenant(ctx, tx, scopeSettings{tenant: tid, member: memberValue(ctx)}, nested)
		if err != nil {
			return err
		}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if nested && tx.Dialect().Name() == dialect.PG {
			_, err = setTenant(ctx, tx, prev, false)
		}
		return err
	})
}

// tenantSetting is the server setting row-level security compares with.
const tenantSetting = "app.tenant_id"

// folds reports whether db is, or is a transaction of, a PostgreSQL handle
// whose driver sends the tenant setting in the round trip of the
// statements it governs (socialcrm.OpenDB's handles).
func isTx(db bun.IDB) bool {
	_, ok := db.(bun.Tx)
	return ok
}

func folds(db bun.IDB) bool {
	if d, ok := db.(*bun.DB); ok { // the common case, without a query built to find it
		return sqldb.Folds(d.DB)
	}
	d := db.NewRaw("").DB() // the handle beneath a bun.Tx or a wrapper too
	return d != nil && sqldb.Folds(d.DB)
}

// RunScoped runs fn, every statement of which is confined to the context's
// tenant as in RunInTx, but without a transaction where none is needed: on
// a PostgreSQL handle from socialcrm.OpenDB each statement fn sends on db
// runs as a transaction of its own under the tenant, set in its own round
// trip unless the connection's session holds it already (one plain query
// then); on SQLite, which has no row-level security, fn
// runs on db as it is; on any other PostgreSQL handle, and in a bun.Tx,
// fn runs in RunInTx. Use it for work whose statements need not
// commit together — typically a single statement.
//
// Without a tenant in ctx, RunScoped fails with ErrNoTenant and fn is not
// called.
func RunScoped(ctx context.Context, db bun.IDB, fn func(ctx context.Context, db bun.IDB) error) error {
	tid, err := TenantID(ctx)
	if err != nil {
		return err
	}
	switch {
	case db.Dialect().Name() != dialect.PG:
		return fn(ctx, db)
	case !isTx(db) && folds(db):
		return fn(withSettings(ctx, tid), db)
	}
	return RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx) })
}

// scopeSettings are the values of the settings row-level security
// compares with: app.tenant_id and app.member_id (creator.go).
type scopeSettings struct{ tenant, member string }

// setTenant sets app.tenant_id and app.member_id to to's values for the
// rest of tx on PostgreSQL, and returns the values they had when nested is
// set.
func setTenant(ctx context.Context, tx bun.Tx, to scopeSettings, nested bool) (prev scopeSettings, err error) {
	if tx.Dialect().Name() != dialect.PG {
		return scopeSettings{}, nil
	}
	ctx = context.WithValue(ctx, settingTenantKey{}, true)
	if nested {
		err = tx.NewRaw("SELECT coalesce(current_setting('app.tenant_id', true), ''), coalesce(current_setting('app.member_id', true), ''), "+
			"set_config('app.tenant_id', ?, true), set_config('app.member_id', ?, true)", to.tenant, to.member).
			Scan(ctx, &prev.tenant, &prev.member, new(string), new(string))
	} else {
		_, err = tx.ExecContext(ctx, "SELECT set_config('app.tenant_id', ?, true), set_config('app.member_id', ?, true)", to.tenant, to.member)
	}
	if err != nil {
		return scopeSettings{}, fmt.Errorf("tenancy: set tenant for transaction: %w", err)
	}
	return prev, nil
}

// EnableRowSecurity puts a PostgreSQL row-level-security policy on table,
// which must have a tenant_id column: rows are visible and writable only
// when tenant_id equals the transaction's app.tenant_id (see RunInTx). The
// policy is forced, so it binds the table's owner too; only superusers and
// roles with BYPASSRLS skip it, so connect as a role that is neither. Before
// any set_config the setting is NULL, after a transaction that set it
// locally or a statement without a tenant the session holds the empty
// string — NULLIF makes both match nothing.
//
// Migrations of tenant-owned tables call it right after creating the table.
// On other dialects it does nothing.
func EnableRowSecurity(ctx context.Context, db bun.IDB, table string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	stmts := []string{
		"ALTER TABLE ? ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE ? FORCE ROW LEVEL SECURITY",
		"DROP POLICY IF EXISTS tenant_isolation ON ?",
		`CREATE POLICY tenant_isolation ON ?
			USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
			WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))`,
	}
	ctx = context.WithValue(ctx, rowSecurityKey{}, true)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s, bun.Ident(table)); err != nil {
			return fmt.Errorf("tenancy: row security on %s: %w", table, err)
		}
	}
	return nil
}
