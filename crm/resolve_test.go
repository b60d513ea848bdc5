package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

// TestResolvers: e-mail and phone (in another format, national with the
// default region) lead to every contact holding them, duplicates included;
// a contact to its duplicates and its conversations' thread ids; a thread
// to its linked contact; nothing crosses tenants, and nobody gives nothing.
func TestResolvers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, err := crm.New(e.db.DB, e.vault, crm.WithClock(e.clock.Now), crm.WithDefaultRegion("US"))
		require.NoError(t, err)
		rs := s.Resolvers()
		ann, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann", Email: "ann@example.com", Phone: "+14155550123"})
		require.NoError(t, err)
		dup, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann B", Email: "ANN@example.com"}, crm.AllowDuplicate())
		require.NoError(t, err)
		byPhone, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann C", Phone: "(415) 555-0123"}, crm.AllowDuplicate())
		require.NoError(t, err)
		_, err = s.Contacts().Create(e.B, crm.ContactInput{FirstName: "Ann elsewhere", Email: "ann@example.com", Phone: "+14155550123"})
		require.NoError(t, err)
		m, err := s.Conversations().Record(e.A, crm.NewMessage{Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page", ThreadID: "psid-ann"},
			Direction: crm.Inbound, Text: "hi", SentAt: fakeclock.Start})
		require.NoError(t, err)
		conv, err := s.Conversations().Get(e.A, m.ConversationID)
		require.NoError(t, err)
		_, err = s.Conversations().LinkContact(e.A, conv.ID, ann.ID, conv.Version)
		require.NoError(t, err)

		resolve := func(ctx context.Context, kind, value string) map[string][]string {
			t.Helper()
			got, err := rs[kind](ctx, e.db.DB, value)
			require.NoError(t, err)
			return got
		}
		require.ElementsMatch(t, []string{ann.ID, dup.ID}, resolve(e.A, crm.SubjectEmail, " Ann@Example.com ")[crm.SubjectContact])
		require.ElementsMatch(t, []string{ann.ID, byPhone.ID}, resolve(e.A, crm.SubjectPhone, "415.555.0123")[crm.SubjectContact])
		require.ElementsMatch(t, []string{ann.ID, byPhone.ID}, resolve(e.A, crm.SubjectPhone, "+1 (415) 555-0123")[crm.SubjectContact])
		got := resolve(e.A, crm.SubjectContact, ann.ID)
		require.ElementsMatch(t, []string{dup.ID, byPhone.ID}, got[crm.SubjectContact], "her duplicates by e-mail and by phone")
		require.Equal(t, []string{conv.ID}, got[crm.SubjectConversation], "her conversations")
		byThread := resolve(e.A, crm.SubjectThread, "psid-ann")
		require.Equal(t, []string{ann.ID}, byThread[crm.SubjectContact])
		require.Equal(t, []string{conv.ID}, byThread[crm.SubjectConversation])
		require.Empty(t, resolve(e.A, crm.SubjectEmail, "nobody@example.com")[crm.SubjectContact])
		require.Empty(t, resolve(e.A, crm.SubjectThread, "psid-nobody")[crm.SubjectContact])
		require.Empty(t, resolve(e.A, crm.SubjectContact, "no-such-contact")[crm.SubjectContact])
		require.Len(t, resolve(e.B, crm.SubjectEmail, "ann@example.com")[crm.SubjectContact], 1, "the other tenant's contact only")
	})
}
