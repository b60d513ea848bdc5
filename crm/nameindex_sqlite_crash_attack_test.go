package crm_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The crash test of the name index: a child process (this test binary,
// running TestNameFTSCrashChild) creates, renames and unnames contacts
// without end, printing a line after each write; the parent kills it with
// SIGKILL (kill -9) mid-stream, twice, and then checks on the database
// as it is found: SQLite's integrity_check, FTS5's own integrity-check of
// the index against the contacts' name_index (SQLite), the index exact
// (requireNameIndexExact) and every name search exact.
const (
	envFTSCrashDB  = "CRM_FTS_CRASH_DB" // "sqlite:<path>" or "postgres:<dsn>"
	envFTSCrashKEK = "CRM_FTS_CRASH_KEK"
	envFTSCrashTid = "CRM_FTS_CRASH_TENANT"
)

var crashFirst = []string{"Ada", "Grace", "Alan", "Charles", "Augusta"}
var crashLast = []string{"Lovelace", "Hopper", "Turing", "Babbage", "King", "Murray", ""}

func TestNameFTSCrashChild(t *testing.T) {
	target := os.Getenv(envFTSCrashDB)
	if target == "" {
		return
	}
	var db *bun.DB
	var err error
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		db, err = sqldb.SQLite(path)
	} else {
		db, err = dbtest.OpenPostgres(strings.TrimPrefix(target, "postgres:"))
	}
	require.NoError(t, err)
	require.NoError(t, setup(context.Background(), db))
	s := crashStore(t, db, os.Getenv(envFTSCrashKEK))
	ctx := owner(os.Getenv(envFTSCrashTid))
	c := s.Contacts()
	var made []crm.Contact
	for i := 0; ; i++ {
		first, last := crashFirst[i%len(crashFirst)], crashLast[(i/3)%len(crashLast)]
		switch {
		case i%4 == 3 && len(made) > 0: // rename one made before
			k := (i * 7) % len(made)
			up, err := c.Update(ctx, made[k].ID, made[k].Version, crm.ContactInput{FirstName: last, LastName: first})
			require.NoError(t, err)
			made[k] = up
		case i%9 == 8 && len(made) > 0: // unname one, keeping it by its e-mail address
			k := (i * 5) % len(made)
			up, err := c.Update(ctx, made[k].ID, made[k].Version, crm.ContactInput{Email: fmt.Sprintf("u%d@example.com", i)})
			require.NoError(t, err)
			made[k] = up
		default:
			ct, err := c.Create(ctx, crm.ContactInput{FirstName: first, LastName: last})
			require.NoError(t, err)
			made = append(made, ct)
		}
		fmt.Println("wrote", i)
	}
}

func TestNameFTSExactAfterKill9(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		dir := t.TempDir()
		kekPath := filepath.Join(dir, "kek.json")
		s := crashStore(t, db.DB, kekPath)
		tid := tenancy.NewID()
		ctx := owner(tid)
		_, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Before", LastName: "Crash"}) // keys made
		require.NoError(t, err)
		target := "sqlite:" + db.Path
		if db.Name == "postgres" {
			target = "postgres:" + db.DSN()
		}
		for round, writes := range []int{120, 260} {
			cmd := exec.Command(os.Args[0], "-test.run=^TestNameFTSCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), envFTSCrashDB+"="+target, envFTSCrashKEK+"="+kekPath, envFTSCrashTid+"="+tid)
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(out)
			n := 0
			for n < writes && lines.Scan() {
				if strings.HasPrefix(lines.Text(), "wrote ") {
					n++
				}
			}
			require.NoError(t, cmd.Process.Kill()) // SIGKILL, mid-write
			_ = cmd.Wait()
			require.Equal(t, writes, n, "round %d: the child wrote before it was killed\n%s", round, stderr.String())
		}

		e := &env{db: db, store: s, A: ctx, B: owner(tenancy.NewID())}
		if db.Name == "sqlite" {
			raw := db.Admin(t)
			var ok string
			require.NoError(t, raw.NewRaw("PRAGMA integrity_check").Scan(context.Background(), &ok))
			require.Equal(t, "ok", ok)
			crm.RequireFTSExact(t, raw)
			crm.FlushNameFTS(t, raw) // FTS5's check compares the index with every contact
			_, err := raw.ExecContext(context.Background(), "INSERT INTO "+crm.TableContactNameFTS+" ("+crm.TableContactNameFTS+", rank) VALUES ('integrity-check', 1)")
			require.NoError(t, err, "FTS5 finds its index and the contacts' name_index in agreement")
		}
		requireNameIndexExact(t, e)
		contacts := requireSearchExact(t, e, e.A)
		require.Greater(t, len(contacts), 200, "the children's creates are there (a third of their writes are renames)")
		// And it goes on: a write after the crashes is indexed.
		_, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: "After", LastName: "Lovelace"})
		require.NoError(t, err)
		requireNameIndexExact(t, e)
		require.Len(t, searchIDs(t, e, ctx, "after love"), 1)
	}, setup)
}
