package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestIngestRefusesValuesNoColumnHolds: values a webhook body can carry that
// no database column can hold — a NUL in a message id or a Page id, a time
// beyond PostgreSQL's range (a timestamp of 2^63-1 milliseconds decodes
// to the year 292,278,994) — are refused as that message's
// *ValidationError (BatchResult.Rejected), and the rest of the batch is
// stored; they do not fail the whole batch with a database error.
func TestIngestRefusesValuesNoColumnHolds(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-hostile", ThreadID: "psid-hostile"}
		good := crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: "good", Text: "fine", SentAt: at}
		for name, bad := range map[string]crm.NewMessage{
			"nul in external id": {Conversation: key, Direction: crm.Inbound, ExternalID: "m\x00id", Text: "x", SentAt: at},
			"nul in page id": {Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "pa\x00ge", ThreadID: "psid-h2"},
				Direction: crm.Inbound, ExternalID: "m2", Text: "x", SentAt: at},
			"far future":      {Conversation: key, Direction: crm.Inbound, ExternalID: "m3", Text: "x", SentAt: time.UnixMilli(1<<63 - 1)},
			"far past":        {Conversation: key, Direction: crm.Inbound, ExternalID: "m4", Text: "x", SentAt: time.UnixMilli(-1 << 63)},
			"invalid utf8 id": {Conversation: key, Direction: crm.Inbound, ExternalID: "m\xff\xfe", Text: "x", SentAt: at},
		} {
			t.Run(name, func(t *testing.T) {
				res, err := convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{good, bad}})
				require.NoError(t, err, "a hostile value fails the whole batch")
				require.ErrorIs(t, res.Rejected[1], crm.ErrInvalid)
				require.Nil(t, res.Rejected[0])
			})
		}
	})
}

// TestIngestFarFutureTimeLeavesConversationReadable: on SQLite a message time
// of 2^63-1 ms (the year 292,278,994) is stored; from then on the
// conversation cannot be read (its last_message_at does not parse back)
// and every later delivery to it fails. FAILS at session 13's start.
func TestIngestFarFutureTimeLeavesConversationReadable(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-far", ThreadID: "psid-far"}
		_, err := convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{{Conversation: key, Direction: crm.Inbound, ExternalID: "first", Text: "z",
			SentAt: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}}})
		require.NoError(t, err)
		// Refused or stored, it must not break the conversation.
		_, _ = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{{Conversation: key, Direction: crm.Inbound, ExternalID: "far", Text: "x", SentAt: time.UnixMilli(1<<63 - 1)}}})
		_, err = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{{Conversation: key, Direction: crm.Inbound, ExternalID: "next", Text: "y",
			SentAt: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}}})
		require.NoError(t, err, "a later ordinary delivery to the conversation")
		_, err = convs.Find(e.A, key)
		require.NoError(t, err)
	})
}
