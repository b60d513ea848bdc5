package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

// TestKilledMidErasure kills the server (SIGKILL) while it erases a
// person (a contact with many notes), on SQLite and on PostgreSQL, and
// restarts it alone on the same database: the erasure job that runs at
// start finishes the request, which completes once, every note counted
// once in the receipts, the other contact untouched.
func TestKilledMidErasure(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		killMidErasure(t, filepath.Join(t.TempDir(), "kill.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		killMidErasure(t, db.DSN(), "-owner-db", db.OwnerDSN())
	})
}

func killMidErasure(t *testing.T, dsn string, extra ...string) {
	args := append([]string{"-kek", filepath.Join(t.TempDir(), "kek.json")}, extra...)
	p := startServer(t, dsn, args...)
	c := newClient(t, p.URL)
	const password = "a long kill-test password"
	c.token = str(c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Erase Co", "email": "owner@erase.example", "name": "Ow",
		"password": password}, 201), "session", "access_token")
	kim := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Kim", "email": "kim@erase.example"}, 201), "contact", "id")
	lee := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Lee", "email": "lee@erase.example"}, 201), "contact", "id")
	const notes = 120
	for i := range notes {
		c.call("POST", "/v1/notes", map[string]any{"contact_id": kim, "body": fmt.Sprintf("note %d", i)}, 201)
	}
	c.call("POST", "/v1/notes", map[string]any{"contact_id": lee, "body": "keep me"}, 201)
	id := str(c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"email": "kim@erase.example"}}, 201), "request", "id")
	c.call("POST", "/v1/privacy/requests/"+id+"/verify", map[string]string{"outcome": "verified"}, 200)
	sent := make(chan struct{})
	go func() { // its answer never comes, or comes just before the kill
		defer close(sent)
		req, _ := http.NewRequest("POST", p.URL+"/v1/privacy/requests/"+id+"/erase", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(30 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Kill())
	<-p.exited
	<-sent

	p = startServer(t, dsn, args...)
	c = newClient(t, p.URL)
	c.token = str(c.call("POST", "/v1/login", map[string]any{"email": "owner@erase.example", "password": password}, 200), "session", "access_token")
	deadline := time.Now().Add(60 * time.Second)
	for str(c.call("GET", "/v1/privacy/requests/"+id, nil, 200), "request", "status") != "completed" {
		require.True(t, time.Now().Before(deadline), "the restarted server finishes the erasure")
		time.Sleep(100 * time.Millisecond)
	}
	c.call("GET", "/v1/contacts/"+kim, nil, 404)
	c.call("GET", "/v1/contacts/"+lee, nil, 200)
	completed, erased := 0, map[string]int{}
	entries, _ := c.call("GET", "/v1/audit", nil, 200)["entries"].([]any)
	for _, e := range entries {
		e := e.(map[string]any)
		md, _ := e["metadata"].(map[string]any)
		switch {
		case e["action"] == "retention.request_completed" && e["target"] == "request:"+id:
			completed++
		case e["action"] == "retention.erased" && md["request"] == id:
			n, err := strconv.Atoi(fmt.Sprint(md["count"]))
			require.NoError(t, err)
			erased[fmt.Sprint(md["category"])] += n
		}
	}
	require.Equal(t, 1, completed, "the request completes once")
	require.Equal(t, 1, erased["crm.contact"], "%v", erased)
	require.Equal(t, notes, erased["crm.note"], "%v", erased)
	require.NotContains(t, p.stderr.String(), `"level":"ERROR"`, "no error logged after the restart")
}
