package main

import (
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// startRounds is how many fresh databases the start checks below try
// (SOCIALCRM_TEST_START_ROUNDS; 1 by default, for CI's cost).
func startRounds(t *testing.T) int {
	n := 1
	if v := os.Getenv("SOCIALCRM_TEST_START_ROUNDS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	return n
}

// startTogether launches n replicas with args at once and checks that every
// one starts, answers /readyz and logged no error.
func startTogether(t *testing.T, n int, env []string, args ...string) []*process {
	t.Helper()
	ls := make([]*launched, n)
	for i := range ls {
		ls[i] = launch(t, env, args...)
	}
	ps := make([]*process, n)
	for i, l := range ls {
		ps[i] = l.wait(t)
	}
	for i, p := range ps {
		resp, err := http.Get(p.URL + "/readyz")
		if err != nil {
			select { // it exited: its last words
			case <-p.done:
			case <-time.After(5 * time.Second):
			}
			t.Fatalf("replica %d: %v\n%s", i, err, p.stderr.String())
		}
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "replica %d: %s", i, p.stderr.String())
	}
	return ps
}

func requireNoErrorLogged(t *testing.T, ps []*process) {
	t.Helper()
	for i, p := range ps {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, `"component":"river"`) && strings.Contains(line, `"error":"context canceled"`) {
				continue // River's periodic enqueuer, stopped mid-tick by the shutdown
			}
			require.NotContains(t, line, `"level":"ERROR"`, "replica %d logged an error", i)
		}
	}
}

// TestThreeReplicasStartTogetherS10 starts three server processes at the
// same moment on a fresh PostgreSQL database, with the owner role migrating
// and with one role doing everything: every table (the server's own and
// River's included) migrates under a lock, every replica becomes ready and
// none logs an error.
func TestThreeReplicasStartTogetherS10(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("set SOCIALCRM_TEST_POSTGRES to run the replica start test (CI does)")
	}
	env := []string{"SOCIALCRM_SESSION_KEY=" + strings.Repeat("k", 40)}
	for round := range startRounds(t) {
		for _, twoRoles := range []bool{true, false} {
			t.Run("round"+strconv.Itoa(round)+map[bool]string{true: "/owner", false: "/onerole"}[twoRoles], func(t *testing.T) {
				db := dbtest.Postgres(t)
				kek := filepath.Join(t.TempDir(), "kek.json")
				_, err := insecurekeyfile.Open(kek)
				require.NoError(t, err)
				args := []string{"-addr", "127.0.0.1:0", "-kek", kek, "-jobs-interval", "1h"}
				if twoRoles {
					args = append(args, "-db", db.DSN(), "-owner-db", db.OwnerDSN())
				} else {
					args = append(args, "-db", db.OwnerDSN())
				}
				ps := startTogether(t, 3, env, args...)
				for _, p := range ps {
					p.stop(t)
				}
				requireNoErrorLogged(t, ps)
			})
		}
	}
}

// TestTwoReplicasOneSQLiteFileS10 starts two server processes at the same
// moment on one fresh SQLite file.
func TestTwoReplicasOneSQLiteFileS10(t *testing.T) {
	env := []string{"SOCIALCRM_SESSION_KEY=" + strings.Repeat("k", 40)}
	for round := range startRounds(t) {
		t.Run("round"+strconv.Itoa(round), func(t *testing.T) {
			dir := t.TempDir()
			kek := filepath.Join(dir, "kek.json")
			_, err := insecurekeyfile.Open(kek)
			require.NoError(t, err)
			file := filepath.Join(dir, "shared.db")
			ps := startTogether(t, 2, env, "-addr", "127.0.0.1:0", "-kek", kek, "-jobs-interval", "1s", "-db", file)
			// Both work River's jobs on the file: each periodic job is
			// enqueued once per period, not once per process. (A leader is
			// elected first: wait for its first periodic jobs — a start
			// also enqueues one resumption of open erasures, which is not
			// one — then three periods.)
			db, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(10000)")
			require.NoError(t, err)
			defer db.Close()
			deadline := time.Now().Add(30 * time.Second)
			for {
				var n int
				require.NoError(t, db.QueryRow(`SELECT count(*) FROM river_job WHERE json_extract(metadata, '$.periodic') IS NOT NULL`).Scan(&n))
				if n > 0 {
					break
				}
				require.True(t, time.Now().Before(deadline), "no job within 30 s")
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(3 * time.Second)
			for _, p := range ps {
				p.stop(t)
			}
			requireNoErrorLogged(t, ps)
			rows, err := db.Query(`SELECT kind, coalesce(json_extract(args, '$.task'), ''), count(*),
				(julianday(max(created_at)) - julianday(min(created_at))) * 86400
				FROM river_job WHERE json_extract(metadata, '$.periodic') IS NOT NULL GROUP BY 1, 2`)
			require.NoError(t, err)
			defer rows.Close()
			kinds := 0
			for rows.Next() {
				var kind, task string
				var n int
				var span float64
				require.NoError(t, rows.Scan(&kind, &task, &n, &span))
				require.LessOrEqual(t, float64(n), span+2, "%s %s: %d runs in %.1f s", kind, task, n, span)
				kinds++
			}
			require.NoError(t, rows.Err())
			require.Positive(t, kinds)
		})
	}
}
