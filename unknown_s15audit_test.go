package socialcrm_test

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
)

// TestS15UnknownOrBlankPersonByEveryKind: for every identifier kind a
// person may give, a value nobody holds is "no data found" for an export
// and for an erasure (never a plain "completed"), and an empty or blank
// value is refused before anything is searched — it must not match the
// rows whose column is empty (a task without a contact, a conversation
// without one). Another person's records are untouched throughout.
func TestS15UnknownOrBlankPersonByEveryKind(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "acme")
		bob := seedPerson(t, sdk, a, "bob", "+14155550199")
		// Records of nobody: a task and a conversation without a contact.
		_, err := sdk.CRM.Tasks().Create(a, crm.TaskInput{Title: "order ribbons"})
		require.NoError(t, err)
		_, err = sdk.CRM.Conversations().Record(a, crm.NewMessage{Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger,
			AccountID: "page-1", ThreadID: "psid-stranger"}, Direction: crm.Inbound, ExternalID: "mid-stranger", Text: "hello", SentAt: bob.contact.CreatedAt})
		require.NoError(t, err)
		tables := dsarTables(t, sdk)
		_, rows := dump(t, sdk, a, tables)

		unknown := map[string]string{crm.SubjectEmail: "nobody@example.com", crm.SubjectPhone: "+14155550100",
			crm.SubjectContact: "01a20000-0000-7000-8000-000000000000", crm.SubjectThread: "psid-nobody",
			social.SubjectOpenID: "open-nobody", social.SubjectAccount: "999000999"}
		for kind, value := range unknown {
			x := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{kind: value})
			m, err := sdk.Retention.Export(a, x.ID, io.Discard)
			require.NoError(t, err, kind)
			require.Equal(t, retention.OutcomeNoDataFound, m.Outcome, kind)
			er := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{kind: value})
			rc, err := sdk.Retention.Erase(a, er.ID)
			require.NoError(t, err, kind)
			require.Equal(t, retention.OutcomeNoDataFound, rc.Outcome, kind)
			require.Zero(t, rc.Erased(), kind)
			er, err = sdk.Retention.Get(a, er.ID)
			require.NoError(t, err)
			require.Equal(t, retention.StatusNoDataFound, er.Status, kind)

			for _, blank := range []string{"", "   "} {
				_, err := sdk.Retention.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{kind: blank}})
				require.Error(t, err, "%s %q", kind, blank)
				var ve *retention.ValidationError
				require.True(t, errors.As(err, &ve), "%s %q: Submit returned %v, want a validation error", kind, blank, err)
			}
		}
		_, after := dump(t, sdk, a, tables)
		require.Equal(t, rows, after, "nothing was erased")
	}, migrated)
}
