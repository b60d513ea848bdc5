package meta_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestMessengerUserRef: a chat plugin guest, whom Meta names by
// sender.user_ref, is stored under that reference (never as a PSID) and
// answered with recipient.user_ref, as the Send API documents.
func TestMessengerUserRef(t *testing.T) {
	const ref = "guest-ref-7f3a"
	eachWorld(t, func(t *testing.T, w *world) {
		u := w.inbox(t)
		require.NoError(t, w.srv.VerifyWebhook(t.Context(), appID, u))
		_, client := w.messengerClient(messagingFeatures)
		_, err := w.srv.SendWebhook(t.Context(), appID, u,
			metatest.Event{PageID: pageID, UserRef: ref, Message: &metatest.EventMessage{Text: "Hi from the website"}})
		require.NoError(t, err)

		key := meta.UserRefConversationKey(pageID, ref)
		conv, err := w.crm.Conversations().Find(w.ctx, key)
		require.NoError(t, err)
		_, err = w.crm.Conversations().Find(w.ctx, meta.ConversationKey(pageID, ref))
		require.ErrorIs(t, err, crm.ErrNotFound, "the reference is not stored as a PSID")

		sent, _, err := client.Messenger.Send(w.ctx, pageID, meta.SendRequest{UserRef: ref, MessagingType: meta.MessagingResponse, Text: "Welcome!"})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Empty(t, sent.RecipientID, "Meta names no PSID for a user_ref recipient")
		got := w.srv.SentMessages()
		require.Len(t, got, 1)
		require.Equal(t, ref, got[0].UserRef)
		require.Empty(t, got[0].RecipientID)
		ms := messagesOf(t, w, w.ctx, conv.ID)
		require.Len(t, ms, 2)
		require.Equal(t, crm.Outbound, ms[0].Direction, "newest first")

		_, _, err = client.Messenger.Send(w.ctx, pageID, meta.SendRequest{PSID: psid, UserRef: ref, MessagingType: meta.MessagingResponse, Text: "x"})
		require.ErrorIs(t, err, meta.ErrInvalidMessage)
	})
}

func messagesOf(t *testing.T, w *world, ctx context.Context, convID string) []crm.Message {
	t.Helper()
	var out []crm.Message
	for m, err := range crm.All(ctx, crm.ListOptions{}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return w.crm.Conversations().Messages(ctx, convID, o)
	}) {
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}
