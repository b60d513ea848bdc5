package meta_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

func newTestWebhook(t testing.TB, e *env, h meta.EventHandler, opts ...meta.Option) string {
	t.Helper()
	wh, err := meta.NewWebhook(webhookConfig(), e.store, h, opts...)
	require.NoError(t, err)
	return serve(t, wh)
}

func TestWebhookVerification(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	var logs bytes.Buffer
	u := newTestWebhook(t, e, (&eventLog{}).handle, meta.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, e.srv.VerifyWebhook(t.Context(), appID, u))

	for name, q := range map[string]url.Values{
		"wrong token":  {"hub.mode": {"subscribe"}, "hub.verify_token": {"guess"}, "hub.challenge": {"42"}},
		"wrong mode":   {"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"42"}},
		"no token":     {"hub.mode": {"subscribe"}, "hub.challenge": {"42"}},
		"token prefix": {"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken[:5]}, "hub.challenge": {"42"}},
	} {
		resp, err := http.Get(u + "?" + q.Encode())
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
		require.NotContains(t, string(body), "42", name)
	}
	testkit.RequireNoSecret(t, logs.String(), appSecret, verifyToken)
}

func TestWebhookTypedEvents(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	log := &eventLog{}
	u := newTestWebhook(t, e, log.handle)
	t0 := e.clk.Now()
	// Out of order on purpose: the handler sees them by timestamp.
	d, err := e.srv.SendWebhook(t.Context(), appID, u,
		metatest.Event{PageID: pageID, PSID: psid, Time: t0.Add(4 * time.Second), Read: &metatest.EventRead{Watermark: t0.Add(3 * time.Second)}},
		metatest.Event{PageID: pageID, PSID: psid, Time: t0, Message: &metatest.EventMessage{MID: "m_1", Text: "Grüße äöå 😀 / <b>",
			Attachments: []metatest.Attachment{{Type: "image", URL: "https://cdn.example/a.jpg"}, {Type: "sticker", URL: "https://cdn.example/s.png"}}}},
		metatest.Event{PageID: pageID, PSID: psid, Time: t0.Add(2 * time.Second), Message: &metatest.EventMessage{MID: "m_2", Text: "Hi!", IsEcho: true, AppID: appID}},
		metatest.Event{PageID: pageID, PSID: psid, Time: t0.Add(3 * time.Second), Delivery: &metatest.EventDelivery{MIDs: []string{"m_2"}, Watermark: t0.Add(2 * time.Second)}},
		metatest.Event{PageID: pageID, PSID: psid, Time: t0.Add(time.Second), Postback: &metatest.EventPostback{MID: "m_pb", Title: "Order", Payload: "ORDER"}},
	)
	require.NoError(t, err)
	require.Contains(t, string(d.Body), `\u00e4\u00f6\u00e5`, "the emulator escapes like Meta")

	got := log.all()
	require.Len(t, got, 5)
	kinds := []meta.EventKind{}
	for _, ev := range got {
		kinds = append(kinds, ev.Kind)
		require.Equal(t, pageID, ev.PageID)
		require.Equal(t, psid, ev.PSID, "PSID is the person, for echoes too")
	}
	require.Equal(t, []meta.EventKind{meta.EventMessage, meta.EventPostback, meta.EventEcho, meta.EventDelivery, meta.EventRead}, kinds)

	msg := got[0].Message
	require.Equal(t, "m_1", msg.MID)
	require.Equal(t, "Grüße äöå 😀 / <b>", msg.Text)
	require.Equal(t, t0, got[0].Time)
	require.Len(t, msg.Attachments, 2)
	require.Equal(t, meta.Attachment{Type: "image", URL: "https://cdn.example/a.jpg", Payload: msg.Attachments[0].Payload}, msg.Attachments[0])
	require.Equal(t, "sticker", msg.Attachments[1].Type)
	require.Equal(t, meta.Postback{MID: "m_pb", Title: "Order", Payload: "ORDER"}, *got[1].Postback)
	require.Equal(t, appID, got[2].Message.AppID)
	require.Equal(t, meta.Delivery{MIDs: []string{"m_2"}, Watermark: t0.Add(2 * time.Second)}, *got[3].Delivery)
	require.Equal(t, t0.Add(3*time.Second), got[4].Read.Watermark)
}

func TestWebhookDuplicatesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		log := &eventLog{}
		u := newTestWebhook(t, e, log.handle)
		d, err := e.srv.SendWebhook(t.Context(), appID, u,
			metatest.TextMessage(pageID, psid, "one"), metatest.TextMessage(pageID, psid, "two"))
		require.NoError(t, err)
		require.NoError(t, d.Resend(t.Context()))
		require.Len(t, log.all(), 2)

		// Another process (another handle on the database, another
		// store) receiving the same delivery skips it too.
		store2, err := social.New(db.Reopen(t), e.vault, social.WithClock(e.clk.Now))
		require.NoError(t, err)
		log2 := &eventLog{}
		wh2, err := meta.NewWebhook(webhookConfig(), store2, log2.handle)
		require.NoError(t, err)
		d.URL = serve(t, wh2)
		require.NoError(t, d.Resend(t.Context()))
		require.Empty(t, log2.all())

		// Redeliveries racing each other are handled once too.
		d2, err := e.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "three"))
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			dc := *d2 // Resend records the status on its Delivery
			wg.Go(func() { errs <- dc.Resend(t.Context()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, log.all(), 3)
	}, setupDB)
}

func TestWebhookHandlerFailureIsRedelivered(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	log := &eventLog{fail: 1}
	u := newTestWebhook(t, e, log.handle)
	d, err := e.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "hello"))
	var cbErr *metatest.CallbackError
	require.ErrorAs(t, err, &cbErr)
	require.Equal(t, http.StatusInternalServerError, cbErr.StatusCode)
	require.Empty(t, log.all())
	require.NoError(t, d.Resend(t.Context()), "Meta's retry is processed")
	require.NoError(t, d.Resend(t.Context()))
	require.Len(t, log.all(), 1)
}

func TestWebhookRefusesBadSignatures(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	log := &eventLog{}
	var logs bytes.Buffer
	u := newTestWebhook(t, e, log.handle, meta.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	body := []byte(`{"object":"page","entry":[{"id":"3001","time":1,"messaging":[{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1,"message":{"mid":"m_x","text":"\u00e4"}}]}]}`)
	good := metatest.SignPayload(appSecret, body)
	reencoded := []byte(strings.Replace(string(body), `\u00e4`, "ä", 1)) // what a re-serializing verifier would hash
	for name, c := range map[string]struct {
		sig  string
		body []byte
	}{
		"missing":        {"", body},
		"sha1 only":      {"sha1=" + strings.Repeat("0", 40), body},
		"other secret":   {metatest.SignPayload("another-secret", body), body},
		"tampered body":  {good, bytes.Replace(body, []byte("9001"), []byte("9002"), 1)},
		"re-encoded":     {good, reencoded},
		"not hex":        {"sha256=zz" + good[9:], body},
		"truncated":      {good[:40], body},
		"uppercase algo": {"SHA256=" + good[7:], body},
	} {
		req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(c.body))
		if c.sig != "" {
			req.Header.Set(meta.SignatureHeader, c.sig)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, name)
	}
	require.Empty(t, log.all())
	testkit.RequireNoSecret(t, logs.String(), appSecret, verifyToken)

	require.ErrorIs(t, meta.VerifySignature(good, reencoded, vault.NewSecret([]byte(appSecret))), meta.ErrSignature)
	require.NoError(t, meta.VerifySignature(good, body, vault.NewSecret([]byte(appSecret))))

	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set(meta.SignatureHeader, good)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ä", log.all()[0].Message.Text)
}

func TestWebhookBodyLimitAndMalformed(t *testing.T) {
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	log := &eventLog{}
	u := newTestWebhook(t, e, log.handle, meta.WithMaxWebhookBody(64))
	post := func(body []byte) int {
		req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusRequestEntityTooLarge, post(bytes.Repeat([]byte(" "), 65)))
	require.Equal(t, http.StatusBadRequest, post([]byte(`{"object":"user","entry":[]}`)))
	require.Equal(t, http.StatusBadRequest, post([]byte(`{"object":"page","entry":[{`)))
	require.Equal(t, http.StatusOK, post([]byte(`{"object":"page","entry":[]}`)))
	require.Empty(t, log.all())

	resp, err := http.Post(u, "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodPut, u, nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	_, err = meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(appSecret))}, e.store, log.handle)
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.NewWebhook(webhookConfig(), e.store, log.handle, meta.WithMaxWebhookBody(0))
	require.ErrorIs(t, err, meta.ErrConfig)
	testkit.RequireNoSecret(t, err.Error(), appSecret, verifyToken)
}

func TestParseWebhookLenient(t *testing.T) {
	// Ids as numbers, times as strings and seconds, is_echo as "true", a
	// delivery without timestamp (as in Meta's sample), an unknown event
	// and an unknown attachment type.
	body := []byte(`{"object":"page","entry":[{"id":3001,"time":"1764000000000","messaging":[
		{"sender":{"id":9001},"recipient":{"id":"3001"},"timestamp":1764000005,"message":{"mid":"m_a","is_echo":"false","attachments":[{"type":"appointment_booking","payload":null},{"type":"fallback","payload":{"title":"t"}}]}},
		{"sender":{"id":"9001"},"recipient":{"id":"3001"},"delivery":{"mids":["m_b"],"watermark":"1764000002000"}},
		{"sender":{"id":"3001"},"recipient":{"id":"9001"},"timestamp":"1764000001000","message":{"mid":"m_b","text":"hi","is_echo":"true","app_id":1001}},
		{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000003000,"reaction":{"mid":"m_b","action":"react","emoji":"x"}}
	]}]}`)
	p, err := meta.ParseWebhook(body)
	require.NoError(t, err)
	require.Len(t, p.Entries, 1)
	en := p.Entries[0]
	require.Equal(t, "3001", en.PageID)
	ms := func(n int64) time.Time { return time.UnixMilli(n).UTC() }
	require.Equal(t, ms(1764000000000), en.Time)
	var kinds []meta.EventKind
	for _, ev := range en.Events {
		kinds = append(kinds, ev.Kind)
		require.Equal(t, "9001", ev.PSID)
		require.Equal(t, "3001", ev.PageID)
	}
	require.Equal(t, []meta.EventKind{meta.EventDelivery, meta.EventEcho, meta.EventOther, meta.EventMessage}, kinds)
	require.Equal(t, ms(1764000000000), en.Events[0].Time, "no timestamp: the entry's time")
	require.Equal(t, ms(1764000002000), en.Events[0].Delivery.Watermark)
	require.Equal(t, "1001", en.Events[1].Message.AppID)
	require.Contains(t, string(en.Events[2].Raw), `"reaction"`)
	require.Equal(t, ms(1764000005000), en.Events[3].Time, "seconds are read as seconds")
	require.Equal(t, "appointment_booking", en.Events[3].Message.Attachments[0].Type)

	for _, bad := range []string{`[]`, `{"object":"page","entry":[{"messaging":[{"timestamp":"soon"}]}]}`,
		`{"object":"page","entry":[{"id":{}}]}`, `{"object":"page","entry":[{"messaging":[{"message":{"is_echo":"maybe"}}]}]}`} {
		_, err := meta.ParseWebhook([]byte(bad))
		require.ErrorIs(t, err, meta.ErrPayload, bad)
	}
	require.True(t, errors.Is(meta.VerifySignature("sha256=", body, vault.NewSecret([]byte("s"))), meta.ErrSignature))
}

// TestParseWebhookRaw: each event, decoded once, keeps its exact bytes as
// Raw (white space around it and the comma before it left out), in memory
// of its own: changing the body afterwards, or appending to one event's
// Raw, changes no event. Field names match in any case, as
// encoding/json's do; unknown fields are skipped, null entries and lists
// are empty, and a body with anything after the payload is refused.
func TestParseWebhookRaw(t *testing.T) {
	events := []string{
		`{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000002000,"message":{"mid":"m_1","text":"a, \"b\" ]}"}}`,
		`{"sender":{"id":"9001"},"recipient":{"id":"3001"},"timestamp":1764000001000,"reaction":{"mid":"m_1","emoji":"\u2764"}}`,
		`null`,
	}
	body := []byte("{\"Object\":\"page\", \"extra\":[{\"x\":[1,{}]}],\"entry\":[null,{\"ID\":\"3001\",\"time\":1764000000000,\"standby\":[],\"messaging\":[ " +
		events[0] + " ,\n\t" + events[1] + "," + events[2] + "\n]},{\"messaging\":null}]}\n")
	p, err := meta.ParseWebhook(body)
	require.NoError(t, err)
	require.Equal(t, "page", p.Object)
	require.Len(t, p.Entries, 3)
	require.Empty(t, p.Entries[0].Events)
	require.Empty(t, p.Entries[2].Events)
	en := p.Entries[1]
	require.Equal(t, "3001", en.PageID)
	require.Len(t, en.Events, 3)
	// In timestamp order: null (the entry's time), the reaction, the message.
	require.Equal(t, events[2], string(en.Events[0].Raw))
	require.Equal(t, events[1], string(en.Events[1].Raw))
	require.Equal(t, events[0], string(en.Events[2].Raw))
	require.Equal(t, meta.EventMessage, en.Events[2].Kind)
	require.Equal(t, `a, "b" ]}`, en.Events[2].Message.Text)
	require.Equal(t, "page", en.Events[2].Object)

	key := en.Events[1].DedupeKey()
	for i := range body {
		body[i] = ' '
	}
	// The message precedes the reaction in the body, and the reaction
	// the null event.
	_ = append(en.Events[2].Raw, "garbage"...)
	_ = append(en.Events[1].Raw, "garbage"...)
	require.Equal(t, events[2], string(en.Events[0].Raw))
	require.Equal(t, events[1], string(en.Events[1].Raw))
	require.Equal(t, events[0], string(en.Events[2].Raw))
	require.Equal(t, key, en.Events[1].DedupeKey())

	for _, bad := range []string{``, ` `, `{"object":"page","entry":[]} {}`, `{"object":"page","entry":[]}x`, `{"object":"page","entry":{}}`,
		`{"object":"page","entry":[{"messaging":[1]}]}`, `{"object":"page","entry":[{"messaging":[{}]]}`, `{"object":"page","entry":[{"standby":1}]}`,
		`{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":[]}}]}]}`, `{"object":"page",}`, `{"object":1}`, `null`, `"page"`} {
		_, err := meta.ParseWebhook([]byte(bad))
		require.ErrorIs(t, err, meta.ErrPayload, bad)
	}
}

// TestWebhookLooksUpThePagesTenantsWithItsDedupe: the delivery's Pages'
// tenants are read by the statement that records the delivery, so a
// handler asking the store for them (as inbox routes events) gets the
// same answer as outside a delivery — the Page connection of the tenant
// that connected it, live — without a statement of its own: no round trip
// on PostgreSQL.
func TestWebhookLooksUpThePagesTenantsWithItsDedupe(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		pages := e.connectPages(e.connect(userID, messagingFeatures))
		want, err := e.store.AccountTenants(t.Context(), meta.Platform, pageID)
		require.NoError(t, err)
		require.Equal(t, []social.AccountTenant{{TenantID: mustTenantID(e.ctx), ConnectionID: pages[pageID].ID, Live: true}}, want)
		var got []social.AccountTenant
		var trips int64 = -1
		u := newTestWebhook(t, e, func(ctx context.Context, tx bun.IDB, evs []*meta.Event) error {
			before, counted := sqldb.RoundTrips(db.DB.DB)
			var err error
			got, err = e.store.Using(tx).AccountTenants(ctx, meta.Platform, evs[0].PageID)
			if after, _ := sqldb.RoundTrips(db.DB.DB); counted {
				trips = after - before
			}
			return err
		})
		_, err = e.srv.SendWebhook(t.Context(), appID, u, metatest.TextMessage(pageID, psid, "hi"))
		require.NoError(t, err)
		require.Equal(t, want, got)
		if db.Name == "postgres" {
			require.Zero(t, trips, "answered from the delivery's own statement")
		}
	}, setupDB)
}
