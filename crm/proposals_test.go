package crm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

func TestProposals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store.Proposals()
		cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Acme"})
		require.NoError(t, err)
		other, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Globex"})
		require.NoError(t, err)
		camp, err := e.store.Campaigns().Create(e.A, crm.CampaignInput{ClientID: other.ID, Name: "x", Status: crm.CampaignPlanned, Currency: "EUR"})
		require.NoError(t, err)

		_, err = s.Create(e.A, crm.ProposalInput{ClientID: cl.ID, CampaignID: camp.ID,
			ProposalContent: crm.ProposalContent{Title: "t", Amount: 1, Currency: "EUR"}})
		require.ErrorIs(t, err, crm.ErrInvalid, "a campaign of another client")
		_, err = s.Create(e.A, crm.ProposalInput{ClientID: cl.ID, ProposalContent: crm.ProposalContent{Amount: -5, Currency: "XYZ"}})
		var ve *crm.ValidationError
		require.True(t, errors.As(err, &ve))
		require.True(t, ve.Has("title", "required") && ve.Has("amount", "gte") && ve.Has("currency", "iso4217"), "%v", ve)

		p, err := s.Create(e.A, crm.ProposalInput{ClientID: cl.ID,
			ProposalContent: crm.ProposalContent{Title: "Launch", Body: "v1", Amount: 100000, Currency: "eur"}})
		require.NoError(t, err)
		require.Equal(t, crm.ProposalDraft, p.Status)
		require.EqualValues(t, 1, p.Revision)

		// Revising a draft keeps it a draft and snapshots the new content.
		e.clock.Advance(time.Minute)
		p, err = s.Revise(e.A, p.ID, p.Version, crm.ProposalContent{Title: "Launch", Body: "v2", Amount: 120000, Currency: "EUR"})
		require.NoError(t, err)
		require.EqualValues(t, 2, p.Revision)
		require.Equal(t, "v2", p.Body)

		// draft → accepted is illegal: a typed error, nothing written.
		_, err = s.Transition(e.A, p.ID, p.Version, crm.ProposalAccepted, "")
		var te *crm.TransitionError
		require.True(t, errors.As(err, &te), "got %v", err)
		require.Equal(t, "draft", te.From)
		require.Equal(t, "accepted", te.To)
		require.ErrorIs(t, err, crm.ErrTransition)

		e.clock.Advance(time.Minute)
		p, err = s.Transition(e.A, p.ID, p.Version, crm.ProposalSent, "emailed")
		require.NoError(t, err)
		// A stale version is a conflict.
		_, err = s.Transition(e.A, p.ID, p.Version-1, crm.ProposalRejected, "")
		require.ErrorIs(t, err, crm.ErrConflict)
		// Revising a sent proposal takes it back to draft.
		e.clock.Advance(time.Minute)
		p, err = s.Revise(e.A, p.ID, p.Version, crm.ProposalContent{Title: "Launch", Body: "v3", Amount: 110000, Currency: "EUR"})
		require.NoError(t, err)
		require.Equal(t, crm.ProposalDraft, p.Status)
		p, err = s.Transition(e.A, p.ID, p.Version, crm.ProposalSent, "")
		require.NoError(t, err)
		p, err = s.Transition(e.A, p.ID, p.Version, crm.ProposalRejected, "too expensive")
		require.NoError(t, err)
		// Final: nothing moves it, not even a revision.
		for _, to := range []crm.ProposalStatus{crm.ProposalSent, crm.ProposalAccepted, crm.ProposalWithdrawn, crm.ProposalDraft} {
			_, err = s.Transition(e.A, p.ID, p.Version, to, "")
			require.ErrorIs(t, err, crm.ErrTransition, "rejected → %s", to)
		}
		_, err = s.Revise(e.A, p.ID, p.Version, p.ProposalContent)
		require.ErrorIs(t, err, crm.ErrTransition)

		revs, err := whole(s.Revisions(e.A, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, revs, 3)
		for i, body := range []string{"v1", "v2", "v3"} {
			require.EqualValues(t, i+1, revs[i].Number)
			require.Equal(t, body, revs[i].Body)
			require.Equal(t, "member:"+principal(e.A).MemberID, revs[i].Author)
		}
		require.EqualValues(t, 100000, revs[0].Amount)

		hist, err := whole(s.History(e.A, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		var moves []string
		for _, h := range hist {
			moves = append(moves, string(h.From)+">"+string(h.To))
			require.Equal(t, "member:"+principal(e.A).MemberID, h.Actor)
		}
		require.Equal(t, []string{">draft", "draft>sent", "sent>draft", "draft>sent", "sent>rejected"}, moves)
		require.Equal(t, "too expensive", hist[4].Note)
		require.True(t, hist[1].At.Equal(e.clock.Now().Add(-time.Minute)), "history records when: %v", hist[1].At)
		require.True(t, hist[2].At.Equal(e.clock.Now()), "history records when: %v", hist[2].At)

		// Tenant isolation.
		_, err = s.Get(e.B, p.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = whole(s.History(e.B, p.ID, crm.ListOptions{}))
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = s.Transition(e.B, p.ID, p.Version, crm.ProposalWithdrawn, "")
		require.ErrorIs(t, err, crm.ErrNotFound)
		page, err := s.List(e.A, crm.ProposalFilter{Status: crm.ProposalRejected}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)

		require.NoError(t, s.Delete(e.A, p.ID))
		_, err = whole(s.Revisions(e.A, p.ID, crm.ListOptions{}))
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}
