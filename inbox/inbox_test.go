package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

func TestNewRefusesMissingStores(t *testing.T) {
	_, err := inbox.New(nil, nil)
	require.ErrorIs(t, err, inbox.ErrConfig)
	_, err = inbox.New(nil, nil, inbox.WithClock(nil))
	require.ErrorIs(t, err, inbox.ErrConfig)
}

// TestSendAndStore: a message received by webhook is stored, the reply
// goes out through the Send API and is stored, delivery and read webhooks
// move its status, and a duplicate delivery is stored once — on both
// databases, with the Page connected in two tenants.
func TestSendAndStore(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		tenantB := w.tenant("cafe")
		w.connectPage(tenantB, messaging) // tenant B connects the same Page
		client := w.connectPage(w.ctx, messaging)
		key := inbox.Key(pageID, psid)

		in := metatest.TextMessage(pageID, psid, "Is the rye bread in? äöå")
		d := w.deliver(in)
		require.NoError(t, d.Resend(t.Context()), "Meta retries")
		for _, ctx := range []context.Context{w.ctx, tenantB} {
			ms := w.messages(ctx, key)
			require.Len(t, ms, 1, "stored once in each tenant")
			require.Equal(t, crm.Inbound, ms[0].Direction)
			require.Equal(t, "Is the rye bread in? äöå", ms[0].Text)
			require.Equal(t, in.Message.MID, ms[0].ExternalID)
		}
		last, err := w.in.LastInbound(w.ctx, key)
		require.NoError(t, err)
		require.Equal(t, w.clk.Now().UTC().Truncate(time.Millisecond), last.UTC().Truncate(time.Millisecond))

		w.clk.Advance(time.Minute)
		sent, _, err := w.in.Send(w.ctx, client, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "Yes, fresh at 9."})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Equal(t, crm.StatusSent, sent.Stored.Status)
		require.Equal(t, sent.MessageID, sent.Stored.ExternalID)
		srvSent := w.srv.SentMessages()
		require.Len(t, srvSent, 1)
		require.Equal(t, "RESPONSE", srvSent[0].MessagingType)
		require.Equal(t, "Yes, fresh at 9.", srvSent[0].Text)

		// Meta echoes the Page's message, then reports delivery and read.
		sentAt := w.clk.Now()
		w.clk.Advance(time.Second)
		w.deliver(metatest.Event{PageID: pageID, PSID: psid, Time: sentAt,
			Message: &metatest.EventMessage{MID: sent.MessageID, Text: "Yes, fresh at 9.", IsEcho: true, AppID: appID}})
		ms := w.messages(w.ctx, key)
		require.Len(t, ms, 2, "the echo of our own reply adds nothing")
		require.Equal(t, crm.Outbound, ms[1].Direction)

		w.clk.Advance(time.Second)
		dl := w.deliver(metatest.Event{PageID: pageID, PSID: psid,
			Delivery: &metatest.EventDelivery{MIDs: []string{sent.MessageID}, Watermark: w.clk.Now()}})
		require.Equal(t, crm.StatusDelivered, w.messages(w.ctx, key)[1].Status)
		w.clk.Advance(time.Second)
		w.deliver(metatest.Event{PageID: pageID, PSID: psid, Read: &metatest.EventRead{Watermark: w.clk.Now()}})
		require.NoError(t, dl.Resend(t.Context()), "a late duplicate delivery report")
		ms = w.messages(w.ctx, key)
		require.Len(t, ms, 2)
		require.Equal(t, crm.StatusRead, ms[1].Status, "status only moves forward")
		require.Equal(t, crm.StatusDelivered, ms[0].Status, "inbound messages keep theirs")

		require.Contains(t, w.auditActions(w.ctx), "meta.messenger.send")
		text := w.logText()
		for _, secret := range []string{appSecret, verifyToken, "rye bread", "fresh at 9"} {
			require.NotContains(t, text, secret, "no secret or message text in the logs")
		}

		// Tenant B disconnects its Page: its inbox receives nothing more.
		pc, err := w.sdk.Social.Find(tenantB, meta.Platform, pageID)
		require.NoError(t, err)
		_, err = w.sdk.Social.Disconnect(tenantB, pc.ID, w.prov)
		require.NoError(t, err)
		w.deliver(metatest.TextMessage(pageID, psid, "And cake?"))
		require.Len(t, w.messages(w.ctx, key), 3)
		require.Len(t, w.messages(tenantB, key), 2, "B kept the message and the Page's echoed reply, nothing after")
	})
}

// TestSendRefusals: what meta refuses locally is neither sent nor
// stored; a send Meta refuses is stored as failed.
func TestSendRefusals(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		client := w.connectPage(w.ctx, messaging)
		key := inbox.Key(pageID, psid)
		send := func(req meta.SendRequest) error {
			w.srv.ClearRequests()
			_, _, err := w.in.Send(w.ctx, client, pageID, req)
			return err
		}
		reply := meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse, Text: "hello"}

		// Never wrote: no window, nothing stored.
		var we *meta.WindowError
		require.ErrorAs(t, send(reply), &we)
		require.True(t, we.LastInbound.IsZero())
		require.Empty(t, w.srv.Requests(), "refused locally")
		_, err := w.sdk.CRM.Conversations().Find(w.ctx, key)
		require.ErrorIs(t, err, crm.ErrNotFound, "nothing stored")

		w.deliver(metatest.TextMessage(pageID, psid, "hi"))
		wrote := w.clk.Now()
		w.clk.Advance(25 * time.Hour)
		require.ErrorAs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingUpdate, Text: "news"}), &we)
		require.Equal(t, wrote.UTC().Truncate(time.Millisecond), we.LastInbound.UTC().Truncate(time.Millisecond), "the window is read from crm")
		require.ErrorIs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: meta.TagAccountUpdate, Text: "x"}), meta.ErrRetiredTag)
		require.ErrorIs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingResponse}), meta.ErrInvalidMessage)
		require.Empty(t, w.srv.Requests())
		require.Len(t, w.messages(w.ctx, key), 1, "no refused reply is stored")

		// HUMAN_AGENT reaches Meta within 7 days; this app lacks the
		// feature, so Meta refuses it and the stored reply is failed.
		_, _, err = w.in.Send(w.ctx, client, pageID, meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag,
			Tag: meta.TagHumanAgent, Text: "A person here."})
		require.ErrorIs(t, err, meta.ErrPermission)
		ms := w.messages(w.ctx, key)
		require.Len(t, ms, 2)
		require.Equal(t, crm.StatusFailed, ms[1].Status)
		w.clk.Advance(7 * 24 * time.Hour)
		require.ErrorIs(t, send(meta.SendRequest{PSID: psid, MessagingType: meta.MessagingTag, Tag: meta.TagHumanAgent, Text: "x"}), meta.ErrWindowClosed)

		// A client without pages_messaging: a ScopeError, nothing stored.
		bare := w.connectPage(w.tenant("other"), []string{meta.FeatureProfile, meta.FeaturePages})
		_, _, err = w.in.Send(w.ctx, bare, pageID, reply)
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Len(t, w.messages(w.ctx, key), 2)
		_, _, err = w.in.Send(w.ctx, nil, pageID, reply)
		require.ErrorIs(t, err, inbox.ErrConfig)
	})
}

// TestUserRef: a chat plugin guest, whom Meta names by sender.user_ref,
// is stored under that reference (never as a PSID) and answered with
// recipient.user_ref, as the Send API documents — by Send and by Reply to
// the stored conversation.
func TestUserRef(t *testing.T) {
	const ref = "guest-ref-7f3a"
	eachWorld(t, func(t *testing.T, w *world) {
		client := w.connectPage(w.ctx, messaging)
		w.deliver(metatest.Event{PageID: pageID, UserRef: ref, Message: &metatest.EventMessage{Text: "Hi from the website"}})

		conv, err := w.sdk.CRM.Conversations().Find(w.ctx, inbox.UserRefKey(pageID, ref))
		require.NoError(t, err)
		_, err = w.sdk.CRM.Conversations().Find(w.ctx, inbox.Key(pageID, ref))
		require.ErrorIs(t, err, crm.ErrNotFound, "the reference is not stored as a PSID")

		sent, _, err := w.in.Send(w.ctx, client, pageID, meta.SendRequest{UserRef: ref, MessagingType: meta.MessagingResponse, Text: "Welcome!"})
		require.NoError(t, err)
		require.NotEmpty(t, sent.MessageID)
		require.Empty(t, sent.RecipientID, "Meta names no PSID for a user_ref recipient")
		sent, _, err = w.in.Reply(w.ctx, client, conv, meta.SendRequest{MessagingType: meta.MessagingResponse, Text: "How can we help?"})
		require.NoError(t, err)
		require.Equal(t, crm.StatusSent, sent.Stored.Status)
		got := w.srv.SentMessages()
		require.Len(t, got, 2)
		for _, m := range got {
			require.Equal(t, ref, m.UserRef)
			require.Empty(t, m.RecipientID)
		}
		ms := w.messages(w.ctx, conv.Key())
		require.Len(t, ms, 3)
		require.Equal(t, crm.Outbound, ms[2].Direction)

		_, _, err = w.in.Send(w.ctx, client, pageID, meta.SendRequest{PSID: psid, UserRef: ref, MessagingType: meta.MessagingResponse, Text: "x"})
		require.ErrorIs(t, err, meta.ErrInvalidMessage)
	})
}

// TestReplyByConversation: Reply answers a PSID conversation by its
// record and refuses a channel it cannot answer.
func TestReplyByConversation(t *testing.T) {
	w := newWorld(t, dbtest.SQLite(t, migrated))
	client := w.connectPage(w.ctx, messaging)
	w.deliver(metatest.TextMessage(pageID, psid, "Open on Sunday?"))
	conv, err := w.sdk.CRM.Conversations().Find(w.ctx, inbox.Key(pageID, psid))
	require.NoError(t, err)
	sent, _, err := w.in.Reply(w.ctx, client, conv, meta.SendRequest{MessagingType: meta.MessagingResponse, Text: "From 8 to 12."})
	require.NoError(t, err)
	require.Equal(t, psid, sent.RecipientID)
	require.Equal(t, psid, w.srv.SentMessages()[0].RecipientID)
	conv.Channel = crm.ChannelInstagram
	_, _, err = w.in.Reply(w.ctx, client, conv, meta.SendRequest{MessagingType: meta.MessagingResponse, Text: "x"})
	require.ErrorIs(t, err, meta.ErrInvalidMessage)
}

func TestInstagramMessages(t *testing.T) {
	w := newWorld(t, dbtest.SQLite(t, migrated))
	w.connectPage(w.ctx, append(messaging, meta.FeatureInstagram))
	body := []byte(`{"object":"instagram","entry":[{"id":"` + igID + `","time":1764000000000,"messaging":[` +
		`{"sender":{"id":"IGSID1"},"recipient":{"id":"` + igID + `"},"timestamp":1764000000000,"message":{"mid":"ig_m1","text":"Hi from IG"}}]}]}`)
	req, _ := http.NewRequest(http.MethodPost, w.hook, bytes.NewReader(body))
	req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ms := w.messages(w.ctx, crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: igID, ThreadID: "IGSID1"})
	require.Len(t, ms, 1)
	require.Equal(t, "Hi from IG", ms[0].Text)
}

// TestFailureAfterDedupeLosesNothing: the dedupe record and the stored
// message are one transaction. A handler that stores the events and then
// fails — as a process dying before the commit would — leaves neither the
// record nor the message, so Meta's redelivery is processed, and once.
// Declared idempotent, the inbox keeps the message stored before the
// failure (no transaction), and the redeliveries store it no second time.
func TestFailureAfterDedupeLosesNothing(t *testing.T) {
	eachWorldAndMode(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		crash := 1
		u := w.serve(func(ctx context.Context, tx bun.IDB, evs []*meta.Event) error {
			if err := w.in.Handle(ctx, tx, evs); err != nil {
				return err
			}
			if crash > 0 {
				crash--
				return errors.New("process died after storing, before the commit")
			}
			return nil
		})
		require.NoError(t, w.srv.VerifyWebhook(t.Context(), appID, u))

		d, err := w.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "Brot?"))
		var cbErr *metatest.CallbackError
		require.ErrorAs(t, err, &cbErr)
		require.Equal(t, http.StatusInternalServerError, cbErr.StatusCode)
		n, err := w.db.NewSelect().TableExpr(social.TableDeliveries).Count(t.Context())
		require.NoError(t, err)
		require.Zero(t, n, "no dedupe record survives the failure")
		_, err = w.sdk.CRM.Conversations().Find(w.ctx, inbox.Key(pageID, psid))
		if w.records {
			require.ErrorIs(t, err, crm.ErrNotFound, "nothing stored either")
		} else {
			require.NoError(t, err, "stored before the failure")
			require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 1)
		}

		require.NoError(t, d.Resend(t.Context()), "the redelivery is processed")
		require.NoError(t, d.Resend(t.Context()))
		msgs := w.messages(w.ctx, inbox.Key(pageID, psid))
		require.Len(t, msgs, 1, "stored once")
		require.Equal(t, "Brot?", msgs[0].Text)
		require.False(t, strings.Contains(w.logText(), "Brot?"), "no message text in the logs")
	})
}
