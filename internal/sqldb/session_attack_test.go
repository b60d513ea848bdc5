package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// The attacks below run as the application role that row-level security
// binds, on a handle without any Guard: the session's app.tenant_id is the
// only wall left, so a statement that runs under another value than its
// own shows as rows of the wrong tenant.

const attSetting = "app.tenant_id"

// attRows is how many rows each tenant owns in att.
var attRows = map[string]int{"A": 3, "B": 2, "C": 1, "": 0}

// rlsHandle returns an application-role handle of this package (no Guard)
// with at most conns connections, on a fresh schema holding the table att
// under forced row-level security as tenancy.EnableRowSecurity puts it,
// filled with attRows; and the test database.
func rlsHandle(t *testing.T, conns int) (*sql.DB, *dbtest.DB) {
	t.Helper()
	db := dbtest.Postgres(t)
	ctx := context.Background()
	for _, s := range []string{
		"CREATE TABLE att (tenant_id TEXT NOT NULL, id INT PRIMARY KEY, note TEXT)",
		"ALTER TABLE att ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE att FORCE ROW LEVEL SECURITY",
		`CREATE POLICY tenant_isolation ON att
			USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
			WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))`,
	} {
		_, err := db.Owner.ExecContext(ctx, s)
		require.NoError(t, err)
	}
	dbtest.GrantApp(t, db)
	dsn := db.DSN()
	if strings.HasSuffix(t.Name(), "/transaction") {
		dsn += "&socialcrm_settings=transaction"
	}
	c, err := sqldb.PostgresConnector(dsn)
	require.NoError(t, err)
	h := sql.OpenDB(c)
	t.Cleanup(func() { h.Close() })
	h.SetMaxOpenConns(conns)
	id := 0
	for _, tid := range []string{"A", "B", "C"} {
		for range attRows[tid] {
			id++
			_, err := h.ExecContext(as(tid), "INSERT INTO att (tenant_id, id) VALUES ($1, $2)", tid, id)
			require.NoError(t, err)
		}
	}
	var super bool
	require.NoError(t, h.QueryRowContext(ctx, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&super))
	require.False(t, super, "the attacks must run as a role row-level security binds")
	return h, db
}

// as is a context under tenant tid ("" : none).
func as(tid string) context.Context {
	if tid == "" {
		return context.Background()
	}
	return sqldb.WithSetting(context.Background(), attSetting, tid)
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// visible returns the tenant ids of the att rows q sees in ctx.
func visible(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT tenant_id FROM att ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// wall fails unless q sees in ctx exactly tid's rows (none for "").
func wall(t *testing.T, ctx context.Context, q querier, tid string, msg string) {
	t.Helper()
	got, err := visible(ctx, q)
	require.NoError(t, err, msg)
	only(t, got, tid, msg)
}

// only fails unless got are exactly tid's rows.
func only(t *testing.T, got []string, tid string, msg string) {
	t.Helper()
	require.Len(t, got, attRows[tid], "%s: under %q saw %v", msg, tid, got)
	for _, g := range got {
		require.Equal(t, tid, g, "%s: under %q saw another tenant's row", msg, tid)
	}
}

// wallOrErr is wall for a statement allowed to fail (DISCARD ALL drops
// the statements pgx's cache believes prepared): if it returns rows,
// they are exactly tid's.
func wallOrErr(t *testing.T, ctx context.Context, q querier, tid string, msg string) {
	t.Helper()
	got, err := visible(ctx, q)
	if err != nil {
		t.Logf("%s: %v", msg, err)
		return
	}
	only(t, got, tid, msg)
}

// coherent fails when h's one connection believes its session holds a
// value that the server's session does not hold.
func coherent(t *testing.T, h *sql.DB, msg string) {
	t.Helper()
	if known := sqldb.SessionValue(t, h, attSetting); known != "\x00unknown" {
		require.Equal(t, known, sqldb.ServerValue(t, h, attSetting), "%s: the connection's belief differs from its session", msg)
	}
}

// bothModes runs attack on PostgreSQL as the subtests "session"
// (settings kept in the connection's session, the default) and
// "transaction" (socialcrm_settings=transaction: transaction-local).
func bothModes(t *testing.T, attack func(t *testing.T)) {
	if !havePostgres(t) {
		return
	}
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, attack)
	}
}

// sessionMode runs attack in the "session" subtest only: it attacks what
// a connection believes its session holds. With transaction-local
// settings a connection believes nothing, and a statement without a
// setting outside a transaction sends no reset — a SET of app.tenant_id
// that reached the session would stay for the connection's next users;
// there only the Guard, which refuses such statements, stands in the way.
func sessionMode(t *testing.T, attack func(t *testing.T)) {
	if !havePostgres(t) {
		return
	}
	t.Run("session", attack)
}

// havePostgres reports whether the PostgreSQL attacks run (SQLite has
// neither sessions nor row-level security).
func havePostgres(t *testing.T) bool {
	t.Helper()
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Log("not run: " + dbtest.EnvPostgres + " is not set")
		return false
	}
	return true
}

// TestAttackNoTenantBetween: on one connection, a read under A, then
// reads with no tenant through every way ordinary code has (database/sql,
// bun's query builder and raw queries, a prepared statement), then B:
// each sees only its own rows, none without a tenant.
func TestAttackNoTenantBetween(t *testing.T) { bothModes(t, attackNoTenantBetween) }

func attackNoTenantBetween(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	bdb := bun.NewDB(h, pgdialect.New())
	ctx := context.Background()
	st, err := h.PrepareContext(ctx, "SELECT tenant_id FROM att ORDER BY id")
	require.NoError(t, err)
	defer st.Close()
	type attRow struct {
		bun.BaseModel `bun:"table:att"`
		TenantID      string `bun:"tenant_id"`
		ID            int    `bun:"id,pk"`
	}
	none := map[string]func() (int, error){
		"database/sql": func() (int, error) { got, err := visible(ctx, h); return len(got), err },
		"bun select": func() (int, error) {
			var rs []attRow
			err := bdb.NewSelect().Model(&rs).Scan(ctx)
			return len(rs), err
		},
		"bun raw": func() (int, error) {
			var n int
			err := bdb.NewRaw("SELECT count(*) FROM att").Scan(ctx, &n)
			return n, err
		},
		"bun count": func() (int, error) {
			n, err := bdb.NewSelect().Model((*attRow)(nil)).Count(ctx)
			return int(n), err
		},
		"prepared": func() (int, error) {
			rows, err := st.QueryContext(ctx)
			if err != nil {
				return 0, err
			}
			n := 0
			for rows.Next() {
				n++
			}
			return n, rows.Close()
		},
		"bun update": func() (int, error) {
			res, err := bdb.NewUpdate().Model((*attRow)(nil)).Set("note = 'x'").Where("true").Exec(ctx)
			if err != nil {
				return 0, err
			}
			n, err := res.RowsAffected()
			return int(n), err
		},
	}
	for name, read := range none {
		for _, first := range []string{"A", "B"} {
			wall(t, as(first), h, first, "before "+name)
			wall(t, as(first), h, first, "before "+name+" (sent alone)")
			n, err := read()
			require.NoError(t, err, name)
			require.Zero(t, n, "%s with no tenant after %s", name, first)
			coherent(t, h, name)
			wall(t, as("C"), h, "C", "after "+name)
			// A prepared statement under a tenant, then under none.
			rows, err := st.QueryContext(as(first))
			require.NoError(t, err)
			k := 0
			for rows.Next() {
				k++
			}
			require.NoError(t, rows.Close())
			require.Equal(t, attRows[first], k)
			n, err = read()
			require.NoError(t, err)
			require.Zero(t, n, "%s with no tenant after a prepared statement of %s", name, first)
		}
	}
}

// TestAttackErrorsBetween: a statement of A that fails in every way a
// statement can — at parse, at plan, at run after rows were sent, on a
// constraint, cancelled mid-query, by a statement timeout — and then B
// and a statement with no tenant: each sees its own rows, and the
// connection never believes a value its session does not hold.
func TestAttackErrorsBetween(t *testing.T) { bothModes(t, attackErrorsBetween) }

func attackErrorsBetween(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	fails := map[string]func(ctx context.Context) error{
		"syntax": func(ctx context.Context) error { _, err := h.ExecContext(ctx, "SELEC tenant_id FROM att"); return err },
		"unknown column": func(ctx context.Context) error {
			_, err := h.QueryContext(ctx, "SELECT nope FROM att")
			return err
		},
		"duplicate key": func(ctx context.Context) error {
			_, err := h.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ($1, 1)", "A")
			return err
		},
		"other tenant's row": func(ctx context.Context) error {
			_, err := h.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('Z', 999)")
			return err
		},
		"error after first row": func(ctx context.Context) error {
			rows, err := h.QueryContext(ctx, "SELECT 1 / (g - 2) FROM generate_series(1, 3) g")
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			rows.Close()
			return rows.Err()
		},
		"rows closed early": func(ctx context.Context) error {
			rows, err := h.QueryContext(ctx, "SELECT tenant_id FROM att, generate_series(1, 5000)")
			if err != nil {
				return err
			}
			rows.Next()
			rows.Close()
			return errors.New("closed early")
		},
		"cancelled": func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			_, err := h.ExecContext(cctx, "SELECT pg_sleep(1)")
			return err
		},
		"cancelled while reading": func(ctx context.Context) error {
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			rows, err := h.QueryContext(cctx, "SELECT g, pg_sleep(0.02) FROM generate_series(1, 50) g")
			if err != nil {
				return err
			}
			rows.Next()
			cancel()
			for rows.Next() {
			}
			rows.Close()
			return errors.New("cancelled") // database/sql may report none
		},
		"statement timeout": func(ctx context.Context) error {
			conn, err := h.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "SET statement_timeout = 20"); err != nil {
				return err
			}
			_, err = conn.ExecContext(ctx, "SELECT pg_sleep(1)")
			if _, rerr := conn.ExecContext(context.Background(), "RESET statement_timeout"); rerr != nil {
				return rerr
			}
			return err
		},
	}
	for name, fail := range fails {
		for _, pair := range [][2]string{{"A", "A"}, {"A", "B"}, {"B", ""}, {"", "A"}} {
			held, failing := pair[0], pair[1]
			msg := fmt.Sprintf("%s of %q on a session holding %q", name, failing, held)
			wall(t, as(held), h, held, msg+": before")
			require.Error(t, fail(as(failing)), msg)
			coherent(t, h, msg)
			for _, next := range []string{failing, held, "", "C"} {
				wall(t, as(next), h, next, msg+": then "+next)
				coherent(t, h, msg+": then "+next)
			}
		}
	}
}

// TestAttackTransactions: transactions that roll back, commit, nest
// savepoints under other tenants and roll back to them, begun by hand or
// through bun, on the pool or a pinned connection: inside, every
// statement sees its own tenant's rows, and after, the next statements
// on the connection see their own.
func TestAttackTransactions(t *testing.T) { bothModes(t, attackTransactions) }

func attackTransactions(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	bdb := bun.NewDB(h, pgdialect.New())
	after := func(msg string) {
		t.Helper()
		coherent(t, h, msg)
		for _, tid := range []string{"", "B", "A", "", "C", "C"} {
			wall(t, as(tid), h, tid, msg+": then "+tid)
			coherent(t, h, msg+": then "+tid)
		}
	}
	boom := errors.New("boom")

	// bun's RunInTx under A that rolls back after its statements.
	for _, held := range []string{"", "A", "B"} {
		wall(t, as(held), h, held, "held")
		err := bdb.RunInTx(as("A"), nil, func(ctx context.Context, tx bun.Tx) error {
			wall(t, ctx, tx, "A", "in A's transaction")
			wall(t, as("B"), tx, "B", "B's statement in A's transaction")
			wall(t, context.Background(), tx, "A", "no-setting statement in A's transaction")
			return boom
		})
		require.ErrorIs(t, err, boom)
		after("rolled-back transaction of A, session held " + held)
	}

	// Nested savepoints under A then B, rolled back and released.
	for _, fail := range []bool{false, true} {
		err := bdb.RunInTx(as("A"), nil, func(ctx context.Context, tx bun.Tx) error {
			wall(t, ctx, tx, "A", "outer")
			// bun hands fn the outer transaction's context: each statement
			// carries its tenant itself, as tenancy.RunInTx does.
			err := tx.RunInTx(ctx, nil, func(_ context.Context, sp bun.Tx) error {
				wall(t, as("B"), sp, "B", "savepoint under B")
				err := sp.RunInTx(ctx, nil, func(_ context.Context, sp2 bun.Tx) error {
					wall(t, as("C"), sp2, "C", "inner savepoint under C")
					wall(t, context.Background(), sp2, "A", "inner savepoint, no-setting statement")
					return boom
				})
				require.ErrorIs(t, err, boom)
				wall(t, as("B"), sp, "B", "savepoint under B after C's rolled back")
				if fail {
					return boom
				}
				return nil
			})
			if fail {
				require.ErrorIs(t, err, boom)
			} else {
				require.NoError(t, err)
			}
			wall(t, context.Background(), tx, "A", "outer after the savepoint")
			wall(t, as("A"), tx, "A", "outer after the savepoint, sent alone")
			return nil
		})
		require.NoError(t, err)
		after(fmt.Sprintf("nested savepoints (fail %v)", fail))
	}

	// A savepoint whose statement failed, rolled back to, and the
	// transaction continued.
	err := bdb.RunInTx(as("A"), nil, func(ctx context.Context, tx bun.Tx) error {
		wall(t, ctx, tx, "A", "before the failing savepoint")
		err := tx.RunInTx(ctx, nil, func(_ context.Context, sp bun.Tx) error {
			_, err := sp.ExecContext(as("B"), "INSERT INTO att (tenant_id, id) VALUES ('B', 1)")
			return err
		})
		require.Error(t, err)
		wall(t, ctx, tx, "A", "after a failed savepoint of B")
		wall(t, as("B"), tx, "B", "B after a failed savepoint of B")
		return nil
	})
	require.NoError(t, err)
	after("failed savepoint")

	// BeginTx by hand under B, a statement under A in it, committed: the
	// session holds A afterwards.
	tx, err := h.BeginTx(as("B"), nil)
	require.NoError(t, err)
	wall(t, as("B"), tx, "B", "hand transaction")
	wall(t, as("A"), tx, "A", "A in B's hand transaction")
	require.NoError(t, tx.Commit())
	after("committed hand transaction")

	// A transaction begun with no tenant: nothing visible in it.
	tx, err = h.BeginTx(context.Background(), nil)
	require.NoError(t, err)
	wall(t, context.Background(), tx, "", "no-tenant transaction")
	wall(t, as("A"), tx, "A", "A in a no-tenant transaction")
	wall(t, context.Background(), tx, "", "no-tenant transaction after A")
	require.NoError(t, tx.Rollback())
	after("no-tenant transaction")

	// A read-only serializable transaction that commits after a failure.
	tx, err = h.BeginTx(as("C"), &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
	require.NoError(t, err)
	wall(t, as("C"), tx, "C", "read-only transaction")
	_, err = tx.ExecContext(as("B"), "UPDATE att SET note = 'x'")
	require.Error(t, err)
	require.Error(t, tx.Commit())
	after("failed read-only transaction")

	// Pinned connection: transactions and statements interleaved.
	conn, err := h.Conn(context.Background())
	require.NoError(t, err)
	wall(t, as("A"), conn, "A", "pinned")
	ctx := context.Background()
	tx, err = conn.BeginTx(as("B"), nil)
	require.NoError(t, err)
	wall(t, ctx, tx, "B", "pinned transaction")
	require.NoError(t, tx.Rollback())
	wall(t, ctx, conn, "", "pinned, after the transaction")
	wall(t, as("A"), conn, "A", "pinned A")
	require.NoError(t, conn.Close())
	after("pinned connection")
}

// TestAttackRawSession: code that holds the driver's connection
// (sql.Conn.Raw) sends statements that change the session's setting
// themselves — SET, SET SESSION, RESET, RESET ALL, DISCARD ALL,
// set_config, an update of pg_settings, the same in a pgx-style
// multi-statement text — and after each the connection must not believe
// a value its session does not hold, and the next statements see their
// own rows.
func TestAttackRawSession(t *testing.T) { sessionMode(t, attackRawSession) }

func attackRawSession(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	stmts := []string{
		"SET app.tenant_id = 'A'",
		"SET SESSION app.tenant_id = 'A'",
		"set app.tenant_id to 'A'",
		"  \n\tSET app.tenant_id = 'A'",
		"(SELECT set_config('app.tenant_id', 'A', false))",
		"SELECT pg_catalog.set_config('app.tenant_id', 'A', false)",
		"SELECT SET_CONFIG('app.tenant_id', 'A', false)",
		"UPDATE pg_settings SET setting = 'A' WHERE name = 'app.tenant_id'",
		"SELECT 1; SET app.tenant_id = 'A'",
		"RESET app.tenant_id",
		"RESET ALL",
		"DISCARD ALL",
		"WITH s AS (SELECT set_config('app.tenant_id', 'A', false)) SELECT * FROM s",
	}
	for _, s := range stmts { // DISCARD ALL last: it drops what pgx's cache believes prepared
		for _, held := range []string{"", "B", "A"} {
			for _, carried := range []string{"", "B"} {
				msg := fmt.Sprintf("%q under %q on a session holding %q", s, carried, held)
				wallOrErr(t, as(held), h, held, msg+": before")
				conn, err := h.Conn(context.Background())
				require.NoError(t, err)
				if err := conn.Raw(func(dc any) error {
					_, err := dc.(driver.ExecerContext).ExecContext(as(carried), s, nil)
					return err
				}); err != nil {
					t.Logf("%s: %v", msg, err) // what matters is what the connection believes after
				}
				require.NoError(t, conn.Close())
				coherent(t, h, msg)
				for _, next := range []string{held, "", "B", "A"} {
					wallOrErr(t, as(next), h, next, msg+": then "+next)
				}
			}
		}
	}
}

// TestAttackTerminatedBackend: the server ends the connection's backend
// between statements, in and out of transactions; the pool's next
// connection must not be believed to hold any value, and every statement
// after sees its own rows.
func TestAttackTerminatedBackend(t *testing.T) { bothModes(t, attackTerminatedBackend) }

func attackTerminatedBackend(t *testing.T) {
	h, db := rlsHandle(t, 1)
	admin := db.Admin(t) // may end any backend
	ctx := context.Background()
	kill := func() {
		t.Helper()
		var pid int
		require.NoError(t, h.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		_, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(?)", pid)
		require.NoError(t, err)
	}
	retry := func(tid string, msg string) {
		t.Helper()
		var got []string
		var err error
		for range 3 {
			if got, err = visible(as(tid), h); err == nil {
				break
			}
		}
		require.NoError(t, err, msg)
		only(t, got, tid, msg)
	}
	for _, held := range []string{"A", "B"} {
		for _, next := range []string{"", "A", "B"} {
			wall(t, as(held), h, held, "before the kill")
			kill()
			retry(next, fmt.Sprintf("after the kill of a session holding %q", held))
			coherent(t, h, "after the kill")
			wall(t, as(held), h, held, "after the kill, back to "+held)
		}
	}
	// Killed inside a transaction under A after a set, then B.
	tx, err := h.BeginTx(as("A"), nil)
	require.NoError(t, err)
	wall(t, as("A"), tx, "A", "in the transaction")
	var pid int
	require.NoError(t, tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = admin.ExecContext(ctx, "SELECT pg_terminate_backend(?)", pid)
	require.NoError(t, err)
	_, err = visible(as("A"), tx)
	require.Error(t, err)
	require.Error(t, tx.Commit())
	retry("", "after a transaction killed")
	retry("B", "after a transaction killed")
	coherent(t, h, "after a transaction killed")
}

// TestAttackConcurrent: many goroutines on a pool of three connections,
// thousands of operations under random tenants (or none), some in
// transactions, some prepared, some cancelled at random moments, each
// checking that every row it gets is its tenant's and that it gets all
// of them.
func TestAttackConcurrent(t *testing.T) { bothModes(t, attackConcurrent) }

func attackConcurrent(t *testing.T) {
	h, _ := rlsHandle(t, 3)
	bdb := bun.NewDB(h, pgdialect.New())
	st, err := h.PrepareContext(context.Background(), "SELECT tenant_id FROM att ORDER BY id")
	require.NoError(t, err)
	defer st.Close()
	tenants := []string{"A", "B", "C", ""}
	ops := 3000
	if testing.Short() {
		ops = 600
	}
	const workers = 8
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	check := func(op, tid string, got []string, err error) {
		if err != nil {
			return // a cancelled or failed operation shows nothing
		}
		if len(got) != attRows[tid] {
			fail("%s under %q saw %v", op, tid, got)
		}
		for _, g := range got {
			if g != tid {
				fail("%s under %q saw a row of %q", op, tid, g)
			}
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range ops / workers {
				tid := tenants[r.IntN(len(tenants))]
				ctx, cancel := context.WithCancel(as(tid))
				if r.IntN(8) == 0 {
					time.AfterFunc(time.Duration(r.IntN(1500))*time.Microsecond, cancel)
				}
				switch r.IntN(7) {
				case 0, 1:
					got, err := visible(ctx, h)
					check("read", tid, got, err)
				case 2:
					rows, err := st.QueryContext(ctx)
					var got []string
					if err == nil {
						for rows.Next() {
							var s string
							_ = rows.Scan(&s)
							got = append(got, s)
						}
						rows.Close()
						err = rows.Err()
					}
					check("prepared", tid, got, err)
				case 3:
					_, _ = h.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ($1, 1)", tid) // always fails
					got, err := visible(ctx, h)
					check("read after a failure", tid, got, err)
				case 4:
					tx, err := h.BeginTx(ctx, nil)
					if err != nil {
						break
					}
					other := tenants[r.IntN(len(tenants))]
					got, err := visible(ctx, tx)
					check("tx", tid, got, err)
					want := other
					if other == "" {
						want = tid // a statement with no setting runs under the transaction's
					}
					got, err = visible(as(other), tx)
					check("tx, other statement", want, got, err)
					got, err = visible(context.Background(), tx)
					check("tx, no-setting statement", tid, got, err) // runs under the transaction's
					if r.IntN(2) == 0 {
						_ = tx.Commit()
					} else {
						_ = tx.Rollback()
					}
				case 6:
					// Nested savepoints under other tenants, some failing.
					inner := tenants[r.IntN(len(tenants))]
					_ = bdb.RunInTx(ctx, nil, func(_ context.Context, tx bun.Tx) error {
						got, err := visible(ctx, tx)
						check("outer", tid, got, err)
						err = tx.RunInTx(ctx, nil, func(_ context.Context, sp bun.Tx) error {
							want := inner
							if inner == "" {
								want = tid
							}
							got, err := visible(as(inner), sp)
							check("savepoint", want, got, err)
							if r.IntN(2) == 0 {
								_, err = sp.ExecContext(as(inner), "SELECT 1/0")
							}
							return err
						})
						got, err = visible(ctx, tx)
						check("outer after the savepoint", tid, got, err)
						return err
					})
				case 5:
					res, err := h.ExecContext(ctx, "UPDATE att SET note = $1", tid)
					if err == nil {
						n, _ := res.RowsAffected()
						if int(n) != attRows[tid] {
							fail("update under %q touched %d rows", tid, n)
						}
					}
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	require.Empty(t, failures)
	// No write crossed the wall: each tenant's note is its own or unset.
	for _, tid := range []string{"A", "B", "C"} {
		rows, err := h.QueryContext(as(tid), "SELECT tenant_id, coalesce(note, '') FROM att")
		require.NoError(t, err)
		for rows.Next() {
			var owner, note string
			require.NoError(t, rows.Scan(&owner, &note))
			require.Contains(t, []string{"", owner}, note, "row of %s written under %q", owner, note)
		}
		require.NoError(t, rows.Close())
	}
}
