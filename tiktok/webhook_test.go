package tiktok_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

type hookRecorder struct {
	mu     sync.Mutex
	events []*tiktok.Event
	conns  []social.Connection
}

func (h *hookRecorder) event(_ context.Context, ev *tiktok.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, ev)
	return nil
}

func (h *hookRecorder) disconnected(_ context.Context, c social.Connection) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns = append(h.conns, c)
	return nil
}

func newWebhook(t *testing.T, e *env, rec *hookRecorder) string {
	t.Helper()
	store, err := social.New(e.db.DB, e.vault, social.WithClock(e.clk.Now), social.WithDisconnectHook(rec.disconnected))
	require.NoError(t, err)
	e.store = store
	wh, err := tiktok.NewWebhook(e.cfg, store, rec.event, tiktok.WithClock(e.clk.Now))
	require.NoError(t, err)
	hs := httptest.NewServer(wh)
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestWebhookAuthorizationRemoved(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		rec := &hookRecorder{}
		url := newWebhook(t, e, rec)
		conn := e.connect([]string{"video.read"})
		tenantA := e.ctx
		e.ctx = owner(tenancy.NewID()) // a second tenant connects the same account
		connB := e.connect([]string{"profile"})

		e.srv.Revoke(clientKey, openID) // TikTok revokes before it notifies
		content, _ := json.Marshal(map[string]int{"reason": 1})
		ev := tiktoktest.Event{ClientKey: clientKey, Event: "authorization.removed", UserOpenID: openID, Content: string(content)}
		_, err := e.srv.SendWebhook(t.Context(), url, ev)
		require.NoError(t, err)

		for _, c := range []struct {
			ctx context.Context
			id  string
		}{{tenantA, conn.ID}, {e.ctx, connB.ID}} {
			got, err := e.store.Get(c.ctx, c.id)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status)
			require.True(t, got.AccessToken.IsZero())
			require.True(t, got.RefreshToken.IsZero())
		}
		require.Len(t, rec.conns, 2, "both connections handed to retention")
		require.Len(t, rec.events, 1)
		var ar tiktok.AuthorizationRemoved
		require.NoError(t, rec.events[0].Decode(&ar))
		require.Equal(t, 1, ar.Reason)
		require.Empty(t, e.srv.RequestsTo(tiktoktest.RevokePath), "nothing to revoke: TikTok did")
		require.Contains(t, e.auditActions(), "connection.deauthorized")

		// The same delivery again (at least once): processed once.
		ev.CreateTime = rec.events[0].CreateTime
		_, err = e.srv.SendWebhook(t.Context(), url, ev)
		require.NoError(t, err)
		require.Len(t, rec.events, 1)
		require.Len(t, rec.conns, 2)
	})
}

func TestWebhookRefusals(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		rec := &hookRecorder{}
		url := newWebhook(t, e, rec)
		body := []byte(`{"client_key":"ck-test","event":"post.publish.complete","create_time":1,"user_openid":"x","content":"{\"publish_id\":\"p1\",\"publish_type\":\"INBOX_SHARE\"}"}`)
		post := func(sig string, b []byte) int {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
			if sig != "" {
				req.Header.Set("Tiktok-Signature", sig)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		now := e.clk.Now().Unix()
		require.Equal(t, http.StatusUnauthorized, post("", body))
		require.Equal(t, http.StatusUnauthorized, post(tiktoktest.Sign("wrong", now, body), body))
		require.Equal(t, http.StatusUnauthorized, post(tiktoktest.Sign(clientSecret, now-int64(10*time.Minute/time.Second), body), body), "stale timestamp")
		require.Equal(t, http.StatusUnauthorized, post("t=abc,s=zz", body))
		big := bytes.Repeat([]byte("x"), tiktok.MaxWebhookBody+1)
		require.Equal(t, http.StatusRequestEntityTooLarge, post(tiktoktest.Sign(clientSecret, now, big), big))
		other := []byte(strings.Replace(string(body), "ck-test", "ck-other", 1))
		require.Equal(t, http.StatusBadRequest, post(tiktoktest.Sign(clientSecret, now, other), other))
		require.Empty(t, rec.events)

		require.Equal(t, http.StatusOK, post(tiktoktest.Sign(clientSecret, now, body), body))
		require.Len(t, rec.events, 1)
		var pe tiktok.PostEvent
		require.NoError(t, rec.events[0].Decode(&pe))
		require.Equal(t, "p1", pe.PublishID)
		require.Equal(t, http.StatusOK, post(tiktoktest.Sign(clientSecret, now+1, body), body))
		require.Len(t, rec.events, 1, "a redelivery with a new signature is still a duplicate")
	})
}

func TestParseEventMisspelling(t *testing.T) {
	for _, name := range []string{"post.publish.no_longer_publicaly_available", "post.publish.no_longer_publicly_available"} {
		ev, err := tiktok.ParseEvent([]byte(fmt.Sprintf(`{"event":%q,"content":"{\"publish_id\":\"p\",\"post_id\":7300000000000000001}"}`, name)))
		require.NoError(t, err)
		require.Equal(t, tiktok.EventPostNoLongerPublic, ev.Event)
		var pe tiktok.PostEvent
		require.NoError(t, ev.Decode(&pe))
		require.Equal(t, "7300000000000000001", pe.PostID.String(), "ids beyond 2^53 survive")
	}
	_, err := tiktok.ParseEvent([]byte(`{"event":"x","content":"not json"}`))
	require.Error(t, err)
}

// TestWebhookSurvivesACrash: a delivery is claimed before it is handled
// and marked processed after, so a process that dies while handling it
// loses nothing: another delivery meanwhile is told to retry (500), and
// once the claim's lease ran out the redelivery is handled — and then
// only once. A handler that fails is redelivered at once.
func TestWebhookSurvivesACrash(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		store, err := social.New(e.db.DB, e.vault, social.WithClock(e.clk.Now))
		require.NoError(t, err)
		var mu sync.Mutex
		handled, crash, fail := 0, 1, 1
		wh, err := tiktok.NewWebhook(e.cfg, store,
			func(context.Context, *tiktok.Event) error {
				mu.Lock()
				defer mu.Unlock()
				if crash > 0 {
					crash--
					panic(http.ErrAbortHandler) // the process dies mid-handling
				}
				if fail > 0 {
					fail--
					return fmt.Errorf("handler failed")
				}
				handled++
				return nil
			}, tiktok.WithClock(e.clk.Now))
		require.NoError(t, err)
		hs := httptest.NewServer(wh)
		t.Cleanup(hs.Close)
		ev := tiktoktest.Event{ClientKey: clientKey, Event: "post.publish.complete", UserOpenID: openID,
			CreateTime: e.clk.Now().Unix(), Content: `{"publish_id":"p1","publish_type":"DIRECT_POST"}`}

		_, err = e.srv.SendWebhook(t.Context(), hs.URL, ev)
		require.Error(t, err, "the process died")
		_, err = e.srv.SendWebhook(t.Context(), hs.URL, ev)
		require.ErrorContains(t, err, "500", "claimed by the dead process: retry later")
		e.clk.Advance(social.DefaultDeliveryLease + time.Second)
		_, err = e.srv.SendWebhook(t.Context(), hs.URL, ev)
		require.ErrorContains(t, err, "500", "the handler failed")
		_, err = e.srv.SendWebhook(t.Context(), hs.URL, ev)
		require.NoError(t, err, "the redelivery is handled")
		_, err = e.srv.SendWebhook(t.Context(), hs.URL, ev)
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 1, handled, "handled once")
	})
}
