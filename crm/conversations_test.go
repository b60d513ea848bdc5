package crm_test

import (
	"context"
	"errors"
	"fmt"
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

// TestConversationRecordAllAndMarkAll: the batch forms store what Record,
// MarkDelivered and MarkRead store, skip what is already recorded, reject
// invalid messages one by one, and stay within the tenant.
func TestConversationRecordAllAndMarkAll(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		t0 := fakeclock.Start.Add(time.Minute)
		other := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "psid-2"}
		old, err := convs.Record(e.A, crm.NewMessage{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.0", Text: "old", SentAt: t0})
		require.NoError(t, err)

		batch := []crm.NewMessage{
			{Conversation: pageKey, Direction: crm.Inbound, ExternalID: "mid.0", Text: "old", SentAt: t0}, // already recorded
			{Conversation: pageKey, Direction: crm.Outbound, ExternalID: "mid.1", Text: "reply", SentAt: t0.Add(time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.2", Text: "hi", SentAt: t0.Add(2 * time.Minute)},
			{Conversation: other, Direction: crm.Inbound, ExternalID: "mid.3", SentAt: t0.Add(3 * time.Minute)}, // no text
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.4", Text: "answer", SentAt: t0.Add(4 * time.Minute)},
			{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.4", Text: "answer", SentAt: t0.Add(4 * time.Minute)}, // twice in the batch
		}
		rejected, err := convs.RecordAll(e.A, batch)
		require.NoError(t, err)
		require.Len(t, rejected, len(batch))
		for i, rerr := range rejected {
			if i == 3 {
				require.ErrorIs(t, rerr, crm.ErrInvalid)
				continue
			}
			require.NoError(t, rerr, "message %d", i)
		}
		c1, err := convs.Find(e.A, pageKey)
		require.NoError(t, err)
		require.Equal(t, old.ConversationID, c1.ID)
		require.True(t, c1.LastMessageAt.Equal(t0.Add(time.Minute)), "LastMessageAt = %v", c1.LastMessageAt)
		c2, err := convs.Find(e.A, other)
		require.NoError(t, err)
		require.True(t, c2.LastMessageAt.Equal(t0.Add(4*time.Minute)), "LastMessageAt = %v", c2.LastMessageAt)
		statuses := func(c crm.Conversation) map[string]crm.DeliveryStatus {
			p, err := convs.Messages(e.A, c.ID, crm.ListOptions{})
			require.NoError(t, err)
			out := map[string]crm.DeliveryStatus{}
			for _, m := range p.Items {
				out[m.ExternalID] = m.Status
			}
			return out
		}
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.0": crm.StatusDelivered, "mid.1": crm.StatusSent}, statuses(c1))
		require.Equal(t, map[string]crm.DeliveryStatus{"mid.2": crm.StatusDelivered, "mid.4": crm.StatusSent}, statuses(c2))

		// Watermarks: the latest of each kind per conversation counts.
		n, err := convs.MarkAll(e.A, []crm.Watermarks{
			{Conversation: pageKey, Delivered: t0.Add(time.Minute)},
			{Conversation: pageKey, Read: t0.Add(time.Minute)},
			{Conversation: other, Delivered: t0.Add(5 * time.Minute)},
			{Conversation: other, Delivered: t0},
			{Conversation: crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: "nobody"}, Read: t0},
		})
		require.NoError(t, err)
		require.EqualValues(t, 3, n, "mid.1 delivered then read, mid.4 delivered")
		require.Equal(t, crm.StatusRead, statuses(c1)["mid.1"])
		require.Equal(t, crm.StatusDelivered, statuses(c2)["mid.4"])
		c2, err = convs.Find(e.A, other)
		require.NoError(t, err)
		require.True(t, c2.DeliveredUntil.Equal(t0.Add(5*time.Minute)))
		require.True(t, c2.ReadUntil.IsZero())

		// A later batch: an outbound message sent before the watermark is
		// delivered at once; an older watermark changes nothing.
		rejected, err = convs.RecordAll(e.A, []crm.NewMessage{{Conversation: other, Direction: crm.Outbound, ExternalID: "mid.5", Text: "late", SentAt: t0.Add(4 * time.Minute)}})
		require.NoError(t, err)
		require.NoError(t, rejected[0])
		require.Equal(t, crm.StatusDelivered, statuses(c2)["mid.5"])
		n, err = convs.MarkAll(e.A, []crm.Watermarks{{Conversation: other, Delivered: t0}})
		require.NoError(t, err)
		require.Zero(t, n)

		// Another tenant sees none of it.
		_, err = convs.Find(e.B, other)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}
