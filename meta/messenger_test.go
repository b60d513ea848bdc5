package meta_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

const psid = "9001"

var messagingFeatures = []string{meta.FeatureProfile, meta.FeaturePages, meta.FeatureMessaging}

// inbox serves a webhook storing into the world's crm and returns its URL.
func (w *world) inbox(t testing.TB) string {
	t.Helper()
	in, err := meta.NewInbox(w.db.DB, w.store, w.crm, meta.WithInboxClock(w.clk.Now), meta.WithInboxLogger(w.logger()))
	require.NoError(t, err)
	wh, err := meta.NewWebhook(webhookConfig(), w.store, in.Handle, meta.WithLogger(w.logger()))
	require.NoError(t, err)
	return serve(t, wh)
}

// messengerClient connects the user for messaging, their Pages, and
// returns a client of the first Page with the world's conversations.
func (w *world) messengerClient(features []string) (social.Connection, *meta.Client) {
	w.t.Helper()
	user := w.connect(userID, features)
	page := w.connectPages(user)[pageID]
	c, err := meta.New(w.cfg, append(w.clientOpts(), meta.WithSession(w.session(page)), meta.WithConversations(w.crm))...)
	require.NoError(w.t, err)
	return page, c
}

// messages lists the conversation's messages, oldest first.
func (w *world) messages(ctx context.Context, pageID, psid string) []crm.Message {
	w.t.Helper()
	conv, err := w.crm.Conversations().Find(ctx, meta.ConversationKey(pageID, psid))
	require.NoError(w.t, err)
	var out []crm.Message
	for m, err := range crm.All(ctx, crm.ListOptions{}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return w.crm.Conversations().Messages(ctx, conv.ID, o)
	}) {
		require.NoError(w.t, err)
		out = append([]crm.Message{m}, out...)
	}
	return out
}

// TestMessengerEndToEnd: a message received by webhook is stored, the
// reply goes out through the Send API and is stored, delivery and read
// webhooks move its status, and a duplicate delivery is stored once — on
// both databases, with the Page connected in two tenants.
func TestMessengerEndToEnd(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		u := w.inbox(t)
		require.NoError(t, w.srv.VerifyWebhook(t.Context(), appID, u))
		tenantB := owner(tenancy.NewID())
		w.ctx, tenantB = tenantB, w.ctx
		w.connectPages(w.connect(userID, messagingFeatures)) // tenant B connects the same Page
		w.ctx, tenantB = tenantB, w.ctx
		_, client := w.messengerClient(messagingFeatures)

		in := metatest.TextMessage(pageID, psid, "Is the rye bread in? äöå")
		d, err := w.srv.SendWebhook(t.Context(), appID, u, in)
		require.NoError(t, err)
		require.NoError(t, d.Resend(t.Context()), "Meta retries")
		for _, ctx := range []context.Context{w.ctx, tenantB} {
			ms := w.messages(ctx, pageID, psid)
			require.Len(t, ms, 1, "stored once in each tenant")
			require.Equal(t, crm.Inbound, ms[0].Direction)
			require.Equal(t, "Is the rye bread in? äöå", ms[0].Text)
			require.Equal(t, in.Message.MID, ms[0].ExternalID)
		}

		w.clk.Advance(time.Minute)
		sent, _, err := client.Messenger.Send(w.ctx, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "Yes, fresh at 9."})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Equal(t, crm.StatusSent, sent.Stored.Status)
		srvSent := w.srv.SentMessages()
		require.Len(t, srvSent, 1)
		require.Equal(t, "RESPONSE", srvSent[0].MessagingType)
		require.Equal(t, "Yes, fresh at 9.", srvSent[0].Text)

		// Meta echoes the Page's message, then reports delivery and read.
		sentAt := w.clk.Now()
		w.clk.Advance(time.Second)
		_, err = w.srv.SendWebhook(t.Context(), appID, u, metatest.Event{PageID: pageID, PSID: psid, Time: sentAt,
			Message: &metatest.EventMessage{MID: sent.MessageID, Text: "Yes, fresh at 9.", IsEcho: true, AppID: appID}})
		require.NoError(t, err)
		ms := w.messages(w.ctx, pageID, psid)
		require.Len(t, ms, 2, "the echo of our own reply adds nothing")
		require.Equal(t, crm.Outbound, ms[1].Direction)

		w.clk.Advance(time.Second)
		dl, err := w.srv.SendWebhook(t.Context(), appID, u, metatest.Event{PageID: pageID, PSID: psid,
			Delivery: &metatest.EventDelivery{MIDs: []string{sent.MessageID}, Watermark: w.clk.Now()}})
		require.NoError(t, err)
		require.Equal(t, crm.StatusDelivered, w.messages(w.ctx, pageID, psid)[1].Status)
		w.clk.Advance(time.Second)
		_, err = w.srv.SendWebhook(t.Context(), appID, u, metatest.Event{PageID: pageID, PSID: psid,
			Read: &metatest.EventRead{Watermark: w.clk.Now()}})
		require.NoError(t, err)
		require.NoError(t, dl.Resend(t.Context()), "a late duplicate delivery report")
		ms = w.messages(w.ctx, pageID, psid)
		require.Len(t, ms, 2)
		require.Equal(t, crm.StatusRead, ms[1].Status, "status only moves forward")
		require.Equal(t, crm.StatusDelivered, ms[0].Status, "inbound messages keep theirs")

		require.Contains(t, w.auditActions(), "meta.messenger.send")
		testkit.RequireNoSecret(t, w.logText(), appSecret, verifyToken)

		// Tenant B disconnects its Page: its inbox receives nothing more.
		w.ctx, tenantB = tenantB, w.ctx
		pc, err := w.store.Find(w.ctx, meta.Platform, pageID)
		require.NoError(t, err)
		_, err = w.store.Disconnect(w.ctx, pc.ID, w.prov)
		require.NoError(t, err)
		w.ctx, tenantB = tenantB, w.ctx
		_, err = w.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "And cake?"))
		require.NoError(t, err)
		require.Len(t, w.messages(w.ctx, pageID, psid), 3)
		require.Len(t, w.messages(tenantB, pageID, psid), 2, "B kept the message and the Page's echoed reply, nothing after")
	})
}

func TestMessengerSendRefusals(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		u := w.inbox(t)
		_, client := w.messengerClient(messagingFeatures)
		send := func(req meta.SendRequest) error {
			w.srv.ClearRequests()
			_, _, err := client.Messenger.Send(w.ctx, pageID, req)
			return err
		}
		reply := meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hello"}

		// Never wrote: no window.
		var we *meta.WindowError
		require.ErrorAs(t, send(reply), &we)
		require.True(t, we.LastInbound.IsZero())
		require.Zero(t, w.graphCalls(), "refused locally")

		_, err := w.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "hi"))
		require.NoError(t, err)
		wrote := w.clk.Now()
		w.clk.Advance(25 * time.Hour)
		require.ErrorIs(t, send(reply), meta.ErrWindowClosed)
		require.ErrorAs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingUpdate, Text: "news"}), &we)
		require.Equal(t, wrote.UTC(), we.LastInbound.UTC())
		require.Zero(t, w.graphCalls())

		// Retired tags are refused with a clear typed error.
		for _, tag := range []meta.MessageTag{meta.TagConfirmedEventUpdate, meta.TagAccountUpdate, meta.TagPostPurchaseUpdate} {
			err := send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: tag, Text: "update"})
			var rt *meta.RetiredTagError
			require.ErrorAs(t, err, &rt)
			require.Equal(t, tag, rt.Tag)
			require.ErrorIs(t, err, meta.ErrRetiredTag)
			require.Zero(t, w.graphCalls())
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
		} {
			require.ErrorIs(t, send(bad), meta.ErrInvalidMessage, "%+v", bad)
			require.Zero(t, w.graphCalls())
		}

		// HUMAN_AGENT reaches Meta within 7 days; this app lacks the
		// feature, so Meta refuses it and the stored reply is failed.
		_, _, err = client.Messenger.Send(w.ctx, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag,
			Tag: meta.TagHumanAgent, Text: "A person here."})
		require.ErrorIs(t, err, meta.ErrPermission)
		ms := w.messages(w.ctx, pageID, psid)
		require.Equal(t, crm.StatusFailed, ms[len(ms)-1].Status)
		w.clk.Advance(7 * 24 * time.Hour)
		require.ErrorIs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: meta.TagHumanAgent, Text: "x"}), meta.ErrWindowClosed)

		// A client without WithConversations cannot check the window.
		bare := w.client(w.connectPages(w.connect(userID, messagingFeatures))[pageID])
		_, _, err = bare.Messenger.Send(w.ctx, pageID, reply)
		require.ErrorIs(t, err, meta.ErrNoConversations)
	})
}

func TestMessengerSendNeedsPagesMessaging(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		_, client := w.messengerClient([]string{meta.FeatureProfile, meta.FeaturePages})
		w.srv.ClearRequests()
		_, _, err := client.Messenger.Send(w.ctx, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hi"})
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Contains(t, se.Missing, meta.PermPagesMessaging)
		require.Zero(t, w.graphCalls(), "a ScopeError sends nothing")
		_, _, err = client.Messenger.Send(w.ctx, page2ID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hi"})
		require.Error(t, err)
	})
}

func TestInboxInstagramMessages(t *testing.T) {
	w := newWorld(t, dbtest.SQLite(t, worldSetup))
	u := w.inbox(t)
	w.connectPages(w.connect(userID, append(messagingFeatures, meta.FeatureInstagram)))
	body := []byte(`{"object":"instagram","entry":[{"id":"` + igID + `","time":1764000000000,"messaging":[` +
		`{"sender":{"id":"IGSID1"},"recipient":{"id":"` + igID + `"},"timestamp":1764000000000,"message":{"mid":"ig_m1","text":"Hi from IG"}}]}]}`)
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	conv, err := w.crm.Conversations().Find(w.ctx, crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: igID, ThreadID: "IGSID1"})
	require.NoError(t, err)
	ms, err := w.crm.Conversations().Messages(w.ctx, conv.ID, crm.ListOptions{})
	require.NoError(t, err)
	require.Len(t, ms.Items, 1)
	require.Equal(t, "Hi from IG", ms.Items[0].Text)
}

// TestInboxFailureAfterDedupeLosesNothing: the dedupe record and the
// stored message are one transaction. A handler that stores the events
// and then fails — as a process dying before the commit would — leaves
// neither the record nor the message, so Meta's redelivery is processed,
// and once.
func TestInboxFailureAfterDedupeLosesNothing(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		w.connectPages(w.connect(userID, messagingFeatures))
		in, err := meta.NewInbox(w.db.DB, w.store, w.crm, meta.WithInboxClock(w.clk.Now))
		require.NoError(t, err)
		crash := 1
		wh, err := meta.NewWebhook(webhookConfig(), w.store, func(ctx context.Context, tx bun.Tx, evs []*meta.Event) error {
			if err := in.Handle(ctx, tx, evs); err != nil {
				return err
			}
			if crash > 0 {
				crash--
				return errors.New("process died after storing, before the commit")
			}
			return nil
		})
		require.NoError(t, err)
		u := serve(t, wh)

		d, err := w.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "Brot?"))
		var cbErr *metatest.CallbackError
		require.ErrorAs(t, err, &cbErr)
		require.Equal(t, http.StatusInternalServerError, cbErr.StatusCode)
		n, err := w.db.NewSelect().TableExpr(social.TableDeliveries).Count(t.Context())
		require.NoError(t, err)
		require.Zero(t, n, "no dedupe record survives the failure")
		_, err = w.crm.Conversations().Find(w.ctx, meta.ConversationKey(pageID, psid))
		require.ErrorIs(t, err, crm.ErrNotFound, "nothing stored either")

		require.NoError(t, d.Resend(t.Context()), "the redelivery is processed")
		require.NoError(t, d.Resend(t.Context()))
		msgs := w.messages(w.ctx, pageID, psid)
		require.Len(t, msgs, 1, "stored once")
		require.Equal(t, "Brot?", msgs[0].Text)
	})
}
