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
	"github.com/uptrace/bun/schema"
)

// Guard is a bun query hook that stops statements on tenant-owned tables
// that escaped the Owned hooks: bun runs Count, Exists, and Rows or Exec on
// a select without model hooks, and raw queries have no model at all. The
// Guard sees every statement after bun formats it, with comments removed
// and identifiers compared without quotes or case, and when it names a
// tenant-owned table:
//
//   - SELECT, UPDATE, DELETE (and WITH, MERGE, VALUES) must compare
//     tenant_id with the context's tenant, and no tenant_id comparison or
//     assignment may name another value (a join tenant_id = x.tenant_id is
//     fine);
//   - INSERT must carry the context's tenant id, and ON CONFLICT … DO UPDATE
//     must name tenant_id in its conflict target;
//   - CREATE, ALTER and DROP pass (migrations), except CREATE … AS SELECT;
//   - everything else — TRUNCATE (which row-level security ignores),
//     REPLACE, INSERT OR REPLACE, unknown verbs — is refused;
//   - any statement mentioning app.tenant_id is refused unless RunInTx
//     issued it.
//
// A refused statement fails before it reaches the driver, with an error
// matching ErrUnscoped (ErrNoTenant when the context has no tenant,
// ErrUnsafeRelation for a model whose relations can cross tenants).
//
// Install it once per *bun.DB with InstallGuard. It knows the tenant-owned
// tables registered with the DB (db.RegisterModel) or used through a model at
// least once; a raw query on a tenant-owned table that was never registered
// is not recognized, so register every model at start-up.
//
// The Guard is a net for mistakes, not a SQL parser. Raw SQL written to
// defeat it still can: "tenant_id = '<own>' OR true", a UNION whose second
// half has no predicate, an INSERT … SELECT from other tenants' rows, or an
// INSERT whose values name another tenant beside the own id. Model queries
// through bun cannot, since the hooks build them. On PostgreSQL,
// row-level security inside RunInTx stops all of these too; on SQLite,
// review raw SQL on tenant-owned tables as you would any security-relevant
// code.
//
// A Guard is safe for concurrent use.
type Guard struct {
	db     *bun.DB
	mu     sync.RWMutex
	known  map[reflect.Type]bool
	tables []string         // tenant-owned table names, unquoted
	unsafe map[string]error // tenant-owned tables with a relation that can cross tenants
}

var _ bun.QueryHook = (*Guard)(nil)

// InstallGuard registers models with db, adds a Guard to db's query hooks and
// returns it. Models are pointers to tenant-owned structs, e.g.
// (*Contact)(nil). The error, if any, lists relations between tenant-owned
// models that do not join on tenant_id (see ErrUnsafeRelation); the Guard is
// installed regardless and refuses every query on those tables.
func InstallGuard(db *bun.DB, models ...any) (*Guard, error) {
	g := &Guard{db: db, known: make(map[reflect.Type]bool), unsafe: make(map[string]error)}
	err := g.Register(models...)
	db.AddQueryHook(g)
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
	if owned {
		g.tables = append(g.tables, t.Name)
		if err != nil {
			g.unsafe[t.Name] = err
		}
	}
	return err
}

// BeforeQuery implements bun.QueryHook.
func (g *Guard) BeforeQuery(ctx context.Context, ev *bun.QueryEvent) context.Context {
	if tm, ok := ev.Model.(bun.TableModel); ok {
		_ = g.learn(tm.Table()) // an unsafe relation is refused below
	}
	sql := stripComments(ev.Query)
	lower := strings.ToLower(sql)
	// Only RunInTx may choose the tenant row-level security enforces.
	if strings.Contains(lower, "app.tenant_id") && ctx.Value(settingTenantKey{}) == nil {
		return refuse(ctx, fmt.Errorf("%w: only tenancy.RunInTx may set app.tenant_id", ErrUnscoped))
	}
	bare := unquote(lower)
	table, unsafe := g.ownedTableIn(bare)
	if table == "" {
		return ctx
	}
	op := operation(ev, lower)
	switch op {
	case "select", "insert", "update", "delete", "with", "merge", "values":
		if unsafe != nil {
			return refuse(ctx, unsafe)
		}
	case "create":
		// Schema changes by migrations pass; a table or view filled from a
		// tenant-owned table would carry every tenant's rows out of reach.
		if !containsIdent(lower, "select") {
			return ctx
		}
		return refuse(ctx, fmt.Errorf("%w: CREATE … AS SELECT from %s", ErrUnscoped, table))
	case "alter", "drop":
		return ctx
	default:
		// TRUNCATE ignores row-level security and the hooks; REPLACE and
		// anything else unknown fail closed.
		return refuse(ctx, fmt.Errorf("%w: %s on %s is not allowed", ErrUnscoped, strings.ToUpper(op), table))
	}
	tid, err := TenantID(ctx)
	if err != nil {
		return refuse(ctx, fmt.Errorf("%w (%s on %s)", err, strings.ToUpper(op), table))
	}
	if err := scopedTo(sql, lower, bare, op, tid); err != nil {
		return refuse(ctx, fmt.Errorf("%w: %s on %s: %s", ErrUnscoped, strings.ToUpper(op), table, err))
	}
	return ctx
}

// settingTenantKey marks the context of RunInTx's own set_config call.
type settingTenantKey struct{}

// operation names the statement's kind in lower case. bun reports every raw
// query as a SELECT, so for those the SQL's first word decides.
func operation(ev *bun.QueryEvent, lower string) string {
	if _, raw := ev.IQuery.(*bun.RawQuery); !raw && ev.IQuery != nil {
		op, _, _ := strings.Cut(strings.ToLower(ev.Operation()), " ")
		if op != "insert" || !strings.Contains(lower, "insert or replace") {
			return op
		}
		return "replace"
	}
	q := strings.TrimLeft(lower, " \t\r\n(")
	if i := strings.IndexFunc(q, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '(' }); i > 0 {
		q = q[:i]
	}
	if q == "insert" && strings.Contains(lower, "insert or replace") {
		return "replace"
	}
	return q
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

// ownedTableIn returns a tenant-owned table named in query, preferring one
// with an unsafe relation, and that relation's error.
func (g *Guard) ownedTableIn(query string) (string, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	found := ""
	for _, name := range g.tables {
		if containsIdent(query, name) {
			if err := g.unsafe[name]; err != nil {
				return name, err
			}
			if found == "" {
				found = name
			}
		}
	}
	return found, nil
}

// containsIdent reports whether name occurs in query as a whole identifier.
func containsIdent(query, name string) bool {
	for i := 0; ; {
		j := strings.Index(query[i:], name)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(name)
		if (start == 0 || !identByte(query[start-1])) && (end == len(query) || !identByte(query[end])) {
			return true
		}
		i = end
	}
}

func identByte(b byte) bool {
	return b == '_' || b == '$' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// scopedTo checks that sql is confined to tenant tid: a select, update or
// delete carries the predicate tenant_id = '<tid>' and no tenant_id
// comparison or assignment with another value; an insert carries the
// tenant's id and updates on conflict only within the tenant.
func scopedTo(sql, lower, bare, op, tid string) error {
	if op == "insert" {
		if !strings.Contains(sql, "'"+tid+"'") {
			return errors.New("the tenant's id is not among the values")
		}
		if i := strings.Index(lower, "do update"); i >= 0 {
			j := strings.LastIndex(lower[:i], "on conflict")
			if j < 0 || !strings.Contains(lower[j:i], "tenant_id") {
				return errors.New("ON CONFLICT … DO UPDATE must name tenant_id in its conflict target")
			}
		}
	}
	found := false
	rest := bare
	for {
		i := strings.Index(rest, "tenant_id")
		if i < 0 {
			break
		}
		rest = rest[i+len("tenant_id"):]
		t := strings.TrimLeft(rest, " \t\r\n")
		if !strings.HasPrefix(t, "=") || strings.HasPrefix(t, "==") {
			continue
		}
		t = strings.TrimLeft(t[1:], " \t\r\n")
		if ident := strings.TrimRight(t[:len(t)-len(strings.TrimLeft(t, "abcdefghijklmnopqrstuvwxyz0123456789_.$"))], "."); strings.HasSuffix(ident, "tenant_id") {
			continue // a join on tenant_id = other.tenant_id
		}
		if !strings.HasPrefix(t, "'") {
			if op != "insert" {
				return errors.New("tenant_id is compared with or set to something other than the tenant's id")
			}
			continue
		}
		if !strings.HasPrefix(t, "'"+tid+"'") {
			return errors.New("tenant_id is compared with or set to another tenant's id")
		}
		found = true
	}
	if !found && op != "insert" {
		return errors.New("no tenant_id predicate")
	}
	return nil
}

// refused is a context that is already done with a tenancy error, so that
// database/sql returns that error before taking a connection.
type refused struct {
	context.Context
	err  error
	done chan struct{}
}

func refuse(parent context.Context, err error) context.Context {
	done := make(chan struct{})
	close(done)
	return refused{Context: parent, err: err, done: done}
}

func (r refused) Done() <-chan struct{}       { return r.done }
func (r refused) Err() error                  { return r.err }
func (r refused) Deadline() (time.Time, bool) { return r.Context.Deadline() }
