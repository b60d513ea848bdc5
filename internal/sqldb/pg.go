package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgresConnector returns the connector Postgres opens its handle with:
// pgx through its database/sql adapter; the literals bun writes into a
// statement turned into parameters where their type is certain (see
// params), so that each statement shape is prepared once per connection
// (pgx's statement cache) and runs in one round trip after that; a
// statement left whole runs unprepared, in one round trip too;
// transaction-local settings (WithSetting) and a deferred BEGIN sent in
// the round trip of the statement they govern; and the Check (SetCheck)
// run before every statement, on the statement as bun wrote it.
func PostgresConnector(dsn string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: postgres dsn: %w", err)
	}
	if u, err := url.Parse(dsn); err == nil && u.Query().Has("default_query_exec_mode") {
		return nil, fmt.Errorf("sqldb: postgres dsn: default_query_exec_mode is chosen per statement")
	}
	c := &connector{}
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: nc, trips: &c.trips}, nil
	}
	c.base = stdlib.GetConnector(*cfg)
	return c, nil
}

// RoundTrips returns how many round trips db's connections have made to
// the server since they were opened — request messages sent after the
// last response was read — and whether db is a PostgreSQL handle of this
// package. Benchmarks and tests count with it.
func RoundTrips(db *sql.DB) (int64, bool) {
	d, ok := db.Driver().(checkingDriver)
	if !ok {
		return 0, false
	}
	return d.c.trips.Load(), true
}

// countingConn counts round trips: a write after a read (or the first
// write) begins one. pgx reads on a background goroutine while the caller
// writes, so the state is atomic.
type countingConn struct {
	net.Conn
	trips   *atomic.Int64
	writing atomic.Bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	if c.writing.CompareAndSwap(false, true) {
		c.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.writing.Store(false)
	return c.Conn.Read(b)
}

// setting is a transaction-local server setting carried by a context.
type setting struct{ name, value string }

type settingKey struct{}

// WithSetting returns a context under which statements sent through a
// PostgreSQL handle of this package run with the server setting name set
// to value for their transaction only (set_config(name, value, true)):
//
//   - a statement outside a transaction is sent in one round trip with the
//     set_config before it, as one implicit transaction, so the setting
//     ends with the statement;
//   - a transaction begun with it (BeginTx) sends its BEGIN and the
//     set_config together with its first statement, and the setting holds
//     until the transaction ends; a statement in a transaction that runs
//     under another value sets it first, for the rest of the transaction.
//
// Nothing is sent for the setting on its own, and it never outlives the
// transaction, so nothing leaks to the next user of a pooled connection.
// On other handles the context changes nothing: check Folds first.
func WithSetting(ctx context.Context, name, value string) context.Context {
	return context.WithValue(ctx, settingKey{}, setting{name, value})
}

type locksKey struct{}

// WithAdvisoryLocks returns a context under which each statement sent
// through a PostgreSQL handle of this package is preceded, in its round
// trip, by pg_advisory_xact_lock of each of keys in the order given (give
// them in one order everywhere, so that two statements never wait on each
// other in a cycle). The locks are held until the transaction ends: outside
// a transaction, the implicit one of that round trip, which the statement
// ends; in one, until its COMMIT or ROLLBACK. The statement runs after the
// locks are taken, so under READ COMMITTED it sees what was committed
// before. On other handles the context changes nothing: check Folds first.
func WithAdvisoryLocks(ctx context.Context, keys []int64) context.Context {
	return context.WithValue(ctx, locksKey{}, keys)
}

// Folds reports whether db is a PostgreSQL handle of this package, on
// which WithSetting and WithAdvisoryLocks take effect.
func Folds(db *sql.DB) bool {
	d, ok := db.Driver().(checkingDriver)
	return ok && d.c.pg()
}

func (c *connector) pg() bool {
	_, ok := c.base.(interface{ Driver() driver.Driver }).Driver().(*stdlib.Driver)
	return ok
}

// pgTx is a transaction whose BEGIN waits for its first statement.
type pgTx struct {
	c     *conn
	begin string  // the BEGIN still to send; empty once sent
	want  setting // the setting the transaction was begun with
	set   setting // the setting in force in the transaction
	// deferred are savepoint statements (SAVEPOINT, RELEASE SAVEPOINT)
	// still to send, in order, in the round trip of the next statement.
	deferred []string
	// savepoints are the names bun gave the open savepoints, outermost
	// first; the server knows them by their depth.
	savepoints []string
}

func beginStatement(opts driver.TxOptions) (string, error) {
	s := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		s += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		s += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		s += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		s += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("sqldb: unsupported isolation level %v", opts.Isolation)
	}
	if opts.ReadOnly {
		s += " READ ONLY"
	}
	return s, nil
}

func (c *conn) pgBegin(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.pgx.IsClosed() {
		return nil, driver.ErrBadConn
	}
	b, err := beginStatement(opts)
	if err != nil {
		return nil, err
	}
	want, _ := ctx.Value(settingKey{}).(setting)
	c.tx = &pgTx{c: c, begin: b, want: want}
	return c.tx, nil
}

func (t *pgTx) end(stmt string) error {
	defer func() { t.c.tx = nil }()
	if t.begin != "" { // nothing was sent: there is nothing to end
		return nil
	}
	_, err := t.c.pgx.Exec(context.Background(), stmt)
	return err
}

func (t *pgTx) Commit() error   { return t.end("COMMIT") }
func (t *pgTx) Rollback() error { return t.end("ROLLBACK") }

// prelude is what must precede a statement sent in ctx: the deferred
// BEGIN and savepoint statements, the set_config of a setting not yet in
// force, and the advisory locks of WithAdvisoryLocks.
type prelude struct {
	begin string
	pre   []string // deferred savepoint statements, after the BEGIN
	set   setting
	locks []int64
}

// In a transaction, a statement whose context carries no setting runs
// under the one the transaction was begun with — or under the empty value
// when it was begun without one — so that a setting a nested scope sent
// for its own statements ends with them.
func (c *conn) prelude(ctx context.Context) (p prelude, ok bool) {
	p.locks, _ = ctx.Value(locksKey{}).([]int64)
	want, has := ctx.Value(settingKey{}).(setting)
	if t := c.tx; t != nil {
		if !has {
			want = t.want
			if want == (setting{}) && t.set != (setting{}) {
				want = setting{name: t.set.name}
			}
			has = want != (setting{})
		}
		if has && t.set == want {
			has = false
		}
		if has {
			p.set = want
		}
		p.begin, p.pre = t.begin, t.deferred
		return p, has || t.begin != "" || len(p.pre) > 0 || len(p.locks) > 0
	}
	if has {
		p.set = want
	}
	return p, has || len(p.locks) > 0
}

// savepoint defers a savepoint statement of a transaction to the round trip
// of the transaction's next statement, as the BEGIN is (bun opens a
// savepoint for every nested RunInTx, and tenant-scoped code nests often).
// handled is false for any other statement. Savepoints are renamed by
// their depth, so that the statements keep one text each and stay in pgx's
// statement cache (bun names each one at random). A savepoint released or
// rolled back to before anything was sent in it is never sent at all. A
// rollback to a savepoint that was sent goes at once, with what is deferred
// before it, and forgets which setting is in force: it undoes a set_config
// sent after the savepoint.
func (c *conn) savepoint(ctx context.Context, query string, args []driver.NamedValue) (handled bool, err error) {
	t := c.tx
	if t == nil || len(args) > 0 {
		return false, nil
	}
	depthName := func(i int) string { return "socialcrm_sp" + strconv.Itoa(i+1) }
	if name, ok := strings.CutPrefix(query, "SAVEPOINT "); ok {
		t.savepoints = append(t.savepoints, name)
		t.deferred = append(t.deferred, "SAVEPOINT "+depthName(len(t.savepoints)-1))
		return true, nil
	}
	if name, ok := strings.CutPrefix(query, "RELEASE SAVEPOINT "); ok {
		i := slices.Index(t.savepoints, name)
		if i < 0 {
			return false, nil // not ours: the server answers
		}
		t.savepoints = t.savepoints[:i]
		if n := len(t.deferred); n > 0 && t.deferred[n-1] == "SAVEPOINT "+depthName(i) {
			t.deferred = t.deferred[:n-1] // nothing was sent in it
		} else {
			t.deferred = append(t.deferred, "RELEASE SAVEPOINT "+depthName(i))
		}
		return true, nil
	}
	name, ok := strings.CutPrefix(query, "ROLLBACK TO SAVEPOINT ")
	if !ok {
		return false, nil
	}
	i := slices.Index(t.savepoints, name)
	if i < 0 {
		return false, nil
	}
	t.savepoints = t.savepoints[:i+1] // the savepoint outlives the rollback
	if j := slices.Index(t.deferred, "SAVEPOINT "+depthName(i)); j >= 0 {
		t.deferred = t.deferred[:j+1] // nothing was sent after it
		return true, nil
	}
	if c.pgx.IsClosed() {
		return true, driver.ErrBadConn
	}
	br, err := c.batch(ctx, prelude{begin: t.begin, pre: t.deferred}, "ROLLBACK TO SAVEPOINT "+depthName(i), nil)
	if err == nil {
		_, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if t.set != (setting{}) {
		t.set.value = "\x00unknown" // never a value sent: the next statement sets it again
	}
	return true, err
}

// batch sends the prelude and the statement in one round trip and returns
// the batch, positioned at the statement's results.
func (c *conn) batch(ctx context.Context, p prelude, query string, args []driver.NamedValue) (pgx.BatchResults, error) {
	var b pgx.Batch
	begin, set := p.begin, p.set
	if begin != "" {
		b.Queue(begin)
	}
	for _, q := range p.pre {
		b.Queue(q)
	}
	if set != (setting{}) {
		b.Queue("SELECT set_config($1, $2, true)", set.name, set.value)
	}
	if len(p.locks) > 0 {
		// unnest returns the keys, and the locks are taken, in order.
		b.Queue("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", p.locks)
	}
	var vals []any
	if len(args) == 0 {
		if q, ps, ok := params(query); ok {
			query, vals = q, ps
		}
	}
	for _, a := range args {
		vals = append(vals, a.Value)
	}
	b.Queue(query, vals...)
	br := c.pgx.SendBatch(ctx, &b)
	if t := c.tx; t != nil {
		t.begin = "" // sent: from here on, the transaction must be ended
		t.deferred = nil
		if set != (setting{}) {
			t.set = set
		}
	}
	for range len(b.QueuedQueries) - 1 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	return br, nil
}

// send sends query as a batch with what must travel before it (the
// deferred BEGIN, the setting). handled is false when the statement needs
// neither and goes the ordinary way.
func (c *conn) send(ctx context.Context, query string, args []driver.NamedValue) (br pgx.BatchResults, handled bool, err error) {
	p, ok := c.prelude(ctx)
	if !ok {
		return nil, false, nil
	}
	if c.pgx.IsClosed() {
		return nil, true, driver.ErrBadConn
	}
	br, err = c.batch(ctx, p, query, args)
	if err != nil {
		return nil, true, retryable(err)
	}
	return br, true, nil
}

func (c *conn) pgExec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, bool, error) {
	if handled, err := c.savepoint(ctx, query, args); handled {
		return driver.RowsAffected(0), true, err
	}
	br, handled, err := c.send(ctx, query, args)
	if !handled || err != nil {
		return nil, handled, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, true, err
	}
	return driver.RowsAffected(tag.RowsAffected()), true, nil
}

func (c *conn) pgQuery(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, bool, error) {
	br, handled, err := c.send(ctx, query, args)
	if !handled || err != nil {
		return nil, handled, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, true, err
	}
	r := &pgRows{br: br, rows: rows, c: c}
	// Read the first row now: database/sql asks for the columns before
	// Next, and an error of the statement shows here.
	r.more = rows.Next()
	if err := rows.Err(); err != nil {
		r.Close()
		return nil, true, err
	}
	r.first = true
	return r, true, nil
}

// plainArgs returns the statement and arguments to send through pgx's
// adapter outside a batch: the statement parameterized and prepared
// (pgx's statement cache) when params can, else as it is, unprepared.
func plainArgs(query string, args []driver.NamedValue) (string, []driver.NamedValue) {
	if len(args) == 0 {
		if q, ps, ok := params(query); ok {
			nv := make([]driver.NamedValue, len(ps)+1)
			nv[0] = driver.NamedValue{Ordinal: 1, Value: pgx.QueryExecModeCacheStatement}
			for i, p := range ps {
				nv[i+1] = driver.NamedValue{Ordinal: i + 2, Value: p}
			}
			return q, nv
		}
	}
	nv := make([]driver.NamedValue, len(args)+1)
	nv[0] = driver.NamedValue{Ordinal: 1, Value: pgx.QueryExecModeExec}
	copy(nv[1:], args)
	return query, nv
}

// retryable turns an error that left the server untouched into
// driver.ErrBadConn, so that database/sql retries on another connection.
func retryable(err error) error {
	if pgconn.SafeToRetry(err) {
		return driver.ErrBadConn
	}
	return err
}

// pgRows are the rows of a statement sent in a batch, converted to the
// values pgx's database/sql adapter gives.
type pgRows struct {
	br    pgx.BatchResults
	rows  pgx.Rows
	c     *conn
	more  bool
	first bool
	conv  []func([]byte) (driver.Value, error)
	cols  []string
}

// convs are a connection's column conversions, kept per result shape (the
// columns' types and formats): a statement run again reuses them instead
// of planning each column's scan anew. A connection runs one statement at
// a time, so the conversions' scratch values are never shared.
type convs struct {
	m map[string][]func([]byte) (driver.Value, error)
}

// maxConvShapes bounds a connection's cached result shapes.
const maxConvShapes = 256

// get returns the conversions of fds, planning them on a miss.
func (cs *convs) get(m *pgtype.Map, fds []pgconn.FieldDescription) []func([]byte) (driver.Value, error) {
	var kb [256]byte
	key := kb[:0]
	for _, fd := range fds {
		key = binary.BigEndian.AppendUint32(key, fd.DataTypeOID)
		key = append(key, byte(fd.Format))
	}
	if conv, ok := cs.m[string(key)]; ok {
		return conv
	}
	conv := make([]func([]byte) (driver.Value, error), len(fds))
	for i, fd := range fds {
		conv[i] = converter(m, fd)
	}
	if cs.m == nil || len(cs.m) >= maxConvShapes {
		cs.m = make(map[string][]func([]byte) (driver.Value, error))
	}
	cs.m[string(key)] = conv
	return conv
}

func (r *pgRows) Columns() []string {
	if r.cols == nil {
		fds := r.rows.FieldDescriptions()
		r.cols = make([]string, len(fds))
		for i, fd := range fds {
			r.cols[i] = fd.Name
		}
	}
	return r.cols
}

func (r *pgRows) Close() error {
	r.rows.Close()
	err := r.rows.Err()
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

func (r *pgRows) Next(dest []driver.Value) error {
	if r.first {
		r.first = false
	} else {
		r.more = r.rows.Next()
	}
	if !r.more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.conv == nil {
		r.conv = r.c.convs.get(r.c.pgx.TypeMap(), r.rows.FieldDescriptions())
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.conv[i](raw)
		if err != nil {
			return fmt.Errorf("sqldb: convert column %d: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// converter returns the conversion of one column's raw values into what
// pgx's database/sql adapter returns for its type.
func converter(m *pgtype.Map, fd pgconn.FieldDescription) func([]byte) (driver.Value, error) {
	oid, f := fd.DataTypeOID, fd.Format
	if oid == pgtype.ByteaOID && f == pgtype.BinaryFormatCode {
		// The raw bytes, valid until the next row, as database/sql allows
		// (a Scanner copies what it keeps; database/sql copies into a
		// []byte): one copy of every sealed value fewer than pgx's own.
		return func(src []byte) (driver.Value, error) { return src, nil }
	}
	switch oid {
	case pgtype.BoolOID:
		return scanAs[bool](m, oid, f, func(v bool) driver.Value { return v })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return scanAs[[]byte](m, oid, f, func(v []byte) driver.Value { return v })
	case pgtype.Float4OID:
		return scanAs[float32](m, oid, f, func(v float32) driver.Value { return float64(v) })
	case pgtype.Float8OID:
		return scanAs[float64](m, oid, f, func(v float64) driver.Value { return v })
	case pgtype.Int2OID:
		return scanAs[int16](m, oid, f, func(v int16) driver.Value { return int64(v) })
	case pgtype.Int4OID:
		return scanAs[int32](m, oid, f, func(v int32) driver.Value { return int64(v) })
	case pgtype.Int8OID:
		return scanAs[int64](m, oid, f, func(v int64) driver.Value { return v })
	case pgtype.DateOID:
		return scanValuer[pgtype.Date](m, oid, f)
	case pgtype.TimestampOID:
		return scanValuer[pgtype.Timestamp](m, oid, f)
	case pgtype.TimestamptzOID:
		return scanValuer[pgtype.Timestamptz](m, oid, f)
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return scanValuer[pgtype.Uint32](m, oid, f)
	}
	if t, ok := m.TypeForOID(oid); ok && f == pgtype.BinaryFormatCode {
		if _, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			return arrayText(m, oid)
		}
	}
	return scanAs[string](m, oid, f, func(v string) driver.Value { return v })
}

// arrayText converts an array in binary format to its text form
// ({a,b,…}), which pgx cannot scan into a string directly.
func arrayText(m *pgtype.Map, oid uint32) func([]byte) (driver.Value, error) {
	var d any
	plan := m.PlanScan(oid, pgtype.BinaryFormatCode, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		b, err := m.Encode(oid, pgtype.TextFormatCode, d, nil)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
}

func scanAs[T any](m *pgtype.Map, oid uint32, format int16, out func(T) driver.Value) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return out(d), nil
	}
}

func scanValuer[T any, PT interface {
	*T
	driver.Valuer
}](m *pgtype.Map, oid uint32, format int16) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return PT(&d).Value()
	}
}
