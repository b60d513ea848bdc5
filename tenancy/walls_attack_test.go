package tenancy_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// namesSeen runs q as a raw query in tenant's transaction and returns every
// text value of every row.
func namesSeen(db bun.IDB, tenant, q string) (string, error) {
	var out []string
	err := tenancy.RunInTx(as(tenant), db, nil, func(ctx context.Context, tx bun.Tx) error {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = textColumns(rows)
		return err
	})
	return strings.Join(out, "|"), err
}

// textColumns reads every text or bytes value of every row, in order.
func textColumns(rows *sql.Rows) ([]string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				out = append(out, string(v))
			case string:
				out = append(out, v)
			}
		}
	}
	return out, rows.Err()
}

// TestGuardReadsTextAsSQLiteDoes: the Guard reads statements with
// PostgreSQL's grammar, and SQLite tokenizes some text otherwise — its
// block comments do not nest, E'\' is no escape to it, $a$ is a parameter,
// [x'] is a name. Each statement below looked harmless to the parser
// (a comment, a string, a subscript) while SQLite ran a subquery over
// every tenant's rows. They are refused on SQLite now; on PostgreSQL,
// which reads them as the parser does, they see nothing of B's.
func TestGuardReadsTextAsSQLiteDoes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "mine-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		for _, q := range []string{
			"SELECT name FROM test_widgets AS w WHERE w.tenant_id = '{a}' /* /* */ UNION SELECT name FROM test_widgets -- */",
			"SELECT name FROM test_widgets AS w WHERE w.tenant_id = '{a}' /* /* */ UNION SELECT name FROM test_widgets /* */",
			"SELECT e'\\' , (SELECT group_concat(name) FROM test_widgets) AS x --'\nFROM (SELECT 1 AS e) AS s",
			"SELECT a['], (SELECT group_concat(name) FROM test_widgets) AS x --']\nFROM (SELECT 1 AS a) AS s",
			"SELECT 1 AS x, a `'` , (SELECT group_concat(name) FROM test_widgets) AS x --`\nFROM (SELECT 1 AS a) AS s",
			"SELECT $a$, (SELECT group_concat(name) FROM test_widgets) AS x, 'z' AS y WHERE $a$ IS NULL",
		} {
			q = strings.ReplaceAll(q, "{a}", a)
			seen, err := namesSeen(db, a, q)
			require.NotContains(t, seen, "secret-b", "%s", q)
			if db.Name == "sqlite" {
				require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			}
		}
		// What SQLite reads as the parser does still runs.
		for _, q := range []string{
			"SELECT name FROM test_widgets AS w WHERE w.tenant_id = '{a}' /* a comment */ -- and another",
			"SELECT name FROM test_widgets AS w WHERE w.tenant_id = '{a}' AND w.name <> 'it''s \\ $x /* [' ",
		} {
			q = strings.ReplaceAll(q, "{a}", a)
			seen, err := namesSeen(db, a, q)
			require.NoError(t, err, "%s", q)
			require.Equal(t, "mine-a", seen, "%s", q)
		}
	})
}

// TestGuardRefusesTenantColumnTwice: SQLite stores the first of two
// tenant_id values an INSERT names, and the Guard checked the last, so
// tenant A planted a row in tenant B's data.
func TestGuardRefusesTenantColumnTwice(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		q := "INSERT INTO test_widgets (tenant_id, id, name, size, tenant_id) VALUES ('" + b + "', '" + tenancy.NewID() + "', 'planted', 1, '" + a + "')"
		err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, q)
			return err
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		var n int
		require.NoError(t, tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
			c, err := tx.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			n = int(c)
			return err
		}))
		require.Zero(t, n, "nothing was planted in B")
	})
}

// checkpointRow is the audit truncation checkpoint as plain bun code sees
// it.
type checkpointRow struct {
	bun.BaseModel `bun:"table:socialcrm_audit_checkpoints"`
	tenancy.Owned
	Seq  int64     `bun:"seq"`
	Hash string    `bun:"hash"`
	At   time.Time `bun:"at"`
}

// TestAuditWipeIsFound: as the application role, with plain bun and raw
// SQL, a tenant's writer wrote a truncation checkpoint past the head,
// deleted every entry it covered (on PostgreSQL through the owner's
// truncation function, which the role may call), and deleted the
// checkpoint again: Verify then accepted an empty log. The checkpoint now
// moves only forward, so the wipe leaves it behind and Verify reports it.
func TestAuditWipeIsFound(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		e.seed(t, ctx, 3)
		require.NoError(t, tenancy.RunInTx(as(a), e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewInsert().Model(&checkpointRow{Seq: 1000, Hash: "forged", At: time.Now()}).Exec(ctx); err != nil {
				return err
			}
			if e.db.Name == "postgres" {
				_, err := tx.ExecContext(ctx, "SELECT socialcrm_audit_truncate(?, 1000)", a)
				return err
			}
			_, err := tx.NewDelete().Model((*tenancy.AuditEntry)(nil)).Where("seq <= 1000").Exec(ctx)
			return err
		}))
		for name, fn := range map[string]func(ctx context.Context, tx bun.Tx) error{
			"delete the checkpoint": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewDelete().Model((*checkpointRow)(nil)).Where("1 = 1").Exec(ctx)
				return err
			},
			"move it back": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*checkpointRow)(nil)).Set("seq = 0").Where("1 = 1").Exec(ctx)
				return err
			},
		} {
			require.Error(t, tenancy.RunInTx(as(a), e.db.DB, nil, fn), name)
		}
		_, err := e.log.Verify(ctx)
		requireTamper(t, err, 1000, "entries removed without a truncation entry")
	})
}

// TestGuardRefusesSchemaChangesOfOwnedTables: on SQLite, where the
// application's handle owns every table, tenant A renamed tenant_id and
// added a new one defaulting to A — every one of B's rows became A's and
// a query scoped to A read them — and dropped tables of every tenant. A
// schema change of a tenant-owned table (ALTER, RENAME, DROP, a unique
// index not beginning with tenant_id, a table inheriting or referencing
// one, a trigger on one or the drop of one, a temporary table hiding one,
// writable_schema and writes to SQLite's schema table) is refused on a
// guarded handle now, on both databases; migrations run before InstallGuard or as
// the owner.
func TestGuardRefusesSchemaChangesOfOwnedTables(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		dropTrigger := "DROP TRIGGER socialcrm_audit_log_no_update"
		if db.Name == "postgres" {
			dropTrigger = "DROP TRIGGER socialcrm_append_only ON socialcrm_audit_log"
		}
		for _, q := range []string{
			"ALTER TABLE test_widgets RENAME COLUMN tenant_id TO old_tenant",
			"ALTER TABLE test_widgets ADD COLUMN tenant_id2 TEXT NOT NULL DEFAULT '" + a + "'",
			"ALTER TABLE test_widgets DROP COLUMN name",
			"ALTER TABLE test_widgets RENAME TO stolen",
			`ALTER TABLE "TEST_WIDGETS" RENAME TO stolen`,
			"DROP TABLE test_gadgets",
			"DROP TABLE IF EXISTS main.test_gadgets",
			"CREATE UNIQUE INDEX across_tenants ON test_widgets (name)",
			"CREATE UNIQUE INDEX across_tenants ON test_widgets (name, tenant_id)",
			"CREATE TABLE heir (x int) INHERITS (test_widgets)",
			"CREATE TABLE pointer (w TEXT REFERENCES test_widgets (id))",
			dropTrigger,
			"drop   trigger if exists socialcrm_audit_log_no_delete",
			"CREATE TEMP TABLE test_widgets (tenant_id TEXT, id TEXT, name TEXT, size INTEGER)",
			"PRAGMA writable_schema = ON",
			"UPDATE sqlite_master SET sql = replace(sql, 'tenant_id', 'old_tenant') WHERE name = 'test_widgets'",
			"DELETE FROM sqlite_schema WHERE type = 'trigger'",
		} {
			err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			_, err = db.ExecContext(context.Background(), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "without a principal: %s", q)
		}
		// Indexes that keep tenants apart can still be made.
		for _, q := range []string{
			"CREATE INDEX IF NOT EXISTS widgets_by_name ON test_widgets (tenant_id, name)",
			"CREATE UNIQUE INDEX IF NOT EXISTS widgets_unique_name ON test_widgets (tenant_id, name)",
		} {
			_, err := db.ExecContext(context.Background(), q)
			if db.Name == "postgres" {
				require.NotErrorIs(t, err, tenancy.ErrUnscoped, "%s", q) // the owner's privilege on PostgreSQL
			} else {
				require.NoError(t, err, "%s", q)
			}
		}
		seen, err := namesSeen(db, a, "SELECT name FROM test_widgets AS w WHERE w.tenant_id = '"+a+"'")
		require.NoError(t, err)
		require.Empty(t, seen)
		seen, err = namesSeen(db, b, "SELECT name FROM test_widgets AS w WHERE w.tenant_id = '"+b+"'")
		require.NoError(t, err)
		require.Equal(t, "secret-b", seen)
	})
}
