package crm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestClientPortalSeesOnlyWhatWasSent: of a sent proposal, the client
// reads the revisions it was sent and the moves it saw — not the draft
// that never left the tenant, not the revising in draft, and not the
// notes the tenant's people wrote for themselves; its own answer keeps its
// note. The tenant's people still see everything.
func TestClientPortalSeesOnlyWhatWasSent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		props := e.store.Proposals()
		sh := newShop(t, e, e.A, "acme", "INV-1")
		_, cx := portalMember(t, e, e.A, sh.client.ID, "buyer@acme.example")
		const secret = "internal: our margin is 60%"

		p, err := props.Create(e.A, crm.ProposalInput{ClientID: sh.client.ID,
			ProposalContent: crm.ProposalContent{Title: "First idea, never sent", Amount: 1, Currency: "EUR"}})
		require.NoError(t, err)
		p, err = props.Revise(e.A, p.ID, p.Version, crm.ProposalContent{Title: "Offer", Amount: 900, Currency: "EUR"})
		require.NoError(t, err)
		p, err = props.Transition(e.A, p.ID, p.Version, crm.ProposalSent, secret)
		require.NoError(t, err)
		p, err = props.Revise(e.A, p.ID, p.Version, crm.ProposalContent{Title: "Offer, cheaper", Amount: 800, Currency: "EUR"})
		require.NoError(t, err)
		_, err = whole(props.Revisions(cx, p.ID, crm.ListOptions{}))
		requireNotFound(t, err, "a proposal back in draft")
		p, err = props.Transition(e.A, p.ID, p.Version, crm.ProposalSent, secret)
		require.NoError(t, err)
		p, err = props.Transition(cx, p.ID, p.Version, crm.ProposalAccepted, "fine by us")
		require.NoError(t, err)

		revs, err := whole(props.Revisions(cx, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		var titles []string
		for _, r := range revs {
			titles = append(titles, r.Title)
		}
		require.Equal(t, []string{"Offer", "Offer, cheaper"}, titles, "the sent revisions only")

		hist, err := whole(props.History(cx, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		var moves []string
		for _, ev := range hist {
			moves = append(moves, string(ev.From)+">"+string(ev.To)+":"+ev.Note)
		}
		require.Equal(t, []string{"draft>sent:", "draft>sent:", "sent>accepted:fine by us"}, moves)

		// The tenant's own view is whole.
		revs, err = whole(props.Revisions(e.A, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, revs, 3)
		hist, err = whole(props.History(e.A, p.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, hist, 5, "created, sent, revised, sent, accepted")
		require.Equal(t, secret, hist[1].Note)
	})
}
