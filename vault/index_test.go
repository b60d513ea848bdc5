package vault_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

func TestIndexFindsByEquality(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		v := newVault(t, db, kek)
		a, b := tenancy.NewID(), tenancy.NewID()
		norm := func(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

		i1, err := v.Index(owner(a), norm(" Ada@Example.com "), "email")
		require.NoError(t, err)
		i2, err := v.Index(owner(a), norm("ada@example.com"), "email")
		require.NoError(t, err)
		require.Equal(t, i1, i2, "equal (normalized) values index alike")
		require.Len(t, i1, 43, "32 bytes, base64url")
		require.NotContains(t, i1, "ada")

		other, err := v.Index(owner(a), "bob@example.com", "email")
		require.NoError(t, err)
		require.NotEqual(t, i1, other)
		field, err := v.Index(owner(a), "ada@example.com", "backup_email")
		require.NoError(t, err)
		require.NotEqual(t, i1, field, "fields do not compare")
		tenant, err := v.Index(owner(b), "ada@example.com", "email")
		require.NoError(t, err)
		require.NotEqual(t, i1, tenant, "tenants do not compare")
		noNorm, err := v.Index(owner(a), "Ada@Example.com", "email")
		require.NoError(t, err)
		require.NotEqual(t, i1, noNorm, "Index itself does not normalize")

		// Stable across processes and key rotations.
		v2 := newVault(t, db.Reopen(t), kek)
		again, err := v2.Index(owner(a), "ada@example.com", "email")
		require.NoError(t, err)
		require.Equal(t, i1, again)
		_, err = v.RotateKey(owner(a))
		require.NoError(t, err)
		again, err = v.Index(owner(a), "ada@example.com", "email")
		require.NoError(t, err)
		require.Equal(t, i1, again, "RotateKey leaves the index key alone")

		// Stored and looked up: the crm pattern.
		ctx := owner(a)
		for i, email := range []string{"ada@example.com", "bob@example.com", "ada@example.com"} {
			idx, err := v.Index(ctx, email, "email")
			require.NoError(t, err)
			id := fmt.Sprintf("c%d", i)
			s, err := v.Seal(ctx, []byte(email), vault.Binding{Record: id, Field: "email"})
			require.NoError(t, err)
			insertConn(t, ctx, db, &connection{ID: id, Token: s, Email: idx})
		}
		var found []connection
		require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
			return tx.NewSelect().Model(&found).Where("email_index = ?", i1).Order("id").Scan(ctx)
		}))
		require.Len(t, found, 2)
		require.Equal(t, "c0", found[0].ID)
		require.Equal(t, "c2", found[1].ID)

		_, err = v.Index(ctx, "x", "")
		require.ErrorIs(t, err, vault.ErrInvalidBinding)
		_, err = v.Index(context.Background(), "x", "email")
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
	})
}

func TestOptionsValidate(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	kek := testkit.NewKEK(t)
	for name, opt := range map[string]vault.Option{
		"cache size 0":       vault.WithCacheSize(0),
		"negative max age":   vault.WithCacheMaxAge(-time.Second),
		"zero max age":       vault.WithCacheMaxAge(0),
		"nil clock":          vault.WithClock(nil),
		"bad table":          vault.WithColumns(vault.Column{Table: "t; DROP TABLE x", ID: "id", Sealed: "s"}),
		"bad id":             vault.WithColumns(vault.Column{Table: "t", ID: "", Sealed: "s"}),
		"bad sealed column":  vault.WithColumns(vault.Column{Table: "t", ID: "id", Sealed: `"s"`}),
		"duplicate columns":  vault.WithColumns(tokenColumn, tokenColumn),
		"schema-qualified":   vault.WithColumns(vault.Column{Table: "public.t", ID: "id", Sealed: "s"}),
		"column with spaces": vault.WithColumns(vault.Column{Table: "t", ID: "id x", Sealed: "s"}),
	} {
		_, err := vault.New(db, kek, opt)
		require.Error(t, err, name)
	}
	_, err := vault.New(db, nil)
	require.Error(t, err)
	_, err = vault.New(nil, kek)
	require.Error(t, err)
	_, err = vault.New(db, kek, nil, vault.WithLogger(nil), vault.WithCacheSize(1), vault.WithCacheMaxAge(time.Second),
		vault.WithColumns(tokenColumn), vault.WithClock(time.Now))
	require.NoError(t, err)
}

// TestConcurrentUse seals and opens for several tenants from several
// goroutines and two vaults (two processes) at once, while keys are being
// created, rotated and the cache is tiny; run with -race.
func TestConcurrentUse(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		clk := newClock()
		vs := []*vault.Vault{
			newVault(t, db, kek, vault.WithCacheSize(2), vault.WithClock(clk.Now)),
			newVault(t, db.Reopen(t), kek, vault.WithCacheSize(2), vault.WithClock(clk.Now)),
		}
		tenants := []string{tenancy.NewID(), tenancy.NewID(), tenancy.NewID()}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 6 {
			wg.Go(func() {
				v := vs[w%2]
				for i := range 15 {
					tid := tenants[(w+i)%len(tenants)]
					ctx := owner(tid)
					b := vault.Binding{Record: fmt.Sprintf("r%d-%d", w, i), Field: "f"}
					s, err := v.Seal(ctx, []byte(b.Record), b)
					if err != nil {
						errs <- err
						return
					}
					got, err := vs[(w+1)%2].Open(ctx, s, b)
					if err != nil {
						errs <- fmt.Errorf("open %s: %w", b.Record, err)
						return
					}
					if string(got.Reveal()) != b.Record {
						errs <- fmt.Errorf("opened %q, want %q", got.Reveal(), b.Record)
						return
					}
					if i%7 == 3 {
						if _, err := v.RotateKey(ctx); err != nil {
							errs <- fmt.Errorf("rotate: %w", err)
							return
						}
					}
					if i%5 == 0 {
						clk.Advance(time.Minute)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		// Once their caches expire, both vaults agree on every tenant's
		// primary key.
		clk.Advance(vault.DefaultCacheMaxAge)
		for _, tid := range tenants {
			p0, err := vs[0].EnsureKey(owner(tid))
			require.NoError(t, err)
			p1, err := vs[1].EnsureKey(owner(tid))
			require.NoError(t, err)
			require.Equal(t, p0, p1)
		}
	})
}
