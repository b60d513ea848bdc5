package socialcrm_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// migrated is a dbtest setup that migrates every package, as the owner
// does before the application starts.
func migrated(ctx context.Context, db *bun.DB) error { return socialcrm.Migrate(ctx, db) }

// TestApplicationRoleCannotSwitchIsolationOff: the application's role owns
// nothing, so every way of turning row-level security off, or of rewriting
// the audit log, is refused by PostgreSQL itself.
func TestApplicationRoleCannotSwitchIsolationOff(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("PostgreSQL only: set " + dbtest.EnvPostgres + " (CI does)")
	}
	db := dbtest.Postgres(t, migrated)
	ctx := context.Background()
	require.NoError(t, socialcrm.CheckRole(ctx, db.DB), "the application role passes the check")

	tid := tenancy.NewID()
	actx, err := tenancy.AsTenant(tenancy.System(ctx, "test"), tid)
	require.NoError(t, err)
	audit, err := tenancy.NewAuditLog(db.DB)
	require.NoError(t, err)
	_, err = audit.Append(actx, tenancy.AuditEvent{Action: "test.done"})
	require.NoError(t, err)

	for _, stmt := range []string{
		"ALTER TABLE socialcrm_members NO FORCE ROW LEVEL SECURITY",
		"ALTER TABLE socialcrm_members DISABLE ROW LEVEL SECURITY",
		"CREATE POLICY everything ON socialcrm_members USING (true)",
		"DROP POLICY tenant_isolation ON socialcrm_members",
		"ALTER POLICY tenant_isolation ON socialcrm_members USING (true)",
		"ALTER TABLE socialcrm_audit_log DISABLE TRIGGER ALL",
		"DROP TRIGGER " + "socialcrm_append_only ON socialcrm_audit_log",
		"UPDATE socialcrm_audit_log SET actor = 'x'",
		"DELETE FROM socialcrm_audit_log",
		"TRUNCATE socialcrm_audit_log",
		"CREATE TABLE socialcrm_planted (id TEXT)",
		"INSERT INTO socialcrm_migrations (name, group_id, migrated_at) VALUES ('x', 99, now())",
	} {
		err := tenancy.RunInTx(actx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, stmt)
			return err
		})
		require.Equal(t, "42501", dberr.Code(err), "%s must fail for lack of privilege: %v", stmt, err)
	}
}

// TestOpenRefusesPrivilegedRoles: a superuser, a BYPASSRLS role and the
// tables' owner are refused with a *RoleError unless the development
// override is set; the application role is accepted.
func TestOpenRefusesPrivilegedRoles(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek := testkit.NewKEK(t)
		if db.Name == "sqlite" {
			require.NoError(t, socialcrm.CheckRole(ctx, db.DB), "SQLite has no roles")
			return
		}
		refused := func(h *bun.DB, check func(e *socialcrm.RoleError)) {
			t.Helper()
			_, err := socialcrm.Open(ctx, socialcrm.Config{DB: h, KEK: kek})
			require.ErrorIs(t, err, socialcrm.ErrPrivilegedRole)
			var re *socialcrm.RoleError
			require.ErrorAs(t, err, &re)
			check(re)
		}

		// The owner that migrated the tables.
		refused(db.Owner, func(e *socialcrm.RoleError) {
			require.False(t, e.Superuser)
			require.False(t, e.BypassRLS)
			require.Contains(t, e.Owns, "socialcrm_members")
		})

		schema := searchPath(t, db.DSN())
		admin := os.Getenv(dbtest.EnvPostgres)
		super := openAs(t, admin, "", db.DSN())
		refused(super, func(e *socialcrm.RoleError) { require.True(t, e.Superuser) })

		_, err := super.ExecContext(ctx, `DO $$ BEGIN
			CREATE ROLE socialcrm_tests_bypass LOGIN NOSUPERUSER BYPASSRLS;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
		require.NoError(t, err)
		_, err = super.ExecContext(ctx, "GRANT USAGE ON SCHEMA ? TO socialcrm_tests_bypass", bun.Ident(schema))
		require.NoError(t, err)
		bypass := openAs(t, admin, "socialcrm_tests_bypass", db.DSN())
		refused(bypass, func(e *socialcrm.RoleError) {
			require.True(t, e.BypassRLS)
			require.False(t, e.Superuser)
			require.Empty(t, e.Owns)
		})

		// A role that may act as the owner (a member of its role) is the
		// owner too.
		_, err = super.ExecContext(ctx, `DO $$ BEGIN
			CREATE ROLE socialcrm_tests_member LOGIN NOSUPERUSER NOBYPASSRLS;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
		require.NoError(t, err)
		_, err = super.ExecContext(ctx, "GRANT "+"socialcrm_tests_owner TO socialcrm_tests_member")
		require.NoError(t, err)
		member := openAs(t, admin, "socialcrm_tests_member", db.DSN())
		refused(member, func(e *socialcrm.RoleError) {
			require.False(t, e.Superuser)
			require.Contains(t, e.Owns, "socialcrm_audit_log")
		})

		// The development override accepts the owner.
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.Owner, KEK: kek, AllowPrivilegedRole: true})
		require.NoError(t, err)
		require.NotNil(t, sdk)

		// The application role, migrated and granted through Owner, opens.
		sdk, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.Reopen(t), Owner: db.ReopenOwner(t), KEK: kek})
		require.NoError(t, err)
		require.NotNil(t, sdk)
	}, migrated)
}

func searchPath(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	return u.Query().Get("search_path")
}

// openAs connects to the test database and schema of dsn as user (the
// admin DSN's user when empty).
func openAs(t *testing.T, adminDSN, user, dsn string) *bun.DB {
	t.Helper()
	u, err := url.Parse(adminDSN)
	require.NoError(t, err)
	if user != "" {
		u.User = url.User(user)
	}
	test, err := url.Parse(dsn)
	require.NoError(t, err)
	u.Path = test.Path
	q := u.Query()
	q.Set("search_path", searchPath(t, dsn))
	u.RawQuery = q.Encode()
	db, err := dbtest.OpenPostgres(u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSDKAuditLogIsKeyed: every package that writes to the audit log
// through the SDK (tenancy, the vault, retention) joins one keyed chain,
// which verifies, and a signed checkpoint taken from it verifies later.
func TestSDKAuditLogIsKeyed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t)})
		require.NoError(t, err)
		_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
		require.NoError(t, err)
		octx := tenancy.WithPrincipal(ctx, owner.Principal())
		_, err = sdk.Vault.Seal(octx, []byte("x"), vault.Binding{Record: "r", Field: "f"})
		require.NoError(t, err)
		_, err = sdk.Vault.RotateKey(octx)
		require.NoError(t, err)
		_, err = sdk.Retention.PlaceHold(octx, retention.Hold{Scope: retention.HoldTenant, Reason: "audit"})
		require.NoError(t, err)

		entries, err := sdk.Audit.List(octx, tenancy.AuditListOptions{})
		require.NoError(t, err)
		actions := map[string]bool{}
		for _, e := range entries {
			actions[e.Action] = true
			require.Regexp(t, "^hmac:", e.Hash, e.Action)
		}
		for _, a := range []string{"tenant.created", "vault.key_created", "vault.key_rotated", "retention.hold_placed"} {
			require.True(t, actions[a], "%s in %v", a, actions)
		}
		head, err := sdk.Audit.Verify(octx)
		require.NoError(t, err)
		require.EqualValues(t, 1, head.KeyedFrom)
		cp, err := sdk.Audit.Checkpoint(octx)
		require.NoError(t, err)
		_, err = sdk.Vault.RotateKey(octx)
		require.NoError(t, err)
		_, err = sdk.Audit.Verify(octx, cp)
		require.NoError(t, err)
	}, migrated)
}
