package tiktok_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// syncBuffer is a log destination the webhook's handler goroutines
// share with the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWebhookLogNamesKnownEventsOnly: when handling a delivery fails,
// the log names its event type only when TikTok documents it; any other
// type, which is text of the body, is logged as "unknown".
func TestWebhookLogNamesKnownEventsOnly(t *testing.T) {
	const canary = "canary-event-88005512"
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		store, err := social.New(e.db.DB, e.vault, social.WithClock(e.clk.Now))
		require.NoError(t, err)
		var logs syncBuffer
		fail := func(context.Context, *tiktok.Event) error { return errors.New("handler failed") }
		wh, err := tiktok.NewWebhook(e.cfg, store, fail, tiktok.WithClock(e.clk.Now),
			tiktok.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.NoError(t, err)
		hs := httptest.NewServer(wh)
		t.Cleanup(hs.Close)

		for _, name := range []string{canary, tiktok.EventPostPublishComplete} {
			_, err := e.srv.SendWebhook(t.Context(), hs.URL, tiktoktest.Event{ClientKey: clientKey, Event: name,
				UserOpenID: openID, Content: `{"publish_id":"p"}`})
			var werr *tiktoktest.WebhookError
			require.ErrorAs(t, err, &werr)
			require.Equal(t, 500, werr.StatusCode)
		}
		text := logs.String()
		require.NotContains(t, text, canary)
		require.Contains(t, text, `msg="tiktok: webhook handling failed" event=unknown`)
		require.Contains(t, text, `msg="tiktok: webhook handling failed" event=`+tiktok.EventPostPublishComplete)
	})
}
