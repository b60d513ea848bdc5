package tenancy_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// rawWidgets counts the widgets q sees with raw SQL (no hooks, no Guard:
// only row-level security), and fails when any of them is not tenant's.
func rawWidgets(ctx context.Context, t *testing.T, q bun.IDB, tenant string) int {
	t.Helper()
	var tenants []string
	require.NoError(t, q.NewRaw("SELECT tenant_id FROM test_widgets").Scan(ctx, &tenants))
	for _, got := range tenants {
		require.Equal(t, tenant, got, "a row of another tenant")
	}
	return len(tenants)
}

// TestSessionTenantNeverLeaks: on PostgreSQL the tenant setting stays in
// the connection's session between statements, so that a tenant's next
// statement costs nothing for it — and still, on the pool's only
// connection, right after tenant A's statements, every other user of the
// connection sees none of A's rows: ordinary bun code without a
// principal, database/sql directly, a pinned connection, the driver's
// connection through Raw, a statement prepared earlier, a transaction
// begun without a tenant, and another tenant's RunScoped and RunInTx.
func TestSessionTenantNeverLeaks(t *testing.T) {
	if !hasPostgres() {
		t.Log("not run: " + dbtest.EnvPostgres + " is not set (SQLite has no row-level security)")
		return
	}
	db := dbtest.Postgres(t, setup)
	a, b := tenancy.NewID(), tenancy.NewID()
	for _, tid := range []string{a, a, b} {
		require.NoError(t, insert(as(tid), db, &widget{ID: tenancy.NewID(), Name: "w"}))
	}
	raw := db.Reopen(t) // no Guard, no hooks on raw SQL
	raw.SetMaxOpenConns(1)
	ctx := context.Background()
	stmt, err := raw.PrepareContext(ctx, "SELECT count(*) FROM test_widgets")
	require.NoError(t, err)
	defer stmt.Close()

	primeA := func() {
		t.Helper()
		require.NoError(t, tenancy.RunScoped(as(a), raw, func(ctx context.Context, db bun.IDB) error {
			require.Equal(t, 2, rawWidgets(ctx, t, db, a))
			return nil
		}))
	}
	count := func(row *sql.Row) int {
		t.Helper()
		var n int
		require.NoError(t, row.Scan(&n))
		return n
	}
	for name, next := range map[string]func() int{
		"bun without a principal": func() int { return rawWidgets(ctx, t, raw, "") },
		"bun query builder": func() int {
			n, err := raw.NewSelect().Table("test_widgets").Count(ctx)
			require.NoError(t, err)
			return int(n)
		},
		"database/sql":       func() int { return count(raw.DB.QueryRowContext(ctx, "SELECT count(*) FROM test_widgets")) },
		"prepared statement": func() int { return count(stmt.QueryRowContext(ctx)) },
		"pinned connection": func() int {
			conn, err := raw.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			return rawWidgets(ctx, t, conn, "")
		},
		"driver connection through Raw": func() int {
			conn, err := raw.DB.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			var n int64
			require.NoError(t, conn.Raw(func(dc any) error {
				rows, err := dc.(driver.QueryerContext).QueryContext(ctx, "SELECT count(*) FROM test_widgets", nil)
				if err != nil {
					return err
				}
				defer rows.Close()
				v := make([]driver.Value, 1)
				if err := rows.Next(v); err != nil {
					return err
				}
				n = v[0].(int64)
				return nil
			}))
			return int(n)
		},
		"transaction without a tenant": func() int {
			var n int
			require.NoError(t, raw.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				n = rawWidgets(ctx, t, tx, "")
				return nil
			}))
			return n
		},
	} {
		primeA()
		require.Zero(t, next(), name)
	}
	for name, next := range map[string]func() int{
		"RunScoped": func() (n int) {
			require.NoError(t, tenancy.RunScoped(as(b), raw, func(ctx context.Context, db bun.IDB) error {
				n = rawWidgets(ctx, t, db, b)
				return nil
			}))
			return n
		},
		"RunInTx": func() (n int) {
			require.NoError(t, tenancy.RunInTx(as(b), raw, nil, func(ctx context.Context, tx bun.Tx) error {
				n = rawWidgets(ctx, t, tx, b)
				return nil
			}))
			return n
		},
		"RunInTx nested in A's": func() (n int) {
			require.NoError(t, tenancy.RunInTx(as(a), raw, nil, func(ctx context.Context, tx bun.Tx) error {
				require.NoError(t, tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
					n = rawWidgets(ctx, t, tx, b)
					return nil
				}))
				require.Equal(t, 2, rawWidgets(ctx, t, tx, a))
				return nil
			}))
			return n
		},
	} {
		primeA()
		require.Equal(t, 1, next(), name)
		require.Zero(t, rawWidgets(ctx, t, raw, ""), name+": then no tenant")
	}
}

// TestTenantsInterleavedOnOneConnection: two tenants share the pool's
// only connection through thousands of random operations — reads,
// writes, writes refused by row-level security or failing on a key,
// transactions committed and rolled back, nested scopes of the other
// tenant (some failing), statements cancelled mid-flight, statements
// without a tenant — and every read sees exactly its tenant's rows, as
// many as were committed, and a statement without a tenant sees none.
func TestTenantsInterleavedOnOneConnection(t *testing.T) {
	if !hasPostgres() {
		t.Log("not run: " + dbtest.EnvPostgres + " is not set (SQLite has no row-level security)")
		return
	}
	db := dbtest.Postgres(t, setup)
	raw := db.Reopen(t)
	raw.SetMaxOpenConns(1)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	tenants := []string{tenancy.NewID(), tenancy.NewID()}
	want := map[string]int{}
	taken := tenancy.NewID() // an id whose insert always fails
	require.NoError(t, insert(as(tenants[0]), db, &widget{ID: taken, Name: "w"}))
	want[tenants[0]]++
	errRollback := errors.New("roll back")
	ins := func(ctx context.Context, db bun.IDB, tenant, id string) error {
		_, err := db.NewRaw("INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'w', 0)", tenant, id).Exec(ctx)
		return err
	}
	ops := 3000
	if testing.Short() {
		ops = 500
	}
	for i := range ops {
		k := rng.IntN(len(tenants))
		tid, other := tenants[k], tenants[1-k]
		ctx := as(tid)
		step := fmt.Sprintf("op %d", i)
		switch op := rng.IntN(11); op {
		case 0, 1: // read
			require.NoError(t, tenancy.RunScoped(ctx, raw, func(ctx context.Context, db bun.IDB) error {
				require.Equal(t, want[tid], rawWidgets(ctx, t, db, tid), step)
				return nil
			}))
		case 2: // no tenant
			require.Zero(t, rawWidgets(context.Background(), t, raw, ""), step)
		case 3: // write
			require.NoError(t, tenancy.RunScoped(ctx, raw, func(ctx context.Context, db bun.IDB) error {
				return ins(ctx, db, tid, tenancy.NewID())
			}), step)
			want[tid]++
		case 4: // a write into the other tenant, refused
			err := tenancy.RunScoped(ctx, raw, func(ctx context.Context, db bun.IDB) error {
				return ins(ctx, db, other, tenancy.NewID())
			})
			require.ErrorContains(t, err, "row-level security", step)
		case 5: // a write that fails on the key
			err := tenancy.RunScoped(ctx, raw, func(ctx context.Context, db bun.IDB) error {
				return ins(ctx, db, tid, taken)
			})
			require.Error(t, err, step)
		case 6, 7: // a transaction, committed or rolled back
			commit := op == 6
			err := tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
				n := rawWidgets(ctx, t, tx, tid)
				require.Equal(t, want[tid], n, step)
				if err := ins(ctx, tx, tid, tenancy.NewID()); err != nil {
					return err
				}
				require.Equal(t, n+1, rawWidgets(ctx, t, tx, tid), step)
				if !commit {
					return errRollback
				}
				return nil
			})
			if commit {
				require.NoError(t, err, step)
				want[tid]++
			} else {
				require.ErrorIs(t, err, errRollback, step)
			}
		case 8: // the other tenant's scope nested in a transaction, failing or not
			fail := rng.IntN(2) == 0
			require.NoError(t, tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
				nested := tenancy.RunInTx(as(other), tx, nil, func(ctx context.Context, tx bun.Tx) error {
					require.Equal(t, want[other], rawWidgets(ctx, t, tx, other), step)
					if fail {
						return ins(ctx, tx, other, taken)
					}
					return nil
				})
				require.Equal(t, fail, nested != nil, step)
				require.Equal(t, want[tid], rawWidgets(ctx, t, tx, tid), step)
				return nil
			}))
		case 9: // cancelled mid-flight
			cctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
			err := tenancy.RunScoped(cctx, raw, func(ctx context.Context, db bun.IDB) error {
				var n int
				return db.NewRaw("SELECT count(*) FROM test_widgets, pg_sleep(0.01)").Scan(ctx, &n)
			})
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("%s: cancelled: %v", step, err)
			}
		case 10: // a statement without a tenant after a failing one of the tenant
			_ = tenancy.RunScoped(ctx, raw, func(ctx context.Context, db bun.IDB) error {
				return ins(ctx, db, tid, taken)
			})
			require.Zero(t, rawWidgets(context.Background(), t, raw, ""), step)
		}
	}
	for _, tid := range tenants {
		require.NoError(t, tenancy.RunScoped(as(tid), raw, func(ctx context.Context, db bun.IDB) error {
			require.Equal(t, want[tid], rawWidgets(ctx, t, db, tid))
			return nil
		}))
	}
}
