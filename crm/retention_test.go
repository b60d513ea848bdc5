package crm_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
)

// coreKinds are the categories of the core records that hold a contact's
// data: export and erasure of a contact must reach each of them.
var coreKinds = []string{"crm.message", "crm.conversation", "crm.consent_event", "crm.consent", "crm.notification",
	"crm.contact_tag", "crm.activity", "crm.task", "crm.note", "crm.deal_stage_change", "crm.deal", "crm.contact"}

// fillContact creates one record of every core kind about a new contact
// named name, and returns the contact.
func fillContact(t *testing.T, e *env, ctx context.Context, name string) crm.Contact {
	t.Helper()
	s := e.store
	c, err := s.Contacts().Create(ctx, crm.Contact{FirstName: name, Email: name + "@example.com", Tags: []string{"vip"},
		Birthday: crm.Birthday{Month: int(fakeclock.Start.Month()), Day: fakeclock.Start.Day()}})
	require.NoError(t, err)
	key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page", ThreadID: "psid-" + name}
	m, err := s.Conversations().Record(ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: "mid-" + name, Text: "hi", SentAt: fakeclock.Start})
	require.NoError(t, err)
	conv, err := s.Conversations().Get(ctx, m.ConversationID)
	require.NoError(t, err)
	_, err = s.Conversations().LinkContact(ctx, conv.ID, c.ID, conv.Version)
	require.NoError(t, err)
	_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "form"})
	require.NoError(t, err)
	sc, err := crm.NewScheduler(s, crm.LogNotifier{})
	require.NoError(t, err)
	_, err = sc.Run(ctx, sc.Birthdays(crm.ChannelEmail))
	require.NoError(t, err)
	_, err = s.Activities().Record(ctx, crm.Activity{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: c.ID, OccurredAt: fakeclock.Start})
	require.NoError(t, err)
	_, err = s.Tasks().Create(ctx, crm.Task{Title: "call " + name, ContactID: c.ID})
	require.NoError(t, err)
	_, err = s.Notes().Create(ctx, crm.Note{Body: "about " + name, ContactID: c.ID})
	require.NoError(t, err)
	pl, err := s.Pipelines().Create(ctx, crm.Pipeline{Name: "p-" + name, Stages: []string{"new", "won"}})
	require.NoError(t, err)
	d, err := s.Deals().Create(ctx, crm.Deal{PipelineID: pl.ID, Title: "ring for " + name, ContactID: c.ID})
	require.NoError(t, err)
	d.Stage = "won"
	_, err = s.Deals().Update(ctx, d)
	require.NoError(t, err)
	return c
}

func TestRetentionExportAndEraseReachEveryKind(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
		require.NoError(t, err)
		require.NoError(t, eng.Register(crm.Categories()...))
		require.NoError(t, eng.Check(e.A), "every declared column exists")

		ada := fillContact(t, e, e.A, "ada")
		bob := fillContact(t, e, e.A, "bob")
		other := fillContact(t, e, e.B, "ada")
		// A conversation with no contact, known by its thread only.
		_, err = e.store.Conversations().Record(e.A, crm.NewMessage{Conversation: crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: "ig", ThreadID: "igsid-1"},
			Direction: crm.Inbound, Text: "anon", SentAt: fakeclock.Start})
		require.NoError(t, err)

		subject := map[string]string{crm.SubjectContact: ada.ID}
		exp, err := eng.Submit(e.A, retention.Request{Kind: retention.KindExport, Subject: subject})
		require.NoError(t, err)
		_, err = eng.SetVerification(e.A, exp.ID, retention.VerificationVerified)
		require.NoError(t, err)
		var zip bytes.Buffer
		man, err := eng.Export(e.A, exp.ID, &zip)
		require.NoError(t, err)
		rows := map[string]int64{}
		for _, c := range man.Categories {
			rows[c.Name] = c.Rows
		}
		for _, k := range coreKinds {
			require.Positive(t, rows[k], "the export of a contact does not reach %s", k)
		}
		require.NotContains(t, zip.String(), "email_sealed")

		er, err := eng.Submit(e.A, retention.Request{Kind: retention.KindErasure, Subject: subject})
		require.NoError(t, err)
		_, err = eng.SetVerification(e.A, er.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := eng.Erase(e.A, er.ID)
		require.NoError(t, err)
		erased := map[string]int64{}
		for _, c := range rc.Categories {
			erased[c.Category] = c.Erased
		}
		for _, k := range coreKinds {
			require.Positive(t, erased[k], "the erasure of a contact does not reach %s", k)
		}

		// Ada is gone everywhere; Bob and the other tenant's Ada are whole.
		_, err = e.store.Contacts().Get(e.A, ada.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		for _, ctx := range []context.Context{e.A, e.B} {
			id := bob.ID
			if ctx == e.B {
				id = other.ID
			}
			got, err := e.store.Contacts().Get(ctx, id)
			require.NoError(t, err)
			require.NotEmpty(t, got.Email)
			for _, n := range []int{count(t, ctx, e.store.Activities().List, crm.ActivityFilter{ContactID: id}),
				count(t, ctx, e.store.Notes().List, crm.NoteFilter{ContactID: id}),
				count(t, ctx, e.store.Tasks().List, crm.TaskFilter{ContactID: id}),
				count(t, ctx, e.store.Deals().List, crm.DealFilter{ContactID: id}),
				count(t, ctx, e.store.Conversations().List, crm.ConversationFilter{ContactID: id})} {
				require.Equal(t, 1, n)
			}
			h, err := e.store.Consents().History(ctx, id)
			require.NoError(t, err)
			require.Len(t, h, 1)
		}
		h, err := e.store.Consents().History(e.A, ada.ID)
		require.NoError(t, err)
		require.Empty(t, h)
		deals, err := e.store.Deals().List(e.A, crm.DealFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, deals.Items, 2, "the erased contact's deal stays, anonymized")
		var titles []string
		for _, d := range deals.Items {
			titles = append(titles, d.Title)
		}
		require.ElementsMatch(t, []string{"erased", "ring for bob"}, titles)
		convs, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, convs.Items, 2, "bob's and the unlinked one")

		// A person known only by a platform thread id.
		er2, err := eng.Submit(e.A, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{crm.SubjectThread: "igsid-1"}})
		require.NoError(t, err)
		_, err = eng.SetVerification(e.A, er2.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err = eng.Erase(e.A, er2.ID)
		require.NoError(t, err)
		_, err = e.store.Conversations().Find(e.A, crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: "ig", ThreadID: "igsid-1"})
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

func count[F any, T any](t *testing.T, ctx context.Context, list func(context.Context, F, crm.ListOptions) (crm.Page[T], error), f F) int {
	t.Helper()
	p, err := list(ctx, f, crm.ListOptions{Limit: crm.MaxLimit})
	require.NoError(t, err)
	return len(p.Items)
}
