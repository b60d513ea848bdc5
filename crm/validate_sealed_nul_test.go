package crm_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestMessageTextWithNUL: a message's text, stored only sealed, may hold
// a NUL: Record and Ingest (the fast check and, for a message with an
// attachment, the validator) store it and read it back equal on both
// databases. Invalid UTF-8 in the text is still refused, and so is a NUL
// in the message's ids and in another record's sealed text (a note body).
func TestMessageTextWithNUL(t *testing.T) {
	const text = "before\x00after \x00 äöå\x00"
	each(t, func(t *testing.T, e *env) {
		now := e.clock.Now()
		convs := e.store.Conversations()
		key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-nul", ThreadID: "psid-nul"}
		recorded, err := convs.Record(e.A, crm.NewMessage{Conversation: key, Direction: crm.Outbound, Text: text, SentAt: now})
		require.NoError(t, err)
		require.Equal(t, text, recorded.Text)
		res, err := convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: key, Direction: crm.Inbound, ExternalID: "m_plain", Text: text, SentAt: now},
			{Conversation: key, Direction: crm.Inbound, ExternalID: "m_attached", Text: "\x00", SentAt: now,
				Attachments: []crm.MessageAttachment{{Type: "image", URL: "https://example.com/a.jpg"}}},
			{Conversation: key, Direction: crm.Inbound, ExternalID: "m_bad", Text: "a\x00\xff", SentAt: now},
			{Conversation: key, Direction: crm.Inbound, ExternalID: "m\x00id", Text: text, SentAt: now},
			{Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-nul", ThreadID: "psid\x00"},
				Direction: crm.Inbound, ExternalID: "m_thread", Text: text, SentAt: now},
		}})
		require.NoError(t, err)
		require.Nil(t, res.Rejected[0])
		require.Nil(t, res.Rejected[1])
		refused(t, res.Rejected[2], "text", "utf8")
		refused(t, res.Rejected[3], "external_id", "nul")
		refused(t, res.Rejected[4], "conversation.thread_id", "nul")

		conv, err := convs.Find(e.A, key)
		require.NoError(t, err)
		page, err := convs.Messages(e.A, conv.ID, crm.ListOptions{})
		require.NoError(t, err)
		got := map[string]string{}
		for _, m := range page.Items {
			got[m.ExternalID] = m.Text
		}
		require.Equal(t, map[string]string{"": text, "m_plain": text, "m_attached": "\x00"}, got)

		_, err = e.store.Notes().Create(e.A, crm.NoteInput{Body: "b\x00"})
		refused(t, err, "body", "nul")
	})
}
