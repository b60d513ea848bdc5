package sqldb_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// pgHandle returns a handle of this package with one connection on a
// fresh PostgreSQL schema, and the schema's test database; nil without
// PostgreSQL.
func pgHandle(t *testing.T) (*sql.DB, *dbtest.DB) {
	t.Helper()
	if !havePostgres(t) {
		return nil, nil
	}
	db := dbtest.Postgres(t)
	c, err := sqldb.PostgresConnector(db.OwnerDSN())
	require.NoError(t, err)
	h := sql.OpenDB(c)
	t.Cleanup(func() { h.Close() })
	h.SetMaxOpenConns(1)
	return h, db
}

// setting reads the session's value of name on h.
func setting(t *testing.T, ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) string {
	t.Helper()
	var v sql.NullString
	require.NoError(t, q.QueryRowContext(ctx, "SELECT current_setting($1, true)", name).Scan(&v))
	return v.String
}

// TestSessionSettingSentOnlyWhenItChanges: a statement under a setting the
// session holds already is sent alone; one under another value, or under
// none after one, sets it in its round trip; every statement sees exactly
// its own value, and the session holds it afterwards (set_config(…,
// false)).
func TestSessionSettingSentOnlyWhenItChanges(t *testing.T) {
	h, _ := pgHandle(t)
	if h == nil {
		return
	}
	ctx := context.Background()
	a := sqldb.WithSetting(ctx, "app.s", "A")
	b := sqldb.WithSetting(ctx, "app.s", "B")
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	require.Equal(t, "A", sqldb.SessionValue(t, h, "app.s"), "known after its implicit transaction committed")
	trips, _ := sqldb.RoundTrips(h)
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	after, _ := sqldb.RoundTrips(h)
	require.EqualValues(t, 1, after-trips)
	require.Equal(t, "B", setting(t, b, h, "app.s"))
	require.Equal(t, "", setting(t, ctx, h, "app.s"), "a statement without the setting runs with it empty")
	require.Equal(t, "", sqldb.SessionValue(t, h, "app.s"))
	require.Equal(t, "A", setting(t, a, h, "app.s"))

	// A prepared statement runs as the connection's statements do.
	st, err := h.PrepareContext(ctx, "SELECT current_setting('app.s', true)")
	require.NoError(t, err)
	defer st.Close()
	var v sql.NullString
	require.NoError(t, st.QueryRowContext(b).Scan(&v))
	require.Equal(t, "B", v.String)
	require.NoError(t, st.QueryRowContext(ctx).Scan(&v))
	require.Equal(t, "", v.String, "the prepared statement without a setting does not run under B")
}

// TestSessionSettingForgotten: whenever the session might not hold what
// the connection last set — a failed statement (its implicit transaction
// rolled back the set_config), a rolled-back transaction, a rollback to a
// savepoint, a commit that rolled back, a cancelled statement, a
// statement that sets a setting itself or leaves a transaction open —
// the connection forgets, and the next statement sets its value again.
func TestSessionSettingForgotten(t *testing.T) {
	h, db := pgHandle(t)
	if h == nil {
		return
	}
	ctx := context.Background()
	a := sqldb.WithSetting(ctx, "app.s", "A")
	b := sqldb.WithSetting(ctx, "app.s", "B")
	_, err := h.ExecContext(ctx, "CREATE TABLE forget_test (id INT PRIMARY KEY)")
	require.NoError(t, err)
	_, err = h.ExecContext(ctx, "INSERT INTO forget_test VALUES (1)")
	require.NoError(t, err)
	unknown := "\x00unknown"

	// A failed statement under B: its set_config rolled back with it.
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	_, err = h.ExecContext(b, "INSERT INTO forget_test VALUES (1)")
	require.Error(t, err)
	require.Equal(t, unknown, sqldb.SessionValue(t, h, "app.s"))
	require.Equal(t, "A", sqldb.ServerValue(t, h, "app.s"), "the server rolled B back: the session still holds A")
	require.Equal(t, "", setting(t, ctx, h, "app.s"))

	// A transaction that set B and rolled back.
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	tx, err := h.BeginTx(b, nil)
	require.NoError(t, err)
	require.Equal(t, "B", setting(t, b, tx, "app.s"))
	require.NoError(t, tx.Rollback())
	require.Equal(t, unknown, sqldb.SessionValue(t, h, "app.s"))
	require.Equal(t, "", setting(t, ctx, h, "app.s"))

	// A savepoint rolled back after a set_config.
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	tx, err = h.BeginTx(a, nil)
	require.NoError(t, err)
	require.Equal(t, "A", setting(t, a, tx, "app.s"))
	_, err = tx.ExecContext(a, "SAVEPOINT x")
	require.NoError(t, err)
	require.Equal(t, "B", setting(t, b, tx, "app.s"))
	_, err = tx.ExecContext(a, "ROLLBACK TO SAVEPOINT x")
	require.NoError(t, err)
	require.Equal(t, "B", setting(t, b, tx, "app.s"), "B is set again: the rollback undid it")
	require.Equal(t, "A", setting(t, ctx, tx, "app.s"), "in a transaction begun under A, a statement under none runs under A")
	require.NoError(t, tx.Commit())

	// A commit that rolled back: the transaction failed after setting B.
	tx, err = h.BeginTx(b, nil)
	require.NoError(t, err)
	require.Equal(t, "B", setting(t, b, tx, "app.s"))
	_, err = tx.ExecContext(b, "INSERT INTO forget_test VALUES (1)")
	require.Error(t, err)
	require.ErrorIs(t, tx.Commit(), pgx.ErrTxCommitRollback)
	require.Equal(t, unknown, sqldb.SessionValue(t, h, "app.s"))
	require.Equal(t, "A", setting(t, a, h, "app.s"))

	// A cancelled statement under B.
	cctx, cancel := context.WithTimeout(b, 50*time.Millisecond)
	_, err = h.ExecContext(cctx, "SELECT pg_sleep(2) FROM forget_test")
	cancel()
	require.Error(t, err)
	require.Equal(t, "", setting(t, ctx, h, "app.s"))
	require.Equal(t, "A", setting(t, a, h, "app.s"))

	// A statement that sets the setting itself, and one that opens a
	// transaction of its own on a pinned connection.
	conn, err := h.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "SET app.s = 'X'")
	require.NoError(t, err)
	require.Equal(t, "A", setting(t, a, conn, "app.s"))
	require.Equal(t, "", setting(t, ctx, conn, "app.s"))
	require.Equal(t, "A", setting(t, a, conn, "app.s"))
	_, err = conn.ExecContext(ctx, "BEGIN")
	require.NoError(t, err)
	require.Equal(t, "", setting(t, ctx, conn, "app.s"))
	_, err = conn.ExecContext(ctx, "ROLLBACK") // the session holds A again
	require.NoError(t, err)
	require.Equal(t, "", setting(t, ctx, conn, "app.s"), "a statement after a transaction the package did not begin sets its value again")
	require.NoError(t, conn.Close())

	// A connection closed under the handle: the next one holds nothing.
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	var pid int
	require.NoError(t, h.QueryRowContext(a, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = db.Owner.ExecContext(ctx, "SELECT pg_terminate_backend(?)", pid)
	require.NoError(t, err)
	var v sql.NullString
	for range 3 { // the first statements may meet the dead connection
		if err = h.QueryRowContext(ctx, "SELECT current_setting('app.s', true)").Scan(&v); err == nil {
			break
		}
	}
	require.NoError(t, err)
	require.Equal(t, "", v.String)
}

// TestDriverConnectionNotReachable: code that holds the driver's
// connection (sql.Conn.Raw) reaches neither pgx's connection nor its
// database/sql adapter — no exported field, no method returning them — so
// it cannot send a statement past the setting tracking; a transaction it
// begins through the driver's Begin is tracked.
func TestDriverConnectionNotReachable(t *testing.T) {
	h, _ := pgHandle(t)
	if h == nil {
		return
	}
	ctx := context.Background()
	a := sqldb.WithSetting(ctx, "app.s", "A")
	require.Equal(t, "A", setting(t, a, h, "app.s"))
	conn, err := h.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Raw(func(dc any) error {
		_, isAdapter := dc.(*stdlib.Conn)
		require.False(t, isAdapter)
		_, hasPgx := dc.(interface{ Conn() *pgx.Conn })
		require.False(t, hasPgx)
		v := reflect.ValueOf(dc).Elem()
		for i := range v.NumField() {
			require.False(t, v.Type().Field(i).IsExported(), "field %s", v.Type().Field(i).Name)
		}
		// A transaction through the driver's Begin, rolled back after a
		// statement under B.
		tx, err := dc.(driver.Conn).Begin() //nolint:staticcheck // what Raw's holder may call
		require.NoError(t, err)
		q := dc.(driver.QueryerContext)
		rows, err := q.QueryContext(sqldb.WithSetting(ctx, "app.s", "B"), "SELECT 1", nil)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
		return tx.Rollback()
	}))
	require.Equal(t, "", setting(t, ctx, conn, "app.s"))
}

// TestRowsConvertAsAdapter: the rows of a statement this package sends
// (under a setting) convert every column type to what pgx's database/sql
// adapter gives for the same statement.
func TestRowsConvertAsAdapter(t *testing.T) {
	h, _ := pgHandle(t)
	if h == nil {
		return
	}
	ctx := context.Background()
	q := `SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 2.5::float8, 12.345::numeric, true, 'x'::text, 'y'::varchar,
		'\x0102'::bytea, '2024-02-29'::date, '2024-02-29 10:11:12.5'::timestamp, '2024-02-29 10:11:12.5+02'::timestamptz,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"a":1}'::jsonb, '{"b":2}'::json, ARRAY['p','q']::text[], ARRAY[1,2]::int8[],
		'1 day 2 hours'::interval, '10.0.0.1/32'::inet, 'c'::char(3), 42::oid, NULL::text, '{"k":"v"}'::jsonb -> 'k', 7::money`
	scan := func(ctx context.Context) []any {
		rows, err := h.QueryContext(ctx, q)
		require.NoError(t, err)
		defer rows.Close()
		cols, err := rows.Columns()
		require.NoError(t, err)
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.True(t, rows.Next(), "%v", rows.Err())
		require.NoError(t, rows.Scan(ptrs...))
		require.NoError(t, rows.Err())
		return vals
	}
	want := scan(ctx)                           // no setting, none held: the adapter's way
	for _, s := range []string{"1", "1", "2"} { // sent with its set_config, then alone, then with it
		got := scan(sqldb.WithSetting(ctx, "app.s", s))
		require.Equal(t, len(want), len(got))
		for i := range want {
			require.Equal(t, want[i], got[i], "column %d", i+1)
		}
	}
	require.Equal(t, want, scan(ctx), "no setting again: sent with its reset")
}

// TestTransactionLocalSettings: a handle opened with
// socialcrm_settings=transaction (for a transaction-pooling proxy) keeps
// nothing in the session: every statement under a setting carries it
// transaction-local in its one round trip, and the session holds nothing
// after it; in a transaction the setting holds for the statements under
// it. Any other value of the parameter is refused.
func TestTransactionLocalSettings(t *testing.T) {
	_, db := pgHandle(t)
	if db == nil {
		return
	}
	_, err := sqldb.PostgresConnector(db.OwnerDSN() + "&socialcrm_settings=sometimes")
	require.ErrorContains(t, err, "socialcrm_settings")
	c, err := sqldb.PostgresConnector(db.OwnerDSN() + "&socialcrm_settings=transaction")
	require.NoError(t, err)
	h := sql.OpenDB(c)
	defer h.Close()
	h.SetMaxOpenConns(1)
	ctx := context.Background()
	a := sqldb.WithSetting(ctx, "app.s", "A")
	for range 2 { // warm: connected, statements prepared, the adapter's first reuse ping done
		require.Equal(t, "A", setting(t, a, h, "app.s"))
	}
	for range 2 {
		trips, _ := sqldb.RoundTrips(h)
		require.Equal(t, "A", setting(t, a, h, "app.s"))
		after, _ := sqldb.RoundTrips(h)
		require.EqualValues(t, 1, after-trips)
		require.Equal(t, "", sqldb.ServerValue(t, h, "app.s"), "nothing outlives the statement")
		require.Equal(t, "\x00unknown", sqldb.SessionValue(t, h, "app.s"))
	}
	tx, err := h.BeginTx(a, nil)
	require.NoError(t, err)
	require.Equal(t, "A", setting(t, ctx, tx, "app.s"))
	require.Equal(t, "B", setting(t, sqldb.WithSetting(ctx, "app.s", "B"), tx, "app.s"))
	require.Equal(t, "A", setting(t, a, tx, "app.s"))
	require.NoError(t, tx.Commit())
	require.Equal(t, "", setting(t, ctx, h, "app.s"))
}
