package crm_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestCompanies(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		cos := e.store.Companies()
		acme, err := cos.Create(e.A, crm.CompanyInput{Name: " Acme Rings ", Domain: "Acme.example"})
		require.NoError(t, err)
		require.Equal(t, "Acme Rings", acme.Name)
		require.Equal(t, "acme.example", acme.Domain)
		_, err = cos.Create(e.A, crm.CompanyInput{Name: "Beta"})
		require.NoError(t, err)
		_, err = cos.Create(e.A, crm.CompanyInput{Domain: "not a domain"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("name", "required") && verr.Has("domain", "fqdn"), "%v", err)

		p, err := cos.List(e.A, crm.CompanyFilter{NamePrefix: "acm"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		acme.Industry = "jewelry"
		up, err := cos.Update(e.A, acme.ID, acme.Version, acme.CompanyInput)
		require.NoError(t, err)
		require.EqualValues(t, 2, up.Version)
		_, err = cos.Update(e.A, acme.ID, acme.Version, acme.CompanyInput)
		require.ErrorIs(t, err, crm.ErrConflict)

		// A contact may work for it; not for another tenant's company.
		_, err = e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", CompanyID: acme.ID})
		require.NoError(t, err)
		_, err = e.store.Contacts().Create(e.B, crm.ContactInput{FirstName: "Bob", CompanyID: acme.ID})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("company_id", "exists"))
		_, err = cos.Get(e.B, acme.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, cos.Delete(e.B, acme.ID), crm.ErrNotFound)
		require.NoError(t, cos.Delete(e.A, acme.ID))
	})
}

func TestDealsMoveThroughPipelineStages(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		member := tenancy.NewID()
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: mustTenant(t, e.A), MemberID: member, Role: tenancy.RoleStaff})
		pl, err := e.store.Pipelines().Create(ctx, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "quoted", "won"}})
		require.NoError(t, err)
		_, err = e.store.Pipelines().Create(ctx, crm.PipelineInput{Name: "Dup", Stages: []string{"a", "a"}})
		require.ErrorIs(t, err, crm.ErrInvalid)
		c, err := e.store.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)

		deals := e.store.Deals()
		d, err := deals.Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Ring", Amount: 125000, Currency: "usd", ContactID: c.ID})
		require.NoError(t, err)
		require.Equal(t, "new", d.Stage)
		require.Equal(t, "USD", d.Currency)
		require.Equal(t, crm.DealOpen, d.Status)

		e.clock.Advance(time.Hour)
		d.Stage = "quoted"
		d, err = deals.Update(ctx, d.ID, d.Version, d.DealInput)
		require.NoError(t, err)
		d.Stage = "nowhere"
		_, err = deals.Update(ctx, d.ID, d.Version, d.DealInput)
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("stage", "oneof"))
		e.clock.Advance(time.Hour)
		d.Stage = "won"
		d, err = deals.Update(ctx, d.ID, d.Version, d.DealInput)
		require.NoError(t, err)
		require.Equal(t, crm.DealWon, d.Status, "the stage named won closes the deal")

		h, err := whole(deals.History(ctx, d.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, h, 3)
		for i, want := range [][2]string{{"", "new"}, {"new", "quoted"}, {"quoted", "won"}} {
			require.Equal(t, want[0], h[i].From)
			require.Equal(t, want[1], h[i].To)
			require.Equal(t, "member:"+member, h[i].Actor)
			require.True(t, h[i].ChangedAt.Equal(fakeclock.Start.Add(time.Duration(i)*time.Hour)))
		}

		// A stage with deals cannot be removed from the pipeline.
		pl.Stages, pl.WonStage = []string{"new", "quoted"}, ""
		_, err = e.store.Pipelines().Update(ctx, pl.ID, pl.Version, pl.PipelineInput)
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("stages", "in_use"))

		p, err := deals.List(ctx, crm.DealFilter{PipelineID: pl.ID, Stage: "won", ContactID: c.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)

		// Invalid input: missing title, bad currency, unknown pipeline.
		_, err = deals.Create(ctx, crm.DealInput{PipelineID: "nope", Amount: 5, Currency: "XXXX"})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("title", "required") && verr.Has("currency", "iso4217"), "%v", err)
		_, err = deals.Create(ctx, crm.DealInput{PipelineID: "nope", Title: "x"})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("pipeline_id", "exists"), "%v", err)

		// Tenant B sees nothing and cannot use A's pipeline.
		_, err = deals.Get(e.B, d.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = whole(deals.History(e.B, d.ID, crm.ListOptions{}))
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = deals.Create(e.B, crm.DealInput{PipelineID: pl.ID, Title: "steal"})
		require.ErrorIs(t, err, crm.ErrInvalid)
		pb, err := deals.List(e.B, crm.DealFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, pb.Items)

		require.NoError(t, deals.Delete(ctx, d.ID))
		_, err = whole(deals.History(ctx, d.ID, crm.ListOptions{}))
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

func TestActivitiesTimeline(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)
		acts := e.store.Activities()
		kinds := []crm.ActivityKind{crm.ActivityCall, crm.ActivityEmail, crm.ActivitySMS, crm.ActivityWhatsApp, crm.ActivityRCS, crm.ActivityMeeting}
		for i, k := range kinds {
			a := crm.ActivityInput{Kind: k, ContactID: c.ID, OccurredAt: fakeclock.Start.Add(time.Duration(i) * time.Hour), Subject: string(k)}
			if k != crm.ActivityMeeting {
				a.Direction = crm.Outbound
				a.ExternalID = "ext-" + string(k)
			}
			_, err := acts.Create(e.A, a)
			require.NoError(t, err)
		}
		// The same external message again is not stored twice.
		again, err := acts.Create(e.A, crm.ActivityInput{Kind: crm.ActivitySMS, ExternalID: "ext-sms", ContactID: c.ID, OccurredAt: fakeclock.Start})
		require.NoError(t, err)
		require.Equal(t, "sms", again.Subject)

		var subjects []string
		for a, err := range crm.All(e.A, crm.ListOptions{Limit: 4}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Activity], error) {
			return acts.List(ctx, crm.ActivityFilter{ContactID: c.ID}, o)
		}) {
			require.NoError(t, err)
			subjects = append(subjects, a.Subject)
		}
		require.Equal(t, []string{"meeting", "rcs", "whatsapp", "sms", "email", "call"}, subjects)

		_, err = acts.Create(e.A, crm.ActivityInput{Kind: "fax", Direction: "up"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("kind", "oneof") && verr.Has("direction", "oneof") && verr.Has("occurred_at", "required"), "%v", err)
		_, err = acts.Create(e.B, crm.ActivityInput{Kind: crm.ActivityCall, ContactID: c.ID, OccurredAt: fakeclock.Start})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("contact_id", "exists"))
		pb, err := acts.List(e.B, crm.ActivityFilter{ContactID: c.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, pb.Items)
	})
}

func TestTasksAndNotes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		member := tenancy.NewID()
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: mustTenant(t, e.A), MemberID: member, Role: tenancy.RoleStaff})
		c, err := e.store.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)

		tasks := e.store.Tasks()
		due := fakeclock.Start.Add(24 * time.Hour)
		tk, err := tasks.Create(ctx, crm.TaskInput{Title: "Call back", DueAt: due, AssigneeID: member, ContactID: c.ID})
		require.NoError(t, err)
		require.Equal(t, crm.TaskOpen, tk.Status)
		_, err = tasks.Create(ctx, crm.TaskInput{Title: "Later", DueAt: due.Add(48 * time.Hour), AssigneeID: member})
		require.NoError(t, err)
		e.clock.Advance(time.Hour)
		tk.Status = crm.TaskDone
		tk, err = tasks.Update(ctx, tk.ID, tk.Version, tk.TaskInput)
		require.NoError(t, err)
		require.True(t, tk.CompletedAt.Equal(e.clock.Now()))
		p, err := tasks.List(ctx, crm.TaskFilter{AssigneeID: member, DueBefore: due.Add(time.Hour)}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		require.Equal(t, "Call back", p.Items[0].Title)
		p, err = tasks.List(ctx, crm.TaskFilter{Status: crm.TaskOpen}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		_, err = tasks.Create(ctx, crm.TaskInput{Status: "someday", AssigneeID: "bob"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("title", "required") && verr.Has("status", "oneof") && verr.Has("assignee_id", "uuid"), "%v", err)

		notes := e.store.Notes()
		n, err := notes.Create(ctx, crm.NoteInput{Body: "Prefers gold", ContactID: c.ID})
		require.NoError(t, err)
		require.Equal(t, member, n.AuthorID)
		n.Body = "Prefers white gold"
		n.AuthorID = "someone else"
		n, err = notes.Update(e.A, n.ID, n.Version, n.NoteInput)
		require.NoError(t, err)
		require.Equal(t, member, n.AuthorID)
		pn, err := notes.List(ctx, crm.NoteFilter{ContactID: c.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, pn.Items, 1)
		require.Equal(t, "Prefers white gold", pn.Items[0].Body)
		_, err = notes.Create(ctx, crm.NoteInput{})
		require.ErrorIs(t, err, crm.ErrInvalid)

		_, err = tasks.Get(e.B, tk.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = notes.Get(e.B, n.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = notes.Update(e.B, n.ID, n.Version, n.NoteInput)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, tasks.Delete(e.B, tk.ID), crm.ErrNotFound)
		require.NoError(t, tasks.Delete(ctx, tk.ID))
	})
}

// TestActivityRecordConcurrentDuplicates: the same external message
// recorded by several deliveries at once is stored once.
func TestActivityRecordConcurrentDuplicates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		a := crm.ActivityInput{Kind: crm.ActivityEmail, Direction: crm.Inbound, ExternalID: "<msg-1@example.com>", OccurredAt: fakeclock.Start}
		var wg sync.WaitGroup
		ids := make([]string, 4)
		errs := make([]error, 4)
		for i := range ids {
			wg.Go(func() {
				got, err := e.store.Activities().Create(e.A, a)
				ids[i], errs[i] = got.ID, err
			})
		}
		wg.Wait()
		for i := range ids {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
		}
		p, err := e.store.Activities().List(e.A, crm.ActivityFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
	})
}
