package crm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// refused asserts err is a *ValidationError naming field and rule, and
// that its text carries no NUL (nor the value).
func refused(t *testing.T, err error, field, rule string) {
	t.Helper()
	var verr *crm.ValidationError
	require.ErrorAs(t, err, &verr)
	require.True(t, verr.Has(field, rule), "want %s %s: %v", field, rule, verr)
	require.NotContains(t, err.Error(), "\x00")
	require.NotContains(t, err.Error(), "\xff")
}

// TestRecordsRefuseValuesNoColumnHolds: every record, not only a
// message, refuses as a *ValidationError what no column of either
// database can hold and read back — a NUL or invalid UTF-8 in a string
// (clear or sealed), a time outside the years 1 to 9999 — before anything
// reaches the database (PostgreSQL answered 22021 and 22008, SQLite
// stored them and then could not read the row back).
func TestRecordsRefuseValuesNoColumnHolds(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		far, past, y10k := time.UnixMilli(1<<63-1), time.UnixMilli(-1<<63), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		now := e.clock.Now()
		contacts := e.store.Contacts()
		c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "A\x00da"})
		refused(t, err, "first_name", "nul")
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", Source: "web\xff"})
		refused(t, err, "source", "utf8")
		_, err = contacts.Get(e.A, c.ID+"\x00")
		refused(t, err, "id", "nul")
		_, err = e.store.Notes().Update(e.A, "n\xff", 1, crm.NoteInput{Body: "b"})
		refused(t, err, "id", "utf8")
		_, err = contacts.Update(e.A, c.ID, c.Version, crm.ContactInput{FirstName: "Ada", Tags: []string{"vip", "a\x00"}})
		refused(t, err, "tags[1]", "nul")
		_, err = contacts.Update(e.A, c.ID, c.Version, crm.ContactInput{FirstName: "Ada", Preferences: map[string]string{"lang\x00": "en"}})
		refused(t, err, "preferences", "nul")

		pl, err := e.store.Pipelines().Create(e.A, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "won"}})
		require.NoError(t, err)
		_, err = e.store.Deals().Create(e.A, crm.DealInput{PipelineID: pl.ID, Title: "Ring", ExpectedClose: far})
		refused(t, err, "expected_close", "time_range")
		_, err = e.store.Deals().Create(e.A, crm.DealInput{PipelineID: pl.ID, Title: "Ring", Stage: "n\x00ew"})
		refused(t, err, "stage", "nul")
		_, err = e.store.Notes().Create(e.A, crm.NoteInput{Body: "b", ContactID: c.ID + "\x00"})
		refused(t, err, "contact_id", "nul")
		_, err = e.store.Activities().Create(e.A, crm.ActivityInput{Kind: crm.ActivityCall, ExternalID: "x\x00", OccurredAt: now})
		refused(t, err, "external_id", "nul")
		_, err = e.store.Activities().Create(e.A, crm.ActivityInput{Kind: crm.ActivityCall, OccurredAt: past})
		refused(t, err, "occurred_at", "time_range")
		_, err = e.store.Tasks().Create(e.A, crm.TaskInput{Title: "t", DueAt: y10k})
		refused(t, err, "due_at", "time_range")

		convs := e.store.Conversations()
		key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-v", ThreadID: "psid-v"}
		bad := key
		bad.ThreadID = "psid\xff"
		_, err = convs.Find(e.A, bad)
		refused(t, err, "thread_id", "utf8")
		_, err = convs.Record(e.A, crm.NewMessage{Conversation: key, Direction: crm.Outbound, Text: "x", SentAt: far})
		refused(t, err, "sent_at", "time_range")
		res, err := convs.Ingest(e.A, crm.Batch{
			Messages:   []crm.NewMessage{{Conversation: key, Direction: crm.Inbound, ExternalID: "m\x00", Text: "x", SentAt: now}},
			Watermarks: []crm.Watermarks{{Conversation: key, Read: far}, {Conversation: bad, Read: now}}})
		require.NoError(t, err)
		refused(t, res.Rejected[0], "external_id", "nul")
		refused(t, res.RejectedWatermarks[0], "read", "time_range")
		refused(t, res.RejectedWatermarks[1], "thread_id", "utf8")
		_, err = convs.MarkRead(e.A, key, far)
		refused(t, err, "watermark", "time_range")
	})
}

// TestTimesAtTheEdgesRoundTrip: the first and the last microsecond both
// databases hold (the years 1 and 9999) are stored and read back exactly,
// by a message (and its conversation's last message time, which later
// deliveries still read) and an activity; a time beyond either is refused
// (before the first, the year 0; a microsecond earlier is the zero time,
// which a message refuses as missing).
func TestTimesAtTheEdgesRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		first := time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)
		last := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
		convs := e.store.Conversations()
		key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-edge", ThreadID: "psid-edge"}
		msg := func(id string, at time.Time) crm.NewMessage {
			return crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: id, Text: "x", SentAt: at}
		}
		res, err := convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{msg("first", first), msg("last", last),
			msg("before", first.Add(-2*time.Microsecond)), msg("after", last.Add(time.Nanosecond))}})
		require.NoError(t, err)
		require.Nil(t, res.Rejected[0])
		require.Nil(t, res.Rejected[1])
		refused(t, res.Rejected[2], "sent_at", "time_range")
		refused(t, res.Rejected[3], "sent_at", "time_range")
		_, err = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{msg("later", e.clock.Now())}})
		require.NoError(t, err)
		conv, err := convs.Find(e.A, key)
		require.NoError(t, err)
		require.True(t, conv.LastMessageAt.Equal(last), "last message at %v", conv.LastMessageAt)
		page, err := convs.Messages(e.A, conv.ID, crm.ListOptions{})
		require.NoError(t, err)
		got := map[string]time.Time{}
		for _, m := range page.Items {
			got[m.ExternalID] = m.SentAt
		}
		require.Len(t, got, 3)
		require.True(t, got["first"].Equal(first), "first: %v", got["first"])
		require.True(t, got["last"].Equal(last), "last: %v", got["last"])

		for _, at := range []time.Time{first, last} {
			a, err := e.store.Activities().Create(e.A, crm.ActivityInput{Kind: crm.ActivityCall, OccurredAt: at})
			require.NoError(t, err)
			a, err = e.store.Activities().Get(e.A, a.ID)
			require.NoError(t, err)
			require.True(t, a.OccurredAt.Equal(at), "occurred at %v, want %v", a.OccurredAt, at)
		}
	})
}
