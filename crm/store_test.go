package crm_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

func TestNewValidatesOptions(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	e := newEnv(t, db)
	for name, opts := range map[string][]crm.Option{
		"nil clock":  {crm.WithClock(nil)},
		"nil logger": {crm.WithLogger(nil)},
		"nil option": {nil},
	} {
		_, err := crm.New(db.DB, e.vault, opts...)
		if !errors.Is(err, crm.ErrConfig) {
			t.Errorf("New with %s returned %v, want ErrConfig", name, err)
		}
	}
	_, err := crm.New(nil, e.vault)
	require.ErrorIs(t, err, crm.ErrConfig)
	_, err = crm.New(db.DB, nil)
	require.ErrorIs(t, err, crm.ErrConfig)
}
