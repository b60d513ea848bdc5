package meta_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// auditEntries returns the tenant's audit entries, oldest first.
func (e *env) auditEntries() []tenancy.AuditEntry {
	e.t.Helper()
	log, err := e.vault.AuditLog(e.ctx, e.db.DB)
	require.NoError(e.t, err)
	es, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(e.t, err)
	return es
}

// TestMessengerSendInDoubt: a reply whose answer is lost after Meta
// delivered it — the connection dropped, or a code 1200 "temporary send
// message failure" (HTTP 500) answered after acting — is sent once, fails
// with an outcome-unknown error, and is in the audit log twice: before it
// was sent (meta.messenger.send_sending, so that a process killed before
// reading the answer leaves it there too) and as
// meta.write_outcome_unknown, even though the caller's context ended. No
// entry, error or log line holds the message text or the person's PSID.
func TestMessengerSendInDoubt(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		const canaryPSID = "73401773310042"
		const canaryText = "canary-reply-Qv8ZtX your ring is ready"
		e := newEnv(t, db)
		_, c := e.messengerClient(messagingFeatures)
		wrote := e.personWrites(metatest.TextMessage(pageID, canaryPSID, "is my ring ready?"))
		e.clk.Advance(time.Minute)
		path := "/" + pageID + "/messages"
		req := meta.SendRequest{PSID: canaryPSID, MessagingType: meta.MessagingResponse, Text: canaryText, LastInbound: wrote}
		sends := func() int { return countPath(e.srv, "POST", path) }

		// The answer is lost after Meta delivered the message.
		require.NoError(t, e.srv.DropAnswer("POST", "/*/messages", 1))
		ctx, cancel := context.WithCancel(e.ctx)
		_, _, err := c.Messenger.Send(ctx, pageID, req)
		cancel()
		var ou *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &ou)
		require.ErrorIs(t, err, social.ErrOutcomeUnknown)
		require.Equal(t, "POST", ou.Method)
		require.Equal(t, path, ou.Path)
		require.Len(t, e.srv.SentMessages(), 1, "Meta delivered it")
		require.Equal(t, 1, sends(), "sent once, never again")
		errTexts := []string{err.Error()}

		// Meta delivered it and answered code 1200 (HTTP 500).
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Method: "POST", Path: path, Code: 1200, Count: 1, Acted: true}))
		_, _, err = c.Messenger.Send(e.ctx, pageID, req)
		var ou2 *meta.OutcomeUnknownError
		require.ErrorAs(t, err, &ou2)
		require.Equal(t, 500, ou2.StatusCode)
		require.Len(t, e.srv.SentMessages(), 2)
		require.Equal(t, 2, sends(), "not resent after a server error")
		errTexts = append(errTexts, err.Error())

		// A refusal before acting (4xx) is no outcome in doubt.
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Method: "POST", Path: path, Code: 100, Count: 1}))
		_, _, err = c.Messenger.Send(e.ctx, pageID, req)
		require.ErrorIs(t, err, meta.ErrInvalidParameter)
		require.NotErrorIs(t, err, social.ErrOutcomeUnknown)
		errTexts = append(errTexts, err.Error())

		// And one that is answered.
		e.clk.Advance(time.Second)
		sent, _, err := c.Messenger.Send(e.ctx, pageID, req)
		require.NoError(t, err)
		require.Len(t, e.srv.SentMessages(), 3)

		var sending, unknown, done []map[string]string
		for _, en := range e.auditEntries() {
			switch en.Action {
			case "meta.messenger.send_sending":
				sending = append(sending, en.Metadata)
			case "meta.write_outcome_unknown":
				unknown = append(unknown, en.Metadata)
			case "meta.messenger.send":
				done = append(done, en.Metadata)
			}
			b, err := json.Marshal(en)
			require.NoError(t, err)
			require.NotContains(t, string(b), canaryText, "audit entry %s holds the message text", en.Action)
			require.NotContains(t, string(b), canaryPSID, "audit entry %s holds the PSID", en.Action)
		}
		require.Len(t, sending, 4, "every send that reached Meta was recorded before it was sent")
		for _, m := range sending {
			require.Equal(t, "POST", m["method"])
			require.Equal(t, path, m["path"])
			require.NotEmpty(t, m["sent_at"])
		}
		require.Len(t, unknown, 2, "both sends in doubt are recorded")
		require.Equal(t, ou.SentAt.UTC().Format(time.RFC3339Nano), unknown[0]["sent_at"])
		require.Equal(t, ou2.SentAt.UTC().Format(time.RFC3339Nano), unknown[1]["sent_at"])
		require.Len(t, done, 1, "only the answered send is audited as sent")
		require.Equal(t, sent.MessageID, done[0]["message_id"])
		e.auditActions() // verifies the chain

		for _, s := range append(errTexts, e.logText()) {
			require.NotContains(t, s, canaryText)
			require.NotContains(t, s, canaryPSID)
		}
	})
}
