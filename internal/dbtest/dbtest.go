// Package dbtest runs a test body on every database socialcrm supports: on
// SQLite always, and on PostgreSQL when SOCIALCRM_TEST_POSTGRES holds the DSN
// of a server where that user may create roles and databases (on a default
// local install: postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
//
// Each run gets a database of its own that is removed afterwards: a fresh
// SQLite file in t.TempDir, or a fresh schema in the database socialcrm_test,
// reached as the role socialcrm_test, which is neither a superuser nor
// BYPASSRLS, so PostgreSQL's row-level security applies to it as it would to
// an application.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// EnvPostgres names the environment variable holding the PostgreSQL admin
// DSN.
const EnvPostgres = "SOCIALCRM_TEST_POSTGRES"

const (
	pgRole     = "socialcrm_test"
	pgDatabase = "socialcrm_test"
)

// DB is a test database.
type DB struct {
	*bun.DB
	// Name is "sqlite" or "postgres".
	Name string
	// Path is the SQLite file; empty on PostgreSQL.
	Path string

	dsn string
}

// DSN returns the PostgreSQL connection string of the test schema (the
// application role, search_path set), for a child process that must reach
// the same database; empty on SQLite, whose file is Path.
func (d *DB) DSN() string { return d.dsn }

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
	d := &DB{DB: db, Name: "sqlite", Path: path}
	setup(t, d, setups)
	return d
}

// Postgres returns a fresh schema on the server named by
// SOCIALCRM_TEST_POSTGRES, failing the test when the variable is unset or
// the server cannot be reached.
func Postgres(t testing.TB, setups ...Setup) *DB {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		t.Fatalf("dbtest: %s is not set", EnvPostgres)
	}
	base, err := prepareServer(admin)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	schema := "t_" + randomHex(8)
	db, err := OpenPostgres(base)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if _, err := db.Exec("CREATE SCHEMA ?", bun.Ident(schema)); err != nil {
		db.Close()
		t.Fatalf("dbtest: create schema: %v", err)
	}
	db.Close()
	dsn := withParam(base, "search_path", schema)
	db, err = OpenPostgres(dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.SetMaxOpenConns(8)
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA ? CASCADE", bun.Ident(schema)); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
		db.Close()
	})
	d := &DB{DB: db, Name: "postgres", dsn: dsn}
	setup(t, d, setups)
	return d
}

func setup(t testing.TB, d *DB, setups []Setup) {
	t.Helper()
	for _, s := range setups {
		if err := s(context.Background(), d.DB); err != nil {
			t.Fatalf("dbtest: setup on %s: %v", d.Name, err)
		}
	}
}

var server struct {
	sync.Mutex
	done map[string]string // admin DSN -> application DSN
}

// prepareServer makes sure the role and database for tests exist and
// returns the DSN that connects to them as that role.
func prepareServer(adminDSN string) (string, error) {
	server.Lock()
	defer server.Unlock()
	if dsn, ok := server.done[adminDSN]; ok {
		return dsn, nil
	}
	admin, err := OpenPostgres(adminDSN)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	ctx := context.Background()
	// Several test binaries may get here at once: tolerate losing the race.
	if _, err := admin.ExecContext(ctx, `DO $$ BEGIN
		CREATE ROLE `+pgRole+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
		return "", fmt.Errorf("create role %s: %w", pgRole, err)
	}
	var exists bool
	if err := admin.NewRaw("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ?)", pgDatabase).Scan(ctx, &exists); err != nil {
		return "", fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgDatabase+" OWNER "+pgRole)
		var pgErr pgdriver.Error
		if err != nil && !(errors.As(err, &pgErr) && (pgErr.Field('C') == "42P04" || pgErr.Field('C') == "23505")) {
			return "", fmt.Errorf("create database %s: %w", pgDatabase, err)
		}
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", EnvPostgres, err)
	}
	u.User = url.User(pgRole)
	u.Path = "/" + pgDatabase
	if server.done == nil {
		server.done = map[string]string{}
	}
	server.done[adminDSN] = u.String()
	return u.String(), nil
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

// OpenPostgres connects to dsn like sqldb.Postgres, waiting (up to a
// minute, with backoff) while the server answers that its connection slots
// are taken (SQLSTATE 53300): test binaries run in parallel, each with
// databases of its own, and a burst of them can briefly hold every slot of
// a default server (100 connections). Other errors return at once.
func OpenPostgres(dsn string) (*bun.DB, error) {
	wait := 50 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		db, err := sqldb.Postgres(dsn)
		var pgErr pgdriver.Error
		if err == nil || !errors.As(err, &pgErr) || pgErr.Field('C') != "53300" || time.Now().After(deadline) {
			return db, err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}
