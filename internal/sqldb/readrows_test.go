package sqldb_test

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// nullText scans a text column handed to a ReadRows reader, NULL as "".
type nullText struct{ p *string }

func (n nullText) ScanBytes(v []byte) error {
	*n.p = string(v)
	return nil
}

type readRow struct {
	n    int64
	t, o string
	at   time.Time
	b    []byte
}

// TestReadRows: on PostgreSQL a statement read with ReadRows under a
// setting hands its rows to the reader — the same values database/sql
// scans, bytes in the caller's memory, NULL through a scanner — and the
// *sql.Rows it returns hold none; without a setting, and on SQLite, the
// reader is not called and the rows come through database/sql as before.
// The setting went with the statement, and the connection keeps serving.
func TestReadRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		h := db.ReopenOwner(t)
		h.SetMaxOpenConns(1)
		ctx := context.Background()
		typ := "BLOB"
		if db.Name == "postgres" {
			typ = "BYTEA"
		}
		_, err := h.ExecContext(ctx, "CREATE TABLE read_rows (n BIGINT NOT NULL, t TEXT NOT NULL, o TEXT, at TIMESTAMP NOT NULL, b "+typ+")")
		require.NoError(t, err)
		at := time.Date(2026, 12, 7, 13, 4, 5, 678000, time.UTC)
		want := []readRow{
			{0, "a", "x", at, bytes.Repeat([]byte{1}, 40)},
			{1, "b", "", at.Add(time.Hour), bytes.Repeat([]byte{2}, 40)},
			{2, "c", "z", at.Add(2 * time.Hour), nil},
		}
		for _, r := range want {
			var o any
			if r.o != "" {
				o = r.o
			}
			var b any
			if r.b != nil {
				b = r.b
			}
			_, err := h.ExecContext(ctx, "INSERT INTO read_rows (n, t, o, at, b) VALUES (?, ?, ?, ?, ?)", r.n, r.t, o, r.at, b)
			require.NoError(t, err)
		}
		const q = "SELECT n, t, o, at, b FROM read_rows WHERE n >= 0 ORDER BY n"
		// read runs q under ctx with a reader, and returns the rows the
		// reader got, whether it ran, and the rows database/sql returned.
		read := func(ctx context.Context) (byReader, bySQL []readRow, called int) {
			t.Helper()
			reader := func(rows sqldb.Rows) error {
				called++
				for rows.Next() {
					var r readRow
					if err := rows.Scan(&r.n, &r.t, nullText{&r.o}, &r.at, &r.b); err != nil {
						return err
					}
					byReader = append(byReader, r)
				}
				return nil
			}
			rows, err := h.QueryContext(sqldb.ReadRows(ctx, reader), q)
			require.NoError(t, err)
			for rows.Next() {
				var r readRow
				var o *string
				require.NoError(t, rows.Scan(&r.n, &r.t, &o, &r.at, &r.b))
				if o != nil {
					r.o = *o
				}
				bySQL = append(bySQL, r)
			}
			require.NoError(t, rows.Err())
			require.NoError(t, rows.Close())
			return byReader, bySQL, called
		}
		same := func(got []readRow) {
			t.Helper()
			require.Len(t, got, len(want))
			for i, r := range got {
				require.Equal(t, want[i].n, r.n)
				require.Equal(t, want[i].t, r.t)
				require.Equal(t, want[i].o, r.o)
				require.True(t, want[i].at.Equal(r.at), "row %d: %v, want %v", i, r.at, want[i].at)
				require.Equal(t, want[i].b, r.b)
			}
		}
		_, plainRows, called := read(ctx) // no setting: database/sql's rows
		require.Zero(t, called, "no setting: the reader is not called")
		same(plainRows)

		set := sqldb.WithSetting(ctx, "app.read_rows", "1")
		for round := range 2 { // the setting sent, then held
			byReader, bySQL, called := read(set)
			if db.Name != "postgres" {
				require.Zero(t, called, "SQLite: the reader is not called")
				same(bySQL)
				continue
			}
			require.Equal(t, 1, called, "round %d", round)
			require.Empty(t, bySQL, "round %d: database/sql returns no row the reader read", round)
			same(byReader)
			for i, r := range byReader {
				require.True(t, r.at.Equal(plainRows[i].at) && r.at.Location() == plainRows[i].at.Location(),
					"the reader's time is database/sql's: %v, %v", r.at, plainRows[i].at)
			}
		}
		if db.Name != "postgres" {
			return
		}
		// The same statement on the same connection into variables of
		// other types: its columns planned again for them.
		var other []readRow
		rows, err := h.QueryContext(sqldb.ReadRows(set, func(rows sqldb.Rows) error {
			for rows.Next() {
				var r readRow
				var n int32
				var b *[]byte
				if err := rows.Scan(&n, nullText{&r.t}, nullText{&r.o}, &r.at, &b); err != nil {
					return err
				}
				if r.n = int64(n); b != nil {
					r.b = *b
				}
				other = append(other, r)
			}
			return nil
		}), q)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
		same(other)

		var v string
		require.NoError(t, h.QueryRowContext(set, "SELECT current_setting('app.read_rows', true)").Scan(&v))
		require.Equal(t, "1", v, "the statements went with their setting")

		// A reader's error is the statement's, once (database/sql does not
		// run it again, even for driver.ErrBadConn), and the connection
		// serves the next statement.
		for _, fail := range []error{errors.New("reader failed"), driver.ErrBadConn} {
			calls := 0
			_, err := h.QueryContext(sqldb.ReadRows(set, func(rows sqldb.Rows) error {
				calls++
				rows.Next()
				return fail
			}), q)
			require.Error(t, err)
			require.Equal(t, fail.Error(), err.Error())
			require.Equal(t, 1, calls)
			byReader, _, _ := read(set)
			same(byReader)
		}

		// The statement's own error, raised while its rows are read.
		_, err = h.QueryContext(sqldb.ReadRows(set, func(rows sqldb.Rows) error {
			for rows.Next() {
			}
			return nil
		}), "SELECT 1 / (n - 2) FROM read_rows WHERE n >= 0 ORDER BY n")
		require.ErrorContains(t, err, "division by zero")
		byReader, _, _ := read(set)
		same(byReader)

		// In a transaction of this package, its BEGIN sent with the read.
		tx, err := h.BeginTx(set, nil)
		require.NoError(t, err)
		var inTx []readRow
		rows, err = tx.QueryContext(sqldb.ReadRows(set, func(rows sqldb.Rows) error {
			for rows.Next() {
				var r readRow
				if err := rows.Scan(&r.n, &r.t, nullText{&r.o}, &r.at, &r.b); err != nil {
					return err
				}
				inTx = append(inTx, r)
			}
			return nil
		}), q)
		require.NoError(t, err)
		require.False(t, rows.Next())
		require.NoError(t, rows.Close())
		require.NoError(t, tx.Commit())
		same(inTx)
	})
}
