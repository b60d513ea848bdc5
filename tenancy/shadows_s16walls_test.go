package tenancy_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// s16Job is a model that belongs to no tenant (a queue of the host's, say):
// registered with the DB, it is not tenant-owned, and the application
// writes it without a tenant.
type s16Job struct {
	bun.BaseModel `bun:"table:test_s16_jobs,alias:j"`
	ID            string `bun:"id,pk"`
	Payload       string `bun:"payload,notnull"`
}

// TestS16NoTemporaryShadowOfAnyKnownTable: the Guard refused a temporary
// relation of a tenant-owned table's, a registry's or a migration
// table's name, but not of any other table, nor one named by a string
// literal, which SQLite takes for a name ('x'). On SQLite tenant B's CREATE
// TEMP TABLE test_s16_jobs, a table of a registered model that belongs to
// no tenant, took the application's next write of a job on that pooled
// connection: the job went into B's table, to be read by B and lost with
// the connection. The same for any socialcrm_ table a model was never
// registered for (CREATE TEMP TABLE socialcrm_x (a), which PostgreSQL's
// grammar cannot read, included), and a SQLite trigger — a temporary one
// stays on the pooled connection — ran statements the Guard never saw for
// every tenant's writes. Each is refused on both databases, and the job
// lands in the table.
func TestS16NoTemporaryShadowOfAnyKnownTable(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		bg := context.Background()
		_, err := db.Owner.ExecContext(bg, "CREATE TABLE test_s16_jobs (id TEXT PRIMARY KEY, payload TEXT NOT NULL)")
		require.NoError(t, err)
		dbtest.GrantApp(t, db)
		db.RegisterModel((*s16Job)(nil))
		b := tenancy.NewID()
		db.SetMaxOpenConns(1) // the application's write runs on the connection B used
		defer db.SetMaxOpenConns(0)
		stash := "CREATE TEMP TABLE IF NOT EXISTS stash (x TEXT)"
		if db.Name == "postgres" {
			stash += " ON COMMIT DROP"
		}
		for _, q := range []string{
			"CREATE TEMP TABLE test_s16_jobs (id TEXT PRIMARY KEY, payload TEXT NOT NULL)",
			"CREATE TEMPORARY TABLE IF NOT EXISTS \"TEST_S16_JOBS\" (id TEXT, payload TEXT)",
			"CREATE TABLE temp.test_s16_jobs (id TEXT, payload TEXT)",
			"sqlite: CREATE TEMP TABLE test_s16_jobs (id, payload)",
			"sqlite: CREATE TEMP TABLE test_s16_jobs (id TEXT, payload TEXT) STRICT",
			"CREATE TEMP VIEW test_s16_jobs AS SELECT 'x' AS id, 'y' AS payload",
			"CREATE VIEW temp.test_s16_jobs AS SELECT 1",
			"CREATE TEMP TABLE socialcrm_social_revocations (x TEXT)",
			"sqlite: CREATE TEMP TABLE socialcrm_retention_pending (x)",
			"sqlite: CREATE TABLE temp.\"socialcrm_vault_tenants\" (x)",
			"CREATE TEMP VIEW socialcrm_anything AS SELECT 1 AS x",
			"sqlite: CREATE TEMP TABLE sqlite_s16 (x)",
			"sqlite: CREATE TEMP TABLE 'test_s16_jobs' (id, payload)",
			"sqlite: CREATE TEMP TABLE temp.'socialcrm_anything' (x TEXT)",
			"sqlite: CREATE TEMP VIEW 'test_s16_jobs' AS SELECT 1",
			"sqlite: " + stash + ";\nALTER TABLE stash RENAME TO 'test_s16_jobs'",
			"CREATE TABLE pg_temp.test_s16_jobs (id TEXT, payload TEXT)",
			"CREATE TEMP TABLE test_s16_jobs (id TEXT, payload TEXT) ON COMMIT DROP",
			"SELECT 1 AS id INTO TEMP test_s16_jobs",
			stash + ";\nALTER TABLE stash RENAME TO test_s16_jobs",
			"ALTER TABLE temp.stash RENAME TO socialcrm_social_revocations",
			"sqlite: CREATE TEMP TRIGGER s16 AFTER INSERT ON test_s16_jobs BEGIN SELECT 1; END",
			"sqlite: CREATE TEMPORARY TRIGGER IF NOT EXISTS s16 AFTER INSERT ON test_s16_jobs BEGIN INSERT INTO stash VALUES (new.payload); END",
			"sqlite: CREATE TRIGGER s16 AFTER INSERT ON \"test_s16_jobs\" BEGIN SELECT 1; END",
			"sqlite: /* x */ CREATE /* y */ TEMP TRIGGER s16 BEFORE DELETE ON test_s16_jobs BEGIN SELECT RAISE(IGNORE); END",
			"sqlite: SELECT 1; CREATE TEMP TRIGGER s16 AFTER UPDATE ON test_s16_jobs BEGIN SELECT 1; END",
			"CREATE TRIGGER s16 AFTER INSERT ON test_s16_jobs FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
		} {
			q, sqliteOnly := strings.CutPrefix(q, "sqlite: ")
			_, err := execAs(db, b, strings.Split(q, ";\n")...)
			if sqliteOnly && db.Name == "postgres" {
				require.Error(t, err, "%s: SQLite's syntax", q)
				continue
			}
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		// A temporary table of another name still runs (SQLite keeps it;
		// on PostgreSQL it must go with the transaction), and so does a
		// string that reads like a trigger.
		seen, err := execAs(db, b, stash, "SELECT 'create temp trigger x' FROM stash UNION ALL SELECT 'ok'")
		require.NoError(t, err)
		require.Equal(t, "ok", seen)
		_, err = db.NewInsert().Model(&s16Job{ID: "j1", Payload: "revoke-token-of-a"}).Exec(bg)
		require.NoError(t, err)
		var payload string
		require.NoError(t, db.Admin(t).NewRaw("SELECT payload FROM test_s16_jobs WHERE id = 'j1'").Scan(bg, &payload))
		require.Equal(t, "revoke-token-of-a", payload, "the job is in the table, seen from another connection")
	})
}

// TestS16NoSchemaOfTheRolesName: on PostgreSQL the default search path is
// "$user", public — a schema named like the application's role comes
// first. Where that role may create schemas (CREATE on the database, as
// a role that owns its database has), tenant B's CREATE SCHEMA <role> and
// CREATE TABLE <role>.test_widgets (…) passed the Guard — it matched
// tables by name and let a CREATE TABLE of a tenant-owned table's name
// run — and every tenant's unqualified statements then went to B's
// table, which row-level security does not cover: tenant A's next row
// went there, not into test_widgets. Under a tenant's principal the Guard
// refuses creating or altering a schema, a trigger or privileges, and a
// relation or type of a known table's name in any schema; A's row lands
// in test_widgets. SQLite has no CREATE SCHEMA: the statements are
// refused there too.
func TestS16NoSchemaOfTheRolesName(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		bg := context.Background()
		a, b := tenancy.NewID(), tenancy.NewID()
		h, role := db.DB, "socialcrm_tests_app"
		if db.Name == "postgres" {
			u, err := url.Parse(db.DSN())
			require.NoError(t, err)
			role = u.User.Username()
			q := u.Query()
			q.Set("search_path", `"$user",`+q.Get("search_path"))
			u.RawQuery = q.Encode()
			admin := db.Admin(t)
			_, err = admin.ExecContext(bg, "DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), '"+role+"'); END $$")
			require.NoError(t, err)
			t.Cleanup(func() {
				_, _ = admin.ExecContext(bg, "DROP SCHEMA IF EXISTS "+role+" CASCADE")
				_, _ = admin.ExecContext(bg, "DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM %I', current_database(), '"+role+"'); END $$")
			})
			h, err = dbtest.OpenPostgres(u.String())
			require.NoError(t, err)
			defer h.Close()
			_, err = tenancy.InstallGuard(h, (*widget)(nil), (*gadget)(nil))
			require.NoError(t, err)
		}
		const cols = "(tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)"
		for _, q := range []string{
			"CREATE SCHEMA " + role,
			"CREATE SCHEMA AUTHORIZATION CURRENT_USER",
			"CREATE SCHEMA IF NOT EXISTS \"" + strings.ToUpper(role[:1]) + role[1:] + "\"",
			"CREATE SCHEMA " + role + " CREATE TABLE test_widgets " + cols,
			"ALTER SCHEMA s16 RENAME TO " + role,
			"CREATE TABLE " + role + ".test_widgets " + cols,
			"CREATE TABLE \"" + role + "\".\"TEST_WIDGETS\" " + cols,
			"CREATE TABLE test_widgets " + cols,
			"CREATE TABLE IF NOT EXISTS test_widgets " + cols,
			"CREATE UNLOGGED TABLE " + role + ".test_gadgets (tenant_id TEXT)",
			"CREATE TABLE " + role + ".socialcrm_tenants (id TEXT)",
			"CREATE TABLE " + role + ".socialcrm_migrations (id TEXT)",
			"CREATE TABLE " + role + ".socialcrm_anything (id TEXT)",
			"CREATE SEQUENCE " + role + ".test_widgets",
			"CREATE TYPE " + role + ".test_widgets AS (x int)",
			"CREATE DOMAIN " + role + ".test_widgets AS text",
			"SELECT 'x' AS tenant_id INTO " + role + ".test_widgets",
			"CREATE TABLE " + role + ".test_widgets AS SELECT 'x' AS tenant_id",
			"CREATE VIEW " + role + ".test_widgets AS SELECT 1",
			"ALTER TABLE stash16 RENAME TO test_widgets",
			"ALTER TABLE " + role + ".stash16 RENAME TO socialcrm_anything",
			"ALTER TABLE elsewhere.test_widgets SET SCHEMA " + role,
			"GRANT SELECT ON test_widgets TO PUBLIC",
			"REVOKE SELECT ON test_widgets FROM PUBLIC",
			"ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC",
			"GRANT pg_read_all_data TO " + role,
		} {
			_, err := execAs(h, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		require.NoError(t, insert(as(a), h, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}))
		seen, err := execAs(db.Owner, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"'")
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen, "A's row is in the tenant-owned table")
		// Without a principal (migrations) a schema change still runs.
		if db.Name == "postgres" {
			_, err = h.ExecContext(bg, "CREATE SCHEMA s16_migrated")
			require.NoError(t, err)
			_, err = h.ExecContext(bg, "DROP SCHEMA s16_migrated")
			require.NoError(t, err)
		}
	})
}
