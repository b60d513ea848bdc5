package vault_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

func TestSealOpenRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		v := newVault(t, db, kek)
		tid := tenancy.NewID()
		ctx := owner(tid)
		b := vault.Binding{Record: "conn-1", Field: "token"}

		s, err := v.Seal(ctx, []byte("EAAB-access-token"), b)
		require.NoError(t, err)
		require.False(t, s.IsZero())
		primary, err := v.EnsureKey(ctx)
		require.NoError(t, err)
		require.Equal(t, primary, s.KeyID(), "Sealed names the key it was sealed with")

		got, err := v.Open(ctx, s, b)
		require.NoError(t, err)
		require.Equal(t, "EAAB-access-token", string(got.Reveal()))

		// Sealing the same plaintext twice gives different ciphertexts.
		s2, err := v.Seal(ctx, []byte("EAAB-access-token"), b)
		require.NoError(t, err)
		require.NotEqual(t, s.Bytes(), s2.Bytes())

		// Through a bun column and back, on this database; the zero Sealed
		// is NULL.
		insertConn(t, ctx, db, &connection{ID: "conn-1", Token: s})
		insertConn(t, ctx, db, &connection{ID: "conn-2"})
		read := getConn(t, ctx, db, "conn-1")
		require.Equal(t, s.Bytes(), read.Token.Bytes())
		got, err = v.Open(ctx, read.Token, b)
		require.NoError(t, err)
		require.Equal(t, "EAAB-access-token", string(got.Reveal()))
		require.True(t, getConn(t, ctx, db, "conn-2").Token.IsZero())
		var nulls int
		require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
			return tx.NewRaw("SELECT count(*) FROM test_vault_connections WHERE tenant_id = ? AND token IS NULL", tid).Scan(ctx, &nulls)
		}))
		require.Equal(t, 1, nulls, "the zero Sealed is stored as NULL")

		// Another process (a second handle, its own cold cache) opens it.
		other := newVault(t, db.Reopen(t), kek)
		got2, err := other.Open(ctx, read.Token, b)
		require.NoError(t, err)
		require.Equal(t, "EAAB-access-token", string(got2.Reveal()))

		got.Wipe()
		require.Equal(t, make([]byte, len("EAAB-access-token")), got.Reveal(), "Wipe zeroes the plaintext")

		// An empty plaintext round-trips.
		s3, err := v.Seal(ctx, nil, b)
		require.NoError(t, err)
		got, err = v.Open(ctx, s3, b)
		require.NoError(t, err)
		require.Empty(t, got.Reveal())

		// The key's creation is audited.
		require.Equal(t, []string{"vault.key_created"}, auditActions(t, ctx, db))
	})
}

func TestOpenFailsOutsideItsBinding(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newVault(t, db, testkit.NewKEK(t))
		ctx := owner(tenancy.NewID())
		b := vault.Binding{Record: "conn-1", Field: "access_token"}
		s, err := v.Seal(ctx, []byte("secret"), b)
		require.NoError(t, err)

		tampered := s.Bytes()
		tampered[len(tampered)-1] ^= 1
		ts, err := vault.ParseSealed(tampered)
		require.NoError(t, err)
		foreignKey := s.Bytes()
		foreignKey[2] ^= 0xff // names a key the tenant does not have
		fs, err := vault.ParseSealed(foreignKey)
		require.NoError(t, err)

		for name, c := range map[string]struct {
			s vault.Sealed
			b vault.Binding
		}{
			"other record":     {s, vault.Binding{Record: "conn-2", Field: "access_token"}},
			"other field":      {s, vault.Binding{Record: "conn-1", Field: "refresh_token"}},
			"shifted boundary": {s, vault.Binding{Record: "conn-1access", Field: "_token"}},
			"tampered":         {ts, b},
			"unknown key":      {fs, b},
		} {
			_, err := v.Open(ctx, c.s, c.b)
			require.Same(t, vault.ErrOpen, err, "%s: Open must fail with the one opaque error", name)
		}

		_, err = vault.ParseSealed([]byte("too short"))
		require.ErrorIs(t, err, vault.ErrOpen)
		_, err = v.Open(ctx, vault.Sealed{}, b)
		require.Same(t, vault.ErrOpen, err, "the zero Sealed does not open")

		_, err = v.Seal(ctx, []byte("x"), vault.Binding{Record: "r"})
		require.ErrorIs(t, err, vault.ErrInvalidBinding)
		_, err = v.Open(ctx, s, vault.Binding{Field: "f"})
		require.ErrorIs(t, err, vault.ErrInvalidBinding)
	})
}

func TestOpenFailsForAnotherTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		v := newVault(t, db, kek)
		a, b, c := tenancy.NewID(), tenancy.NewID(), tenancy.NewID()
		bind := vault.Binding{Record: "conn-1", Field: "token"}
		s, err := v.Seal(owner(a), []byte("a's token"), bind)
		require.NoError(t, err)
		_, err = v.EnsureKey(owner(b))
		require.NoError(t, err)

		_, err = v.Open(owner(b), s, bind)
		require.Same(t, vault.ErrOpen, err, "tenant with its own key")
		_, err = v.Open(owner(c), s, bind)
		require.Same(t, vault.ErrOpen, err, "tenant without any key")
		_, err = v.EnsureKey(owner(c))
		require.NoError(t, err)
		_, err = v.Open(owner(c), s, bind)
		require.Same(t, vault.ErrOpen, err, "Open never creates a key, and the new key is another")

		// The tenant comes from the context only.
		_, err = v.Open(context.Background(), s, bind)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		_, err = v.Seal(context.Background(), []byte("x"), bind)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		_, err = v.Seal(owner("not-a-uuid"), []byte("x"), bind)
		require.ErrorIs(t, err, tenancy.ErrInvalidTenant)

		// A's wrapped data key copied into B's row does not unwrap for B:
		// the wrapping is bound to the tenant as well.
		var keys struct{ DataKeyset, IndexKeyset []byte }
		require.NoError(t, in(owner(a), db, func(tx bun.Tx) error {
			return tx.NewRaw("SELECT data_keyset, index_keyset FROM socialcrm_vault_keys WHERE tenant_id = ?", a).
				Scan(owner(a), &keys)
		}))
		require.NoError(t, in(owner(b), db, func(tx bun.Tx) error {
			_, err := tx.NewRaw("UPDATE socialcrm_vault_keys SET data_keyset = ?, index_keyset = ? WHERE tenant_id = ?",
				keys.DataKeyset, keys.IndexKeyset, b).Exec(owner(b))
			return err
		}))
		fresh := newVault(t, db, kek)
		_, err = fresh.Open(owner(b), s, bind)
		require.Same(t, vault.ErrOpen, err)
		_, err = fresh.Seal(owner(b), []byte("x"), bind)
		require.ErrorIs(t, err, vault.ErrKEK)
	})
}

func TestCacheServesWithinMaxAge(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		handle := db.Reopen(t)
		v := newVault(t, handle, testkit.NewKEK(t), vault.WithClock(clk.Now), vault.WithCacheMaxAge(10*time.Minute))
		ctx := owner(tenancy.NewID())
		b := vault.Binding{Record: "r", Field: "f"}
		s, err := v.Seal(ctx, []byte("x"), b)
		require.NoError(t, err)

		// With the database gone, cached keys still serve ...
		require.NoError(t, handle.Close())
		clk.Advance(10*time.Minute - time.Second)
		_, err = v.Open(ctx, s, b)
		require.NoError(t, err)
		_, err = v.Seal(ctx, []byte("y"), b)
		require.NoError(t, err)

		// ... until their max age, when the vault must read the database
		// again, and says so (a database error is not ErrOpen).
		clk.Advance(time.Second)
		_, err = v.Open(ctx, s, b)
		require.Error(t, err)
		require.NotErrorIs(t, err, vault.ErrOpen)
	})
}
