package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
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
	cfg, err := parseConfig(append([]string{"-db", filepath.Join(dir, "test.db"), "-kek", filepath.Join(dir, "kek.json")}, args...), io.Discard)
	require.NoError(t, err)
	// A cost-12 bcrypt hash takes seconds under the race detector, and
	// these tests sign up and sign in often. The e2e tests' server
	// processes keep the production cost.
	cfg.passwordCost = 4
	if configure != nil {
		configure(&cfg)
	}
	url := "http://" + ln.Addr().String()
	a, err := newApp(t.Context(), cfg, log, url)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(a.handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.close() })
	return &testApp{app: a, URL: url}
}

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
