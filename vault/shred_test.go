package vault_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

func TestDestroyKey(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		clk := newClock()
		v := newVault(t, db, kek, vault.WithClock(clk.Now), vault.WithColumns(tokenColumn))
		other := newVault(t, db.Reopen(t), kek, vault.WithClock(clk.Now), vault.WithCacheMaxAge(time.Minute))
		a, b := tenancy.NewID(), tenancy.NewID()
		bind := vault.Binding{Record: "r", Field: "f"}
		sa, err := v.Seal(owner(a), []byte("a"), bind)
		require.NoError(t, err)
		sb, err := v.Seal(owner(b), []byte("b"), bind)
		require.NoError(t, err)
		_, err = other.Open(owner(a), sa, bind) // the other process caches a's keys
		require.NoError(t, err)

		require.ErrorIs(t, v.DestroyKey(as(a, tenancy.RoleAdmin)), tenancy.ErrForbidden, "only an owner destroys")
		require.NoError(t, v.DestroyKey(owner(a)))

		// This process: at once, without the clock moving.
		_, err = v.Open(owner(a), sa, bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		require.ErrorIs(t, err, vault.ErrOpen, "a destroyed key is a failure to open too")
		_, err = v.Seal(owner(a), []byte("again"), bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed, "no fresh key after destruction")
		_, err = v.Index(owner(a), "x@example.com", "email")
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		_, err = v.EnsureKey(owner(a))
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		_, err = v.RotateKey(owner(a))
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		_, err = v.Reseal(owner(a), vault.ResealOptions{})
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		require.NoError(t, v.DestroyKey(owner(a)), "destroying again does nothing")

		// Another process within its cache's max age still has the keys
		// (the documented bound); after it, no more.
		_, err = other.Open(owner(a), sa, bind)
		require.NoError(t, err, "within the other process's max age")
		clk.Advance(time.Minute)
		_, err = other.Open(owner(a), sa, bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed, "after the other process's max age")

		// The key material is gone from the row; a tombstone remains.
		var row struct {
			DataKeyset, IndexKeyset []byte
			DestroyedAt             *time.Time
		}
		require.NoError(t, in(owner(a), db, func(tx bun.Tx) error {
			return tx.NewRaw("SELECT data_keyset, index_keyset, destroyed_at FROM socialcrm_vault_keys WHERE tenant_id = ?", a).Scan(owner(a), &row)
		}))
		require.Nil(t, row.DataKeyset)
		require.Nil(t, row.IndexKeyset)
		require.NotNil(t, row.DestroyedAt)
		require.Equal(t, []string{"vault.key_created", "vault.key_destroyed"}, auditActions(t, owner(a), db))

		// Other tenants are untouched.
		got, err := v.Open(owner(b), sb, bind)
		require.NoError(t, err)
		require.Equal(t, "b", string(got.Reveal()))

		// A tenant that never had a key gets a tombstone: it never gets one.
		c := tenancy.NewID()
		sctx, err := tenancy.AsTenant(system(), c)
		require.NoError(t, err)
		require.NoError(t, v.DestroyKey(sctx))
		_, err = v.Seal(owner(c), []byte("x"), bind)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	})
}

// TestCryptoShreddingReachesBackups is the backup case of crypto-shredding: a copy of
// the database taken before a tenant's key was destroyed is useless for
// that tenant once the key-encryption key version that wrapped its key is
// retired, while every other tenant's values still open.
func TestCryptoShreddingReachesBackups(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "kek.json")
		kf, err := insecurekeyfile.Open(path)
		require.NoError(t, err)
		v := newVault(t, db, kf, vault.WithColumns(tokenColumn))

		erased, kept := tenancy.NewID(), tenancy.NewID()
		bind := vault.Binding{Record: "conn", Field: "token"}
		for _, tid := range []string{erased, kept} {
			s, err := v.Seal(owner(tid), []byte("token of "+tid), bind)
			require.NoError(t, err)
			insertConn(t, owner(tid), db, &connection{ID: "conn", Token: s})
		}

		// The backup: a copy of the SQLite file (a copy of the rows into a
		// fresh schema on PostgreSQL).
		backup := copyDatabase(t, db, erased, kept)

		// Before anything happens, the backup opens with the key file: the
		// test below is not vacuous.
		openFrom := func(data bun.IDB, keys bun.IDB, kek *insecurekeyfile.KeyFile, tid string) (string, error) {
			token := getConn(t, owner(tid), data, "conn").Token
			sec, err := newVault(t, keys, kek).Open(owner(tid), token, bind)
			return string(sec.Reveal()), err
		}
		got, err := openFrom(backup, backup, kf, erased)
		require.NoError(t, err)
		require.Equal(t, "token of "+erased, got)

		// Erase the tenant: its data key is destroyed in the live database.
		require.NoError(t, v.DestroyKey(owner(erased)))
		_, err = openFrom(db, db, kf, erased)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		// The backup still holds the wrapped key, and the KEK still has the
		// version that wrapped it: destruction alone does not reach backups.
		got, err = openFrom(backup, backup, kf, erased)
		require.NoError(t, err)
		require.Equal(t, "token of "+erased, got)

		// Rotate the KEK, rewrap every live tenant, retire the old version.
		require.NoError(t, kf.Rotate())
		require.Equal(t, 2, kf.Versions())
		n, err := v.RotateKEK(tenancy.System(ctx, "kek-rotation"), kf)
		require.NoError(t, err)
		require.Equal(t, 1, n, "only the kept tenant has keys to rewrap")
		require.NoError(t, kf.Retire())
		require.Equal(t, 1, kf.Versions())

		// The current key material, as a restarted process reads it.
		current, err := insecurekeyfile.Open(path)
		require.NoError(t, err)
		require.Equal(t, 1, current.Versions())

		// The erased tenant's values in the backup no longer open, neither
		// with the backup's own key table nor with the live one.
		_, err = openFrom(backup, backup, current, erased)
		require.ErrorIs(t, err, vault.ErrOpen)
		_, err = openFrom(backup, db, current, erased)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		// The running vault, which held the old version in memory before
		// Retire, cannot either.
		_, err = openFrom(backup, backup, kf, erased)
		require.ErrorIs(t, err, vault.ErrOpen)

		// Other tenants' values still open: in the live database, and from
		// the backup with the live key table (the backup's own key rows
		// were wrapped with the retired version, so a restore takes the key
		// table from the live database).
		got, err = openFrom(db, db, current, kept)
		require.NoError(t, err)
		require.Equal(t, "token of "+kept, got)
		got, err = openFrom(backup, db, current, kept)
		require.NoError(t, err)
		require.Equal(t, "token of "+kept, got)
		_, err = openFrom(backup, backup, current, kept)
		require.ErrorIs(t, err, vault.ErrOpen, "every key row in the backup was wrapped by the retired version")
	})
}

// copyDatabase returns a copy of db as a backup would hold it: on SQLite a
// byte copy of the database file (after a checkpoint, so the WAL is in it);
// on PostgreSQL the vault's and the test model's rows of tenants copied
// into a fresh schema.
func copyDatabase(t *testing.T, db *dbtest.DB, tenants ...string) *bun.DB {
	t.Helper()
	ctx := context.Background()
	if db.Name == "sqlite" {
		_, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		require.NoError(t, err)
		dst := filepath.Join(t.TempDir(), "backup.db")
		copyFile(t, db.Path, dst)
		bk, err := sqldb.SQLite(dst)
		require.NoError(t, err)
		t.Cleanup(func() { bk.Close() })
		return bk
	}
	bk := dbtest.Postgres(t, setup)
	var kt []map[string]any
	require.NoError(t, db.NewSelect().Table(vault.TableKeyTenants).Scan(ctx, &kt))
	for _, m := range kt {
		_, err := bk.NewInsert().Model(&m).TableExpr(vault.TableKeyTenants).Exec(ctx)
		require.NoError(t, err)
	}
	for _, tid := range tenants {
		tctx := owner(tid)
		for _, table := range []string{vault.TableKeys, "test_vault_connections"} {
			var rows []map[string]any
			require.NoError(t, in(tctx, db, func(tx bun.Tx) error {
				return tx.NewSelect().Table(table).Where("tenant_id = ?", tid).Scan(tctx, &rows)
			}))
			require.NotEmpty(t, rows)
			require.NoError(t, in(tctx, bk, func(tx bun.Tx) error {
				for _, m := range rows {
					if _, err := tx.NewInsert().Model(&m).TableExpr(table).Exec(tctx); err != nil {
						return err
					}
				}
				return nil
			}))
		}
	}
	return bk.DB
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
