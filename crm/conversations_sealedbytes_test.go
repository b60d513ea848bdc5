package crm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

// TestConversationIngestSealedBytesApart: on PostgreSQL a batch's sealed
// texts and attachments travel as one value that the statement cuts at
// each message's offsets; messages with text only, attachments only and
// both, mixed in one batch and across conversations, each get their own
// back (on SQLite, the same through its own statements).
func TestConversationIngestSealedBytesApart(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := fakeclock.Start.Add(time.Minute)
		att := func(i int) []crm.MessageAttachment {
			return []crm.MessageAttachment{{Type: "image", URL: fmt.Sprintf("https://cdn.example/%d.jpg", i)}}
		}
		type want struct {
			text string
			att  []crm.MessageAttachment
		}
		wants := map[string]want{}
		var b crm.Batch
		for i := range 9 {
			w := want{text: fmt.Sprintf("text %d {\"x\"} äö", i), att: att(i)}
			switch i % 3 {
			case 0:
				w.att = nil // text only
			case 1:
				w.text = "" // attachments only
			}
			mid := fmt.Sprintf("mid.%d", i)
			wants[mid] = w
			k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%d", i%2)}
			b.Messages = append(b.Messages, crm.NewMessage{Conversation: k, Direction: crm.Inbound, ExternalID: mid,
				Text: w.text, Attachments: w.att, SentAt: at.Add(time.Duration(i) * time.Second)})
		}
		res, err := convs.Ingest(e.A, b)
		require.NoError(t, err)
		for i, rerr := range res.Rejected {
			require.NoError(t, rerr, "message %d", i)
		}
		require.EqualValues(t, 9, res.Stored)
		got := map[string]want{}
		for i := range 2 {
			c, err := convs.Find(e.A, crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%d", i)})
			require.NoError(t, err)
			ms, err := whole(convs.Messages(e.A, c.ID, crm.ListOptions{Limit: 20}))
			require.NoError(t, err)
			for _, m := range ms {
				got[m.ExternalID] = want{text: m.Text, att: m.Attachments}
			}
		}
		require.Len(t, got, 9)
		for mid, w := range wants {
			require.Equal(t, w.text, got[mid].text, mid)
			if w.att == nil {
				require.Empty(t, got[mid].att, mid)
			} else {
				require.Equal(t, w.att, got[mid].att, mid)
			}
		}
	})
}
