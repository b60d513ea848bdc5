package tenancy_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17TenantCannotChangeIndexes: on SQLite the application's handle
// owns every table, and the Guard let a tenant create and drop indexes of
// tenant-owned tables. Tenant B's CREATE INDEX probe ON test_widgets
// (json(CASE WHEN name = 'secret-a' THEN 'x' ELSE '1' END)) failed with
// "malformed JSON" exactly when some tenant's row held that name — an
// oracle for tenant A's values, one guess per statement; B's CREATE UNIQUE
// INDEX … (tenant_id, size) made A's next widget of a size A already had
// fail; B's DROP INDEX test_widgets_tenant_id made A's upserts on
// (tenant_id, id) fail ("ON CONFLICT clause does not match any PRIMARY KEY
// or UNIQUE constraint"). On PostgreSQL the application role owns no
// table and the server refused each. Under a tenant's principal the Guard
// now refuses every CREATE INDEX and DROP INDEX on both databases, as it
// does triggers; migrations (no principal) still make them.
func TestS17TenantCannotChangeIndexes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		for _, q := range []string{
			"CREATE INDEX probe ON test_widgets (json(CASE WHEN name = 'secret-a' THEN 'x' ELSE '1' END))",
			"CREATE UNIQUE INDEX probe ON test_widgets (tenant_id, size)",
			"create unique index if not exists main.probe on test_widgets (tenant_id, size)",
			"CREATE INDEX probe ON test_widgets (tenant_id) WHERE name = 'secret-a'",
			"CREATE INDEX probe ON test_widgets (name COLLATE NOCASE) WHERE name GLOB 's*'",
			"CREATE INDEX probe ON test_gadgets (label)",
			"DROP INDEX test_widgets_tenant_id",
			"DROP INDEX IF EXISTS main.test_widgets_tenant_id",
			`drop index "TEST_WIDGETS_TENANT_ID"`,
			"DROP INDEX CONCURRENTLY test_widgets_tenant_id",
		} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			err = tenancy.RunScoped(as(b), db, func(ctx context.Context, db bun.IDB) error {
				_, err := db.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s (RunScoped)", q)
		}
		// A's writes behave as the schema says: a second widget of size 1,
		// and an upsert on (tenant_id, id).
		require.NoError(t, insert(as(a), db, &widget{ID: "wa2-" + a, Name: "secret-a", Size: 1}))
		_, err := exec(as(a), db, func(db bun.IDB) (sql.Result, error) {
			return db.NewInsert().Model(&widget{ID: "wa-" + a, Name: "renamed-a", Size: 1}).
				On("CONFLICT (tenant_id, id) DO UPDATE").Set("name = EXCLUDED.name").Exec(as(a))
		})
		require.NoError(t, err, "A's upsert")
		seen, err := execAs(db, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"' ORDER BY id")
		require.NoError(t, err)
		require.Equal(t, "renamed-a\nsecret-a", seen) // wa- sorts before wa2-
		if db.Name == "sqlite" {
			// Migrations, without a principal, still change indexes.
			_, err = db.ExecContext(context.Background(), "CREATE INDEX test_widgets_size ON test_widgets (tenant_id, size)")
			require.NoError(t, err)
			_, err = db.ExecContext(context.Background(), "DROP INDEX test_widgets_size")
			require.NoError(t, err)
		}
	})
}

// TestS17SessionSettingsLeaveTheNextTenantAlone: tenant B tries to change
// how tenant A's next statements on the same pooled connection read —
// the time zone and date style its timestamps print in, the digits of its
// floats, how bytea prints, whether its transactions may write, how long
// its locks wait — with a session-level SET in each spelling PostgreSQL
// takes. Each is refused (ErrUnscoped) inside RunInTx, in RunScoped and
// on the handle directly, on both databases (on SQLite the Guard refuses
// before SQLite's syntax error); B's SET LOCAL runs and ends with B's
// transaction. A's next statements on the one connection see the
// settings the connection had before, and A's insert still writes.
func TestS17SessionSettingsLeaveTheNextTenantAlone(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		db.SetMaxOpenConns(1) // A's statements run on the connection B used
		defer db.SetMaxOpenConns(0)
		const show = "SELECT current_setting('TimeZone') || '|' || current_setting('DateStyle') || '|' || " +
			"current_setting('extra_float_digits') || '|' || current_setting('transaction_read_only') || '|' || " +
			"current_setting('bytea_output') || '|' || current_setting('IntervalStyle') || '|' || current_setting('lock_timeout')"
		var before string
		if db.Name == "postgres" {
			var err error
			before, err = execAs(db, a, show)
			require.NoError(t, err)
		}
		for _, q := range []string{
			"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
			"SET TIME ZONE 'Asia/Tokyo'",
			"SET TIME ZONE INTERVAL '+05:00' HOUR TO MINUTE",
			`SET SESSION "TimeZone" = 'America/Lima'`,
			"SET DateStyle = 'SQL, DMY'",
			"SET datestyle TO German",
			"SET IntervalStyle = sql_standard",
			"SET extra_float_digits = -15",
			"SET bytea_output = 'escape'",
			"SET default_transaction_read_only = on",
			"SET lock_timeout = 1",
			"SET plan_cache_mode = force_generic_plan",
			"set  xmloption  =  content",
			"SET NAMES 'SQL_ASCII'",
			"SET SCHEMA 'pg_catalog'",
		} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			err = tenancy.RunScoped(as(b), db, func(ctx context.Context, db bun.IDB) error {
				_, err := db.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s (RunScoped)", q)
			_, err = db.ExecContext(as(b), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s (handle)", q)
		}
		if db.Name == "postgres" {
			// transaction_read_only runs at session level, and lasts
			// only the statement's own transaction.
			_, err := db.ExecContext(as(b), "SET SESSION transaction_read_only = on")
			require.NoError(t, err)
			_, err = execAs(db, b, "SET LOCAL TimeZone = 'Asia/Tokyo'", "SET LOCAL DateStyle = 'German'",
				"SET LOCAL extra_float_digits = -15", "SET LOCAL bytea_output = 'escape'")
			require.NoError(t, err, "SET LOCAL ends with B's transaction")
			after, err := execAs(db, a, show)
			require.NoError(t, err)
			require.Equal(t, before, after)
			err = tenancy.RunScoped(as(a), db, func(ctx context.Context, db bun.IDB) error {
				return db.QueryRowContext(ctx, show).Scan(&after)
			})
			require.NoError(t, err)
			require.Equal(t, before, after, "RunScoped")
		}
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}), "A's transaction may write")
	})
}

// TestS17QueryShapesStayInTheTenant: shapes of SQL and bun code not tried
// before — PostgreSQL 15's MERGE (bun's NewMerge and raw), LATERAL joins,
// a recursive CTE whose recursive arm reads another tenant, json_each
// over a subquery, a window over a subquery, SELECT … FOR UPDATE through
// a join, INSERT … SELECT, ON CONFLICT DO UPDATE aimed at A's key, LOCK
// TABLE — each is refused (ErrUnscoped) or reads and changes only B's
// rows, on both databases. A's rows are as they were afterwards.
func TestS17QueryShapesStayInTheTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		// B's gadget names A's widget.
		require.NoError(t, insert(as(b), db, &gadget{ID: "gb-" + b, WidgetID: "wa-" + a, Label: "mine-b"}))
		qa, qb, wa := "'"+a+"'", "'"+b+"'", "'wa-"+a+"'"
		refused := []string{
			"MERGE INTO test_widgets w USING (SELECT " + wa + " AS id) s ON w.id = s.id AND w.tenant_id = " + qb +
				" WHEN MATCHED THEN UPDATE SET name = 'x' WHEN NOT MATCHED THEN INSERT (tenant_id, id, name, size) VALUES (" + qb + ", s.id, 'x', 1)",
			"MERGE INTO test_gadgets g USING test_widgets w ON g.widget_id = w.id AND g.tenant_id = " + qb +
				" WHEN MATCHED THEN UPDATE SET label = w.name",
			"SELECT w.name FROM test_widgets w JOIN LATERAL (SELECT name FROM test_widgets x WHERE x.size = w.size) y ON true WHERE w.tenant_id = " + qb,
			"SELECT y.name FROM (SELECT " + qb + " AS t) s, LATERAL (SELECT name FROM test_widgets x WHERE x.tenant_id = s.t OR x.size > 0) y",
			"WITH RECURSIVE r(n, d) AS (SELECT name, 0 FROM test_widgets WHERE tenant_id = " + qb +
				" UNION ALL SELECT w.name, r.d + 1 FROM test_widgets w JOIN r ON r.d < 1) SELECT n FROM r",
			"SELECT value FROM json_each((SELECT json_group_array(name) FROM test_widgets WHERE size > 0))",
			"SELECT s.name, count(*) OVER () FROM (SELECT name FROM test_widgets) s",
			"SELECT w.name, count(*) OVER (PARTITION BY w.tenant_id) FROM test_widgets w WHERE w.tenant_id = " + qb + " OR w.tenant_id = " + qa,
			"SELECT g.label FROM test_gadgets g JOIN test_widgets w ON w.id = g.widget_id WHERE g.tenant_id = " + qb + " FOR UPDATE",
			"INSERT INTO test_gadgets (tenant_id, id, widget_id, label) SELECT " + qb + ", 'g-' || id, id, name FROM test_widgets",
			"INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (" + qb + ", " + wa + ", 'x', 1) ON CONFLICT (id) DO UPDATE SET name = 'pwned'",
			"INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (" + qb + ", " + wa + ", 'x', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = " + qa,
			"LOCK TABLE test_widgets IN ACCESS EXCLUSIVE MODE",
			"LOCK TABLE socialcrm_tenants IN ACCESS EXCLUSIVE MODE",
		}
		for _, q := range refused {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		err := tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewMerge().Model((*widget)(nil)).
				With("src", tx.NewValues(&[]widget{{ID: "wa-" + a, Name: "x", Size: 1}})).
				Using("src").On("w.id = src.id").
				WhenUpdate("MATCHED", func(q *bun.UpdateQuery) *bun.UpdateQuery { return q.Set("name = 'pwned'") }).
				Exec(ctx)
			return err
		})
		if db.Name == "postgres" {
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "bun's NewMerge")
		} else {
			require.Error(t, err, "bun has no MERGE for SQLite")
		}

		// Confined, these run and see B's rows only.
		if db.Name == "postgres" { // SQLite has no LATERAL
			seen, err := execAs(db, b, "SELECT y.name FROM test_widgets w, LATERAL (SELECT x.name FROM test_widgets x WHERE x.tenant_id = "+qb+" AND x.size = w.size) y WHERE w.tenant_id = "+qb)
			require.NoError(t, err)
			require.Equal(t, "mine-b", seen)
		}
		seen, err := execAs(db, b, "SELECT w.name FROM test_gadgets g LEFT JOIN test_widgets w ON w.id = g.widget_id AND w.tenant_id = "+qb+" WHERE g.tenant_id = "+qb)
		require.NoError(t, err)
		require.Empty(t, seen, "B's gadget's widget is A's")
		// A unique violation on A's id names B's own values, never A's.
		_, err = execAs(db, b, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ("+qb+", "+wa+", 'x', 1)")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "secret-a")
		seen, err = execAs(db, b, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ("+qb+", "+wa+", 'x', 1) ON CONFLICT DO NOTHING RETURNING name")
		require.NoError(t, err)
		require.Empty(t, seen)
		_, err = execAs(db, b, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ("+qb+", "+wa+", 'x', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET name = 'pwned' RETURNING name")
		require.Error(t, err, "the conflict is on the primary key, A's row: it is not B's to update")
		require.NotContains(t, err.Error(), "secret-a")

		if db.Name == "postgres" {
			// B's FOR UPDATE through the join locks none of A's rows: A
			// updates its widget, with a lock wait of 200 ms, while B's
			// transaction holds its locks.
			locked, release := make(chan error, 1), make(chan struct{})
			go func() {
				locked <- tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
					var names []string
					err := tx.NewRaw("SELECT g.label FROM test_gadgets g JOIN test_widgets w ON w.id = g.widget_id AND w.tenant_id = g.tenant_id WHERE g.tenant_id = ? FOR UPDATE", b).Scan(ctx, &names)
					if err == nil && len(names) != 0 {
						err = errorString("B's join reached A's widget")
					}
					locked <- err
					<-release
					return nil
				})
			}()
			require.NoError(t, <-locked)
			_, err = execAs(db, a, "SET LOCAL lock_timeout = '200ms'", "UPDATE test_widgets SET size = 3 WHERE tenant_id = "+qa+" AND id = "+wa)
			close(release)
			require.NoError(t, <-locked)
			require.NoError(t, err, "A's row is not locked by B")
			_, err = execAs(db, a, "UPDATE test_widgets SET size = 1 WHERE tenant_id = "+qa+" AND id = "+wa)
			require.NoError(t, err)
		}
		seen, err = execAs(db, a, "SELECT name || ':' || size FROM test_widgets WHERE tenant_id = "+qa)
		require.NoError(t, err)
		require.Equal(t, "secret-a:1", seen)
	})
}

// TestS17AdvisoryLocksOfAnotherTenantLastTheTransaction measures what
// doc.go's Security section states about transaction-level advisory
// locks, which the Guard lets every tenant take (the SDK's own
// statements take them under the tenant's principal, and crm's contact
// create calls a function that takes the keys it is given). The keys
// live in one space for the whole database. Knowing tenant A's id,
// tenant B derived the key of A's audit chain, an unkeyed log's (a keyed
// one's is not the id's: TestS17KeyedAuditChainLockIsNotTheTenantsID): B's
// pg_advisory_xact_lock on it made A's audit append wait until B's
// transaction ended (here 300 ms), and B's pg_try_advisory_xact_lock
// answered false exactly while A held its chain (an append in a
// transaction not yet committed): one bit per probe of A's activity. B's
// session-level lock, which would outlive B's transaction on the pooled
// connection, is refused. SQLite has no advisory locks.
func TestS17AdvisoryLocksOfAnotherTenantLastTheTransaction(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		h := sha256.Sum256([]byte("socialcrm.tenancy.audit\x00" + a))
		key := int64(binary.BigEndian.Uint64(h[:8]))
		lock := "SELECT pg_advisory_xact_lock(" + itoa(key) + ")"
		try := "SELECT CAST(pg_try_advisory_xact_lock(" + itoa(key) + ") AS text)"
		if db.Name == "sqlite" {
			_, err := execAs(db, b, lock)
			require.Error(t, err)
			return
		}
		for _, q := range []string{"SELECT pg_advisory_lock(" + itoa(key) + ")", "SELECT pg_try_advisory_lock_shared(" + itoa(key) + ")"} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		log, err := tenancy.NewAuditLog(db)
		require.NoError(t, err)
		_, err = log.Append(ownerOf(a), tenancy.AuditEvent{Action: "s17.warm"})
		require.NoError(t, err)

		// B holds A's key for 300 ms: A's append waits for it.
		const hold = 300 * time.Millisecond
		held, done := make(chan struct{}), make(chan error, 1)
		go func() {
			done <- tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, lock); err != nil {
					close(held)
					return err
				}
				close(held)
				time.Sleep(hold)
				return nil
			})
		}()
		<-held
		start := time.Now()
		_, err = log.Append(ownerOf(a), tenancy.AuditEvent{Action: "s17.waited"})
		waited := time.Since(start)
		require.NoError(t, err)
		require.NoError(t, <-done)
		require.GreaterOrEqual(t, waited, hold*2/3, "A's append waited for B's transaction")
		t.Logf("A's append waited %v for B's transaction of %v", waited.Round(time.Millisecond), hold)

		// While A's appending transaction is open, B's probe answers
		// false; before and after, true.
		probe := func() string {
			seen, err := execAs(db, b, try)
			require.NoError(t, err)
			return seen
		}
		require.Equal(t, "true", probe())
		inside, release := make(chan error, 1), make(chan struct{})
		go func() {
			inside <- tenancy.RunInTx(ownerOf(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := log.In(tx).Append(ctx, tenancy.AuditEvent{Action: "s17.open"})
				inside <- err
				<-release
				return err
			})
		}()
		require.NoError(t, <-inside)
		require.Equal(t, "false", probe(), "A is appending")
		close(release)
		require.NoError(t, <-inside)
		require.Equal(t, "true", probe())
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestS17FailingExpressionsSeeOnlyTheTenant: tenant B puts in a WHERE
// confined to B an expression that fails on one value of tenant A's —
// SQLite's json() of a CASE that yields malformed JSON for A's name,
// PostgreSQL's cast to int of the same — and names A's row by its id so
// that a planner that reached the row by its primary key would evaluate
// the expression on it: the error would tell B what A's row holds. No
// form fails: on SQLite the tenant's unique index (tenant_id, id) is what
// the planner takes, and B may no longer drop it
// (TestS17TenantCannotChangeIndexes); on PostgreSQL row-level security's
// condition runs before any expression that is not leakproof.
func TestS17FailingExpressionsSeeOnlyTheTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		for i := range 8 {
			require.NoError(t, insert(as(a), db, &widget{ID: "wa" + strconv.Itoa(i) + "-" + a, Name: "secret-a" + strconv.Itoa(i), Size: i}))
		}
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		fails := "json(CASE WHEN name = 'secret-a3' THEN 'x' ELSE '1' END) IS NOT NULL"
		if db.Name == "postgres" {
			fails = "CAST(CASE WHEN name = 'secret-a3' THEN 'x' ELSE '1' END AS int) = 1"
		}
		qb, id3 := "'"+b+"'", "'wa3-"+a+"'"
		for _, q := range []string{
			"SELECT name FROM test_widgets WHERE " + fails + " AND tenant_id = " + qb,
			"SELECT name FROM test_widgets WHERE id = " + id3 + " AND tenant_id = " + qb + " AND " + fails,
			"SELECT name FROM test_widgets WHERE " + fails + " AND id = " + id3 + " AND tenant_id = " + qb,
			"SELECT name FROM test_widgets WHERE tenant_id = " + qb + " AND id IN ('wa1-" + a + "', " + id3 + ") AND " + fails,
			"SELECT name FROM test_widgets WHERE tenant_id = " + qb + " AND id >= 'wa' AND id < 'wb' AND " + fails,
			"SELECT name FROM test_widgets WHERE tenant_id IN (" + qb + ") AND (" + fails + " OR id > '')",
		} {
			for _, analyzed := range []bool{false, true} {
				if analyzed {
					_, err := execAs(db, b, "ANALYZE test_widgets")
					require.NoError(t, err)
				}
				seen, err := execAs(db, b, q)
				require.NoError(t, err, "%s", q)
				require.NotContains(t, seen, "secret")
			}
		}
	})
}

// TestS17KeyedAuditChainLockIsNotTheTenantsID: the advisory lock of a
// tenant's audit chain was derived from the tenant's id alone (SHA-256),
// so tenant B, knowing A's id, held it with pg_advisory_xact_lock and made
// A's audit appends wait for B's transaction, and probed it with
// pg_try_advisory_xact_lock to learn when A appended
// (TestS17AdvisoryLocksOfAnotherTenantLastTheTransaction). A keyed log
// (WithAuditKeys; socialcrm.Open's) derives the key from the tenant's
// audit key, which B cannot compute: while B holds the id's key, A's
// keyed append completes, and B's probe of it answers true while A's
// appending transaction is open. Appends of one tenant still wait for
// each other (TestAuditAppendUnderContention).
func TestS17KeyedAuditChainLockIsNotTheTenantsID(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		db := e.db
		if db.Name == "sqlite" {
			_, err := e.log.Append(ownerOf(tenancy.NewID()), tenancy.AuditEvent{Action: "s17.sqlite"})
			require.NoError(t, err, "SQLite has one writer at a time and no advisory locks")
			return
		}
		a, b := tenancy.NewID(), tenancy.NewID()
		h := sha256.Sum256([]byte("socialcrm.tenancy.audit\x00" + a))
		key := itoa(int64(binary.BigEndian.Uint64(h[:8])))
		_, err := e.log.Append(ownerOf(a), tenancy.AuditEvent{Action: "s17.warm"})
		require.NoError(t, err)

		held, done, release := make(chan struct{}), make(chan error, 1), make(chan struct{})
		go func() {
			done <- tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+key+")")
				close(held)
				if err == nil {
					<-release
				}
				return err
			})
		}()
		<-held
		ctx, cancel := context.WithTimeout(ownerOf(a), 5*time.Second)
		_, err = e.log.Append(ctx, tenancy.AuditEvent{Action: "s17.not.waiting"})
		cancel()
		close(release)
		require.NoError(t, <-done)
		require.NoError(t, err, "A's keyed append does not wait for B's lock")

		inside, stop := make(chan error, 1), make(chan struct{})
		go func() {
			inside <- tenancy.RunInTx(ownerOf(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := e.log.In(tx).Append(ctx, tenancy.AuditEvent{Action: "s17.open"})
				inside <- err
				<-stop
				return err
			})
		}()
		require.NoError(t, <-inside)
		seen, err := execAs(db, b, "SELECT CAST(pg_try_advisory_xact_lock("+key+") AS text)")
		close(stop)
		require.NoError(t, <-inside)
		require.NoError(t, err)
		require.Equal(t, "true", seen, "B's probe learns nothing of A's append")
		_, err = e.log.Verify(ownerOf(a))
		require.NoError(t, err)
	})
}

// TestS17TenantsTakeNoTwoKeyAdvisoryLocks: retention claims a tenant's
// purge with the session-level advisory lock (purge space, hashtext(tenant
// id)) and gives the run up when another holds it. Tenant B, knowing A's
// id, held that pair with pg_advisory_xact_lock(0x70757267, hashtext(A)):
// the claim (the same statement, as the system principal) answered false,
// so A's purge was skipped as long as B's transaction lasted, run after
// run. The SDK takes two-key advisory locks only as the system principal
// (purge and erasure claims); the single-key space (bigint), which
// tenants' statements use, is a different space on the server. Under a
// tenant's principal the Guard refuses every two-key advisory-lock call.
func TestS17TenantsTakeNoTwoKeyAdvisoryLocks(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		qa := "'" + a + "'"
		refused := []string{
			"SELECT pg_advisory_xact_lock(1886745191, hashtext(" + qa + "))",
			"SELECT pg_try_advisory_xact_lock(1886745191, hashtext(" + qa + "))",
			"SELECT pg_advisory_xact_lock_shared(1886745191, hashtext(" + qa + "))",
			"SELECT PG_CATALOG.pg_try_advisory_xact_lock_shared(1886745191, 42)",
			"SELECT count(pg_advisory_xact_lock(1886745191, k)) FROM (SELECT 1 AS k UNION ALL SELECT 2) AS s",
		}
		for _, q := range refused {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		if db.Name == "sqlite" {
			return
		}
		// A single-key lock of B's own still runs.
		_, err := execAs(db, b, "SELECT pg_advisory_xact_lock(42)")
		require.NoError(t, err)
		// While B's transaction tries to hold A's pair, the purge claim,
		// as the system principal, gets it.
		tried, done, release := make(chan error, 1), make(chan error, 1), make(chan struct{})
		go func() {
			done <- tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, refused[0])
				tried <- err
				<-release
				return nil
			})
		}()
		require.ErrorIs(t, <-tried, tenancy.ErrUnscoped)
		sys := tenancy.System(context.Background(), "s17")
		conn, err := db.Conn(sys)
		require.NoError(t, err)
		defer conn.Close()
		var got bool
		err = conn.QueryRowContext(sys, "SELECT pg_try_advisory_lock(1886745191, hashtext(?))", a).Scan(&got)
		close(release)
		require.NoError(t, <-done)
		require.NoError(t, err)
		require.True(t, got, "A's purge is claimed while B's transaction is open")
		_, err = conn.ExecContext(sys, "SELECT pg_advisory_unlock(1886745191, hashtext(?))", a)
		require.NoError(t, err)
	})
}

// TestS17TenantTransactionDelaysMigrations measures a limit doc.go's
// Security section states: the SDK's start-up locks — the migrations'
// (one bigint key, a constant) — are in the single-key space a tenant's
// statements may lock. Tenant B holding it in a transaction made a
// replica's migrations of a release wait (here until their context
// ended, after 400 ms; Run gives up after its own limit of waiting); once
// B's transaction ended, they ran.
func TestS17TenantTransactionDelaysMigrations(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		if db.Name == "sqlite" {
			return // no advisory locks; migrations take SQLite's write lock
		}
		b := tenancy.NewID()
		held, done, release := make(chan error, 1), make(chan error, 1), make(chan struct{})
		go func() {
			done <- tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(8317976341033804658)") // 0x736f6369616c6372
				held <- err
				<-release
				return nil
			})
		}()
		require.NoError(t, <-held)
		// A release with a migration to apply: with none pending, Run
		// takes no lock.
		pending := migrate.NewMigrations()
		migrations.Add(pending, "20261214060000", "s17_pending", func(ctx context.Context, tx bun.Tx) error {
			return migrations.Exec(ctx, tx, "CREATE TABLE IF NOT EXISTS s17_pending (id TEXT)")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		err := migrations.Run(ctx, db.Owner, tenancy.Migrations(), pending)
		cancel()
		close(release)
		require.NoError(t, <-done)
		require.ErrorIs(t, err, context.DeadlineExceeded, "the migrations waited for B's transaction")
		require.NoError(t, migrations.Run(context.Background(), db.Owner, tenancy.Migrations(), pending))
	})
}

// TestS17TenantCannotReadTransactionCounters: the Guard refused the
// functions that read PostgreSQL's transaction counter, and age() of a
// literal cast to xid, but not age() of an xid column: tenant B's SELECT
// age(datfrozenxid) FROM pg_database is the next transaction id less a
// constant, so it grew by one for each transaction that wrote, of every
// tenant. The same counter showed in relfrozenxid (a table B makes in its
// transaction takes the current one), pg_current_xact_id_if_assigned()
// once B had written, and the snapshot name pg_export_snapshot() gives
// (it counts the pooled connection's transactions, other tenants'
// included); pg_tablespace_size, like pg_database_size, grew with every
// tenant's rows. Each is refused under a tenant's principal; the system
// principal still reads them, and here sees the counter move with A's
// writes.
func TestS17TenantCannotReadTransactionCounters(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		refused := []string{
			"SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()",
			"SELECT AGE(d.datfrozenxid) FROM pg_catalog.pg_database AS d",
			"SELECT age(x) FROM (SELECT datfrozenxid AS x FROM pg_database) s",
			"SELECT age((d).datfrozenxid) FROM pg_database d",
			"SELECT s.x FROM (SELECT * FROM pg_database) s",
			"SELECT d FROM pg_database d",
			"SELECT datminmxid FROM pg_database",
			"SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'test_widgets'",
			"SELECT relfrozenxid, relminmxid FROM pg_class",
			"SELECT pg_current_xact_id_if_assigned()",
			"SELECT PG_CATALOG.pg_export_snapshot()",
			"SELECT pg_tablespace_size('pg_default')",
			"SELECT count(*) FROM pg_prepared_xacts",
			"SELECT catalog_xmin FROM pg_replication_slots",
			"SELECT pg_get_replication_slots()",
		}
		for _, q := range refused {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		if db.Name == "sqlite" {
			return
		}
		// B's own names of pg_database and pg_class still run.
		seen, err := execAs(db, b, "SELECT datname FROM pg_database WHERE datname = current_database()")
		require.NoError(t, err)
		require.NotEmpty(t, seen)
		seen, err = execAs(db, b, "SELECT relname FROM pg_class WHERE relname = 'test_widgets'")
		require.NoError(t, err)
		require.Equal(t, "test_widgets", seen)
		// What the counter tells, read as the system principal.
		sys := tenancy.System(context.Background(), "s17")
		age := func() int64 {
			var n int64
			require.NoError(t, db.NewRaw("SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()").Scan(sys, &n))
			return n
		}
		before := age()
		for i := range 3 {
			require.NoError(t, insert(as(a), db, &widget{ID: "wa" + strconv.Itoa(i) + "-" + a, Name: "secret-a", Size: i}))
		}
		require.GreaterOrEqual(t, age()-before, int64(3), "each of A's writing transactions moves it")
	})
}

// TestS17SQLiteFileCountersStayHidden: on SQLite the Guard refused the
// file's page and commit counters (page_count, freelist_count,
// data_version) and a row's rowid, but not sqlite_offset(x), the byte
// offset of a row's record in the file — where B's row lies among every
// tenant's rows, as PostgreSQL's ctid (refused), which other tenants'
// inserts move — nor PRAGMA wal_checkpoint, whose answer counts the
// pages written to the write-ahead log since it was last reset: after
// B's checkpoint it read 0, and after one insert of tenant A's, 3. Under
// a tenant's principal both are refused; the SDK's own checkpoint after
// an erasure (internal/sqldb TruncateLog) still runs under the tenant's
// principal, and the system principal runs it.
func TestS17SQLiteFileCountersStayHidden(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		qb := "'" + b + "'"
		for _, q := range []string{
			"SELECT CAST(sqlite_offset(name) AS TEXT) FROM test_widgets WHERE tenant_id = " + qb,
			"SELECT SQLITE_OFFSET(w.tenant_id) FROM test_widgets AS w WHERE w.tenant_id = " + qb,
		} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		if db.Name == "postgres" {
			return
		}
		checkpoint := func(ctx context.Context) (int, error) {
			var busy, log, done int
			err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
			return log, err
		}
		for _, q := range []string{"PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA main.wal_checkpoint(TRUNCATE)", "pragma WAL_CHECKPOINT", "PRAGMA wal_checkpoint = FULL"} {
			_, err := db.ExecContext(as(b), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		sys := tenancy.System(context.Background(), "s17")
		_, err := checkpoint(sys)
		require.NoError(t, err)
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}))
		frames, err := checkpoint(sys)
		require.NoError(t, err)
		require.Positive(t, frames, "A's insert wrote to the log: what B read")
		_, _, _, err = sqldb.TruncateLog(as(b), db.DB)
		require.NoError(t, err, "the SDK's checkpoint after an erasure")
	})
}

// TestS17AuditTruncateFunctionStaysWithTheTenant: on PostgreSQL
// AuditLog.Truncate deletes through socialcrm_audit_truncate(tenant,
// through), a SECURITY DEFINER function of the owner role that takes the
// tenant as an argument, and the Guard does not look into functions.
// Tenant B called it with tenant A's id and every sequence number: it
// deleted none of A's entries (row-level security binds the owner too,
// and the function deletes only entries A's own truncation checkpoint
// covers), and A's chain still verifies. SQLite has no such function.
func TestS17AuditTruncateFunctionStaysWithTheTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		log, err := tenancy.NewAuditLog(db)
		require.NoError(t, err)
		for range 3 {
			_, err := log.Append(ownerOf(a), tenancy.AuditEvent{Action: "s17.kept"})
			require.NoError(t, err)
		}
		if db.Name == "sqlite" {
			_, err := execAs(db, b, "SELECT socialcrm_audit_truncate('"+a+"', 1000000)")
			require.Error(t, err)
			return
		}
		seen, err := execAs(db, b, "SELECT CAST(socialcrm_audit_truncate('"+a+"', 1000000) AS text)")
		require.NoError(t, err)
		require.Equal(t, "0", seen)
		entries, err := log.List(ownerOf(a), tenancy.AuditListOptions{})
		require.NoError(t, err)
		require.Len(t, entries, 3)
		_, err = log.Verify(ownerOf(a))
		require.NoError(t, err)
	})
}
