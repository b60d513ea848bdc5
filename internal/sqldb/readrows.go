package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
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
// the rows, and the *sql.Rows QueryContext returns hold none (and name no
// column). Each row read through database/sql is converted into driver
// values (a string, a boxed time, a copied byte slice per column) and then
// again into the caller's variables, under a lock per row and per Scan;
// read through Rows it is decoded once, into the caller's variables, with
// scan plans the connection keeps for the statement's text.
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

// readBy hands r's rows to read (see ReadRows), scanned with the plans
// the connection keeps for query (the statement as sent), then ends the
// statement as Close does, and returns rows that hold none or the error of
// read or of the statement.
func (r *pgRows) readBy(query string, read func(Rows) error) (driver.Rows, error) {
	err := read(&scanRows{Rows: r.rows, c: r.c, query: query})
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
	return readRows{}, nil
}

// readError hides driver.ErrBadConn from database/sql, which would retry.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// readRows are the rows a statement read by ReadRows returns to
// database/sql: no row, and no column names.
type readRows struct{}

func (readRows) Columns() []string           { return nil }
func (readRows) Close() error                { return nil }
func (readRows) Next(_ []driver.Value) error { return io.EOF }

// scanRows are pgx's rows of a statement, scanned with plans the
// connection keeps by the statement's text: pgx plans each statement's
// columns anew (7% of the client's CPU in the profile of a contact get).
type scanRows struct {
	pgx.Rows
	c     *conn
	query string
	plans *scanPlans // nil until the first row
}

// scanPlans are the plans scanning the columns of one statement's rows
// into destinations of the types they were made for.
type scanPlans struct {
	oids    []uint32
	formats []int16
	types   []reflect.Type
	plans   []pgtype.ScanPlan
}

// maxScanPlans bounds the statements whose plans a connection keeps.
const maxScanPlans = 256

func (r *scanRows) Scan(dest ...any) error {
	fds := r.Rows.FieldDescriptions()
	vals := r.Rows.RawValues()
	if len(fds) != len(dest) || len(vals) != len(dest) {
		return r.Rows.Scan(dest...) // pgx's error
	}
	m := r.c.pgx.TypeMap()
	if r.plans == nil {
		r.plans = r.c.scanPlans(m, r.query, fds, dest)
	}
	p := r.plans
	for i, d := range dest {
		if d == nil {
			continue
		}
		if t := reflect.TypeOf(d); p.types[i] != t {
			p.plans[i], p.types[i] = m.PlanScan(p.oids[i], p.formats[i], d), t
		}
		if err := p.plans[i].Scan(vals[i], d); err != nil {
			return pgx.ScanArgError{ColumnIndex: i, FieldName: fds[i].Name, Err: err}
		}
	}
	return nil
}

// scanPlans returns the plans the connection keeps for query's columns
// fds scanned into dest's types, planning them when it keeps none that
// match.
func (c *conn) scanPlans(m *pgtype.Map, query string, fds []pgconn.FieldDescription, dest []any) *scanPlans {
	if p, ok := c.plans[query]; ok && len(p.plans) == len(fds) {
		match := true
		for i, fd := range fds {
			if p.oids[i] != fd.DataTypeOID || p.formats[i] != fd.Format || p.types[i] != reflect.TypeOf(dest[i]) {
				match = false
				break
			}
		}
		if match {
			return p
		}
	}
	p := &scanPlans{oids: make([]uint32, len(fds)), formats: make([]int16, len(fds)),
		types: make([]reflect.Type, len(fds)), plans: make([]pgtype.ScanPlan, len(fds))}
	for i, fd := range fds {
		p.oids[i], p.formats[i], p.types[i] = fd.DataTypeOID, fd.Format, reflect.TypeOf(dest[i])
		p.plans[i] = m.PlanScan(fd.DataTypeOID, fd.Format, dest[i])
	}
	if c.plans == nil || len(c.plans) >= maxScanPlans {
		c.plans = make(map[string]*scanPlans)
	}
	c.plans[query] = p
	return p
}
