package tenancy

import (
	"fmt"
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
// registries and the migration tables (registry.go). On SQLite tenant
// A's writes and erasures went to tenant B's temporary table and were
// lost with the connection.
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
	if keepsTemporary(m) {
		a.sh.tempKept = true
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

// keepsTemporary reports whether statement m leaves an object in the
// temporary schema when its transaction ends: a temporary table without
// ON COMMIT DROP, a temporary view or sequence, a type or domain made in
// (or moved to) the temporary schema. On PostgreSQL the temporary schema
// is searched first for relations and types, and it stays with the
// pooled connection the next tenant gets: tenant B's CREATE TYPE
// pg_temp.int8 AS ENUM ('x') made tenant A's next '1'::int8 on that
// connection fail, and a temporary table's row type is a type of its
// name too.
func keepsTemporary(m proto.Message) bool {
	temp := func(rv *pg.RangeVar) bool {
		return rv != nil && (rv.Relpersistence == "t" || temporarySchema(rv.Schemaname))
	}
	inTemp := func(names []*pg.Node) bool {
		return len(names) > 1 && temporarySchema(names[0].GetString_().GetSval())
	}
	switch s := m.(type) {
	case *pg.CreateStmt:
		return temp(s.Relation) && s.Oncommit != pg.OnCommitAction_ONCOMMIT_DROP
	case *pg.SelectStmt: // SELECT … INTO TEMP x
		return temp(s.GetIntoClause().GetRel()) && s.GetIntoClause().GetOnCommit() != pg.OnCommitAction_ONCOMMIT_DROP
	case *pg.CreateTableAsStmt:
		return temp(s.GetInto().GetRel()) && s.GetInto().GetOnCommit() != pg.OnCommitAction_ONCOMMIT_DROP
	case *pg.ViewStmt:
		return temp(s.View)
	case *pg.CreateSeqStmt:
		return temp(s.Sequence)
	case *pg.CompositeTypeStmt:
		return temp(s.Typevar)
	case *pg.CreateDomainStmt:
		return inTemp(s.Domainname)
	case *pg.CreateEnumStmt:
		return inTemp(s.TypeName)
	case *pg.CreateRangeStmt:
		return inTemp(s.TypeName)
	case *pg.DefineStmt:
		return inTemp(s.Defnames)
	case *pg.AlterObjectSchemaStmt:
		return temporarySchema(s.Newschema)
	}
	return false
}

// tempKeptRefusal is why a statement under a tenant's principal may not
// leave an object in PostgreSQL's temporary schema.
var tempKeptRefusal = fmt.Errorf("%w: a temporary table must be ON COMMIT DROP, and no temporary view, sequence or type may be made: the next tenant on the connection would find it first", ErrUnscoped)
