package retention_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The kill-point crash test. A child process (this test binary, running
// TestCrashChild) sweeps and purges a seeded database and kills itself with
// os.Exit at its N-th kill point: before or after a batch, inside a batch's
// transaction after the selection, inside the side-effect hook, after the
// erase, after the receipt, between categories and tenants, after the audit
// log's truncation, after the purge hook. The parent then checks that the
// database is consistent (the audit chains verify, and every erased row is
// accounted for by a committed receipt, no more and no less), runs a full
// sweep and purge, and checks that the final state equals that of a run that
// never crashed.

const (
	envCrashDB    = "RETENTION_CRASH_DB"    // "sqlite:<path>" or "postgres:<dsn>"
	envCrashPoint = "RETENTION_CRASH_POINT" // the kill point number, from 1
	crashExitCode = 3
)

var crashNow = epoch.Add(10 * retention.Year)

// crashEnv builds the engine of the crash test over db, counting kill
// points into tr.
func crashEnv(t testing.TB, db *bun.DB, clk func() time.Time, tr func(string)) *retention.Engine {
	t.Helper()
	store, err := tenancy.NewStore(db, tenancy.WithClock(clk))
	require.NoError(t, err)
	cats := testCategories(nil)
	for i := range cats {
		if cats[i].BeforeErase != nil {
			cats[i].BeforeErase = func(_ context.Context, _ bun.Tx, _ []string) error {
				tr("hook.inside")
				return nil
			}
		}
	}
	e, err := retention.New(db, retention.WithClock(clk), retention.WithStore(store),
		retention.WithPolicy(testPolicy()), retention.WithBatchSize(3),
		retention.WithTenantPurgeHook(func(context.Context) error { tr("purge.hook.inside"); return nil }))
	require.NoError(t, err)
	require.NoError(t, e.Register(cats...))
	require.NoError(t, e.Register(retention.TenancyCategories(store.Audit())...))
	require.NoError(t, e.Register(retention.OwnCategories()...))
	retention.SetTrace(e, tr)
	return e
}

// crashSeed fills a fresh database: three tenants with expired and live
// rows in every swept category, a deauthorization event, a record hold in
// beta, and gamma closed long ago (due for purging).
func crashSeed(t testing.TB, db *dbtest.DB) {
	t.Helper()
	v := newEnv(t, db)
	v.clock.Set(crashNow.Add(-400 * retention.Day))
	for _, name := range []string{"alpha", "beta", "gamma"} {
		_, ctx := v.tenant(t, name)
		var rs []response
		var ms []metric
		var cs []conn
		for i := range 8 {
			rs = append(rs, response{ID: id("r", i), AccountID: "acct", Body: "{}", FetchedAt: crashNow.Add(-time.Duration(85+2*i) * retention.Day)})
			ms = append(ms, metric{ID: id("m", i), AccountID: "acct", Value: int64(i), Day: crashNow.Add(-time.Duration(700+5*i) * retention.Day)})
			cs = append(cs, conn{ID: id("c", i), AccountID: []string{"gone", "live"}[i%2], Token: "tok", ConnectedAt: crashNow.Add(-500 * retention.Day)})
		}
		insert(t, ctx, db, &rs)
		insert(t, ctx, db, &ms)
		insert(t, ctx, db, &cs)
		insert(t, ctx, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: crashNow}})
		insert(t, ctx, db, &[]invoice{
			{ID: "i1", ContactID: "k1", Amount: 1, IssuedAt: crashNow.Add(-8 * retention.Year)},
			{ID: "i2", ContactID: "k1", Amount: 1, IssuedAt: crashNow.Add(-retention.Year)},
		})
		require.NoError(t, v.e.RecordEvent(ctx, retention.EventDeauthorized, "account_id", "gone"))
		switch name {
		case "beta":
			_, err := v.e.PlaceHold(ctx, retention.Hold{Scope: retention.HoldRecord, Category: catRawResponse, RecordID: id("r", 7), Reason: "litigation"})
			require.NoError(t, err)
		case "gamma":
			_, err := v.store.CloseTenant(ctx, 30*retention.Day)
			require.NoError(t, err)
		}
	}
}

// crashRun sweeps and purges at crashNow.
func crashRun(ctx context.Context, e *retention.Engine) error {
	_, err := e.Sweep(ctx, crashNow)
	if err != nil {
		return err
	}
	_, err = e.PurgeTenants(ctx, crashNow)
	return err
}

// TestCrashChild is the child's body; it does nothing unless started by
// TestCrashAtKillPoints.
func TestCrashChild(t *testing.T) {
	target := os.Getenv(envCrashDB)
	if target == "" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(envCrashPoint))
	require.NoError(t, err)
	var db *bun.DB
	if path, ok := strings.CutPrefix(target, "sqlite:"); ok {
		db, err = sqldb.SQLite(path)
	} else {
		db, err = dbtest.OpenPostgres(strings.TrimPrefix(target, "postgres:"))
	}
	require.NoError(t, err)
	require.NoError(t, setupUnguarded(context.Background(), db))
	seen := 0
	e := crashEnv(t, db, func() time.Time { return crashNow }, func(point string) {
		seen++
		if seen == n {
			fmt.Fprintf(os.Stderr, "killed at point %d (%s)\n", n, point)
			os.Exit(crashExitCode)
		}
	})
	require.NoError(t, crashRun(tenancy.System(context.Background(), "retention-crash"), e))
}

// snapshot renders every tenant-owned test table and the tenants' states,
// by tenant name (a purged tenant's is empty), for comparing final states.
func snapshot(t testing.TB, db bun.IDB) string {
	t.Helper()
	var b strings.Builder
	var ts []tenancy.Tenant
	require.NoError(t, db.NewSelect().Model(&ts).Order("name").Scan(context.Background()))
	for _, tn := range ts {
		fmt.Fprintf(&b, "tenant %q %s\n", tn.Name, tn.Status)
		ctx, err := tenancy.AsTenant(system(), tn.ID)
		require.NoError(t, err)
		for _, table := range append(testTables, tenancy.TableMembers, retention.TableHolds, retention.TableEvents) {
			require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, "SELECT * FROM "+table+" WHERE tenant_id = ? ORDER BY id", tn.ID)
				if err != nil {
					return err
				}
				defer rows.Close()
				cols, _ := rows.Columns()
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				for rows.Next() {
					if err := rows.Scan(ptrs...); err != nil {
						return err
					}
					fmt.Fprintf(&b, "  %s", table)
					for i, c := range cols {
						switch c {
						case "tenant_id", "id", "created_at", "at":
							if c == "id" && table != retention.TableHolds && table != retention.TableEvents && table != tenancy.TableMembers {
								fmt.Fprintf(&b, " %s", vals[i])
							}
							continue
						}
						if bs, ok := vals[i].([]byte); ok {
							vals[i] = string(bs)
						}
						if tm, ok := vals[i].(time.Time); ok {
							vals[i] = tm.UTC().Format(time.RFC3339)
						}
						fmt.Fprintf(&b, " %s=%v", c, vals[i])
					}
					b.WriteString("\n")
				}
				return rows.Err()
			}))
		}
	}
	return b.String()
}

// consistent checks what must hold after any crash: every tenant's audit
// chain verifies, and for each swept category the rows gone equal the sum
// of the committed receipts' counts.
func consistent(t testing.TB, db bun.IDB, initial map[string]int64) {
	t.Helper()
	var ts []tenancy.Tenant
	require.NoError(t, db.NewSelect().Model(&ts).Order("name").Scan(context.Background()))
	for _, tn := range ts {
		ctx, err := tenancy.AsTenant(system(), tn.ID)
		require.NoError(t, err)
		var rs []tenancy.AuditEntry
		for _, action := range []string{"retention.swept", "retention.purged"} {
			rs = append(rs, receipts(t, ctx, db, action)...)
		}
		for _, table := range []struct{ name, category string }{
			{"test_responses", catRawResponse}, {"test_metrics", catMetrics},
			{"test_connections", catConnection}, {"test_invoices", catInvoice},
			{"test_contacts", "crm.contact"},
		} {
			left := int64(len(ids(t, ctx, db, table.name)))
			require.Equal(t, initial[tn.ID+"/"+table.name]-left, sumMeta(rs, table.category, "count"),
				"tenant %s, %s: rows erased must equal the receipts' counts", tn.Name, table.name)
		}
	}
}

func counts(t testing.TB, db bun.IDB) map[string]int64 {
	t.Helper()
	var ts []tenancy.Tenant
	require.NoError(t, db.NewSelect().Model(&ts).Scan(context.Background()))
	out := map[string]int64{}
	for _, tn := range ts {
		ctx, err := tenancy.AsTenant(system(), tn.ID)
		require.NoError(t, err)
		for _, table := range testTables {
			out[tn.ID+"/"+table] = int64(len(ids(t, ctx, db, table)))
		}
	}
	return out
}

func TestCrashAtKillPoints(t *testing.T) {
	each(t, func(t *testing.T, ref *dbtest.DB) {
		fresh := func(t *testing.T) *dbtest.DB {
			if ref.Name == "sqlite" {
				return dbtest.SQLite(t, setup)
			}
			return dbtest.Postgres(t, setup)
		}
		// The run that never crashed: its final state and its kill points.
		crashSeed(t, ref)
		var points []string
		e := crashEnv(t, ref.DB, func() time.Time { return crashNow }, func(p string) { points = append(points, p) })
		require.NoError(t, crashRun(system(), e))
		want := snapshot(t, ref)
		require.Contains(t, want, `tenant "" purged`, "gamma is purged, its name emptied")
		distinct := map[string]bool{}
		for _, p := range points {
			distinct[p] = true
		}
		t.Logf("%d kill points (%d kinds)", len(points), len(distinct))
		require.GreaterOrEqual(t, len(points), 20)

		// Kill at 24 points spread over the whole run (the first and the
		// last included), and at the first two occurrences of every kind of
		// point.
		const spread = 24
		chosen := map[int]bool{}
		for i := range spread {
			chosen[1+i*(len(points)-1)/(spread-1)] = true
		}
		kinds := map[string]int{}
		for i, p := range points {
			if kinds[p] < 2 {
				kinds[p]++
				chosen[i+1] = true
			}
		}
		at := slices.Sorted(maps.Keys(chosen))
		var mu sync.Mutex
		hit := map[string]bool{}
		// Each kill point has a database and a child process of its own,
		// so the points run in parallel (as many at once as -test.parallel
		// allows): much of each one's time is a child process starting and
		// the database's round trips.
		t.Run("points", func(t *testing.T) {
			for _, n := range at {
				t.Run(strconv.Itoa(n), func(t *testing.T) {
					t.Parallel()
					db := fresh(t)
					crashSeed(t, db)
					initial := counts(t, db)
					target := "sqlite:" + db.Path
					child := "socialcrm-crash-child-" + strconv.Itoa(n)
					if db.Name == "postgres" {
						dsn := db.DSN()
						if strings.Contains(dsn, "?") {
							dsn += "&application_name=" + child
						} else {
							dsn += "?application_name=" + child
						}
						target = "postgres:" + dsn
					}
					cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
					cmd.Env = append(os.Environ(), envCrashDB+"="+target, envCrashPoint+"="+strconv.Itoa(n))
					out, err := cmd.CombinedOutput()
					var exit *exec.ExitError
					require.True(t, errors.As(err, &exit) && exit.ExitCode() == crashExitCode,
						"child for kill point %d: %v\n%s", n, err, out)
					mu.Lock()
					hit[points[n-1]] = true
					mu.Unlock()
					if db.Name == "postgres" {
						// The killed child's sessions end when their server
						// processes notice it is gone; until then they hold
						// its locks (a purge's claim among them, which the
						// next run would find taken and leave to it).
						waitSessionsGone(t, db, child)
					}

					consistent(t, db, initial)
					e := crashEnv(t, db.DB, func() time.Time { return crashNow }, func(string) {})
					require.NoError(t, crashRun(system(), e), "the run after the crash at point %d", n)
					require.Equal(t, want, snapshot(t, db), "final state after a crash at point %d (%s)", n, points[n-1])
					consistent(t, db, initial)
				})
			}
		})
		t.Logf("killed at %d points of %d kinds", len(at), len(hit))
		require.Len(t, hit, len(distinct), "kill points of every kind")
	})
}

// waitSessionsGone waits until no session of db's server has the
// application name app (a killed process's sessions outlive it until
// their server processes notice), for at most 30 seconds.
func waitSessionsGone(t *testing.T, db *dbtest.DB, app string) {
	t.Helper()
	admin := db.Admin(t)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		require.NoError(t, admin.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ?", app).Scan(context.Background(), &n))
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions of %s still open 30 s after it was killed", n, app)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
