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
)

const psid = "9001"

var messagingFeatures = []string{meta.FeatureProfile, meta.FeaturePages, meta.FeatureMessaging}

// messengerClient connects the user for features, their Pages, and
// returns the first Page's connection and a client acting for it.
func (e *env) messengerClient(features []string) (social.Connection, *meta.Client) {
	e.t.Helper()
	page := e.connectPages(e.connect(userID, features))[pageID]
	return page, e.client(page)
}

// personWrites has the emulator deliver a person's message to a webhook
// that only records it (the emulator then knows the conversation, as Meta
// does) and returns when it was written.
func (e *env) personWrites(events ...metatest.Event) time.Time {
	e.t.Helper()
	var log eventLog
	wh, err := meta.NewWebhook(webhookConfig(), e.store, log.handle)
	require.NoError(e.t, err)
	u := serve(e.t, wh)
	require.NoError(e.t, e.srv.VerifyWebhook(context.Background(), appID, u))
	_, err = e.srv.SendWebhook(context.Background(), appID, u, events...)
	require.NoError(e.t, err)
	require.Len(e.t, log.all(), len(events))
	return e.clk.Now()
}

// TestMessengerSend: within the window its caller gives (LastInbound),
// Send posts what the Send API documents — recipient.id for a PSID,
// recipient.user_ref for a plugin guest, the messaging type, a text or an
// attachment by URL — and audits each send. meta keeps no conversation:
// the window comes from the caller.
func TestMessengerSend(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, c := e.messengerClient(messagingFeatures)
		wrote := e.personWrites(metatest.TextMessage(pageID, psid, "Is the rye bread in?"),
			metatest.Event{PageID: pageID, UserRef: "guest-ref-7f3a", Message: &metatest.EventMessage{Text: "Hi from the website"}})
		e.clk.Advance(time.Minute)

		sent, _, err := c.Messenger.Send(e.ctx, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse,
			Text: "Yes, fresh at 9.", LastInbound: wrote})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Equal(t, psid, sent.RecipientID)
		sent, _, err = c.Messenger.Send(e.ctx, pageID, meta.SendRequest{UserRef: "guest-ref-7f3a", MessagingType: meta.MessagingUpdate,
			Attachment: &meta.SendAttachment{Type: "image", URL: "https://cdn.example/loaf.jpg"}, LastInbound: wrote})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Empty(t, sent.RecipientID, "Meta names no PSID for a user_ref recipient")

		got := e.srv.SentMessages()
		require.Len(t, got, 2)
		require.Equal(t, psid, got[0].RecipientID)
		require.Equal(t, "RESPONSE", got[0].MessagingType)
		require.Equal(t, "Yes, fresh at 9.", got[0].Text)
		require.Equal(t, "guest-ref-7f3a", got[1].UserRef)
		require.Empty(t, got[1].RecipientID)
		var msg struct {
			Attachment struct {
				Type    string            `json:"type"`
				Payload map[string]string `json:"payload"`
			} `json:"attachment"`
		}
		require.NoError(t, json.Unmarshal(got[1].Message, &msg))
		require.Equal(t, "image", msg.Attachment.Type)
		require.Equal(t, "https://cdn.example/loaf.jpg", msg.Attachment.Payload["url"])
		sends := 0
		for _, a := range e.auditActions() {
			if a == "meta.messenger.send" {
				sends++
			}
		}
		require.Equal(t, 2, sends)
	})
}

// TestMessengerSendRefusals: Check and Send refuse locally, sending
// nothing, a request Meta would refuse, a retired tag, and a message
// outside the window after the LastInbound the caller gives.
func TestMessengerSendRefusals(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, c := e.messengerClient(messagingFeatures)
		wrote := e.personWrites(metatest.TextMessage(pageID, psid, "hi"))
		send := func(req meta.SendRequest) error {
			e.srv.ClearRequests()
			checked := c.Messenger.Check(pageID, req)
			_, _, err := c.Messenger.Send(e.ctx, pageID, req)
			require.Equal(t, checked, err, "Check refuses what Send refuses")
			require.Zero(t, e.graphCalls(), "refused locally")
			return err
		}
		reply := meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hello"}

		// Never wrote (no LastInbound): no window.
		var we *meta.WindowError
		require.ErrorAs(t, send(reply), &we)
		require.True(t, we.LastInbound.IsZero())
		require.ErrorIs(t, we, meta.ErrWindowClosed)

		require.NoError(t, c.Messenger.Check(pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hello", LastInbound: wrote}))
		e.clk.Advance(25 * time.Hour)
		reply.LastInbound = wrote
		require.ErrorIs(t, send(reply), meta.ErrWindowClosed)
		require.ErrorAs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingUpdate, Text: "news", LastInbound: wrote}), &we)
		require.Equal(t, wrote, we.LastInbound)
		require.Equal(t, meta.StandardWindow, we.Window)

		// Retired tags are refused with a clear typed error.
		for _, tag := range []meta.MessageTag{meta.TagConfirmedEventUpdate, meta.TagAccountUpdate, meta.TagPostPurchaseUpdate} {
			err := send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: tag, Text: "update", LastInbound: wrote})
			var rt *meta.RetiredTagError
			require.ErrorAs(t, err, &rt)
			require.Equal(t, tag, rt.Tag)
			require.ErrorIs(t, err, meta.ErrRetiredTag)
		}
		for _, bad := range []meta.SendRequest{
			{MessagingType: meta.MessagingResponse, Text: "x"},
			{PSID: psid, MessagingType: meta.MessagingResponse},
			{PSID: psid, MessagingType: "PROMO", Text: "x"},
			{PSID: psid, MessagingType: meta.MessagingTag, Text: "x"},
			{PSID: psid, MessagingType: meta.MessagingResponse, Tag: meta.TagHumanAgent, Text: "x"},
			{PSID: psid, MessagingType: meta.MessagingTag, Tag: "CUSTOMER_FEEDBACK", Text: "x"},
			{PSID: psid, MessagingType: meta.MessagingResponse, Text: string(make([]rune, meta.MaxMessageText+1))},
			{PSID: psid, MessagingType: meta.MessagingResponse, Attachment: &meta.SendAttachment{Type: "sticker", URL: "https://x"}},
			{PSID: psid, UserRef: "guest", MessagingType: meta.MessagingResponse, Text: "x"},
		} {
			bad.LastInbound = wrote
			require.ErrorIs(t, send(bad), meta.ErrInvalidMessage, "%+v", bad)
		}

		// HUMAN_AGENT reaches Meta within 7 days; this app lacks the
		// feature, so Meta refuses it.
		e.srv.ClearRequests()
		_, _, err := c.Messenger.Send(e.ctx, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag,
			Tag: meta.TagHumanAgent, Text: "A person here.", LastInbound: wrote})
		require.ErrorIs(t, err, meta.ErrPermission)
		require.Equal(t, 1, e.graphCalls())
		e.clk.Advance(7 * 24 * time.Hour)
		require.ErrorIs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: meta.TagHumanAgent, Text: "x", LastInbound: wrote}), meta.ErrWindowClosed)
	})
}

func TestMessengerSendNeedsPagesMessaging(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, client := e.messengerClient([]string{meta.FeatureProfile, meta.FeaturePages})
		e.srv.ClearRequests()
		req := meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hi", LastInbound: e.clk.Now()}
		_, _, err := client.Messenger.Send(e.ctx, pageID, req)
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Contains(t, se.Missing, meta.PermPagesMessaging)
		require.Zero(t, e.graphCalls(), "a ScopeError sends nothing")
		_, _, err = client.Messenger.Send(e.ctx, page2ID, req)
		require.Error(t, err)
	})
}
