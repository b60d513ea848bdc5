package socialcrm

import (
	"context"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// OpenDB opens the database named by dsn: a postgres:// or postgresql:// URL
// connects to PostgreSQL (through pgx); anything else is the path
// of a SQLite file, created if missing (an optional "sqlite:" or "file:"
// prefix is dropped), opened with secure_delete so that erased rows do not
// linger in the file. Connect PostgreSQL as a role that is neither a
// superuser nor BYPASSRLS, so that row-level security binds it.
//
// The handle's driver runs the Guard's check (see Guard) before every
// statement, beneath bun's query hooks and database/sql, once a Guard is
// installed on it. On PostgreSQL it also sends the tenant that row-level
// security compares with in the round trip of the statement it governs
// (tenancy.RunInTx, tenancy.RunScoped: a scoped read is one round trip),
// and only when the connection's session does not hold that tenant
// already (see tenancy's Security section) — so connect directly or
// through a session-pooling proxy, or add socialcrm_settings=transaction
// to the DSN behind a transaction-pooling one — and
// prepares each statement shape once per connection, turning the
// literals bun writes into parameters where their type is certain.
func OpenDB(dsn string) (*bun.DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return sqldb.Postgres(dsn)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "file:")
	return sqldb.SQLite(path)
}

// migrationSets lists every package's migrations.
func migrationSets() []*migrate.Migrations {
	return []*migrate.Migrations{tenancy.Migrations(), vault.Migrations(), retention.Migrations(), social.Migrations(), crm.Migrations(), meta.CallbackMigrations()}
}

// Migrate applies every socialcrm package's schema migrations that db has
// not applied yet, in version order, recording them in the table
// socialcrm_migrations. Running it again is a no-op; two processes running
// it at once are serialized. extra are the host application's own
// migrations, applied in the same version order, history and lock (their
// names must not collide with socialcrm's versions, which are
// timestamps: a far-future prefix such as "2999…" keeps them apart).
func Migrate(ctx context.Context, db *bun.DB, extra ...*migrate.Migrations) error {
	return migrations.Run(ctx, db, append(migrationSets(), extra...)...)
}

// Models returns a pointer to each tenant-owned model socialcrm defines, for
// tenancy.InstallGuard.
func Models() []any {
	models := append(tenancy.Models(), vault.Models()...)
	models = append(models, retention.Models()...)
	models = append(models, social.Models()...)
	models = append(models, meta.Models()...)
	return append(models, crm.Models()...)
}

// SealedColumns lists every column socialcrm stores vault.Sealed values in,
// for vault.WithColumns, so that Vault.Reseal re-encrypts all of them after
// a key rotation.
func SealedColumns() []vault.Column {
	cols := append(social.SealedColumns(), crm.SealedColumns()...)
	// The identifiers of data-subject requests, subject holds and recorded
	// events (see requestProtection; the engine binds a hold's to
	// "hold:<id>", an event's to "event:<id>").
	prefixed := func(prefix string) func(string) vault.Binding {
		return func(id string) vault.Binding { return vault.Binding{Record: prefix + id, Field: requestSubjectField} }
	}
	return append(cols, vault.Column{Table: retention.TableRequests, ID: "id", Sealed: requestSubjectField},
		vault.Column{Table: retention.TableHolds, ID: "id", Sealed: requestSubjectField, Binding: prefixed("hold:")},
		vault.Column{Table: retention.TableEvents, ID: "id", Sealed: requestSubjectField, Binding: prefixed("event:")},
		// Staff's free text: holds' reasons, requests' extension reasons.
		vault.Column{Table: retention.TableHolds, ID: "id", Sealed: "reason_sealed", Binding: prefixed("hold-reason:")},
		vault.Column{Table: retention.TableRequests, ID: "id", Sealed: "extension_reason_sealed", Binding: prefixed("request-extension:")})
}

// Guard installs the tenancy Guard on db for socialcrm's models and extra,
// the host application's own tenant-owned models. Run Migrate first: the
// Guard refuses the function and trigger definitions a migration may hold.
// On a handle from OpenDB the Guard refuses at the driver too, so no other
// query hook can undo a refusal.
func Guard(db *bun.DB, extra ...any) (*tenancy.Guard, error) {
	return tenancy.InstallGuard(db, append(Models(), extra...)...)
}
