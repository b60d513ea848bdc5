// Package dbtest runs a test body on every database socialcrm supports: on
// SQLite always, and on PostgreSQL when SOCIALCRM_TEST_POSTGRES holds the DSN
// of a server where that user may create roles and databases (on a default
// local install: postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
//
// Each run gets a database of its own that is removed afterwards: a fresh
// SQLite file in t.TempDir, or a fresh schema in the database
// socialcrm_tests. On PostgreSQL the tests run as an application would, with
// two roles: the setups (migrations) run as socialcrm_tests_owner, which owns
// the schema and its tables, and the test body gets a handle connected as
// socialcrm_tests_app, which owns nothing, is neither a superuser nor
// BYPASSRLS, and holds only the privileges migrations.Grant gives it — so
// row-level security binds it and it cannot switch it off.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// EnvPostgres names the environment variable holding the PostgreSQL admin
// DSN.
const EnvPostgres = "SOCIALCRM_TEST_POSTGRES"

const (
	pgOwner    = "socialcrm_tests_owner"
	pgApp      = "socialcrm_tests_app"
	pgDatabase = "socialcrm_tests"
)

// DB is a test database. Its embedded handle is the application's: on
// PostgreSQL it is connected as the application role.
type DB struct {
	*bun.DB
	// Owner is a handle connected as the owner of the tables (the role
	// that migrates): on PostgreSQL a second connection pool as
	// socialcrm_tests_owner, on SQLite, which has no roles, the same
	// handle as DB.
	Owner *bun.DB
	// Name is "sqlite" or "postgres".
	Name string
	// Path is the SQLite file; empty on PostgreSQL.
	Path string

	dsn, ownerDSN string
	schema        string // PostgreSQL: the test schema
}

// DSN returns the PostgreSQL connection string of the test schema (the
// application role, search_path set), for a child process that must reach
// the same database; empty on SQLite, whose file is Path.
func (d *DB) DSN() string { return d.dsn }

// OwnerDSN returns the PostgreSQL connection string of the test schema as
// its owner role, for a child process that migrates; empty on SQLite.
func (d *DB) OwnerDSN() string { return d.ownerDSN }

// AppRole is the PostgreSQL role the test body's handle connects as.
const AppRole = pgApp

// Reopen returns a second, independent handle on the same database, like
// another process would have. It is closed when t ends.
func (d *DB) Reopen(t testing.TB) *bun.DB {
	t.Helper()
	var db *bun.DB
	var err error
	if d.Name == "sqlite" {
		db, err = sqldb.SQLite(d.Path)
	} else {
		db, err = OpenPostgres(d.dsn)
	}
	if err != nil {
		t.Fatalf("dbtest: reopen: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ReopenOwner is Reopen connected as the owner role (on SQLite, the same
// as Reopen).
func (d *DB) ReopenOwner(t testing.TB) *bun.DB {
	t.Helper()
	if d.Name == "sqlite" {
		return d.Reopen(t)
	}
	db, err := OpenPostgres(d.ownerDSN)
	if err != nil {
		t.Fatalf("dbtest: reopen: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Setup prepares a fresh database before the test body runs, e.g. by running
// migrations and installing query hooks.
type Setup func(ctx context.Context, db *bun.DB) error

// Each runs fn as the subtest "sqlite" and, when SOCIALCRM_TEST_POSTGRES is
// set, as the subtest "postgres", each on a fresh database prepared by
// setups.
func Each(t *testing.T, fn func(t *testing.T, db *DB), setups ...Setup) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, setups...)) })
	if os.Getenv(EnvPostgres) != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, setups...)) })
	}
}

// SQLite returns a fresh SQLite database in t.TempDir.
func SQLite(t testing.TB, setups ...Setup) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socialcrm.db")
	db, err := sqldb.SQLite(path)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	d := &DB{DB: db, Owner: db, Name: "sqlite", Path: path}
	setup(t, d.DB, "sqlite", setups)
	return d
}

// Postgres returns a fresh schema on the server named by
// SOCIALCRM_TEST_POSTGRES, failing the test when the variable is unset or
// the server cannot be reached. setups run twice: as the owner role (they
// migrate), then, after every table of the schema is granted to the
// application role, on the application's handle (migrations find nothing
// to do; hooks such as the Guard are installed there).
func Postgres(t testing.TB, setups ...Setup) *DB {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		t.Fatalf("dbtest: %s is not set", EnvPostgres)
	}
	ownerBase, appBase, err := prepareServer(admin)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	schema := "t_" + randomHex(8)
	ownerDSN := withParam(ownerBase, "search_path", schema)
	owner, err := OpenPostgres(ownerDSN)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	owner.SetMaxOpenConns(2)
	t.Cleanup(func() {
		if _, err := owner.Exec("DROP SCHEMA ? CASCADE", bun.Ident(schema)); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
		owner.Close()
	})
	if _, err := owner.Exec("CREATE SCHEMA ?", bun.Ident(schema)); err != nil {
		t.Fatalf("dbtest: create schema: %v", err)
	}
	dsn := withParam(appBase, "search_path", schema)
	db, err := OpenPostgres(dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.SetMaxOpenConns(8)
	t.Cleanup(func() { db.Close() })
	d := &DB{DB: db, Owner: owner, Name: "postgres", dsn: dsn, ownerDSN: ownerDSN, schema: schema}
	setup(t, owner, "postgres (owner)", setups)
	// Tests rarely need the owner after setup: keep no idle connections,
	// since parallel test binaries share the server's connection slots.
	owner.SetMaxIdleConns(0)
	GrantApp(t, d)
	setup(t, db, "postgres", setups)
	return d
}

// GrantApp grants the application role what migrations.Grant gives it on
// every table of d's schema; call it after creating tables through Owner
// in a test body. On SQLite it does nothing.
func GrantApp(t testing.TB, d *DB) {
	t.Helper()
	if d.Name != "postgres" {
		return
	}
	// A bun handle without hooks over Owner's pool: a setup may have
	// installed the Guard on Owner, and GRANT names tenant-owned tables
	// without a tenant.
	owner := bun.NewDB(d.Owner.DB, pgdialect.New())
	ctx := context.Background()
	tables, err := migrations.Tables(ctx, owner, "")
	if err == nil {
		err = migrations.Grant(ctx, owner, pgApp, tables)
	}
	if err != nil {
		t.Fatalf("dbtest: grant: %v", err)
	}
}

func setup(t testing.TB, db *bun.DB, name string, setups []Setup) {
	t.Helper()
	for _, s := range setups {
		if err := s(context.Background(), db); err != nil {
			t.Fatalf("dbtest: setup on %s: %v", name, err)
		}
	}
}

var server struct {
	sync.Mutex
	done map[string][2]string // admin DSN -> owner and application DSNs
}

// prepareServer makes sure the roles and the database for tests exist and
// returns the DSNs that connect to it as the owner and as the application.
func prepareServer(adminDSN string) (ownerDSN, appDSN string, err error) {
	server.Lock()
	defer server.Unlock()
	if dsns, ok := server.done[adminDSN]; ok {
		return dsns[0], dsns[1], nil
	}
	admin, err := OpenPostgres(adminDSN)
	if err != nil {
		return "", "", err
	}
	defer admin.Close()
	ctx := context.Background()
	// Several test binaries may get here at once: tolerate losing the race.
	for _, role := range []string{pgOwner, pgApp} {
		if _, err := admin.ExecContext(ctx, `DO $$ BEGIN
			CREATE ROLE `+role+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
			return "", "", fmt.Errorf("create role %s: %w", role, err)
		}
	}
	var exists bool
	if err := admin.NewRaw("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ?)", pgDatabase).Scan(ctx, &exists); err != nil {
		return "", "", fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgDatabase+" OWNER "+pgOwner)
		if c := dberr.Code(err); err != nil && c != "42P04" && c != "23505" {
			return "", "", fmt.Errorf("create database %s: %w", pgDatabase, err)
		}
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", "", fmt.Errorf("parse %s: %w", EnvPostgres, err)
	}
	u.Path = "/" + pgDatabase
	u.User = url.User(pgOwner)
	ownerDSN = u.String()
	u.User = url.User(pgApp)
	appDSN = u.String()
	if server.done == nil {
		server.done = map[string][2]string{}
	}
	server.done[adminDSN] = [2]string{ownerDSN, appDSN}
	return ownerDSN, appDSN, nil
}

func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// OpenPostgres connects to dsn like sqldb.Postgres, except that every new
// connection of the pool waits (up to a minute, with backoff) while the
// server answers that its connection slots are taken (SQLSTATE 53300):
// test binaries run in parallel, each with databases of its own, and a
// burst of them can briefly hold every slot of a default server (100
// connections). Other errors return at once.
func OpenPostgres(dsn string) (*bun.DB, error) {
	// sqldb's connector: the Guard refuses at the driver, settings fold,
	// as on sqldb's handles.
	c, err := sqldb.PostgresConnector(dsn)
	if err != nil {
		return nil, err
	}
	db := bun.NewDB(sql.OpenDB(patientConnector{c}), pgdialect.New())
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("dbtest: connect postgres: %w", err)
	}
	return db, nil
}

// patientConnector retries a connection refused for lack of slots.
type patientConnector struct{ driver.Connector }

func (c patientConnector) Connect(ctx context.Context) (driver.Conn, error) {
	wait := 50 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := c.Connector.Connect(ctx)
		if err == nil || dberr.Code(err) != "53300" || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Admin returns a handle that sees every row of the test database: on
// PostgreSQL a superuser connection (the admin DSN) to the test schema, to
// which row-level security does not apply; on SQLite a new handle on the
// file, without the query hooks installed on the test's handle. Use it to
// inspect what is stored, never to exercise the code under test.
func (d *DB) Admin(t testing.TB) *bun.DB {
	t.Helper()
	if d.Name == "sqlite" {
		return d.Reopen(t)
	}
	return d.adminOn(t, d.schema)
}

func (d *DB) adminOn(t testing.TB, schema string) *bun.DB {
	t.Helper()
	u, err := url.Parse(os.Getenv(EnvPostgres))
	if err != nil {
		t.Fatalf("dbtest: parse %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + pgDatabase
	db, err := OpenPostgres(withParam(u.String(), "search_path", schema))
	if err != nil {
		t.Fatalf("dbtest: admin: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Backup returns a copy of the database as a backup taken now would hold
// it: on SQLite a byte copy of the file made after a checkpoint (so the WAL
// is in it), opened as its own database, with its Path; on PostgreSQL
// every table of the test schema copied, rows and all, into a new schema
// (what restoring a dump gives), reached through an admin handle (Admin).
// The copy is removed when t ends.
func (d *DB) Backup(t testing.TB) *DB {
	t.Helper()
	ctx := context.Background()
	if d.Name == "sqlite" {
		if _, err := d.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatalf("dbtest: checkpoint: %v", err)
		}
		b, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		path := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		db, err := sqldb.SQLite(path)
		if err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return &DB{DB: db, Name: "sqlite", Path: path}
	}
	admin := d.Admin(t)
	schema := "b_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA ?", bun.Ident(schema)); err != nil {
		t.Fatalf("dbtest: backup: %v", err)
	}
	var tables []string
	if err := admin.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", d.schema).
		Scan(ctx, &tables); err != nil {
		t.Fatalf("dbtest: backup: %v", err)
	}
	for _, tbl := range tables {
		if _, err := admin.ExecContext(ctx, "CREATE TABLE ?.? AS SELECT * FROM ?.?",
			bun.Ident(schema), bun.Ident(tbl), bun.Ident(d.schema), bun.Ident(tbl)); err != nil {
			t.Fatalf("dbtest: backup %s: %v", tbl, err)
		}
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA ? CASCADE", bun.Ident(schema)); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
	})
	db := d.adminOn(t, schema)
	return &DB{DB: db, Name: "postgres", schema: schema}
}
