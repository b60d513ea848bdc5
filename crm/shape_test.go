package crm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// An update that names no version is invalid input (a *ValidationError on
// "version", with the input's own failures beside it), never a conflict,
// on every repository that updates a stored record; nothing is written.
func TestUpdateWithoutVersionIsInvalid(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, ctx := e.store, e.A
		c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)
		co, err := s.Companies().Create(ctx, crm.CompanyInput{Name: "Acme"})
		require.NoError(t, err)
		pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "won"}})
		require.NoError(t, err)
		d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Ring"})
		require.NoError(t, err)
		n, err := s.Notes().Create(ctx, crm.NoteInput{Body: "hello", ContactID: c.ID})
		require.NoError(t, err)
		tk, err := s.Tasks().Create(ctx, crm.TaskInput{Title: "Call"})
		require.NoError(t, err)
		a, err := s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, OccurredAt: e.clock.Now()})
		require.NoError(t, err)
		sh := newShop(t, e, ctx, "acme", "INV-1")
		draft, err := s.Invoices().Create(ctx, invoiceInput(sh.client.ID, "INV-2"))
		require.NoError(t, err)
		cv, err := s.Conversations().Open(ctx, crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page", ThreadID: "psid"})
		require.NoError(t, err)

		for name, call := range map[string]func() error{
			"contact": func() error {
				_, err := s.Contacts().Update(ctx, c.ID, 0, crm.ContactInput{FirstName: "Eve"})
				return err
			},
			"company": func() error {
				_, err := s.Companies().Update(ctx, co.ID, 0, crm.CompanyInput{Name: "Evil"})
				return err
			},
			"pipeline": func() error { _, err := s.Pipelines().Update(ctx, pl.ID, 0, pl.PipelineInput); return err },
			"deal":     func() error { _, err := s.Deals().Update(ctx, d.ID, 0, d.DealInput); return err },
			"deal move": func() error {
				_, err := s.Deals().Move(ctx, d.ID, 0, "won")
				return err
			},
			"note":     func() error { _, err := s.Notes().Update(ctx, n.ID, 0, crm.NoteInput{Body: "x"}); return err },
			"task":     func() error { _, err := s.Tasks().Update(ctx, tk.ID, 0, tk.TaskInput); return err },
			"activity": func() error { _, err := s.Activities().Update(ctx, a.ID, 0, a.ActivityInput); return err },
			"client": func() error {
				_, err := s.Clients().Update(ctx, sh.client.ID, 0, crm.ClientInput{Name: "x"})
				return err
			},
			"campaign": func() error {
				_, err := s.Campaigns().Update(ctx, sh.campaign.ID, 0, sh.campaign.CampaignInput)
				return err
			},
			"invoice": func() error {
				_, err := s.Invoices().Update(ctx, draft.ID, 0, invoiceInput(sh.client.ID, "INV-2"))
				return err
			},
			"invoice issue": func() error { _, err := s.Invoices().Issue(ctx, draft.ID, 0); return err },
			"proposal revise": func() error {
				_, err := s.Proposals().Revise(ctx, sh.proposal.ID, 0, sh.proposal.ProposalContent)
				return err
			},
			"proposal transition": func() error {
				_, err := s.Proposals().Transition(ctx, sh.proposal.ID, 0, crm.ProposalAccepted, "")
				return err
			},
			"conversation link": func() error {
				_, err := s.Conversations().LinkContact(ctx, cv.ID, c.ID, 0)
				return err
			},
		} {
			err := call()
			var verr *crm.ValidationError
			require.ErrorAs(t, err, &verr, name)
			require.True(t, verr.Has("version", "required"), "%s: %v", name, err)
			require.False(t, errors.Is(err, crm.ErrConflict), name)
		}

		// Nothing was written.
		got, err := s.Contacts().Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, "Ada", got.FirstName)
		require.Equal(t, int64(1), got.Version)

		// A bad field and a missing version are reported together.
		_, err = s.Companies().Update(ctx, co.ID, 0, crm.CompanyInput{})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("name", "required") && verr.Has("version", "required"), "%v", err)
		_, err = s.Contacts().Update(ctx, c.ID, 0, crm.ContactInput{Email: "not an address"})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("email", "email") && verr.Has("version", "required"), "%v", err)

		// A stale version still is a conflict.
		_, err = s.Companies().Update(ctx, co.ID, co.Version+1, co.CompanyInput)
		var conflict *crm.ConflictError
		require.ErrorAs(t, err, &conflict)
	})
}

// A deal's status follows its stage: the pipeline's won stage wins it, its
// lost stage loses it, any other stage reopens it. The server owns the
// status: the input has none.
func TestDealStatusFollowsStage(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, ctx := e.store, e.A
		pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Jewelry",
			Stages: []string{"lead", "fitting", "Sold", "Walked away"}, WonStage: "Sold", LostStage: "Walked away"})
		require.NoError(t, err)
		d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Ring", Amount: 125000, Currency: "EUR"})
		require.NoError(t, err)
		require.Equal(t, crm.DealOpen, d.Status)

		for _, step := range []struct {
			stage string
			want  crm.DealStatus
		}{{"Sold", crm.DealWon}, {"fitting", crm.DealOpen}, {"Walked away", crm.DealLost}, {"lead", crm.DealOpen}} {
			d, err = s.Deals().Move(ctx, d.ID, d.Version, step.stage)
			require.NoError(t, err, step.stage)
			require.Equal(t, step.want, d.Status, step.stage)
			got, err := s.Deals().Get(ctx, d.ID)
			require.NoError(t, err)
			require.Equal(t, step.want, got.Status, "%s: as stored", step.stage)
		}
		// The stage history pages like every list.
		var moves []string
		for ch, err := range crm.All(ctx, crm.ListOptions{Limit: 2}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.StageChange], error) {
			return s.Deals().History(ctx, d.ID, o)
		}) {
			require.NoError(t, err)
			moves = append(moves, ch.From+">"+ch.To)
		}
		require.Equal(t, []string{">lead", "lead>Sold", "Sold>fitting", "fitting>Walked away", "Walked away>lead"}, moves)

		won, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Stage: "Sold", Title: "Watch"})
		require.NoError(t, err)
		require.Equal(t, crm.DealWon, won.Status, "created at the won stage")
		p, err := s.Deals().List(ctx, crm.DealFilter{Status: crm.DealWon}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		require.Equal(t, won.ID, p.Items[0].ID)

		// Stages named won and lost are the defaults.
		named, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Plain", Stages: []string{"new", "Won", "Lost"}})
		require.NoError(t, err)
		require.Equal(t, "Won", named.WonStage)
		require.Equal(t, "Lost", named.LostStage)
		lost, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: named.ID, Stage: "Lost", Title: "Bracelet"})
		require.NoError(t, err)
		require.Equal(t, crm.DealLost, lost.Status)

		// A pipeline without either closes no deal; bad outcome stages are
		// refused, each named.
		open, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Open", Stages: []string{"a", "b"}})
		require.NoError(t, err)
		od, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: open.ID, Stage: "b", Title: "x"})
		require.NoError(t, err)
		require.Equal(t, crm.DealOpen, od.Status)
		_, err = s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Bad", Stages: []string{"a", "b"}, WonStage: "c", LostStage: "a"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("won_stage", "oneof"), "%v", err)
		_, err = s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Bad", Stages: []string{"a", "b"}, WonStage: "a", LostStage: "a"})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("lost_stage", "nefield"), "%v", err)
	})
}

// Server-owned fields are out of the inputs: a task's completion time is
// the server's, kept while the task stays done; a note's author is the
// member who wrote it.
func TestServerOwnedFields(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, ctx := e.store, e.A
		tk, err := s.Tasks().Create(ctx, crm.TaskInput{Title: "Call back", Status: crm.TaskDone})
		require.NoError(t, err)
		done := tk.CompletedAt
		require.False(t, done.IsZero())
		e.clock.Advance(time.Hour)
		tk.Title = "Call back soon"
		tk, err = s.Tasks().Update(ctx, tk.ID, tk.Version, tk.TaskInput)
		require.NoError(t, err)
		require.True(t, done.Equal(tk.CompletedAt), "a task that stays done keeps its completion time")
		tk.Status = crm.TaskOpen
		tk, err = s.Tasks().Update(ctx, tk.ID, tk.Version, tk.TaskInput)
		require.NoError(t, err)
		require.True(t, tk.CompletedAt.IsZero())

		n, err := s.Notes().Create(ctx, crm.NoteInput{Body: "hello"})
		require.NoError(t, err)
		author := n.AuthorID
		require.NotEmpty(t, author)
		n, err = s.Notes().Update(e.A, n.ID, n.Version, crm.NoteInput{Body: "edited"})
		require.NoError(t, err)
		require.Equal(t, author, n.AuthorID)
	})
}
