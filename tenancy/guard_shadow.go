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
// test_widgets), or an index of the name; the same for the tenant
// registries and the migration tables (registry.go). On SQLite tenant A's writes and
// erasures went to tenant B's temporary table and were lost with the
// connection.
func (a *analysis) shadows(m proto.Message) {
	guarded := func(name string) bool {
		return a.owned(name) || a.key != nil && (a.key(name) != "" || migrationTable(name))
	}
	refuse := func(name, why string) {
		name = strings.ToLower(name)
		if a.key != nil {
			// A registry's or member table's shape counts only when it
			// names one (analyze), and holds under a tenant's
			// (creator's) principal.
			a.sh.owned, a.sh.tables = true, append(a.sh.tables, name)
		}
		a.fail(why, name)
	}
	if r, ok := m.(*pg.RenameStmt); ok && r.Newname != "" && guarded(r.Newname) {
		refuse(r.Newname, "renaming to %s, a guarded table's name, is not allowed")
	}
	if ix, ok := m.(*pg.IndexStmt); ok && ix.Idxname != "" && guarded(ix.Idxname) {
		refuse(ix.Idxname, "an index may not take the name of guarded table %s")
	}
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		if rv, ok := x.(*pg.RangeVar); ok && (rv.Relpersistence == "t" || temporarySchema(rv.Schemaname)) && guarded(rv.Relname) {
			refuse(rv.Relname, "a temporary relation may not take the name of guarded table %s")
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
