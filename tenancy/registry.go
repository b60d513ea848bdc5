package tenancy

import (
	"context"
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// Tenant registries are the tables that list tenants rather than belong
// to one: TableTenants (keyed by id) and the vault's list of tenants with
// data keys (keyed by tenant_id). Row-level security cannot confine them
// — the system principal lists every tenant through them — and the hooks
// do not, so the Guard let tenant B's ordinary bun code read every
// tenant's name and status, close tenant A with a purge date in the past
// (the next PurgeTenants erased A and destroyed its key) and drop A from
// the key list (a KEK rotation then skipped A, and retiring the old
// version would have left A's data unreadable). Under a tenant's
// principal the Guard now holds a statement that names a registry to
// what it holds a tenant-owned table to, with the registry's key column
// in the place of tenant_id: every reference confined to the tenant's own
// row, a write that names no other. The system principal without a
// tenant (Store.Tenants, vault.Vault.RotateKEK) and statements without a
// principal (sign-up, before the tenant exists) reach every row. The
// social account index is one too: tenant B read which tenants connected
// which accounts (a webhook's write, which counts an account's tenants,
// reads a view confined alike instead).

// registryModel is a bun model of a tenant registry: TenantRegistryKey
// names the column that holds the tenant's id, or is empty for a table
// that holds no tenant's row at all (the vault's audit key, which tenant
// B could delete so that every tenant's audit log failed to verify):
// under a tenant's principal it may be read and added to, but no UPDATE
// or DELETE may name it. The
// Guard learns it from the models registered with the DB, as it learns
// tenant-owned ones.
type registryModel interface{ TenantRegistryKey() string }

// unreachableRegistry is a model of a table that belongs to no tenant and
// that no tenant's statement needs: under a tenant's principal the Guard
// refuses any statement that names it. The webhook deliveries already
// processed are one: tenant B's ordinary statements deleted them (A's
// next redelivery ran again), and inserted the keys of deliveries to come
// (a TikTok key is a hash of the event, the user's open_id, which is the
// same for every tenant of the app, the second and the content), so that
// A's deauthorization webhook was skipped as processed and A's data was
// never purged (TestTenantCannotReachSharedWebhookState). The SDK writes
// them without a principal, in the webhook's handler.
type unreachableRegistry interface{ TenantUnreachable() bool }

// unreachableKey is the key of an unreachableRegistry in Guard.registries.
const unreachableKey = "\x02"

// noTenantColumn is the key of a registry that holds no tenant's row: no
// column reference matches it.
const noTenantColumn = "\x00"

// registryKey returns the column that names the tenant in registry table
// name, or "" when name is no registry.
func (g *Guard) registryKey(name string) string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.registries[strings.ToLower(name)]
}

// check refuses query in ctx when ctx has a tenant and the statement is
// not confined to that tenant's rows of the registries it names. A nil
// shape names no registry.
func (sh *shape) check(ctx context.Context, query string, lits []int) error {
	if sh == nil {
		return nil
	}
	tid, err := TenantID(ctx)
	if err != nil {
		return nil // the system principal, or sign-up: every row
	}
	if sh.err != nil {
		return fmt.Errorf("%w (under a tenant's principal)", sh.err)
	}
	return sh.namesOnly(tid, query, lits)
}

// unreadableWith is unreadable, and for a statement that names a registry
// the refusal under a tenant's principal.
func unreadableWith(query string, owned func(string) bool, registry func(string) string) *shape {
	sh := unreadable(query, owned)
	// A PRAGMA reads a migration table's schema; any other statement the
	// Guard cannot read that names one (INSERT OR IGNORE…) may write it.
	words := identWords(unquote(strings.ToLower(stripComments(query))))
	pragma := len(words) > 0 && words[0] == "pragma"
	if sh.err == nil {
		if r := unreadable(query, func(n string) bool { return registry(n) != "" || !pragma && migrationTable(n) }); r.owned {
			sh.registry = r
		}
	}
	return sh
}

// migrationTable reports whether name is the table of applied migrations
// or its lock table. On PostgreSQL the application role holds no privilege
// on them; on SQLite every statement could write them, and tenant B's
// statements did: a row in the lock table stopped every later migration
// (the next release's start-up failed), and deleting rows of the
// migrations table made the next start-up run those migrations again
// (TestTenantCannotWriteTheMigrationTables). Under a tenant's principal
// the Guard refuses any write of either; migrations run without one.
func migrationTable(name string) bool {
	name = strings.ToLower(name)
	return name == migrations.Table || name == migrations.Table+"_locks"
}

// noTenantWrites records in a's shape an UPDATE or DELETE, at any depth of
// statement n, of a registry that holds no tenant's row, and any write of
// a migration table.
func (a *analysis) noTenantWrites(n *pg.Node, registry func(string) string) {
	m := inner(n)
	if m == nil {
		return
	}
	a.noSchemaChange(m, registry)
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		_, insert := x.(*pg.InsertStmt)
		if rv, ok := x.(*pg.RangeVar); ok && registry(rv.Relname) == unreachableKey {
			name := strings.ToLower(rv.Relname)
			a.sh.owned, a.sh.tables = true, append(a.sh.tables, name)
			a.fail("%s belongs to no tenant: no tenant's statement may name it", name)
		}
		if rv := writeTarget(x); rv != nil && migrationTable(rv.Relname) {
			name := strings.ToLower(rv.Relname)
			a.sh.owned, a.sh.tables = true, append(a.sh.tables, name)
			a.fail("%s records the schema's migrations: no tenant's statement may write it", name)
		} else if rv != nil && !insert && registry(rv.Relname) == noTenantColumn {
			name := strings.ToLower(rv.Relname)
			a.sh.owned, a.sh.tables = true, append(a.sh.tables, name)
			a.fail("%s is every tenant's: no tenant's statement may change or delete it", name)
		}
		return true
	})
}

// noSchemaChange records in a's shape a schema change (DROP, ALTER,
// RENAME, CREATE INDEX or TRIGGER, TRUNCATE…: any statement but a query
// or a write of rows) of a registry, an unreachable table or a migration
// table. On SQLite the application's handle owns every table, and tenant
// B's statements dropped the list of tenants, the vault's key list and
// the webhook deliveries, and renamed the account index
// (TestTenantCannotChangeTheRegistriesSchema); on PostgreSQL the
// application role owns none of them.
func (a *analysis) noSchemaChange(m proto.Message, registry func(string) string) {
	switch m.(type) {
	case *pg.SelectStmt, *pg.InsertStmt, *pg.UpdateStmt, *pg.DeleteStmt, *pg.ExplainStmt:
		return
	}
	guarded := func(name string) bool { return registry(name) != "" || migrationTable(name) }
	walk(m.ProtoReflect(), func(x proto.Message) bool {
		name := ""
		switch x := x.(type) {
		case *pg.RangeVar:
			name = x.Relname
		case *pg.String:
			name = x.Sval // DROP names its objects as lists of strings
		}
		if name != "" && guarded(name) {
			name = strings.ToLower(name)
			a.sh.owned, a.sh.tables = true, append(a.sh.tables, name)
			a.fail("%s is no tenant's: no tenant's statement may change its schema", name)
		}
		return true
	})
}
