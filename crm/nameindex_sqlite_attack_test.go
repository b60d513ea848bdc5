package crm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The attacks of this file are ordinary application code: a host that
// holds the guarded handle (e.db.DB) and a principal of tenant A, and
// writes whatever bun query or raw SQL it likes against the SQLite name
// index (crm.TableContactNameFTS, a contentless FTS5 table, and its shadow
// tables). On PostgreSQL the model is registered too, so the Guard walls
// the same names off there; the table itself does not exist.

const fts = crm.TableContactNameFTS

// ftsHexTokens returns the FTS5 words of a contact's name index, read
// through the guarded handle as tenant ctx may: its own contact's
// name_index column, which holds them on SQLite (space-separated); on
// PostgreSQL the column's tokens stand in for them.
func ftsHexTokens(t *testing.T, e *env, ctx context.Context, id string) []string {
	t.Helper()
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	var raw string
	require.NoError(t, tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw("SELECT name_index FROM "+crm.TableContacts+" AS ct WHERE ct.tenant_id = ? AND ct.id = ?", tid, id).Scan(ctx, &raw)
	}))
	if e.db.Name == "postgres" {
		return strings.Split(strings.Trim(raw, "{}"), ",")
	}
	return strings.Fields(raw)
}

// attackEnv creates Ada in tenant A and Grace in tenant B and returns A's
// and B's FTS5 words (B's as the attacker could never compute them: for
// the assertions only) and both tenants' ids.
func attackEnv(t *testing.T, e *env) (mine, theirs crm.Contact, tokA, tokB []string, a, b string) {
	t.Helper()
	var err error
	mine, err = e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
	require.NoError(t, err)
	theirs, err = e.store.Contacts().Create(e.B, crm.ContactInput{FirstName: "Grace", LastName: "Hopper"})
	require.NoError(t, err)
	a, _ = tenancy.TenantID(e.A)
	b, _ = tenancy.TenantID(e.B)
	return mine, theirs, ftsHexTokens(t, e, e.A, mine.ID), ftsHexTokens(t, e, e.B, theirs.ID), a, b
}

// searchIDs is List's name search in ctx's tenant.
func searchIDs(t *testing.T, e *env, ctx context.Context, prefix string) []string {
	t.Helper()
	ids := []string{}
	for o := (crm.ListOptions{Limit: crm.MaxLimit}); ; {
		p, err := e.store.Contacts().List(ctx, crm.ContactFilter{NamePrefix: prefix}, o)
		require.NoError(t, err)
		for _, c := range p.Items {
			ids = append(ids, c.ID)
		}
		if p.NextCursor == "" {
			return ids
		}
		o.Cursor = p.NextCursor
	}
}

// runAsA runs q through the guarded handle as tenant A, both outside and
// inside a tenant transaction, and returns the first error (nil when both
// ran).
func runAsA(e *env, q string) error {
	rows, err := e.db.DB.QueryContext(e.A, q)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if err != nil {
		return err
	}
	return tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
		}
		return rows.Err()
	})
}

// TestNameFTSGuardRefusesEveryOtherShape: every way of naming the FTS5
// name index or its shadow tables but the one look-up List runs is refused
// with ErrUnscoped before it reaches the database: reads of tokens, rowids
// and counts (plain, joined, in a subquery, a CTE, a UNION, RETURNING, the
// MATCH operator, the table-valued function form, the auxiliary functions,
// a prefix or OR query in the allowed shape, fts5vocab, an external-content
// table over a shadow table), and writes (FTS5 command inserts, forged
// rowids, DROP, triggers, PRAGMA, ALTER), with every quoting, case and
// comment trick. Afterwards each tenant's name search still finds exactly
// its own contact.
func TestNameFTSGuardRefusesEveryOtherShape(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		mine, theirs, tokA, _, a, _ := attackEnv(t, e)
		tok := tokA[0]
		up := strings.ToUpper(fts)
		mark := crm.TableContactNameFTSMark
		lookup := "rowid IN (SELECT rowid FROM " + fts + " WHERE " + fts + " = '" + tok + "')"
		// The shape List runs: the indexed contacts, then the pending ones
		// above the watermark by their name_index.
		pending := func(cond string) string {
			return "id IN (SELECT id FROM " + fts + " WHERE " + fts + " = '" + tok + "' UNION ALL SELECT id FROM " + fts + " WHERE " + cond + ")"
		}
		above := "rowid > (SELECT w FROM " + mark + ") AND rowid < (SELECT w FROM " + mark + ") + 128"
		listShape := pending(above + " AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0")
		scoped := "SELECT ct.id FROM " + crm.TableContacts + " AS ct WHERE ct.tenant_id = '" + a + "' AND ct."
		var attacks []string
		// Every other use of the watermark, and look-ups of pending rows
		// that are not exact tokens.
		for _, q := range []string{
			pending(above), // every pending row's id
			pending(above + " AND instr(' ' || name_index || ' ', ' A ') > 0"),
			pending(above + " AND instr(name_index, '" + tok + "') > 0"),
			pending(above + " AND instr(' ' || name_index || ' ', '" + tok + "') > 0"),
			pending(above + " AND instr(' ' || name_index || ' ', ' " + tok + " ') >= 0"),
			pending(above + " AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0 OR 1 = 1"),
			pending(above + " AND instr(' ' || name_index || ' ', ' " + tok + " " + tok + " ') > 0"),
			pending(above + " AND instr('x' || name_index || ' ', ' " + tok + " ') > 0"),
			pending("rowid > 0 AND rowid < (SELECT w FROM " + mark + ") + 128 AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0"),
			pending("rowid > (SELECT w - 1000 FROM " + mark + ") AND rowid < (SELECT w FROM " + mark + ") + 128 AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0"),
			pending("rowid > (SELECT w FROM " + mark + " WHERE w > 5) AND rowid < (SELECT w FROM " + mark + ") + 128 AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0"),
			pending("rowid > (SELECT w FROM " + fts + "_config) AND rowid < (SELECT w FROM " + mark + ") + 128 AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0"),
			"id IN (SELECT id FROM " + fts + " WHERE rowid > (SELECT w FROM " + mark + ") AND rowid < (SELECT w FROM " + mark + ") + 128 AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0)",
			"id IN (SELECT id FROM " + fts + " WHERE " + fts + " = '" + tok + "' UNION SELECT id FROM " + fts + " WHERE " + above + " AND instr(' ' || name_index || ' ', ' " + tok + " ') > 0)",
			"id IN (SELECT id FROM " + fts + " WHERE " + fts + " = '" + tok + "' UNION ALL SELECT id FROM " + crm.TableContacts + " WHERE " + above + ")",
			"rowid > (SELECT w FROM " + mark + ")",
		} {
			attacks = append(attacks, scoped+q)
		}
		attacks = append(attacks, "SELECT (SELECT w FROM "+mark+")", "SELECT 1 WHERE 5 > (SELECT w FROM "+mark+")")
		for _, name := range []string{fts, fts + "_data", fts + "_idx", fts + "_config", fts + "_docsize", fts + "_content", mark, strings.ToUpper(mark),
			up, up + "_DATA", `"` + fts + `"`, `"` + fts + `_data"`, "main." + fts + "_data", `main."` + fts + `_idx"`,
			"[" + fts + "_data]", "`" + fts + "_data`", "'" + fts + "_data'", "temp." + fts, "/**/" + fts + "_data"} {
			attacks = append(attacks,
				"SELECT * FROM "+name,
				"SELECT count(*) FROM "+name,
				"SELECT rowid FROM "+name+" LIMIT 1",
				"SELECT x.* FROM "+crm.TableContacts+" AS ct JOIN "+name+" AS x ON x.rowid = ct.rowid WHERE ct.tenant_id = '"+a+"'",
				"WITH x AS (SELECT * FROM "+name+") SELECT * FROM x",
				"SELECT 1 UNION ALL SELECT rowid FROM "+name,
				"SELECT (SELECT count(*) FROM "+name+")",
				"SELECT 1 WHERE EXISTS (SELECT 1 FROM "+name+" WHERE rowid = 1)",
				"DELETE FROM "+name,
				"DELETE FROM "+name+" WHERE rowid = 1",
				"UPDATE "+name+" SET rowid = rowid + 1",
				"INSERT INTO "+name+" (rowid) VALUES (1)",
				"DROP TABLE "+name,
				"ALTER TABLE "+name+" RENAME TO stolen",
				"PRAGMA table_info("+name+")",
				"CREATE TEMP VIEW v AS SELECT * FROM "+name,
				"CREATE TEMP TABLE copy AS SELECT * FROM "+name,
				"CREATE TEMP TRIGGER tt AFTER INSERT ON "+name+" BEGIN SELECT 1; END",
				"CREATE INDEX stolen ON "+name+" (rowid)",
			)
		}
		attacks = append(attacks,
			// The MATCH operator, the table-valued function, auxiliaries.
			"SELECT rowid FROM "+fts+" WHERE "+fts+" MATCH '"+tok+"'",
			"SELECT rowid FROM "+fts+"('"+tok+"')",
			"SELECT rowid FROM "+fts+" WHERE "+fts+" MATCH '"+tok[:4]+"*'",
			"SELECT rowid, bm25("+fts+") FROM "+fts+" WHERE "+fts+" = '"+tok+"'",
			"SELECT highlight("+fts+", 0, '[', ']') FROM "+fts+" WHERE "+fts+" = '"+tok+"'",
			"SELECT rowid, rank FROM "+fts+" WHERE "+fts+" = '"+tok+"' ORDER BY rank",
			"SELECT rowid FROM "+fts+" WHERE tokens = '"+tok+"'",
			"SELECT rowid FROM "+fts+" WHERE rowid > 0",
			// The allowed shape, bent: a non-exact query, another column, a
			// second name, a CTE, an alias, a limit, a join.
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok[:4]+"*')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+" OR "+tok+"')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = 'tokens : "+tok+"')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+"*')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+"' || '*')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = ct.id)",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+"' OR 1 = 1)",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+"' LIMIT 1)",
			scoped+"rowid IN (SELECT rowid FROM "+fts+" AS f WHERE f = '"+tok+"')",
			scoped+"rowid IN (SELECT rowid FROM main."+fts+" WHERE "+fts+" = '"+tok+"')",
			scoped+"rowid IN (SELECT rowid FROM "+fts+"_data WHERE "+fts+"_data = '"+tok+"')",
			scoped+"rowid IN (SELECT rowid + 1 FROM "+fts+" WHERE "+fts+" = '"+tok+"')",
			scoped+"rowid IN (SELECT block FROM "+fts+" WHERE "+fts+" = '"+tok+"')",
			scoped+lookup+" UNION SELECT rowid FROM "+fts,
			scoped+lookup+" AND (SELECT count(*) FROM "+fts+"_docsize) > 0",
			"SELECT (SELECT count(*) FROM "+fts+"_docsize) FROM "+crm.TableContacts+" AS ct WHERE ct.tenant_id = '"+a+"' AND ct."+lookup,
			"WITH x AS (SELECT rowid FROM "+fts+" WHERE "+fts+" = '"+tok+"') "+scoped+"rowid IN (SELECT rowid FROM x)",
			// Command inserts, in every spelling.
			"INSERT INTO "+fts+" ("+fts+") VALUES ('delete-all')",
			"INSERT INTO "+fts+" ("+fts+") VALUES ('rebuild')",
			"INSERT INTO "+fts+" ("+fts+") VALUES ('optimize')",
			"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('merge', 16)",
			"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('secure-delete', 0)",
			"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('usermerge', 2)",
			"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('automerge', 0)",
			"INSERT INTO "+fts+" ("+fts+", rank) VALUES ('pgsz', 64)",
			"INSERT INTO "+fts+" ("+fts+") VALUES ('integrity-check')",
			"INSERT INTO "+fts+" ("+fts+", rowid, tokens) VALUES ('delete', "+"1, '"+tok+"')",
			"INSERT INTO "+fts+" (rowid, tokens) VALUES (1, '"+tok+"')",
			"INSERT OR REPLACE INTO "+fts+" (rowid, tokens) VALUES (1, '"+tok+"')",
			"REPLACE INTO "+fts+"_config (k, v) VALUES ('secure-delete', 0)",
			"INSERT INTO \""+up+"\" (\""+up+"\") VALUES ('delete-all')",
			"insert/**/into/**/"+fts+"("+fts+")values('delete-all')",
			// fts5vocab and external-content tables read an index's tokens.
			"CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, "+fts+", row)",
			"CREATE VIRTUAL TABLE temp.v USING fts5vocab('main', '"+fts+"', 'row')",
			"CREATE VIRTUAL TABLE temp.v USING \"FTS5VOCAB\"('"+fts+"', 'instance')",
			"CREATE VIRTUAL TABLE temp.v USING 'fts5vocab'('"+fts+"', 'row')",
			"CREATE VIRTUAL TABLE temp.v USING fts5(block, content='"+fts+"_data', content_rowid='id')",
			"CREATE VIRTUAL TABLE temp.v USING fts5(name_index, content='"+crm.TableContacts+"')",
			"SELECT * FROM fts5vocab",
			// Schema and pragma tricks.
			"SELECT * FROM pragma_table_info('"+fts+"_data')",
			"SELECT * FROM sqlite_master WHERE name = '"+fts+"_data'",
			"DROP TRIGGER socialcrm_crm_contact_name_fts_delete",
			"DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_fts_insert",
			"CREATE TEMP TRIGGER steal AFTER INSERT ON "+crm.TableContacts+" BEGIN DELETE FROM "+fts+"; END",
			"PRAGMA writable_schema = ON",
			// Counts, samples and pages of the index's shadow tables, and
			// settings that outlive the statement (sqlitewalls.go).
			"SELECT name, ncell FROM dbstat WHERE name LIKE '%name_fts%'",
			"SELECT * FROM dbstat('main', 1)",
			"SELECT stat FROM sqlite_stat1 WHERE tbl LIKE '%name_fts_idx'",
			"SELECT hex(sample) FROM sqlite_stat4 WHERE tbl LIKE '%name_fts_idx'",
			"PRAGMA secure_delete = 0",
			"PRAGMA recursive_triggers = 0",
		)
		for _, q := range attacks {
			err := runAsA(e, q)
			assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			_, err = e.db.DB.ExecContext(context.Background(), q)
			assert.True(t, errors.Is(err, tenancy.ErrUnscoped) || errors.Is(err, tenancy.ErrNoTenant), "without a principal: %s: %v", q, err)
		}

		// Literals PostgreSQL's parser reads otherwise than SQLite: the Guard
		// may pass them (their value is exact tokens), but neither database
		// runs them.
		for _, q := range []string{
			scoped + "rowid IN (SELECT rowid FROM " + fts + " WHERE " + fts + " = E'" + tok + "')",
			scoped + "rowid IN (SELECT rowid FROM " + fts + " WHERE " + fts + " = U&'" + tok + "')",
		} {
			require.Error(t, runAsA(e, q), "%s", q)
		}

		if e.db.Name == "sqlite" {
			// The one shape List runs passes, confined to A by its outer
			// condition, and finds A's contact.
			var got []string
			require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw(scoped+listShape).Scan(ctx, &got)
			}))
			require.Equal(t, []string{mine.ID}, got, "pending")
			crm.FlushNameFTS(t, e.db.Admin(t))
			for _, q := range []string{lookup, listShape} {
				got = nil
				require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
					return tx.NewRaw(scoped+q).Scan(ctx, &got)
				}))
				require.Equal(t, []string{mine.ID}, got, "indexed: %s", q)
			}
		}
		require.Equal(t, []string{mine.ID}, searchIDs(t, e, e.A, "ada"))
		require.Equal(t, []string{mine.ID}, searchIDs(t, e, e.A, "love ad"))
		require.Empty(t, searchIDs(t, e, e.A, "grace"))
		require.Equal(t, []string{theirs.ID}, searchIDs(t, e, e.B, "grace hop"))
		require.Empty(t, searchIDs(t, e, e.B, "ada"))
	})
}
