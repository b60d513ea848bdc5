package crm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

var pageKey = crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-1"}

func TestConversationRecordIsIdempotent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := fakeclock.Start.Add(time.Minute)
		in := crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.1", Text: "hello",
			Attachments: []crm.MessageAttachment{{Type: "image", URL: "https://cdn.example/a.jpg"}}, SentAt: at}
		m1, err := convs.Record(e.A, in)
		require.NoError(t, err)
		m2, err := convs.Record(e.A, in)
		require.NoError(t, err)
		if m1.ID != m2.ID {
			t.Errorf("second Record returned message %s, want the stored %s", m2.ID, m1.ID)
		}
		require.Equal(t, crm.StatusDelivered, m1.Status)
		c, err := convs.Find(e.A, pageKey)
		require.NoError(t, err)
		require.Equal(t, m1.ConversationID, c.ID)
		require.True(t, c.LastMessageAt.Equal(at), "LastMessageAt = %v, want %v", c.LastMessageAt, at)
		p, err := convs.Messages(e.A, c.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		require.Equal(t, "hello", p.Items[0].Text)
		require.Equal(t, []crm.MessageAttachment{{Type: "image", URL: "https://cdn.example/a.jpg"}}, p.Items[0].Attachments)

		// Open of an existing key returns it.
		c2, err := convs.Open(e.A, pageKey)
		require.NoError(t, err)
		require.Equal(t, c.ID, c2.ID)
	})
}

func TestConversationWatermarks(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		t0 := fakeclock.Start
		var ids []string
		for i := range 4 {
			m, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, ExternalID: fmt.Sprintf("mid.%d", i),
				Text: "out", SentAt: t0.Add(time.Duration(i) * time.Minute)})
			require.NoError(t, err)
			require.Equal(t, crm.StatusSent, m.Status)
			ids = append(ids, m.ID)
		}
		in, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.in", Text: "in", SentAt: t0})
		require.NoError(t, err)

		n, err := convs.MarkDelivered(e.A, pageKey, t0.Add(2*time.Minute))
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
		n, err = convs.MarkRead(e.A, pageKey, t0.Add(time.Minute))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		// An older watermark again changes nothing.
		n, err = convs.MarkDelivered(e.A, pageKey, t0)
		require.NoError(t, err)
		require.EqualValues(t, 0, n)

		c, err := convs.Find(e.A, pageKey)
		require.NoError(t, err)
		p, err := convs.Messages(e.A, c.ID, crm.ListOptions{})
		require.NoError(t, err)
		got := map[string]crm.DeliveryStatus{}
		for _, m := range p.Items {
			got[m.ID] = m.Status
		}
		want := map[string]crm.DeliveryStatus{ids[0]: crm.StatusRead, ids[1]: crm.StatusRead, ids[2]: crm.StatusDelivered, ids[3]: crm.StatusSent, in.ID: crm.StatusDelivered}
		require.Equal(t, want, got)

		// A message recorded late, sent before the read watermark, is read.
		late, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, Text: "late", SentAt: t0.Add(30 * time.Second)})
		require.NoError(t, err)
		require.Equal(t, crm.StatusRead, late.Status)

		// A pending message: sent, then failed.
		pend, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, Text: "new", SentAt: t0.Add(time.Hour)})
		require.NoError(t, err)
		require.Equal(t, crm.StatusPending, pend.Status)
		sent, err := convs.MarkSent(e.A, pend.ID, "mid.new")
		require.NoError(t, err)
		require.Equal(t, crm.StatusSent, sent.Status)
		require.Equal(t, "mid.new", sent.ExternalID)
		failed, err := convs.MarkFailed(e.A, pend.ID)
		require.NoError(t, err)
		require.Equal(t, crm.StatusFailed, failed.Status)
		_, err = convs.MarkFailed(e.A, in.ID)
		require.ErrorIs(t, err, crm.ErrInvalid)
	})
}

func TestConversationListAndPages(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		for i := range 5 {
			key := crm.ConversationKey{Channel: crm.ChannelWhatsApp, AccountID: "+15550000000", ThreadID: fmt.Sprintf("+1555000000%d", i)}
			for j := range 3 {
				_, err := convs.Record(e.A, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: fmt.Sprintf("w%d.%d", i, j),
					Text: "hi", SentAt: fakeclock.Start.Add(time.Duration(10*i+j) * time.Minute)})
				require.NoError(t, err)
			}
		}
		_, err := convs.Open(e.A, pageKey)
		require.NoError(t, err)

		var threads []string
		for c, err := range crm.All(e.A, crm.ListOptions{Limit: 2}, func(ctx_ context.Context, o crm.ListOptions) (crm.Page[crm.Conversation], error) {
			return convs.List(ctx_, crm.ConversationFilter{Channel: crm.ChannelWhatsApp}, o)
		}) {
			require.NoError(t, err)
			threads = append(threads, c.ThreadID)
		}
		require.Equal(t, []string{"+15550000004", "+15550000003", "+15550000002", "+15550000001", "+15550000000"}, threads)

		c, err := convs.Find(e.A, crm.ConversationKey{Channel: crm.ChannelWhatsApp, AccountID: "+15550000000", ThreadID: "+15550000002"})
		require.NoError(t, err)
		p1, err := convs.Messages(e.A, c.ID, crm.ListOptions{Limit: 2})
		require.NoError(t, err)
		require.Len(t, p1.Items, 2)
		require.NotEmpty(t, p1.NextCursor)
		p2, err := convs.Messages(e.A, c.ID, crm.ListOptions{Limit: 2, Cursor: p1.NextCursor})
		require.NoError(t, err)
		require.Len(t, p2.Items, 1)
		require.Empty(t, p2.NextCursor)
		require.Equal(t, "w2.0", p2.Items[0].ExternalID)

		// A cursor of another list is refused.
		_, err = convs.List(e.A, crm.ConversationFilter{}, crm.ListOptions{Cursor: p1.NextCursor})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("cursor", "cursor"))
	})
}

func TestConversationValidation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		_, err := convs.Record(e.A, crm.NewMessage{Conversation: crm.ConversationKey{Channel: "fax"}, Direction: "sideways",
			Attachments: []crm.MessageAttachment{{Type: "image", URL: "not a url"}}})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		for _, f := range [][2]string{{"conversation.channel", "oneof"}, {"conversation.account_id", "required"}, {"direction", "oneof"}, {"sent_at", "required"}, {"attachments[0].url", "url"}} {
			if !verr.Has(f[0], f[1]) {
				t.Errorf("Record returned %v, want %s to fail %s", err, f[0], f[1])
			}
		}
		_, err = convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, SentAt: fakeclock.Start})
		require.ErrorIs(t, err, crm.ErrInvalid)
		p, err := convs.List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items, "a failed Record must store nothing, not even the conversation")

		_, err = convs.LinkContact(e.A, "nope", "", 1)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

func TestConversationTenantIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		m, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, ExternalID: "mid.a", Text: "secret", SentAt: fakeclock.Start})
		require.NoError(t, err)

		_, err = convs.Get(e.B, m.ConversationID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = convs.Find(e.B, pageKey)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = convs.Messages(e.B, m.ConversationID, crm.ListOptions{})
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = convs.MarkFailed(e.B, m.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		n, err := convs.MarkRead(e.B, pageKey, fakeclock.Start.Add(time.Hour))
		require.True(t, errors.Is(err, crm.ErrNotFound) && n == 0, "MarkRead in B returned %d, %v", n, err)
		p, err := convs.List(e.B, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)

		// The same key in B is another conversation; the same external id
		// is another message.
		mb, err := convs.Record(e.B, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, ExternalID: "mid.a", Text: "b", SentAt: fakeclock.Start})
		require.NoError(t, err)
		require.NotEqual(t, m.ConversationID, mb.ConversationID)
		got, err := convs.Messages(e.A, m.ConversationID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, got.Items, 1)
		require.Equal(t, crm.StatusSent, got.Items[0].Status)
		require.Equal(t, "secret", got.Items[0].Text)
	})
}

// TestConversationRecordConcurrentDeliveries: a webhook delivered several
// times at once stores one conversation and one message.
func TestConversationRecordConcurrentDeliveries(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		in := crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.dup", Text: "hi", SentAt: fakeclock.Start}
		var wg sync.WaitGroup
		ids := make([]string, 4)
		errs := make([]error, 4)
		for i := range ids {
			wg.Go(func() {
				m, err := e.store.Conversations().Record(e.A, in)
				ids[i], errs[i] = m.ID, err
			})
		}
		wg.Wait()
		for i := range ids {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i])
		}
		p, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		ms, err := e.store.Conversations().Messages(e.A, p.Items[0].ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, ms.Items, 1)
	})
}

// TestConversationIngest: a batch stores what Record, MarkDelivered and
// MarkRead store, skips what is already recorded, rejects invalid messages
// and watermarks one by one, and stays within the tenant.
func TestConversationIngest(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		t0 := fakeclock.Start.Add(time.Minute)
		other := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-2"}
		old, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.0", Text: "old", SentAt: t0})
		require.NoError(t, err)

		batch := []crm.NewMessage{
			{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.0", Text: "old", SentAt: t0}, // already recorded
			{Conversation: pageKey, Direction: crm.Outbound, ExternalID: "mid.1", Text: "reply", SentAt: t0.Add(time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.2", Text: "hi", SentAt: t0.Add(2 * time.Minute),
				Attachments: []crm.MessageAttachment{{Type: "image", URL: "https://cdn.example/a.jpg"}}},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.3", SentAt: t0.Add(3 * time.Minute)}, // no text
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.4", Text: "answer \"quoted\" {a,b} \\ 'x'", SentAt: t0.Add(4 * time.Minute)},
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.4", Text: "answer", SentAt: t0.Add(4 * time.Minute)}, // twice in the batch
			{Conversation: other, Direction: crm.Outbound, Text: "not yet sent", SentAt: t0.Add(4 * time.Minute)},                // pending
		}
		res, err := convs.Ingest(e.A, crm.Batch{Messages: batch, Watermarks: []crm.Watermarks{
			{Conversation: crm.ConversationKey{Channel: "fax", AccountID: "page-1", ThreadID: "x"}, Read: t0}, // invalid
		}})
		require.NoError(t, err)
		require.Len(t, res.Rejected, len(batch))
		for i, rerr := range res.Rejected {
			if i == 3 {
				require.ErrorIs(t, rerr, crm.ErrInvalid)
				continue
			}
			require.NoError(t, rerr, "message %d", i)
		}
		require.Len(t, res.RejectedWatermarks, 1)
		require.ErrorIs(t, res.RejectedWatermarks[0], crm.ErrInvalid)
		require.EqualValues(t, 4, res.Stored, "mid.1, mid.2, mid.4 once, the pending message")
		require.Zero(t, res.Marked)
		c1, err := convs.Find(e.A, pageKey)
		require.NoError(t, err)
		require.Equal(t, old.ConversationID, c1.ID)
		require.True(t, c1.LastMessageAt.Equal(t0.Add(time.Minute)), "LastMessageAt = %v", c1.LastMessageAt)
		c2, err := convs.Find(e.A, other)
		require.NoError(t, err)
		require.True(t, c2.LastMessageAt.Equal(t0.Add(4*time.Minute)), "LastMessageAt = %v", c2.LastMessageAt)
		messages := func(c crm.Conversation) map[string]crm.Message {
			p, err := convs.Messages(e.A, c.ID, crm.ListOptions{})
			require.NoError(t, err)
			out := map[string]crm.Message{}
			for _, m := range p.Items {
				out[m.ExternalID] = m
			}
			return out
		}
		statuses := func(c crm.Conversation) map[string]crm.DeliveryStatus {
			out := map[string]crm.DeliveryStatus{}
			for id, m := range messages(c) {
				out[id] = m.Status
			}
			return out
		}
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.0": crm.StatusDelivered, "mid.1": crm.StatusSent}, statuses(c1))
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.2": crm.StatusDelivered, "mid.4": crm.StatusSent, "": crm.StatusPending}, statuses(c2))
		got := messages(c2)
		require.Equal(t, "answer \"quoted\" {a,b} \\ 'x'", got["mid.4"].Text, "the first of a repeated external id is stored")
		require.Equal(t, []crm.MessageAttachment{{Type: "image", URL: "https://cdn.example/a.jpg"}}, got["mid.2"].Attachments)
		require.Equal(t, crm.Outbound, got["mid.4"].Direction)
		require.True(t, got["mid.2"].SentAt.Equal(t0.Add(2*time.Minute)))

		// Watermarks: the latest of each kind per conversation counts; a
		// conversation never stored is not opened by a watermark.
		nobody := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "nobody"}
		res, err = convs.Ingest(e.A, crm.Batch{Watermarks: []crm.Watermarks{
			{Conversation: pageKey, Delivered: t0.Add(time.Minute)},
			{Conversation: pageKey, Read: t0.Add(time.Minute)},
			{Conversation: other, Delivered: t0.Add(5 * time.Minute)},
			{Conversation: other, Delivered: t0},
			{Conversation: nobody, Read: t0},
		}})
		require.NoError(t, err)
		require.EqualValues(t, 3, res.Marked, "mid.1 read, mid.4 and the pending message delivered")
		require.Zero(t, res.Stored)
		require.Equal(t, crm.StatusRead, statuses(c1)["mid.1"])
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.2": crm.StatusDelivered, "mid.4": crm.StatusDelivered, "": crm.StatusDelivered}, statuses(c2))
		c2, err = convs.Find(e.A, other)
		require.NoError(t, err)
		require.True(t, c2.DeliveredUntil.Equal(t0.Add(5*time.Minute)))
		require.True(t, c2.ReadUntil.IsZero())
		_, err = convs.Find(e.A, nobody)
		require.ErrorIs(t, err, crm.ErrNotFound)

		// A later batch: an outbound message sent before a watermark
		// already received is delivered at once; an older watermark
		// changes nothing; a watermark and an echo it covers in one batch
		// (the echo after it) leave the echo read, and the watermark moves
		// the messages stored before too.
		res, err = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.5", Text: "late", SentAt: t0.Add(4 * time.Minute)},
		}, Watermarks: []crm.Watermarks{{Conversation: other, Delivered: t0}}})
		require.NoError(t, err)
		require.NoError(t, res.Rejected[0])
		require.EqualValues(t, 1, res.Stored)
		require.Zero(t, res.Marked)
		require.Equal(t, crm.StatusDelivered, statuses(c2)["mid.5"])
		res, err = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.6", Text: "echo", SentAt: t0.Add(6 * time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.7", Text: "thanks", SentAt: t0.Add(7 * time.Minute)},
		}, Watermarks: []crm.Watermarks{{Conversation: other, Read: t0.Add(6 * time.Minute)}}})
		require.NoError(t, err)
		require.EqualValues(t, 2, res.Stored)
		require.EqualValues(t, 3, res.Marked, "mid.4, mid.5 and the pending message read")
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.2": crm.StatusDelivered, "mid.4": crm.StatusRead, "": crm.StatusRead,
			"mid.5": crm.StatusRead, "mid.6": crm.StatusRead, "mid.7": crm.StatusDelivered}, statuses(c2))
		c2, err = convs.Find(e.A, other)
		require.NoError(t, err)
		require.True(t, c2.ReadUntil.Equal(t0.Add(6*time.Minute)))
		require.True(t, c2.LastMessageAt.Equal(t0.Add(7*time.Minute)), "LastMessageAt = %v", c2.LastMessageAt)

		// A new conversation opened by a batch carries the batch's
		// watermarks, and its latest message's time.
		third := crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: "ig-1", ThreadID: "igsid-1"}
		res, err = convs.Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: third, Direction: crm.Outbound, ExternalID: "mid.8", Text: "hello", SentAt: t0.Add(-time.Hour)},
		}, Watermarks: []crm.Watermarks{{Conversation: third, Delivered: t0.Add(-time.Hour)}}})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Stored)
		c3, err := convs.Find(e.A, third)
		require.NoError(t, err)
		require.True(t, c3.DeliveredUntil.Equal(t0.Add(-time.Hour)))
		require.True(t, c3.LastMessageAt.Equal(t0.Add(-time.Hour)), "LastMessageAt = %v", c3.LastMessageAt)
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.8": crm.StatusDelivered}, statuses(c3))

		// The same batch again stores and marks nothing (but the pending
		// message, which has no external id to be known by).
		res, err = convs.Ingest(e.A, crm.Batch{Messages: batch[:6], Watermarks: []crm.Watermarks{{Conversation: other, Read: t0.Add(6 * time.Minute)}}})
		require.NoError(t, err)
		require.Zero(t, res.Stored)
		require.Zero(t, res.Marked)

		// Another tenant sees none of it.
		_, err = convs.Find(e.B, other)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

// TestConversationIngestConcurrent: batches that share conversations and
// messages, ingested at once on several connections (as webhook
// deliveries reaching several replicas are), store each conversation and
// each message once, never deadlock, and count each stored message once.
func TestConversationIngestConcurrent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		t0 := fakeclock.Start.Add(time.Minute)
		batch := func(from int) crm.Batch {
			var b crm.Batch
			for i := from; i < from+30; i++ {
				k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%d", i%7)}
				b.Messages = append(b.Messages, crm.NewMessage{Conversation: k, Direction: crm.Inbound, ExternalID: fmt.Sprintf("mid.%d", i),
					Text: "hi", SentAt: t0.Add(time.Duration(i) * time.Second)})
				b.Watermarks = append(b.Watermarks, crm.Watermarks{Conversation: k, Read: t0.Add(time.Duration(i) * time.Second)})
			}
			return b
		}
		var wg sync.WaitGroup
		stored := make([]int64, 8)
		errs := make([]error, 8)
		for i := range stored {
			wg.Go(func() {
				res, err := e.store.Conversations().Ingest(e.A, batch(10*(i%4)))
				stored[i], errs[i] = res.Stored, err
			})
		}
		wg.Wait()
		var total int64
		for i := range stored {
			require.NoError(t, errs[i])
			total += stored[i]
		}
		require.EqualValues(t, 60, total, "mid.0 … mid.59, each stored by one batch")
		p, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, crm.ListOptions{Limit: 100})
		require.NoError(t, err)
		require.Len(t, p.Items, 7)
		n := 0
		for _, c := range p.Items {
			ms, err := e.store.Conversations().Messages(e.A, c.ID, crm.ListOptions{Limit: 100})
			require.NoError(t, err)
			n += len(ms.Items)
			latest := ms.Items[0].SentAt
			require.True(t, c.LastMessageAt.Equal(latest), "LastMessageAt %v, latest message %v", c.LastMessageAt, latest)
		}
		require.Equal(t, 60, n)
	})
}

// TestConversationIngestFailureStoresNothing: a batch the database
// refuses part of (here a message refused by a constraint the test adds)
// stores nothing of it: not the new conversation, not the other messages,
// not the watermarks.
func TestConversationIngestFailureStoresNothing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		t0 := fakeclock.Start
		_, err := e.store.Conversations().Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Outbound, ExternalID: "mid.0", Text: "out", SentAt: t0})
		require.NoError(t, err)
		owner := e.db.ReopenOwner(t)
		if e.db.Name == "postgres" {
			_, err = owner.ExecContext(t.Context(), "ALTER TABLE socialcrm_crm_messages ADD CONSTRAINT test_refuse CHECK (sent_at < '2100-01-01')")
		} else {
			_, err = owner.ExecContext(t.Context(), `CREATE TRIGGER test_refuse BEFORE INSERT ON socialcrm_crm_messages
				WHEN NEW.sent_at >= '2100' BEGIN SELECT RAISE(ABORT, 'refused'); END`)
		}
		require.NoError(t, err)
		other := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-new"}
		_, err = e.store.Conversations().Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{
			{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.1", Text: "hi", SentAt: t0.Add(time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.2", Text: "hi", SentAt: t0.Add(time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.3", Text: "from the future", SentAt: time.Date(2100, 1, 2, 0, 0, 0, 0, time.UTC)},
		}, Watermarks: []crm.Watermarks{{Conversation: pageKey, Read: t0.Add(time.Minute)}}})
		require.Error(t, err)
		require.False(t, errors.Is(err, crm.ErrInvalid), "a database failure, not a refused message: %v", err)
		_, err = e.store.Conversations().Find(e.A, other)
		require.ErrorIs(t, err, crm.ErrNotFound, "the new conversation is not stored")
		c, err := e.store.Conversations().Find(e.A, pageKey)
		require.NoError(t, err)
		require.True(t, c.LastMessageAt.Equal(t0), "LastMessageAt moved to %v", c.LastMessageAt)
		require.True(t, c.ReadUntil.IsZero(), "the watermark is not stored")
		ms, err := e.store.Conversations().Messages(e.A, c.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, ms.Items, 1)
		require.Equal(t, crm.StatusSent, ms.Items[0].Status, "the stored message keeps its status")
	})
}

// TestConversationIngestOppositeOrders: two deliveries at once, each with
// the messages of one half of a Page's people and the delivery and read
// watermarks of the other half — the halves swapped between them, so each
// updates the other's conversations — and, in every other round, two
// watermark-only deliveries over the same people, listed in opposite
// orders. On PostgreSQL every conversation row a statement changes is
// taken in key order, so the two never wait on each other in a cycle;
// taken as the statement met them (the messages' conversations first, then
// those of the watermarks), the database broke the cycle with a deadlock
// error within a few rounds. Each round's watermarks reach the outbound
// messages stored before.
func TestConversationIngestOppositeOrders(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const people, rounds = 24, 60
		convs := e.store.Conversations()
		t0 := fakeclock.Start.Add(time.Minute)
		key := func(i int) crm.ConversationKey {
			return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%02d", i)}
		}
		// Every conversation exists, with an outbound message the
		// watermarks will mark.
		var open crm.Batch
		for i := range people {
			open.Messages = append(open.Messages, crm.NewMessage{Conversation: key(i), Direction: crm.Outbound,
				ExternalID: fmt.Sprintf("out.%d", i), Text: "hello", SentAt: t0})
		}
		_, err := convs.Ingest(e.A, open)
		require.NoError(t, err)
		// cross is round r's delivery of the messages of the people from
		// from on (half of them) and the watermarks of the other half.
		cross := func(r, from int) crm.Batch {
			var b crm.Batch
			at := t0.Add(time.Duration(r+1) * time.Second)
			for k := range people / 2 {
				i := (from + k) % people
				b.Messages = append(b.Messages, crm.NewMessage{Conversation: key(i), Direction: crm.Inbound,
					ExternalID: fmt.Sprintf("in.%d.%d", r, i), Text: "hi", SentAt: at})
				b.Watermarks = append(b.Watermarks, crm.Watermarks{Conversation: key((i + people/2) % people), Delivered: at, Read: at})
			}
			return b
		}
		// marks is round r's watermarks of everyone.
		marks := func(r int) crm.Batch {
			var b crm.Batch
			at := t0.Add(time.Duration(r+1) * time.Second)
			for i := range people {
				b.Watermarks = append(b.Watermarks, crm.Watermarks{Conversation: key(i), Delivered: at, Read: at})
			}
			return b
		}
		for r := range rounds {
			batches := [2]crm.Batch{cross(r, 0), cross(r, people/2)}
			if r%2 == 1 {
				batches = [2]crm.Batch{marks(r), marks(r)}
				slices.Reverse(batches[1].Watermarks)
			}
			var wg sync.WaitGroup
			var errs [2]error
			for g := range batches {
				wg.Go(func() { _, errs[g] = convs.Ingest(e.A, batches[g]) })
			}
			wg.Wait()
			for g := range errs {
				require.NoError(t, errs[g], "round %d, delivery %d", r, g)
			}
		}
		last := t0.Add(time.Duration(rounds) * time.Second)
		for i := range people {
			c, err := convs.Find(e.A, key(i))
			require.NoError(t, err)
			require.True(t, c.ReadUntil.Equal(last), "conversation %d read until %v, want %v", i, c.ReadUntil, last)
			ms, err := convs.Messages(e.A, c.ID, crm.ListOptions{Limit: 100})
			require.NoError(t, err)
			require.Len(t, ms.Items, 1+rounds/2, "conversation %d", i)
			for _, m := range ms.Items {
				if m.Direction == crm.Outbound {
					require.Equal(t, crm.StatusRead, m.Status)
				}
			}
		}
	})
}
