package main

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testApp is the server built in-process on a fresh SQLite file, served by
// an httptest server on loopback.
type testApp struct {
	*app
	URL string
}

func newTestApp(t *testing.T, args ...string) *testApp {
	t.Helper()
	return startTestApp(t, slog.New(slog.DiscardHandler), nil, args...)
}

// startTestApp builds the server in-process with log, on a fresh SQLite
// file and the configuration args give, adjusted by configure when it is
// not nil, and serves it on loopback until t ends.
func startTestApp(t *testing.T, log *slog.Logger, configure func(*config), args ...string) *testApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dir := t.TempDir()
	if !slices.ContainsFunc(args, func(a string) bool { return a == "-db" || a == "-owner-db" || a == "-kek" }) {
		// A server on the default database and key file starts from a
		// copy of a database migrated before, with its key-encryption
		// key.
		writeMigrated(t, dir, "test.db")
	}
	cfg, err := testConfig(dir, args...)
	require.NoError(t, err)
	if configure != nil {
		configure(&cfg)
	}
	url := cmp.Or(cfg.PublicURL, "http://"+ln.Addr().String())
	a, err := newApp(t.Context(), cfg, log, url)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(a.handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.close() })
	return &testApp{app: a, URL: "http://" + ln.Addr().String()}
}

// writeMigrated writes into dir a copy of the database migrated once per
// test binary (see migrated), as the file db, and its key file kek.json.
func writeMigrated(t *testing.T, dir, db string) {
	t.Helper()
	tm := migrated()
	require.NoError(t, tm.err)
	for name, b := range tm.files {
		if strings.HasPrefix(name, "test.db") { // and its -wal and -shm, if any
			name = db + strings.TrimPrefix(name, "test.db")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
}

// testConfig is the configuration of a test server on the SQLite file
// test.db and the key file kek.json of dir, and args.
func testConfig(dir string, args ...string) (config, error) {
	cfg, err := parseConfig(append([]string{"-db", filepath.Join(dir, "test.db"), "-kek", filepath.Join(dir, "kek.json")}, args...), io.Discard)
	// A cost-12 bcrypt hash takes seconds under the race detector, and
	// these tests sign up and sign in often. The e2e tests' server
	// processes keep the production cost.
	cfg.passwordCost = 4
	return cfg, err
}

// migratedFiles is the files of a server's database, migrated, and its key
// file: migrating SQLite takes seconds under the race detector, a copy
// does not.
type migratedFiles struct {
	files map[string][]byte // by name in the server's directory
	err   error
}

// migrated makes them once per test binary.
var migrated = sync.OnceValue(func() migratedFiles {
	dir, err := os.MkdirTemp("", "socialcrm-server-test-")
	if err != nil {
		return migratedFiles{err: err}
	}
	defer os.RemoveAll(dir)
	cfg, err := testConfig(dir)
	if err != nil {
		return migratedFiles{err: err}
	}
	a, err := newApp(context.Background(), cfg, slog.New(slog.DiscardHandler), "http://127.0.0.1:1")
	if err != nil {
		return migratedFiles{err: err}
	}
	a.close()
	tm := migratedFiles{files: map[string][]byte{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return migratedFiles{err: err}
	}
	for _, e := range entries {
		if tm.files[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			return migratedFiles{err: err}
		}
	}
	return tm
})

// lockedBuffer is a bytes.Buffer a process's output and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
