package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
)

// TestAgencyCreatorNamesSealedS17Clear: the agency stores its creators'
// names only sealed — no column of its tables holds one — while the
// report still shows them. On both databases.
func TestAgencyCreatorNamesSealedS17Clear(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := demo.NewClock(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
		srv, err := startEmulator(clk.Now)
		require.NoError(t, err)
		t.Cleanup(srv.Close)
		kek, err := demo.EphemeralKEK()
		require.NoError(t, err)
		var out bytes.Buffer
		rep, err := run(context.Background(), options{DB: db.Owner, KEK: kek, Emulator: srv, Now: clk.Now,
			Advance: clk.Advance, TikTok: emulatorConfig(srv), Out: &out})
		require.NoError(t, err, out.String())
		var names []string
		for _, c := range rep.Creators {
			names = append(names, c.Name)
		}
		require.ElementsMatch(t, []string{"Chloé Martin", "Ana Lima", "Ben Okafor"}, names)
		hits, err := leakscan.Tables(context.Background(), db.Admin(t), append(names, "Chlo", "Okafor"), "agency_")
		require.NoError(t, err)
		require.Empty(t, hits, "a creator's name readable")
	})
}
