package tenancy_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// widgetIndex is a full-text index of the widgets' names, as the SDK keeps
// one of contacts' names on SQLite: a contentless FTS5 table keyed by the
// widget's rowid, each document the hexadecimal digits of the name
// (standing in for keyed tokens), written by a trigger.
type widgetIndex struct {
	bun.BaseModel `bun:"table:test_widget_fts"`
	tenancy.FullTextIndex
}

// ftsSetup is setup with the index (on SQLite; PostgreSQL has no FTS5,
// and the Guard refuses the statements below before they reach it) and
// the index's model registered with the Guard.
func ftsSetup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), testMigrations()); err != nil {
		return err
	}
	if db.Dialect().Name().String() == "sqlite" {
		if err := migrations.Exec(ctx, db,
			`CREATE VIRTUAL TABLE IF NOT EXISTS test_widget_fts USING fts5(tokens, content='', columnsize=0, detail=none, tokenize='ascii')`,
			`CREATE TRIGGER IF NOT EXISTS test_widget_fts_insert AFTER INSERT ON test_widgets BEGIN
				INSERT INTO test_widget_fts (rowid, tokens) VALUES (NEW.rowid, hex(NEW.name));
			END`,
		); err != nil {
			return err
		}
	}
	_, err := tenancy.InstallGuard(db, (*widget)(nil), (*gadget)(nil), (*tenancy.Member)(nil),
		(*tenancy.APIKey)(nil), (*tenancy.AuditEntry)(nil), (*widgetIndex)(nil))
	return err
}

// TestGuardWallsFullTextIndex attacks, as tenant A through bun with the
// Guard installed, a full-text index that holds every tenant's tokens and
// rowids: reading it or its shadow tables in every form (top level,
// subquery, join, CTE, table-valued function, MATCH, prefix and NEAR
// queries, column filters, auxiliary functions, fts5vocab, quoted and
// schema-qualified names, a name the parser decodes), writing it (rows and
// FTS5 commands such as 'delete-all', 'rebuild', 'secure-delete'), and
// changing its schema. Every statement is refused with ErrUnscoped on both
// databases. The one shape the SDK issues runs on SQLite, confined by its
// outer query: B's tokens find nothing in A's scope. Without the index's
// model registered, the Guard lets the reads through (it does not know the
// table): the hole the walls close.
func TestGuardWallsFullTextIndex(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		mine, secret := "mine-a-widget-name-0001", "secret-b-widget-name-0002"
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: mine, Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: secret, Size: 2}))
		hexA, hexB := strings.ToUpper(hex.EncodeToString([]byte(mine))), strings.ToUpper(hex.EncodeToString([]byte(secret)))
		lookup := func(cond string) string {
			return "SELECT w.name FROM test_widgets AS w WHERE w.tenant_id = '" + a + "' AND " + cond
		}
		in := func(q string) string { return lookup("w.rowid IN (" + q + ")") }
		attacks := []string{
			"SELECT rowid FROM test_widget_fts",
			"SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexB + "'",
			"SELECT * FROM test_widget_fts WHERE test_widget_fts = '" + hexB + "'",
			"SELECT count(*) FROM test_widget_fts",
			"SELECT (SELECT count(*) FROM test_widget_fts) AS n",
			"SELECT rowid FROM test_widget_fts('" + hexB + "')",
			"SELECT rowid FROM test_widget_fts WHERE test_widget_fts MATCH '" + hexB + "'",
			"WITH x AS (SELECT rowid FROM test_widget_fts) SELECT * FROM x",
			lookup("EXISTS (SELECT 1 FROM test_widget_fts)"),
			"SELECT w.name FROM test_widgets AS w JOIN test_widget_fts AS f ON f.rowid = w.rowid WHERE w.tenant_id = '" + a + "'",
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts MATCH '" + hexA + "'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexB[:4] + "*'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "*'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + " OR " + hexB + "'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = 'NEAR(" + hexA + " " + hexB + ")'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = 'tokens : " + hexA + "'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '^" + hexA + "'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = 'ab'"),
			in("SELECT rowid FROM test_widget_fts"),
			in("SELECT rowid FROM test_widget_fts WHERE rowid > 0"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' OR 1 = 1"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' UNION SELECT rowid FROM test_widget_fts"),
			in("SELECT rowid FROM test_widget_fts AS test_widgets WHERE test_widget_fts = '" + hexA + "'"),
			in("SELECT rowid FROM main.test_widget_fts WHERE test_widget_fts = '" + hexA + "'"),
			in("SELECT bm25(test_widget_fts) FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "'"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' ORDER BY rank"),
			lookup("w.size IN (SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '"+hexA+"')") + " AND w.name = 'test_widget_fts'",
			lookup("w.rowid IN (SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "') AND w.rowid IN (SELECT rowid FROM test_widget_fts_data)"),
			// The watermark beside the index: never read but in the
			// pending arm of a look-up, never written.
			"SELECT w FROM test_widget_fts_mark",
			"SELECT (SELECT w FROM test_widget_fts_mark) AS n",
			lookup("w.rowid > (SELECT w FROM test_widget_fts_mark)"),
			in("SELECT rowid FROM test_widget_fts WHERE rowid > (SELECT w FROM test_widget_fts_mark) AND rowid < (SELECT w FROM test_widget_fts_mark) + 64 AND instr(' ' || tokens || ' ', ' " + hexA + " ') > 0"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' UNION ALL SELECT rowid FROM test_widget_fts WHERE rowid > (SELECT w FROM test_widget_fts_mark) AND rowid < (SELECT w FROM test_widget_fts_mark) + 64"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' UNION ALL SELECT rowid FROM test_widget_fts WHERE rowid > (SELECT w FROM test_widget_fts_mark) AND rowid < (SELECT w FROM test_widget_fts_mark) + 64 AND instr(' ' || tokens || ' ', ' " + hexB[:4] + " ') > 0"),
			in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + hexA + "' UNION ALL SELECT rowid FROM test_widget_fts_data WHERE rowid > (SELECT w FROM test_widget_fts_mark) AND rowid < (SELECT w FROM test_widget_fts_mark) + 64 AND instr(' ' || tokens || ' ', ' " + hexA + " ') > 0"),
			"UPDATE test_widget_fts_mark SET w = 0",
			"INSERT INTO test_widget_fts_mark (w) VALUES (0)",
			"DELETE FROM test_widget_fts_mark",
			"DROP TABLE test_widget_fts_mark",
			"SELECT * FROM test_widget_fts_data",
			"SELECT * FROM test_widget_fts_idx",
			"SELECT * FROM test_widget_fts_config",
			"SELECT * FROM test_widget_fts_docsize",
			"SELECT * FROM test_widget_fts_content",
			`SELECT * FROM "TEST_WIDGET_FTS_DATA"`,
			"SELECT * FROM [test_widget_fts_idx]",
			"SELECT * FROM main.test_widget_fts_data",
			`SELECT * FROM U&"test_widget_fts_dat\0061"`,
			"SELECT block FROM test_widget_fts_data /* a comment */ WHERE id > 0",
			"CREATE VIRTUAL TABLE temp.v USING fts5vocab(test_widget_fts, 'row')",
			`CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, "test_widget_fts", row)`,
			"INSERT INTO test_widget_fts (test_widget_fts) VALUES ('delete-all')",
			"INSERT INTO test_widget_fts (test_widget_fts) VALUES ('rebuild')",
			"INSERT INTO test_widget_fts (test_widget_fts) VALUES ('optimize')",
			"INSERT INTO test_widget_fts (test_widget_fts, rank) VALUES ('secure-delete', 0)",
			"INSERT INTO test_widget_fts (test_widget_fts, rowid, tokens) VALUES ('delete', 2, '" + hexB + "')",
			"INSERT INTO test_widget_fts (rowid, tokens) VALUES (99, '" + hexB + "')",
			"DELETE FROM test_widget_fts WHERE rowid = 2",
			"UPDATE test_widget_fts SET tokens = 'x'",
			"DELETE FROM test_widget_fts_data",
			"UPDATE test_widget_fts_config SET v = 0",
			"DROP TABLE test_widget_fts",
			"ALTER TABLE test_widget_fts RENAME TO stolen",
			"PRAGMA table_info(test_widget_fts_data)",
		}
		for _, q := range attacks {
			seen, err := namesSeen(db, a, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			require.NotContains(t, seen, secret, "%s", q)
		}
		if db.Name != "sqlite" {
			return
		}

		// The SDK's shape: A's token finds A's widget; B's, nothing in A's
		// scope; unconfined, it is refused as any unscoped read.
		shape := func(tok string) string {
			return in("SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '" + tok + "'")
		}
		seen, err := namesSeen(db, a, shape(hexA))
		require.NoError(t, err)
		require.Equal(t, mine, seen)
		seen, err = namesSeen(db, a, shape(strings.ToLower(hexA)+" "+hexA))
		require.NoError(t, err)
		require.Equal(t, mine, seen, "an AND of exact tokens")
		seen, err = namesSeen(db, a, shape(hexB))
		require.NoError(t, err)
		require.Empty(t, seen)
		_, err = namesSeen(db, a, "SELECT w.name FROM test_widgets AS w WHERE w.rowid IN (SELECT rowid FROM test_widget_fts WHERE test_widget_fts = '"+hexB+"')")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)

		// A Guard that does not know the index lets the reads through.
		unknown := db.Reopen(t)
		_, err = tenancy.InstallGuard(unknown, (*widget)(nil), (*gadget)(nil))
		require.NoError(t, err)
		// (A rowid is refused all the same: TestTenantCannotReadGlobalCounters.)
		for _, q := range []string{"SELECT * FROM test_widget_fts WHERE test_widget_fts = '" + hexB + "'", "SELECT id, block FROM test_widget_fts_data"} {
			_, err := namesSeen(unknown, a, q)
			require.NoError(t, err, "%s", q)
		}
	}, ftsSetup)
}
