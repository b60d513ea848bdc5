package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestKilledMidImport kills the server (SIGKILL) in the middle of a CSV
// import, on SQLite and on PostgreSQL, restarts it on the same database
// and key, and sends the file again, as a user whose upload died would:
// the rows committed before the kill are found again (unchanged), the
// rest are created, and no contact exists twice.
func TestKilledMidImport(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "kill.db")
		killMidImport(t, path, func(string) int {
			// A reader of its own beside the server's: SQLite's WAL lets
			// it see each committed batch while the import writes.
			db, err := socialcrm.OpenDB(path)
			require.NoError(t, err)
			defer db.Close()
			var n int
			require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_crm_contacts").Scan(context.Background(), &n))
			return n
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		killMidImport(t, db.DSN(), func(tenantID string) int {
			var n int
			asTenant(t, db.Owner, tenantID, func(tx bun.Tx) error {
				return tx.NewRaw("SELECT count(*) FROM socialcrm_crm_contacts WHERE tenant_id = ?", tenantID).Scan(context.Background(), &n)
			})
			return n
		}, "-owner-db", db.OwnerDSN())
	})
}

// killMidImport runs the test on the database dsn; committed counts the
// tenant's contacts in the database, beside the server.
func killMidImport(t *testing.T, dsn string, committed func(tenantID string) int, extra ...string) {
	kek := filepath.Join(t.TempDir(), "kek.json")
	args := append([]string{"-kek", kek}, extra...)
	p := startServer(t, dsn, args...)
	c := newClient(t, p.URL)
	const password = "a long kill-test password"
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Kill Co", "email": "owner@kill.example", "name": "Ow",
		"password": password}, 201)
	tenantID := str(su, "tenant", "id")
	c.token = str(su, "session", "access_token")

	// Enough rows that the import runs for a while: batches of 100, one
	// transaction each.
	const rows = 4000
	var file strings.Builder
	file.WriteString("First Name,Last Name,Email Address\n")
	for i := range rows {
		fmt.Fprintf(&file, "P%d,Kill,p%d@kill.example\n", i, i)
	}
	sent := make(chan struct{})
	go func() { // its answer never comes
		defer close(sent)
		req, _ := http.NewRequest("POST", p.URL+"/v1/contacts/import", strings.NewReader(file.String()))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "text/csv")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	// Kill it once the first batch is in.
	deadline := time.Now().Add(60 * time.Second)
	for committed(tenantID) == 0 {
		require.True(t, time.Now().Before(deadline), "the import commits a first batch")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, p.cmd.Process.Kill())
	<-p.exited
	<-sent

	// Restarted on the same database and key: sign in again (the session
	// key was drawn by the killed process), count what the kill left, and
	// send the file again.
	p = startServer(t, dsn, args...)
	c = newClient(t, p.URL)
	c.token = str(c.call("POST", "/v1/login", map[string]any{"email": "owner@kill.example", "password": password}, 200), "session", "access_token")
	before := len(exported(t, c)) - 1
	require.Positive(t, before)
	require.Less(t, before, rows, "the kill came before the import's end")
	require.Zero(t, before%100, "whole batches only: %d rows", before)

	resp, raw := c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(file.String()))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	rep := string(raw)
	require.Contains(t, rep, fmt.Sprintf(`"created":%d`, rows-before), "%.300s", rep)
	require.Contains(t, rep, fmt.Sprintf(`"unchanged":%d`, before), "%.300s", rep)

	got := exported(t, c)
	require.Len(t, got, rows+1, "a header and each contact once")
	emails := map[string]bool{}
	col := -1
	for i, h := range got[0] {
		if h == "email" {
			col = i
		}
	}
	require.NotEqual(t, -1, col, "%v", got[0])
	for _, r := range got[1:] {
		require.False(t, emails[r[col]], "%s twice", r[col])
		emails[r[col]] = true
	}
	require.NotContains(t, p.stderr.String(), `"level":"ERROR"`, "no error logged after the restart")
}

// exported is the tenant's contacts as the CSV export has them.
func exported(t *testing.T, c *client) [][]string {
	t.Helper()
	resp, raw := c.do("GET", "/v1/contacts/export", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	require.NoError(t, err)
	return recs
}
