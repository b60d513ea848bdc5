package crm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestCampaigns(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store.Campaigns()
		cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Acme"})
		require.NoError(t, err)
		start := e.clock.Now()
		end := start.Add(30 * 24 * time.Hour)
		in := crm.CampaignInput{ClientID: cl.ID, Name: "Spring", Status: crm.CampaignPlanned,
			StartsAt: &start, EndsAt: &end, Budget: 1_000_000, Currency: "eur"}
		c, err := s.Create(e.A, in)
		require.NoError(t, err)
		require.Equal(t, "EUR", c.Currency)
		require.EqualValues(t, 1, c.Version)

		got, err := s.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.Name, got.Name)
		require.True(t, start.Equal(*got.StartsAt))
		require.Equal(t, int64(1_000_000), got.Budget)

		// Validation: every failed field is named; nothing is written.
		_, err = s.Create(e.A, crm.CampaignInput{ClientID: cl.ID, Status: "running", Budget: -1, Currency: "EUX"})
		var ve *crm.ValidationError
		require.True(t, errors.As(err, &ve), "got %v", err)
		for _, f := range []string{"name", "status", "budget", "currency"} {
			require.True(t, ve.Has(f, ""), "missing %s in %v", f, ve)
		}
		bad := in
		bad.EndsAt = &start
		bad.StartsAt = &end
		_, err = s.Create(e.A, bad)
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = s.Create(e.A, crm.CampaignInput{ClientID: tenancy.NewID(), Name: "x", Status: crm.CampaignPlanned, Currency: "EUR"})
		require.ErrorIs(t, err, crm.ErrNotFound, "unknown client")

		// Optimistic concurrency.
		in.Status = crm.CampaignActive
		up, err := s.Update(e.A, c.ID, c.Version, in)
		require.NoError(t, err)
		require.EqualValues(t, 2, up.Version)
		require.Equal(t, crm.CampaignActive, up.Status)
		_, err = s.Update(e.A, c.ID, c.Version, in)
		var ce *crm.ConflictError
		require.True(t, errors.As(err, &ce), "stale update returned %v", err)
		require.EqualValues(t, 2, ce.Current)

		// Filters and keyset pages.
		for i := range 5 {
			_, err := s.Create(e.A, crm.CampaignInput{ClientID: cl.ID, Name: "c" + string(rune('a'+i)), Status: crm.CampaignPaused, Currency: "USD"})
			require.NoError(t, err)
		}
		var seen []string
		o := crm.ListOptions{Limit: 2}
		for {
			p, err := s.List(e.A, crm.CampaignFilter{Status: crm.CampaignPaused}, o)
			require.NoError(t, err)
			seen = append(seen, campaignIDs(p.Items)...)
			if p.NextCursor == "" {
				break
			}
			o.Cursor = p.NextCursor
		}
		require.Len(t, seen, 5)
		_, err = s.List(e.A, crm.CampaignFilter{}, crm.ListOptions{Cursor: "garbage"})
		require.ErrorIs(t, err, crm.ErrInvalid)

		// Tenant isolation.
		_, err = s.Get(e.B, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = s.Update(e.B, c.ID, up.Version, in)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, s.Delete(e.B, c.ID), crm.ErrNotFound)
		p, err := s.List(e.B, crm.CampaignFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)
		_, err = s.Create(e.B, crm.CampaignInput{ClientID: cl.ID, Name: "x", Status: crm.CampaignPlanned, Currency: "EUR"})
		require.ErrorIs(t, err, crm.ErrNotFound, "another tenant's client")

		// A client in use cannot be deleted; a campaign can.
		require.ErrorIs(t, e.store.Clients().Delete(e.A, cl.ID), crm.ErrInUse)
		require.NoError(t, s.Delete(e.A, c.ID))
		_, err = s.Get(e.A, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

func TestClients(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store.Clients()
		c, err := s.Create(e.A, crm.ClientInput{Name: "Acme", Email: "billing@acme.example", Phone: "+4930123456"})
		require.NoError(t, err)
		_, err = s.Create(e.A, crm.ClientInput{Email: "nope", Phone: "123"})
		var ve *crm.ValidationError
		require.True(t, errors.As(err, &ve))
		require.True(t, ve.Has("name", "required") && ve.Has("email", "email") && ve.Has("phone", "e164"), "%v", ve)
		up, err := s.Update(e.A, c.ID, c.Version, crm.ClientInput{Name: "Acme Inc"})
		require.NoError(t, err)
		require.Equal(t, "Acme Inc", up.Name)
		require.Empty(t, up.Email)
		_, err = s.Update(e.A, c.ID, c.Version, crm.ClientInput{Name: "Stale"})
		require.ErrorIs(t, err, crm.ErrConflict)
		_, err = s.Get(e.B, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, s.Delete(e.B, c.ID), crm.ErrNotFound)
		require.NoError(t, s.Delete(e.A, c.ID))
		p, err := s.List(e.A, crm.ClientFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)
	})
}
