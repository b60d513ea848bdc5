package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServerStartsAndAnswers starts the server on a free port with a fresh
// SQLite file, as `go run ./examples/server` does, and drives sign-up, login
// and the health endpoints.
func TestServerStartsAndAnswers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "server.db")
	var logs lockedBuffer
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-db", dbPath, "-kek", filepath.Join(dir, "kek.json")}, pw, &logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "server printed nothing")
	go io.Copy(io.Discard, pr)
	require.Contains(t, line, "listening on http://127.0.0.1:")
	base := strings.Fields(line[strings.Index(line, "http://"):])[0]

	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}
	post := func(path, body string) (int, map[string]any) {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body)) //nolint:noctx
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	code, body := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body["status"])
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code)

	code, body = post("/v1/signup", `{"tenant_name":"Acme","email":"ada@acme.example","name":"Ada","password":"long enough secret"}`)
	require.Equal(t, http.StatusCreated, code, "%v", body)
	tenantID := body["tenant"].(map[string]any)["id"].(string)
	require.NotContains(t, toJSON(body), "$2a$", "no password hash in the response")

	code, body = post("/v1/signup", `{"tenant_name":"","email":"x","name":"","password":""}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "tenant_name", body["error"].(map[string]any)["fields"].([]any)[0].(map[string]any)["field"])
	code, _ = post("/v1/signup", `{"tenant_name":`)
	require.Equal(t, http.StatusBadRequest, code)

	code, body = post("/v1/login", `{"tenant_id":"`+tenantID+`","email":"ada@acme.example","password":"long enough secret"}`)
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, "owner", body["role"])
	code, _ = post("/v1/login", `{"tenant_id":"`+tenantID+`","email":"ada@acme.example","password":"nope"}`)
	require.Equal(t, http.StatusUnauthorized, code)

	cancel()
	require.NoError(t, <-done, "graceful shutdown")
	info, err := os.Stat(filepath.Join(dir, "kek.json"))
	require.NoError(t, err, "the local key-encryption key was created")
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	require.NotContains(t, logs.String(), "long enough secret")
}

// lockedBuffer is a bytes.Buffer the server goroutine and the test share.
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

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
