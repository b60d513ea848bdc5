package meta_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
)

// TestWebhookLogsNoBodyText: when handling a delivery fails, the log
// names the delivery's Page by its id only when that is an id as Meta
// writes one (digits); a Page "id" that is other text of the signed body
// (a canary) never reaches the log, nor do an event's other values.
func TestWebhookLogsNoBodyText(t *testing.T) {
	const canary = "canary-88005512"
	e := newEnv(t, dbtest.SQLite(t, setupDB))
	var mu sync.Mutex
	var logs bytes.Buffer
	fail := func(context.Context, bun.IDB, []*meta.Event) error { return errors.New("handler failed") }
	u := newTestWebhook(t, e, fail, meta.WithLogger(slog.New(slog.NewTextHandler(lockedBuffer{&mu, &logs}, nil))))
	post := func(body string) int {
		mac := hmac.New(sha256.New, []byte(appSecret))
		mac.Write([]byte(body))
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, u, bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		req.Header.Set(meta.SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, page := range []string{canary, pageID} {
		body := `{"object":"page","entry":[{"id":"` + page + `","time":1764000000000,"messaging":[{"sender":{"id":"` + canary +
			`-psid"},"recipient":{"id":"` + page + `"},"timestamp":1764000000000,"message":{"mid":"` + canary + `-mid","text":"` + canary + `-text"}},` +
			`{"sender":{"id":"1"},"recipient":{"id":"` + page + `"},"timestamp":1764000000001,"` + canary + `-kind":{}}]}]}`
		require.Equal(t, http.StatusInternalServerError, post(body))
	}
	mu.Lock()
	text := logs.String()
	mu.Unlock()
	require.NotContains(t, text, "88005512")
	require.Contains(t, text, "meta: events of page (not an id): handler failed")
	require.Contains(t, text, "meta: events of page "+pageID+": handler failed")
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
