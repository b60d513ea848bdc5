package socialcrm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// Grant gives the PostgreSQL role appRole exactly what the SDK needs on
// every socialcrm table of owner's current schema: SELECT, INSERT, UPDATE
// and DELETE; SELECT and INSERT only on the audit log, which is
// append-only; SELECT only on the migration history and on views; USAGE
// on the schema and its sequences. owner must be connected as the role that ran Migrate
// (the tables' owner). appRole keeps no way to alter a table, switch its
// row-level security off or change a policy or trigger. Run Grant after
// every Migrate (Open does, when Config.Owner is set); running it again is
// harmless. Tables of the host application are the host's to grant. On
// SQLite it does nothing.
func Grant(ctx context.Context, owner *bun.DB, appRole string) error {
	tables, err := migrations.Tables(ctx, owner, "socialcrm_")
	if err != nil {
		return err
	}
	return migrations.Grant(ctx, owner, appRole, tables)
}

// ErrPrivilegedRole matches every *RoleError.
var ErrPrivilegedRole = errors.New("socialcrm: database role too privileged")

// RoleError is returned by Open and CheckRole when the PostgreSQL role of
// the application's connection could switch tenant isolation off: a
// superuser or a role with BYPASSRLS skips row-level security, and a role
// that owns (or may act as the owner of) a tenant-owned table may alter it
// or its policies. It matches ErrPrivilegedRole with errors.Is.
type RoleError struct {
	// Role is the connection's role (current_user).
	Role string
	// Superuser and BypassRLS report the role's attributes.
	Superuser, BypassRLS bool
	// Owns lists the tenant-owned tables the role owns or may act as the
	// owner of.
	Owns []string
}

func (e *RoleError) Error() string {
	var why []string
	if e.Superuser {
		why = append(why, "is a superuser")
	}
	if e.BypassRLS {
		why = append(why, "has BYPASSRLS")
	}
	if n := len(e.Owns); n > 0 {
		names := strings.Join(e.Owns[:min(n, 3)], ", ")
		if n > 3 {
			names += ", …"
		}
		why = append(why, fmt.Sprintf("owns %d tenant-owned tables (%s)", n, names))
	}
	return fmt.Sprintf("socialcrm: database role %q %s: connect as an application role that owns nothing (see Grant)",
		e.Role, strings.Join(why, " and "))
}

// Is makes errors.Is(err, ErrPrivilegedRole) true.
func (e *RoleError) Is(target error) bool { return target == ErrPrivilegedRole }

// CheckRole returns a *RoleError when db is a PostgreSQL connection whose
// role is a superuser, has BYPASSRLS, or owns (or is a member of the owner
// of) a table of its search path that has row-level security enabled or
// whose name starts with socialcrm_. On SQLite it returns nil.
func CheckRole(ctx context.Context, db bun.IDB) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	e := RoleError{}
	if err := db.NewRaw(`SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).
		Scan(ctx, &e.Role, &e.Superuser, &e.BypassRLS); err != nil {
		return fmt.Errorf("socialcrm: check role: %w", err)
	}
	if err := db.NewRaw(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY (current_schemas(false)) AND c.relkind IN ('r', 'p')
		AND (c.relrowsecurity OR starts_with(c.relname, 'socialcrm_'))
		AND pg_has_role(c.relowner, 'MEMBER')
		ORDER BY c.relname`).Scan(ctx, &e.Owns); err != nil {
		return fmt.Errorf("socialcrm: check role: %w", err)
	}
	if e.Superuser || e.BypassRLS || len(e.Owns) > 0 {
		return &e
	}
	return nil
}

// currentRole returns the role db connects as.
func currentRole(ctx context.Context, db bun.IDB) (string, error) {
	var role string
	if err := db.NewRaw("SELECT current_user").Scan(ctx, &role); err != nil {
		return "", fmt.Errorf("socialcrm: current role: %w", err)
	}
	return role, nil
}

// ErrInsecureDelete is returned by Open for a SQLite handle whose
// connections run without secure_delete: SQLite would only unlink an
// erased row's bytes, and they would stay readable in the database file's
// free pages until overwritten. Open the file with OpenDB, or add the
// pragma secure_delete(ON) to every connection of the handle.
var ErrInsecureDelete = errors.New("socialcrm: SQLite handle without secure_delete: erased rows would linger in the file (open it with OpenDB, or set the pragma secure_delete(ON) on every connection)")

// checkSecureDelete returns ErrInsecureDelete when db is SQLite and a
// connection of it has secure_delete off (or FAST, which leaves deleted
// content in place when overwriting it costs extra I/O).
func checkSecureDelete(ctx context.Context, db bun.IDB) error {
	if db.Dialect().Name() != dialect.SQLite {
		return nil
	}
	var on int
	if err := db.NewRaw("PRAGMA secure_delete").Scan(ctx, &on); err != nil {
		return fmt.Errorf("socialcrm: Open: read secure_delete: %w", err)
	}
	if on != 1 {
		return ErrInsecureDelete
	}
	return nil
}
