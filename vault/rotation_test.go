package vault_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

func TestRotateKeyKeepsOldValuesReadable(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		v := newVault(t, db, kek)
		tid := tenancy.NewID()
		ctx := owner(tid)
		b := vault.Binding{Record: "r", Field: "f"}

		old, err := v.Seal(ctx, []byte("before"), b)
		require.NoError(t, err)
		first := old.KeyID()

		_, err = v.RotateKey(as(tid, tenancy.RoleStaff))
		require.ErrorIs(t, err, tenancy.ErrForbidden, "staff may not rotate")
		_, err = v.RotateKey(context.Background())
		require.ErrorIs(t, err, tenancy.ErrNoTenant)

		second, err := v.RotateKey(ctx)
		require.NoError(t, err)
		require.NotEqual(t, first, second)

		// This process uses the new key at once.
		s, err := v.Seal(ctx, []byte("after"), b)
		require.NoError(t, err)
		require.Equal(t, second, s.KeyID())

		for want, sealed := range map[string]vault.Sealed{"before": old, "after": s} {
			got, err := v.Open(ctx, sealed, b)
			require.NoError(t, err)
			require.Equal(t, want, string(got.Reveal()))
		}

		// A rotation by the system (a scheduled job) works the same.
		sctx, err := tenancy.AsTenant(system(), tid)
		require.NoError(t, err)
		third, err := v.RotateKey(sctx)
		require.NoError(t, err)
		got, err := v.Open(ctx, old, b)
		require.NoError(t, err)
		require.Equal(t, "before", string(got.Reveal()))
		primary, err := v.EnsureKey(ctx)
		require.NoError(t, err)
		require.Equal(t, third, primary)

		require.Equal(t, []string{"vault.key_created", "vault.key_rotated", "vault.key_rotated"}, auditActions(t, ctx, db))
	})
}

func TestRotationByAnotherProcess(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		clk := newClock()
		v1 := newVault(t, db, kek, vault.WithClock(clk.Now))
		v2 := newVault(t, db.Reopen(t), kek, vault.WithClock(clk.Now))
		ctx := owner(tenancy.NewID())
		b := vault.Binding{Record: "r", Field: "f"}

		old, err := v1.Seal(ctx, []byte("old"), b)
		require.NoError(t, err)
		_, err = v2.Open(ctx, old, b) // v2 caches the keys
		require.NoError(t, err)

		second, err := v1.RotateKey(ctx)
		require.NoError(t, err)
		s, err := v1.Seal(ctx, []byte("new"), b)
		require.NoError(t, err)

		// v2's cache predates the new key; a value under a key it does not
		// know makes it reload, so the value opens at once.
		got, err := v2.Open(ctx, s, b)
		require.NoError(t, err)
		require.Equal(t, "new", string(got.Reveal()))
		s2, err := v2.Seal(ctx, []byte("x"), b)
		require.NoError(t, err)
		require.Equal(t, second, s2.KeyID(), "after the reload v2 seals with the new primary")

		// v1 rotates again at once (the clock has not moved): v2's reload
		// found the key it was made for, so it does not hold the next one
		// back, and the newest value opens too.
		third, err := v1.RotateKey(ctx)
		require.NoError(t, err)
		s3, err := v1.Seal(ctx, []byte("newer"), b)
		require.NoError(t, err)
		require.Equal(t, third, s3.KeyID())
		got, err = v2.Open(ctx, s3, b)
		require.NoError(t, err, "a second rotation elsewhere within a second of the first")
		require.Equal(t, "newer", string(got.Reveal()))

		// A value under a key id the tenant never had reloads once; the
		// reload does not find it, so the next such value within the
		// interval fails without reading the keys again — even when a
		// rotation elsewhere happened in between (it is read after the
		// interval).
		raw := s3.Bytes()
		binary.BigEndian.PutUint32(raw[1:5], 0xfffffffe) // the key id after the Tink prefix byte
		var forged vault.Sealed
		require.NoError(t, forged.Scan(raw))
		require.EqualValues(t, 0xfffffffe, forged.KeyID())
		_, err = v2.Open(ctx, forged, b)
		require.ErrorIs(t, err, vault.ErrOpen)
		fourth, err := v1.RotateKey(ctx)
		require.NoError(t, err)
		s4, err := v1.Seal(ctx, []byte("newest"), b)
		require.NoError(t, err)
		require.Equal(t, fourth, s4.KeyID())
		_, err = v2.Open(ctx, s4, b)
		require.ErrorIs(t, err, vault.ErrOpen, "within the interval of a reload that found nothing")
		clk.Advance(2 * time.Second)
		got, err = v2.Open(ctx, s4, b)
		require.NoError(t, err, "after the interval")
		require.Equal(t, "newest", string(got.Reveal()))
	})
}

func TestResealResumesAfterInterruption(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		v := newVault(t, db, kek, vault.WithColumns(tokenColumn))
		a, other := tenancy.NewID(), tenancy.NewID()
		ctx := owner(a)

		const n = 25
		want := map[string]string{}
		for i := range n {
			id := fmt.Sprintf("conn-%02d", i)
			plain := fmt.Sprintf("token-%02d", i)
			s, err := v.Seal(ctx, []byte(plain), vault.Binding{Record: id, Field: "token"})
			require.NoError(t, err)
			insertConn(t, ctx, db, &connection{ID: id, Token: s})
			want[id] = plain
		}
		// A row without a token, and one sealed under a binding that does
		// not match its declaration: Reseal cannot open it and leaves it.
		insertConn(t, ctx, db, &connection{ID: "conn-empty"})
		odd, err := v.Seal(ctx, []byte("odd"), vault.Binding{Record: "elsewhere", Field: "token"})
		require.NoError(t, err)
		insertConn(t, ctx, db, &connection{ID: "conn-odd", Token: odd})
		// Another tenant's values are not touched.
		os, err := v.Seal(owner(other), []byte("other"), vault.Binding{Record: "conn-00", Field: "token"})
		require.NoError(t, err)
		insertConn(t, owner(other), db, &connection{ID: "conn-00", Token: os})

		oldKey := odd.KeyID()
		newKey, err := v.RotateKey(ctx)
		require.NoError(t, err)

		// The first run is interrupted after its first batch.
		runCtx, cancel := context.WithCancel(ctx)
		var calls [][2]int64
		_, err = v.Reseal(runCtx, vault.ResealOptions{BatchSize: 10, Progress: func(done, total int64) {
			calls = append(calls, [2]int64{done, total})
			if done >= 10 {
				cancel()
			}
		}})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, [][2]int64{{0, n + 1}, {10, n + 1}}, calls)
		countKeys := func() (onNew, onOld int) {
			for _, c := range listConns(t, ctx, db) {
				switch c.Token.KeyID() {
				case newKey:
					onNew++
				case oldKey:
					onOld++
				}
			}
			return
		}
		onNew, onOld := countKeys()
		require.Equal(t, 10, onNew, "the committed batch is durable")
		require.Equal(t, n+1-10, onOld)

		// A second run, by another process, finishes the job and skips
		// what the first did.
		v2 := newVault(t, db.Reopen(t), kek, vault.WithColumns(tokenColumn))
		calls = nil
		st, err := v2.Reseal(ctx, vault.ResealOptions{BatchSize: 10, Progress: func(done, total int64) {
			calls = append(calls, [2]int64{done, total})
		}})
		require.NoError(t, err)
		require.Equal(t, vault.ResealStats{Total: n + 1, Resealed: n - 10, Current: 10, Failed: 1}, st)
		require.Equal(t, [][2]int64{{0, n + 1}, {10, n + 1}, {20, n + 1}, {26, n + 1}}, calls)
		onNew, onOld = countKeys()
		require.Equal(t, n, onNew)
		require.Equal(t, 1, onOld, "only the value Reseal could not open stays on the old key")

		for _, c := range listConns(t, ctx, db) {
			if c.ID == "conn-empty" || c.ID == "conn-odd" {
				continue
			}
			got, err := v.Open(ctx, c.Token, vault.Binding{Record: c.ID, Field: "token"})
			require.NoError(t, err, c.ID)
			require.Equal(t, want[c.ID], string(got.Reveal()))
		}
		require.True(t, getConn(t, ctx, db, "conn-empty").Token.IsZero())
		require.Equal(t, os.Bytes(), getConn(t, owner(other), db, "conn-00").Token.Bytes())

		// Run again: nothing left to do.
		st, err = v.Reseal(ctx, vault.ResealOptions{})
		require.NoError(t, err)
		require.Equal(t, vault.ResealStats{Total: n + 1, Current: n, Failed: 1}, st)

		_, err = v.Reseal(as(a, tenancy.RoleStaff), vault.ResealOptions{})
		require.ErrorIs(t, err, tenancy.ErrForbidden)
	})
}

func TestRotateKEK(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek1, err := vault.KMS(fakeKMSURI(t))
		require.NoError(t, err)
		kek2, err := vault.KMS(fakeKMSURI(t))
		require.NoError(t, err)
		v := newVault(t, db, kek1, vault.WithColumns(tokenColumn))

		tenants := []string{tenancy.NewID(), tenancy.NewID(), tenancy.NewID()}
		sealed := map[string]vault.Sealed{}
		b := vault.Binding{Record: "conn", Field: "token"}
		for _, tid := range tenants {
			s, err := v.Seal(owner(tid), []byte("token of "+tid), b)
			require.NoError(t, err)
			insertConn(t, owner(tid), db, &connection{ID: "conn", Token: s})
			sealed[tid] = s
		}
		gone := tenants[2]
		require.NoError(t, v.DestroyKey(owner(gone)))

		_, err = v.RotateKEK(owner(tenants[0]), kek2)
		require.ErrorIs(t, err, tenancy.ErrNotSystem)

		n, err := v.RotateKEK(system(), kek2)
		require.NoError(t, err)
		require.Equal(t, 2, n, "every live tenant, not the destroyed one")
		// Idempotent: running it again (after a crash, say) is harmless.
		n, err = v.RotateKEK(system(), kek2)
		require.NoError(t, err)
		require.Equal(t, 2, n)

		for _, tid := range tenants[:2] {
			// The sealed values were not touched.
			require.Equal(t, sealed[tid].Bytes(), getConn(t, owner(tid), db, "conn").Token.Bytes())
			// A vault that only has the new KEK opens them ...
			got, err := newVault(t, db, kek2).Open(owner(tid), sealed[tid], b)
			require.NoError(t, err)
			require.Equal(t, "token of "+tid, string(got.Reveal()))
			// ... and one that only has the old KEK no longer can.
			_, err = newVault(t, db, kek1).Open(owner(tid), sealed[tid], b)
			require.Same(t, vault.ErrOpen, err)
			_, err = newVault(t, db, kek1).Seal(owner(tid), []byte("x"), b)
			require.ErrorIs(t, err, vault.ErrKEK)
			// The rotating vault itself goes on, with new tenants too.
			got, err = v.Open(owner(tid), sealed[tid], b)
			require.NoError(t, err)
			require.Equal(t, "token of "+tid, string(got.Reveal()))
			require.Equal(t, []string{"vault.key_created", "vault.kek_rotated", "vault.kek_rotated"},
				auditActions(t, owner(tid), db))
		}
		late := tenancy.NewID()
		s, err := v.Seal(owner(late), []byte("late"), b)
		require.NoError(t, err)
		_, err = newVault(t, db, kek2).Open(owner(late), s, b)
		require.NoError(t, err, "keys created after the rotation are wrapped with the new KEK")
		_, err = newVault(t, db, kek2).Open(owner(gone), sealed[gone], b)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	})
}

// TestUnknownKeyIDsDoNotFloodTheKeyStore: values naming key ids a tenant
// does not have reload its keys at most once per interval.
func TestUnknownKeyIDsDoNotFloodTheKeyStore(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := &countingAEAD{AEAD: testkit.NewKEK(t)}
		clk := newClock()
		v := newVault(t, db, kek, vault.WithClock(clk.Now))
		a, b := owner(tenancy.NewID()), owner(tenancy.NewID())
		bind := vault.Binding{Record: "r", Field: "f"}
		foreign, err := v.Seal(b, []byte("b's"), bind) // under a key id a does not have
		require.NoError(t, err)
		_, err = v.Seal(a, []byte("a's"), bind)
		require.NoError(t, err)

		before := kek.decrypts.Load()
		for range 100 {
			_, err := v.Open(a, foreign, bind)
			require.ErrorIs(t, err, vault.ErrOpen)
		}
		require.LessOrEqual(t, kek.decrypts.Load()-before, int64(2), "one reload (two unwraps) for 100 opens")
		clk.Advance(2 * time.Second)
		_, err = v.Open(a, foreign, bind)
		require.ErrorIs(t, err, vault.ErrOpen)
		require.LessOrEqual(t, kek.decrypts.Load()-before, int64(4), "another reload only after the interval")
	})
}

// countingAEAD counts the key-encryption key's decryptions.
type countingAEAD struct {
	tink.AEAD
	decrypts atomic.Int64
}

func (c *countingAEAD) Decrypt(ct, ad []byte) ([]byte, error) {
	c.decrypts.Add(1)
	return c.AEAD.Decrypt(ct, ad)
}
