package tenancy

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// shadows refuses a statement that would make a relation of a
// tenant-owned table's name that the application's unqualified
// statements find before the table itself: a temporary one, whether
// spelled CREATE TEMP or in the temporary schema by name (SQLite's
// temp.x, PostgreSQL's pg_temp.x, which may inherit from a table of the
// creator's: tenant B created pg_temp.test_widgets () INHERITS
// (pg_temp.stash) on a pooled connection, tenant A's next rows on that
// connection went into it, past row-level security, and B read them from
// stash), or any relation renamed to the name (ALTER TABLE x RENAME TO
// test_widgets), or an index of the name. On SQLite tenant A's writes and
// erasures went to tenant B's temporary table and were lost with the
// connection.
func (a *analysis) shadows(m proto.Message) {
	if r, ok := m.(*pg.RenameStmt); ok && r.Newname != "" && a.owned(r.Newname) {
		a.fail("renaming to %s, a tenant-owned table's name, is not allowed", strings.ToLower(r.Newname))
	}
	if ix, ok := m.(*pg.IndexStmt); ok && ix.Idxname != "" && a.owned(ix.Idxname) {
		a.fail("an index may not take the name of tenant-owned table %s", strings.ToLower(ix.Idxname))
	}
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		if rv, ok := x.(*pg.RangeVar); ok && a.owned(rv.Relname) && (rv.Relpersistence == "t" || temporarySchema(rv.Schemaname)) {
			a.fail("a temporary relation may not take the name of tenant-owned table %s", strings.ToLower(rv.Relname))
		}
		return true
	})
}

// temporarySchema reports whether schema names the temporary schema:
// SQLite's temp (or temporary), PostgreSQL's pg_temp and the pg_temp_N
// it stands for.
func temporarySchema(schema string) bool {
	s := strings.ToLower(schema)
	return s == "temp" || s == "temporary" || strings.HasPrefix(s, "pg_temp")
}
