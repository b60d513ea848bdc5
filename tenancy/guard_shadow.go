package tenancy

import (
	"context"
	"fmt"
	"slices"
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
	a.makes(m)
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

// makes records in a's shape the names of the relations and types
// statement m creates, renames to or moves to another schema (made, and
// madeTemp for the temporary schema), and whether it creates or alters a
// schema, a trigger or privileges, or creates or drops an index
// (schemaChange); Guard.check refuses
// them by name (shadowRefusal). A CREATE SCHEMA's elements are checked
// as statements of their own.
func (a *analysis) makes(m proto.Message) {
	add := func(name string, temp bool) {
		if name == "" {
			return
		}
		if name = strings.ToLower(name); temp {
			a.sh.madeTemp = append(a.sh.madeTemp, name)
		} else {
			a.sh.made = append(a.sh.made, name)
		}
	}
	rel := func(rv *pg.RangeVar) {
		if rv != nil {
			add(rv.Relname, rv.Relpersistence == "t" || temporarySchema(rv.Schemaname))
		}
	}
	typ := func(names []*pg.Node) {
		if len(names) > 0 {
			add(names[len(names)-1].GetString_().GetSval(), len(names) > 1 && temporarySchema(names[0].GetString_().GetSval()))
		}
	}
	switch s := m.(type) {
	case *pg.CreateStmt:
		rel(s.Relation)
	case *pg.CreateForeignTableStmt:
		rel(s.GetBaseStmt().GetRelation())
	case *pg.SelectStmt: // SELECT … INTO x
		rel(s.GetIntoClause().GetRel())
	case *pg.CreateTableAsStmt:
		rel(s.GetInto().GetRel())
	case *pg.ViewStmt:
		rel(s.View)
	case *pg.CreateSeqStmt:
		rel(s.Sequence)
	case *pg.CompositeTypeStmt:
		rel(s.Typevar)
	case *pg.CreateDomainStmt:
		typ(s.Domainname)
	case *pg.CreateEnumStmt:
		typ(s.TypeName)
	case *pg.CreateRangeStmt:
		typ(s.TypeName)
	case *pg.DefineStmt:
		typ(s.Defnames)
	case *pg.RenameStmt:
		switch s.RenameType {
		case pg.ObjectType_OBJECT_SCHEMA:
			a.sh.schemaChange = true
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW,
			pg.ObjectType_OBJECT_SEQUENCE, pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_INDEX,
			pg.ObjectType_OBJECT_TYPE, pg.ObjectType_OBJECT_DOMAIN:
			temp := s.Relation != nil && (s.Relation.Relpersistence == "t" || temporarySchema(s.Relation.Schemaname))
			add(s.Newname, temp)
		}
	case *pg.AlterObjectSchemaStmt: // ALTER … SET SCHEMA: the name now found in another schema
		if s.Relation != nil {
			add(s.Relation.Relname, temporarySchema(s.Newschema))
		}
	case *pg.CreateSchemaStmt:
		a.sh.schemaChange = true
		for _, e := range s.SchemaElts {
			a.top(e)
		}
	case *pg.CreateTrigStmt, *pg.GrantStmt, *pg.GrantRoleStmt, *pg.AlterDefaultPrivilegesStmt:
		a.sh.schemaChange = true
	case *pg.IndexStmt:
		// On SQLite the application's handle owns every table: tenant
		// B's index over an expression that fails on a value (json of
		// a CASE on A's name) told B whether any tenant's row held it,
		// B's unique index failed A's writes, and B's DROP INDEX failed
		// A's upserts.
		a.sh.schemaChange = true
	case *pg.DropStmt:
		if s.RemoveType == pg.ObjectType_OBJECT_INDEX {
			a.sh.schemaChange = true
		}
	}
}

// sdkTablePrefix begins the name of every table socialcrm's packages
// make, those the Guard knows no model of included.
const sdkTablePrefix = "socialcrm_"

// shadowable reports whether name, in lower case, is a table the
// application's unqualified statements must keep finding: a tenant-owned
// table, a full-text index, a tenant registry, a migration table, any
// table of a model registered with the DB (tenant-owned or not), any
// socialcrm_ table, or SQLite's own.
func (g *Guard) shadowable(name string) bool {
	if g.isOwned(name) || g.isWalled(name) || g.registryKey(name) != "" || migrationTable(name) ||
		strings.HasPrefix(name, sdkTablePrefix) || strings.HasPrefix(name, "sqlite_") {
		return true
	}
	for _, t := range g.db.Dialect().Tables().All() {
		if strings.EqualFold(t.Name, name) {
			return true
		}
	}
	return false
}

// shadowRefusal refuses, whatever the context, a statement that makes a
// temporary relation of a shadowable name: on SQLite tenant B's CREATE
// TEMP TABLE of a socialcrm table that no model registered took the next
// tenant's rows on that pooled connection. Under a tenant's principal it
// refuses, besides, a relation or type of a shadowable name in any schema
// and any change of a schema, a trigger, an index or privileges: on PostgreSQL a
// schema named like the application's role comes first in the default
// search path ("$user", public), so tenant B's CREATE SCHEMA of that name
// and CREATE TABLE in it of a tenant-owned table's name would take every
// tenant's unqualified statements to B's table, which row-level security
// does not cover; on SQLite a trigger — a TEMP one stays on the pooled
// connection — runs statements the Guard never sees for every tenant's
// writes. Migrations run without a principal.
func (g *Guard) shadowRefusal(ctx context.Context, sh *shape) error {
	for _, n := range sh.madeTemp {
		if g.shadowable(n) {
			return fmt.Errorf("%w: a temporary relation may not take the name of table %s: unqualified statements would find it instead", ErrUnscoped, n)
		}
	}
	if p, ok := FromContext(ctx); !ok || p.IsSystem() {
		return nil
	}
	if sh.schemaChange {
		return schemaChangeRefusal
	}
	for _, n := range sh.made {
		if g.shadowable(n) {
			return fmt.Errorf("%w: under a tenant's principal no relation or type may take the name of table %s, in any schema: unqualified statements could find it instead", ErrUnscoped, n)
		}
	}
	return nil
}

// schemaChangeRefusal is why a statement under a tenant's principal may
// not create or alter a schema, a trigger or privileges.
var schemaChangeRefusal = fmt.Errorf("%w: under a tenant's principal no schema, trigger, index or privilege may be created or changed: change schemas as the owner, in migrations", ErrUnscoped)

// sqliteMakes records in sh what SQLite statements of query that the
// parser may not read make (see makes): a trigger (CREATE [TEMP |
// TEMPORARY] TRIGGER) or an index (CREATE [UNIQUE] INDEX, DROP INDEX), and the names of tables and views, temporary or
// not (CREATE [TEMP | TEMPORARY] [VIRTUAL] TABLE | VIEW [IF NOT EXISTS]
// [schema.]name), and of tables renamed (ALTER TABLE … RENAME TO name):
// SQLite reads CREATE TEMP TABLE x (a), … STRICT, and a name written as
// a string literal ('x'), which PostgreSQL's grammar does not. It reads
// the words outside comments; the keywords must stand outside string
// literals, a name may be one. The parser's reading of a statement it
// can read is recorded besides.
func sqliteMakes(query string, sh *shape) {
	q := strings.ToLower(stripComments(query))
	if !strings.Contains(q, "create") && !strings.Contains(q, "rename") && !strings.Contains(q, "drop") {
		return
	}
	type word struct {
		w   string
		lit bool // inside a string literal
	}
	var w []word
	for i := 0; i < len(q); {
		switch {
		case identByte(q[i]):
			j := i
			for j < len(q) && identByte(q[j]) {
				j++
			}
			w = append(w, word{w: q[i:j]})
			i = j
		case q[i] == '\'':
			j := i + 1
			for ; j < len(q); j++ { // '' is a quote inside the literal
				if q[j] == '\'' {
					if j+1 < len(q) && q[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			for _, x := range identWords(q[i+1 : min(j, len(q))]) {
				w = append(w, word{w: x, lit: true})
			}
			i = j + 1
		default:
			i++
		}
	}
	is := func(j int, kw ...string) bool {
		return j < len(w) && !w[j].lit && slices.Contains(kw, w[j].w)
	}
	for i := range w {
		if is(i, "rename") && is(i+1, "to") && i+2 < len(w) {
			sh.made = append(sh.made, w[i+2].w)
			continue
		}
		if is(i, "drop") && is(i+1, "index") {
			sh.schemaChange = true
			continue
		}
		if !is(i, "create") {
			continue
		}
		temp := false
		j := i + 1
		for ; is(j, "temp", "temporary", "or", "replace", "virtual", "constraint", "unique"); j++ {
			temp = temp || w[j].w == "temp" || w[j].w == "temporary"
		}
		switch {
		case is(j, "trigger"), is(j, "index"):
			sh.schemaChange = true
			continue
		case !is(j, "table", "view"):
			continue
		}
		j++
		if is(j, "if") && is(j+1, "not") && is(j+2, "exists") {
			j += 3
		}
		if j >= len(w) {
			continue
		}
		// The dot of schema.name is not a word: temp x may be the table
		// temp.x or the table temp's first column; both count.
		name := w[j].w
		if temporarySchema(name) && j+1 < len(w) {
			sh.madeTemp = append(sh.madeTemp, w[j+1].w)
		}
		if temp {
			sh.madeTemp = append(sh.madeTemp, name)
		} else {
			sh.made = append(sh.made, name)
			if name == "main" && j+1 < len(w) {
				sh.made = append(sh.made, w[j+1].w)
			}
		}
	}
}
