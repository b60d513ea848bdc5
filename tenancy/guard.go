package tenancy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// Guard stops statements on tenant-owned tables that are not confined to
// the context's tenant: bun runs Count, Exists, and Rows or Exec on a select
// without model hooks, formats subqueries, unions, CTEs and joins without
// them, and raw queries have no model at all.
//
// It reads each statement with PostgreSQL's own parser (libpg_query:
// compiled from C when the SDK is built with cgo, run as WebAssembly in
// pure Go without it), on SQLite too: bun quotes identifiers with double
// quotes in both dialects. A statement is refused unless:
//
//   - every reference to a tenant-owned table — in the FROM list, a join, a
//     subquery anywhere (column list, WHERE, RETURNING, ON CONFLICT), a CTE
//     or each arm of a UNION, INTERSECT or EXCEPT — is confined to the
//     context's tenant in its own query level: tenant_id = '<tenant>' (or
//     IN a list of only that id) ANDed into that level's WHERE, or into the
//     condition of an inner join or the nullable side of an outer join, or
//     tenant_id = x.tenant_id where x is so confined (also across levels,
//     for correlated subqueries);
//   - an INSERT into a tenant-owned table names tenant_id and gives it as
//     the tenant's id in every row (as a literal; INSERT … SELECT selects
//     the literal);
//   - no UPDATE or ON CONFLICT … DO UPDATE assigns tenant_id anything but
//     the tenant's id as a literal (or EXCLUDED.tenant_id), in any form: a
//     SET tuple, a value from UPDATE … FROM, a subquery;
//   - every ON CONFLICT on a tenant-owned table names a conflict target
//     that begins with tenant_id (ON CONFLICT DO NOTHING without a target
//     passes), and there is one ON CONFLICT clause;
//   - it does not call set_config (in any spelling: concatenated names,
//     schema-qualified, quoted), SET or RESET app.* settings, role,
//     session_authorization, search_path or row_security (in any quoting),
//     RESET ALL or DISCARD, or write pg_settings — except RunInTx's own
//     set_config;
//   - it does not run a DO block, define a function, procedure, rule or
//     event trigger, or call a function that runs SQL text (query_to_xml
//     and its kin, ts_stat, ts_rewrite, dblink);
//   - it does not create, alter or drop a policy, or switch row-level
//     security of a table — except EnableRowSecurity's own statements;
//   - it does not begin or end a transaction: BEGIN (SQLite's BEGIN
//     IMMEDIATE too), START TRANSACTION, COMMIT, END, ROLLBACK, ABORT,
//     PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED; use RunInTx.
//     SAVEPOINT, RELEASE and ROLLBACK TO run; on SQLite, where a
//     SAVEPOINT outside a transaction begins one, a connection of
//     socialcrm.OpenDB that ran a statement naming a savepoint outside a
//     transaction is closed, not pooled (internal/sqldb). The bare texts BEGIN, COMMIT
//     and ROLLBACK, which bun reports for its own transactions, pass the
//     query hook and are refused at the driver, so on a *bun.DB opened some
//     other way than socialcrm.OpenDB they are not refused. On PostgreSQL
//     pgx's database/sql adapter discards a connection returned inside a
//     transaction before its next use;
//   - on a tenant-owned table it is not TRUNCATE, COPY, CREATE TABLE AS, a
//     view, MERGE, PREPARE or any statement kind other than SELECT, INSERT,
//     UPDATE, DELETE, EXPLAIN, CREATE TABLE of the table itself, CREATE
//     INDEX (a unique one must begin with tenant_id), COMMENT and ANALYZE:
//     no ALTER TABLE, RENAME, DROP (of the table, a column or a trigger on
//     it, on SQLite any DROP TRIGGER), CREATE TRIGGER, no CREATE TABLE
//     that inherits from or references one, and no temporary relation of
//     its name (CREATE TEMP, or the temporary schema by name: SQLite's
//     temp.x, PostgreSQL's pg_temp.x, which unqualified statements find
//     first), no relation renamed to its name and no index of its name
//     (guard_shadow.go), and (SQLite) no writable_schema or write to a sqlite_ table. On SQLite the application's
//     handle owns every table, and renaming tenant_id and adding another
//     with a default gave one tenant every tenant's rows; run schema
//     changes before InstallGuard or on the owner's handle;
//   - it makes no temporary relation (CREATE TEMP, temp.x, pg_temp.x, a
//     rename; on SQLite also a name written as a string literal) of the
//     name of a table the Guard or the DB knows — any registered model's,
//     tenant-owned or not — or of any socialcrm_ or sqlite_ table, which
//     the next tenant's unqualified statements on that pooled connection
//     would find instead; and under a tenant's principal it creates or
//     alters no schema (on PostgreSQL a schema named like the role comes
//     first in the default search path, "$user", public), no trigger (on
//     SQLite a TEMP trigger stays on the pooled connection and runs
//     statements the Guard never sees), no index (CREATE INDEX, DROP
//     INDEX: on SQLite tenant B's index over an expression that fails on
//     a value told B whether another tenant's row held it, and B's unique
//     or dropped index failed A's writes) and no privilege (GRANT, REVOKE,
//     ALTER DEFAULT PRIVILEGES), and no relation or type of such a name in
//     any schema (guard_shadow.go). Without a principal (migrations) these
//     run;
//   - it does not name a full-text index (a model embedding
//     FullTextIndex), one of its FTS5 shadow tables or its watermark,
//     nor mention fts5vocab, anywhere but in the exact look-up x.c IN
//     (SELECT c FROM index WHERE index = '<exact tokens>'), alone or with
//     its arm of pending rows (see FullTextIndex);
//   - it does not read dbstat, sqlite_dbpage or the sqlite_stat tables
//     ANALYZE writes (counts, pages and sample index keys of every table,
//     whoever owns the rows), nor give a PRAGMA a
//     value or an argument, but for wal_checkpoint, optimize and reads of
//     a table's schema (table_info, index_list, …): a setting
//     outlives the statement on the pooled connection the next tenant
//     gets, and secure_delete off left another tenant's erased rows in the
//     file; nor is it VACUUM INTO (a copy of every tenant's rows) or
//     ATTACH (sqlitewalls.go);
//   - it does not read PostgreSQL's statistics, which count every tenant's
//     rows together (pg_stat_*, pg_statio_*, pg_stats and pg_stat_activity,
//     the pg_stat_get_* and size functions, pg_class's reltuples and
//     relpages or a whole pg_class row), nor run EXPLAIN ANALYZE ("Rows
//     Removed by Filter" counted the other tenants' rows; EXPLAIN runs),
//     and it leaves nothing on the connection or the role for the next
//     tenant: no SET without LOCAL (SET TRANSACTION and RESET run), no
//     ALTER ROLE, ALTER DATABASE or ALTER SYSTEM, no session-level
//     advisory lock under a tenant's principal, nor a two-key one, the
//     space of the system's purge and erasure claims (pg_advisory_xact_lock
//     of one key runs) (pgwalls.go, guard_locks.go), and under a tenant's principal no object in
//     the temporary schema, which is searched first for relations and
//     types: a temporary table must be ON COMMIT DROP, no temporary
//     view, sequence, type or domain (guard_shadow.go); nor reach the server state every tenant's
//     sessions share — pg_locks, pg_cancel_backend and
//     pg_terminate_backend, LISTEN and NOTIFY, large objects — or the
//     pooled connection's prepared statements and held cursors (PREPARE,
//     EXECUTE, DEALLOCATE, DECLARE … WITH HOLD, pg_prepared_statements)
//     (pgwalls.go); on SQLite, nor read the file's page and commit
//     counters (page_count, freelist_count, data_version)
//     (sqlitewalls.go), and under a tenant's principal nor a row's
//     offset in the file (sqlite_offset) or the log's page count
//     (PRAGMA wal_checkpoint, but for the SDK's own checkpoint after an
//     erasure) (guard_xids.go);
//   - under a tenant's principal, it reads no counter that every
//     tenant's work moves: SQLite's rowid (but in a full-text look-up)
//     and sqlite_sequence, PostgreSQL's transaction ids (the catalogues'
//     relfrozenxid, datfrozenxid and their kin too), snapshots and their
//     exported names, commit times, the system columns xmin, xmax, cmin,
//     cmax and ctid, the write-ahead log's position, sequences, a
//     tablespace's size, and EXPLAIN's estimates (EXPLAIN (COSTS false)
//     runs) (counters.go, guard_xids.go);
//   - under a tenant's principal, every reference to a tenant registry —
//     TableTenants, keyed by id, and a model with a TenantRegistryKey
//     method such as the vault's key list or social's account index, keyed
//     by that column — is confined to the tenant's own rows as a
//     tenant-owned table's is to tenant_id, and no write names another
//     (registry.go; a key of "" is a table no
//     tenant's UPDATE or DELETE may name, the vault's audit key): tenant B
//     closed tenant A for purging and dropped A from the key list; a
//     model with a TenantUnreachable method, social's webhook deliveries,
//     or a table named to Unreachable (a job queue's), may not be named
//     at all, and neither may the migration tables be written; none of
//     these tables' schemas may be changed (DROP, ALTER, RENAME, CREATE
//     INDEX: on SQLite tenant B dropped the list of tenants). The system principal without a tenant and statements
//     without a principal (sign-up, migrations, webhooks) reach every row;
//   - under a creator's principal (RoleCreator), every reference to a
//     MemberOwned table is confined to the creator's member_id as a
//     tenant-owned table's is to tenant_id — the rows an INSERT writes, an
//     UPDATE's SET and an upsert's conflict target included — and a
//     statement that names another member is ErrForbidden (creator.go).
//
// A statement the parser cannot read — SQLite's INSERT OR REPLACE and
// REPLACE, a second ON CONFLICT clause, other SQLite-only syntax — is
// refused when it names a tenant-owned table or mentions set_config, app.,
// row level security or policy, and passes otherwise. So is, on SQLite, a
// statement that SQLite splits into other tokens than the parser does —
// a block comment holding "/*" (PostgreSQL's nest, SQLite's do not), an
// E-prefixed string with a backslash, a $ not followed by a digit, a
// parameter's name that SQLite reads on past what the parser reads (@a,
// #a, :a, $1::a(…): SQLite takes @a(') for one name), a
// bracketed or backticked name holding anything but letters, digits and
// spaces — since text the parser takes for a comment or a string is SQL to
// SQLite. An INSERT that names tenant_id twice is refused (SQLite keeps
// the first value). Every statement of a multi-statement text is checked.
//
// A refused statement fails with an error matching ErrUnscoped (ErrNoTenant
// when the context has no tenant, ErrUnsafeRelation for a model whose
// relations can cross tenants). The Guard refuses twice: in its bun query
// hook, before bun takes a connection, and — on handles opened by
// socialcrm.OpenDB — at the database driver, for every Exec, Query and
// Prepare, after every other query hook has run. A refusal recorded by the
// hook stays a refusal at the driver even if a later hook removes the
// context's cancellation or changes its values, and statements sent through
// database/sql directly (db.DB) are checked at the driver with the context
// they carry. On a *bun.DB opened some other way only the hook refuses.
//
// Shapes of statements are cached by their text with string and number
// literals blanked out (at most 2,048, least recently used out), so a
// statement seen before costs a scan of its text; on PostgreSQL,
// parameters ($1) are kept in the key as written, and a statement with a
// backslash or any other dollar sign outside its literals (dollar
// quoting; on SQLite, any) is parsed every time. So is one with a literal
// whose value may change what the statement is — one the parser does not
// keep as a constant (the escape character of a U&"…" UESCAPE '…' name,
// an option's value such as EXPLAIN (ANALYZE 'true')) — or one the parser
// cannot read (SQLite's PRAGMA 'name'(…)): its shape is reused only for
// the same text.
//
// Install it once per *bun.DB with InstallGuard, after running migrations
// that define functions or triggers. It knows the tenant-owned tables
// registered with the DB (db.RegisterModel) or used through a model at least
// once; a raw query on a tenant-owned table that was never registered is not
// recognized, so register every model at start-up. Tables are matched by
// name, ignoring schema and case; a view over a tenant-owned table is not
// recognized as one.
//
// A Guard is safe for concurrent use.
type Guard struct {
	db     *bun.DB
	mu     sync.RWMutex
	known  map[reflect.Type]bool
	tables []string         // tenant-owned table names, unquoted
	fts    []string         // full-text index tables (FullTextIndex), lower case
	walled []string         // fts and their FTS5 shadow tables, lower case
	unsafe map[string]error // tenant-owned tables with a relation that can cross tenants
	// registries maps each tenant registry (registry.go), lower case, to
	// the column that names the tenant.
	registries map[string]string
	// members holds the MemberOwned tables (creator.go), lower case.
	members map[string]bool
	shapes  shapeCache
	sqlite  bool // statements go to SQLite, which reads some text otherwise than the parser
}

var _ bun.QueryHook = (*Guard)(nil)

// InstallGuard registers models with db, adds a Guard to db's query hooks and
// returns it. Models are pointers to tenant-owned structs, e.g.
// (*Contact)(nil). The error, if any, lists relations between tenant-owned
// models that do not join on tenant_id (see ErrUnsafeRelation); the Guard is
// installed regardless and refuses every query on those tables.
func InstallGuard(db *bun.DB, models ...any) (*Guard, error) {
	g := &Guard{db: db, known: make(map[reflect.Type]bool), unsafe: make(map[string]error),
		registries: map[string]string{TableTenants: "id"}, members: map[string]bool{},
		sqlite: db.Dialect().Name() == dialect.SQLite}
	warmParser()
	err := g.Register(models...)
	db.AddQueryHook(g)
	sqldb.SetCheck(db.DB, g.checkDriver)
	return g, err
}

// Register makes the Guard (and db) know models; models that do not embed
// Owned are ignored by the Guard. It reports unsafe relations as
// InstallGuard does.
func (g *Guard) Register(models ...any) error {
	if len(models) > 0 {
		g.db.RegisterModel(models...)
	}
	var errs []error
	for _, t := range g.db.Dialect().Tables().All() {
		if err := g.learn(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Unreachable makes the Guard refuse, under a tenant's principal, any
// statement that names one of tables (ignoring schema and case): tables
// that belong to no tenant and that no tenant's statement needs, such as
// a job queue's, whose rows name every tenant and whose writes act for
// every tenant. The system principal without a tenant and statements
// without a principal still reach them. It is safe to call at any time;
// statements already cached are read again.
func (g *Guard) Unreachable(tables ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range tables {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			g.registries[t] = unreachableKey
		}
	}
	g.shapes.reset()
}

// ErrUnsafeRelation is reported for a bun relation between two tenant-owned
// models that does not join on tenant_id. bun turns has-one and belongs-to
// relations into SQL joins that the hooks cannot scope, so such a join could
// bring in another tenant's row through a foreign key that points across
// tenants. Add the tenant to the join:
//
//	Widget *Widget `bun:"rel:belongs-to,join:widget_id=id,join:tenant_id=tenant_id"`
var ErrUnsafeRelation = errors.New("tenancy: relation between tenant-owned models does not join on tenant_id")

func ownedTable(t *schema.Table) bool {
	return t != nil && reflect.PointerTo(t.Type).Implements(reflect.TypeFor[ownedModel]())
}

// checkRelations returns an error naming the first relation of an owned
// table t that can reach another tenant's rows.
func checkRelations(t *schema.Table) error {
	for name, rel := range t.Relations {
		base, join := rel.BasePKs, rel.JoinPKs
		target := rel.JoinTable
		if rel.Type == schema.ManyToManyRelation {
			base, join, target = rel.M2MBasePKs, rel.M2MJoinPKs, rel.M2MTable
		}
		if !ownedTable(target) {
			continue
		}
		scoped := false
		for i := range base {
			if i < len(join) && base[i].Name == "tenant_id" && join[i].Name == "tenant_id" {
				scoped = true
			}
		}
		if !scoped {
			return fmt.Errorf("%w: %s.%s", ErrUnsafeRelation, t.TypeName, name)
		}
	}
	return nil
}

// Tables returns the tenant-owned table names the Guard knows, in no
// particular order. The caller owns the returned slice.
func (g *Guard) Tables() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return append([]string(nil), g.tables...)
}

func (g *Guard) learn(t *schema.Table) error {
	if t == nil {
		return nil
	}
	g.mu.RLock()
	_, seen := g.known[t.Type]
	err := g.unsafe[t.Name]
	g.mu.RUnlock()
	if seen {
		return err
	}
	owned := ownedTable(t)
	if owned {
		err = checkRelations(t)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, seen := g.known[t.Type]; seen {
		return g.unsafe[t.Name]
	}
	g.known[t.Type] = owned
	if reflect.PointerTo(t.Type).Implements(reflect.TypeFor[fullTextModel]()) {
		name := strings.ToLower(t.Name)
		g.fts = append(g.fts, name)
		g.walled = append(g.walled, name)
		for _, suffix := range fts5Shadows {
			g.walled = append(g.walled, name+suffix)
		}
		g.walled = append(g.walled, name+ftsMark)
		g.shapes.reset()
	}
	if r, ok := reflect.New(t.Type).Interface().(unreachableRegistry); ok && r.TenantUnreachable() {
		g.registries[strings.ToLower(t.Name)] = unreachableKey
		g.shapes.reset()
	} else if r, ok := reflect.New(t.Type).Interface().(registryModel); ok {
		key := r.TenantRegistryKey()
		if key == "" {
			key = noTenantColumn
		}
		g.registries[strings.ToLower(t.Name)] = key
		g.shapes.reset()
	}
	if owned && memberOwnedTable(t) {
		g.members[strings.ToLower(t.Name)] = true // creator.go
	}
	if owned {
		g.tables = append(g.tables, t.Name)
		g.shapes.reset() // shapes read before did not know this table
		if err != nil {
			g.unsafe[t.Name] = err
		}
	}
	return err
}

// BeforeQuery implements bun.QueryHook. It refuses early, before bun takes
// a connection; the driver checks every statement again (see InstallGuard),
// so a later hook cannot undo a refusal.
func (g *Guard) BeforeQuery(ctx context.Context, ev *bun.QueryEvent) context.Context {
	if tm, ok := ev.Model.(bun.TableModel); ok {
		_ = g.learn(tm.Table()) // an unsafe relation is refused by check
	}
	switch ev.Query {
	case "BEGIN", "COMMIT", "ROLLBACK":
		// bun reports its own BeginTx, Commit and Rollback with these
		// texts, which no statement carries to the driver; a statement of
		// the same text is refused there (checkDriver).
		return ctx
	}
	if err := g.check(ctx, ev.Query); err != nil {
		return refuse(ctx, ev.Query, err)
	}
	return context.WithValue(ctx, approvedKey{}, ev.Query)
}

// settingTenantKey marks the context of RunInTx's own set_config calls.
type settingTenantKey struct{}

// rowSecurityKey marks the context of EnableRowSecurity's statements.
type rowSecurityKey struct{}

// approvedKey holds the statement text BeforeQuery let through, so that
// the driver need not check it twice.
type approvedKey struct{}

// refusedKey finds the refusal BeforeQuery recorded in a context.
type refusedKey struct{}

// checkDriver is the Check the driver runs before each statement: a
// statement BeforeQuery refused stays refused, whatever the context became
// since (context.WithoutCancel, other values), and one it did not see is
// checked now.
func (g *Guard) checkDriver(ctx context.Context, query string) error {
	if r, ok := ctx.Value(refusedKey{}).(*refused); ok && r.query == query {
		return r.err
	}
	if q, ok := ctx.Value(approvedKey{}).(string); ok && q == query {
		return nil
	}
	return g.check(ctx, query)
}

// check decides whether query may run in ctx.
func (g *Guard) check(ctx context.Context, query string) error {
	if bunSavepointStatement(query) {
		// Each nested RunInTx names its savepoint at random, so these
		// texts never repeat and would be parsed every time; they name no
		// table and change no setting.
		return nil
	}
	var kb [512]byte // the key of most statements, without a string built to look it up
	buf := kb[:0]
	var big *[]byte
	if len(query) > len(kb) {
		// A bigger statement's key is written into a pooled buffer: grown
		// from kb, it was several allocations every time (a webhook
		// delivery's statement is about 4 KB).
		big = bigKeys.Get().(*[]byte)
		buf = (*big)[:0]
	}
	key, lits, cacheable := appendBlanked(buf, query, !g.sqlite)
	var sh *shape
	switch {
	case g.sqlite && sqliteReadsOtherwise(query):
		// The parser would read another statement than SQLite runs; what
		// SQLite reads otherwise hides in literals, so this is not cached.
		sh = unreadableWith(query, g.ownedOrWalled, g.registryKey)
		sqliteMakes(query, sh) // guard_shadow.go
	case cacheable:
		sh = g.shapes.get(key)
	}
	if sh == nil {
		sh = analyze(query, lits, cacheable, g.ownedOrWalled, g.text, g.registryKey, g.memberKey)
		if g.sqlite {
			sqliteMakes(query, sh) // guard_shadow.go
		}
		if cacheable && (!sh.uncached || string(key) == query) { // key == query: nothing blanked out
			g.shapes.put(string(key), sh)
		}
	}
	if big != nil { // key is not used below: the cache keeps copies
		if key != nil && cap(key) <= bigKeyMax {
			*big = key[:0]
		}
		bigKeys.Put(big)
	}
	var tid string
	if sh.owned {
		for _, t := range sh.tables {
			if err := g.unsafeIn(t); err != nil {
				return err
			}
		}
		var err error
		if tid, err = TenantID(ctx); err != nil {
			return fmt.Errorf("%w (statement on %s)", err, sh.tables[0])
		}
	}
	if sh.err != nil {
		return sh.err
	}
	if sh.setting && ctx.Value(settingTenantKey{}) == nil {
		return fmt.Errorf("%w: only tenancy.RunInTx may change the settings row-level security depends on", ErrUnscoped)
	}
	if p, ok := FromContext(ctx); sh.sessionLock && ok && !p.IsSystem() {
		return sessionLockRefusal
	}
	if sh.walCheckpoint && !sqldb.OwnCheckpoint(ctx) {
		if p, ok := FromContext(ctx); ok && !p.IsSystem() {
			return walCheckpointRefusal // guard_xids.go
		}
	}
	if sh.pairLock {
		if p, ok := FromContext(ctx); ok && !p.IsSystem() {
			return pairLockRefusal // guard_locks.go
		}
	}
	if p, ok := FromContext(ctx); sh.tempKept && !g.sqlite && ok && !p.IsSystem() {
		return tempKeptRefusal
	}
	if len(sh.made) > 0 || len(sh.madeTemp) > 0 || sh.schemaChange {
		if err := g.shadowRefusal(ctx, sh); err != nil { // guard_shadow.go
			return err
		}
	}
	if err := sh.counterRefusal(ctx, g.sqlite); err != nil { // counters.go
		return err
	}
	if sh.policy && ctx.Value(rowSecurityKey{}) == nil {
		return fmt.Errorf("%w: only tenancy.EnableRowSecurity may change row-level security", ErrUnscoped)
	}
	for _, l := range sh.ftsQuery {
		v := l.val
		if l.ord >= 0 {
			v = literalAt(query, lits[l.ord])
			v = v[1 : len(v)-1]
		}
		if !ftsQueryOK(v) {
			return fmt.Errorf("%w: a full-text index look-up takes only exact tokens (words of 26 to 128 ASCII letters and digits)", ErrUnscoped)
		}
	}
	for _, w := range sh.ftsWords {
		v := w.l.val
		if w.l.ord >= 0 {
			v = literalAt(query, lits[w.l.ord])
			v = v[1 : len(v)-1]
		}
		if !w.ok(v) {
			return fmt.Errorf("%w: a full-text index look-up takes only exact tokens (words of 26 to 128 ASCII letters and digits)", ErrUnscoped)
		}
	}
	if err := sh.registry.check(ctx, query, lits); err != nil { // registry.go
		return err
	}
	if err := sh.memberCheck(ctx, query, lits); err != nil { // creator.go
		return err
	}
	if !sh.owned {
		return nil
	}
	return sh.namesOnly(tid, query, lits)
}

// bigKeys holds the buffers check writes the keys of statements over 512
// bytes into; one that grew beyond bigKeyMax is not kept.
var bigKeys = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

const bigKeyMax = 64 << 10

// namesOnly returns an error unless every literal of query that sh says
// must be the tenant's id is tid.
func (sh *shape) namesOnly(tid, query string, lits []int) error {
	for _, l := range sh.tenant {
		if l.ord >= 0 && !quotes(literalAt(query, lits[l.ord]), tid) || l.ord < 0 && l.val != tid {
			return fmt.Errorf("%w: statement on %s names another tenant", ErrUnscoped, sh.tables[0])
		}
	}
	return nil
}

// quotes reports whether lit, a string literal with its quotes, is s
// quoted: 's' with each quote inside doubled. It runs on every scoped
// statement, so it does not allocate.
func quotes(lit, s string) bool {
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return false
	}
	lit = lit[1 : len(lit)-1]
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			return lit == s
		}
		if len(lit) < i+2 || lit[:i+1] != s[:i+1] || lit[i+1] != '\'' {
			return false
		}
		lit, s = lit[i+2:], s[i+1:]
	}
}

// isOwned reports whether name is a tenant-owned table, ignoring case.
func (g *Guard) isOwned(name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, t := range g.tables {
		if strings.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// isWalled reports whether name is a full-text index table or one of its
// shadow tables (see FullTextIndex), ignoring case.
func (g *Guard) isWalled(name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, t := range g.walled {
		if strings.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// ownedOrWalled is what a statement the Guard cannot read may not name: a
// tenant-owned table, a full-text index or its shadow tables, or
// fts5vocab (which reads an index's tokens).
func (g *Guard) ownedOrWalled(name string) bool {
	return g.isOwned(name) || g.isWalled(name) || strings.EqualFold(name, "fts5vocab")
}

// text is what analyze needs to know of the full-text indexes.
func (g *Guard) text() fullText {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return fullText{fts: g.fts, walled: g.walled}
}

// unsafeIn returns the error of table if a relation of it is unsafe.
func (g *Guard) unsafeIn(table string) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.unsafe[table]
}

// stripComments removes -- and /* */ comments outside string literals, so
// that a comment can neither hide a statement's verb nor fake a predicate.
func stripComments(q string) string {
	if !strings.Contains(q, "--") && !strings.Contains(q, "/*") {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		switch {
		case q[i] == '\'':
			j := i + 1
			for j < len(q) && (q[j] != '\'' || j+1 < len(q) && q[j+1] == '\'') {
				if q[j] == '\'' {
					j++
				}
				j++
			}
			b.WriteString(q[i:min(j+1, len(q))])
			i = j
		case strings.HasPrefix(q[i:], "--"):
			for i < len(q) && q[i] != '\n' {
				i++
			}
			b.WriteByte(' ')
		case strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				i = len(q)
			} else {
				i += end + 3 // on the comment's last byte; the loop steps past it
			}
			b.WriteByte(' ')
		default:
			b.WriteByte(q[i])
		}
	}
	return b.String()
}

// unquote drops identifier quotes, so that "Test_Widgets" and `x` match
// their bare names. It allocates only when there is a quote to drop.
func unquote(q string) string {
	if !strings.ContainsAny(q, "\"`[]") {
		return q
	}
	b := make([]byte, 0, len(q))
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case '"', '`', '[', ']':
		default:
			b = append(b, q[i])
		}
	}
	return string(b)
}

// AfterQuery implements bun.QueryHook.
func (*Guard) AfterQuery(context.Context, *bun.QueryEvent) {}

// refused is a context that is already done with a tenancy error, so that
// database/sql returns that error before taking a connection.
// The refusal stays readable through Value by the driver's check, even in
// a context derived from it without its cancellation.
type refused struct {
	context.Context
	query string
	err   error
	done  chan struct{}
}

func refuse(parent context.Context, query string, err error) context.Context {
	done := make(chan struct{})
	close(done)
	return &refused{Context: parent, query: query, err: err, done: done}
}

func (r *refused) Done() <-chan struct{}       { return r.done }
func (r *refused) Err() error                  { return r.err }
func (r *refused) Deadline() (time.Time, bool) { return r.Context.Deadline() }
func (r *refused) Value(key any) any {
	if key == (refusedKey{}) {
		return r
	}
	return r.Context.Value(key)
}

// bunSavepointStatement reports whether query is exactly one of the
// statements bun sends for a nested transaction: SAVEPOINT, RELEASE
// SAVEPOINT or ROLLBACK TO SAVEPOINT of a name bun made.
func bunSavepointStatement(query string) bool {
	for _, verb := range []string{"SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT "} {
		if name, ok := strings.CutPrefix(query, verb); ok {
			return sqldb.BunSavepoint(name)
		}
	}
	return false
}
