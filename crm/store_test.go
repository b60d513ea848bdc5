package crm_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestNewValidatesOptions(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	e := newEnv(t, db)
	for name, opts := range map[string][]crm.Option{
		"nil clock": {crm.WithClock(nil)},
	} {
		_, err := crm.New(db.DB, e.vault, opts...)
		if !errors.Is(err, crm.ErrConfig) {
			t.Errorf("New with %s returned %v, want ErrConfig", name, err)
		}
	}
	_, err := crm.New(db.DB, e.vault, nil, crm.WithLogger(nil))
	require.NoError(t, err, "a nil Option and a nil logger mean the defaults")
	_, err = crm.New(nil, e.vault)
	require.ErrorIs(t, err, crm.ErrConfig)
	_, err = crm.New(db.DB, nil)
	require.ErrorIs(t, err, crm.ErrConfig)
}

// Using runs repository calls inside the caller's transaction: they commit
// or roll back with it.
func TestUsingJoinsTheCallersTransaction(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		boom := errors.New("boom")
		err := tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada", Tags: []string{"x"}}); err != nil {
				return err
			}
			if _, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Bob"}); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		p, err := e.store.Contacts().List(e.A, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items, "the rolled-back transaction took both contacts along")

		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada"})
			return err
		}))
		p, err = e.store.Contacts().List(e.A, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
	})
}
