package vault_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// An Opener opens what Open opens, and fails where Open fails, with the
// same errors, for as many values as it is given.
func TestOpenerOpensAsOpen(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newVault(t, db, testkit.NewKEK(t))
		a, other := tenancy.NewID(), tenancy.NewID()
		ctx := owner(a)
		type sealed struct {
			s    vault.Sealed
			b    vault.Binding
			want string
		}
		var vals []sealed
		for r := range 3 {
			for _, f := range []string{"first_name", "email"} {
				b := vault.Binding{Record: fmt.Sprintf("rec-%d", r), Field: f}
				want := fmt.Sprintf("%s of %d", f, r)
				s, err := v.Seal(ctx, []byte(want), b)
				require.NoError(t, err)
				vals = append(vals, sealed{s, b, want})
			}
		}
		foreign, err := v.Seal(owner(other), []byte("other's"), vals[0].b)
		require.NoError(t, err)

		op := v.Opener(ctx)
		for i, x := range vals {
			got, err := op.Open(x.s, x.b)
			require.NoError(t, err)
			require.Equal(t, x.want, string(got.Reveal()))
			// A failure in between leaves the Opener usable.
			if i == 1 {
				_, err = op.Open(x.s, vals[0].b)
				require.Same(t, vault.ErrOpen, err, "another binding")
				_, err = op.Open(foreign, vals[0].b)
				require.Same(t, vault.ErrOpen, err, "another tenant's value")
				_, err = op.Open(vault.Sealed{}, x.b)
				require.Same(t, vault.ErrOpen, err, "the zero Sealed")
				_, err = op.Open(x.s, vault.Binding{Field: "email"})
				require.ErrorIs(t, err, vault.ErrInvalidBinding)
			}
		}

		// A value sealed under a key rotated in after the Opener's first
		// Open still opens: the miss reloads the keys, as Open does.
		_, err = v.RotateKey(ctx)
		require.NoError(t, err)
		newer, err := v.Seal(ctx, []byte("after rotation"), vals[0].b)
		require.NoError(t, err)
		got, err := op.Open(newer, vals[0].b)
		require.NoError(t, err)
		require.Equal(t, "after rotation", string(got.Reveal()))

		// A tenant without keys, no tenant, destroyed keys: Open's errors.
		none := v.Opener(owner(tenancy.NewID()))
		_, err = none.Open(vals[0].s, vals[0].b)
		require.Same(t, vault.ErrOpen, err)
		noTenant := v.Opener(context.Background())
		_, err = noTenant.Open(vals[0].s, vals[0].b)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		require.NoError(t, v.DestroyKey(ctx))
		gone := v.Opener(ctx)
		_, err = gone.Open(vals[0].s, vals[0].b)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		_, err = v.Open(ctx, vals[0].s, vals[0].b)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	})
}
