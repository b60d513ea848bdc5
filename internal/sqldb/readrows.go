package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
)

// Rows are the rows of one statement as ReadRows hands them to its reader,
// straight from pgx: Next advances to the next row (false after the last
// one, or on an error, which the statement's QueryContext then returns),
// and Scan copies the current row's columns into dest as pgx scans them:
// into pointers to strings, byte slices, integers and times, and into
// values with pgx's scanning methods — ScanBytes(v []byte) error among
// them, which is handed the column's bytes in the driver's memory (nil for
// NULL), valid only during the call. A pointer to a string, an integer or
// a time cannot take NULL.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
}

type readerKey struct{}

// ReadRows returns a context under which the rows of a statement sent
// through a PostgreSQL handle of this package with a setting (WithSetting:
// every tenant-scoped read) are read by read, on the driver's side of
// database/sql, instead of passing one by one through database/sql's
// Rows: read is called once, during the statement's QueryContext, with
// the rows, and the *sql.Rows QueryContext returns hold none. Each row
// read through database/sql is converted into driver values (a string, a
// boxed time, a copied byte slice per column) and then again into the
// caller's variables, under a lock per row and per Scan; read through
// Rows it is decoded once, into the caller's variables.
//
// Everything else about the statement is as without ReadRows: the query
// hooks and the Check see it, it carries its setting the same way, and
// its error (the statement's, or read's own) is QueryContext's. read must
// not run statements of the handle: the connection is busy until it
// returns. A statement of another handle, or one this package leaves to
// pgx's database/sql adapter (a statement without a setting, outside a
// transaction of this package), returns its rows through database/sql as
// always, and read is not called — so a caller scans the *sql.Rows
// QueryContext returns in every case, and finds them empty when read ran.
func ReadRows(ctx context.Context, read func(Rows) error) context.Context {
	return context.WithValue(ctx, readerKey{}, read)
}

// readBy hands r's rows to read (see ReadRows), then ends the statement
// as Close does, and returns rows that hold none (the columns' names
// only) or the error of read or of the statement.
func (r *pgRows) readBy(read func(Rows) error) (driver.Rows, error) {
	err := read(r.rows)
	fds := r.rows.FieldDescriptions()
	cols := make([]string, len(fds))
	for i, fd := range fds {
		cols[i] = fd.Name
	}
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql would run the statement again, and read with it.
		err = readError{err}
	}
	if cerr := r.Close(); err == nil && cerr != nil {
		// Rows were read: an error now is not one to retry on another
		// connection.
		if errors.Is(cerr, driver.ErrBadConn) {
			cerr = readError{cerr}
		}
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return readRows(cols), nil
}

// readError hides driver.ErrBadConn from database/sql, which would retry.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// readRows are the rows a statement read by ReadRows returns to
// database/sql: its columns, and no row.
type readRows []string

func (r readRows) Columns() []string         { return r }
func (readRows) Close() error                { return nil }
func (readRows) Next(_ []driver.Value) error { return io.EOF }
