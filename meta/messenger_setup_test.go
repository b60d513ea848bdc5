package meta_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/vault"
)

// verifyToken is the emulated app's webhook verify token (see newEnv).
const verifyToken = "verify-me"

func webhookConfig() meta.WebhookConfig {
	return meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(appSecret)), VerifyToken: vault.NewSecret([]byte(verifyToken))}
}

// eventLog records what a webhook handed to its handler.
type eventLog struct {
	mu     sync.Mutex
	events []meta.Event
	fail   int // fail the next n calls
}

func (l *eventLog) handle(_ context.Context, _ bun.IDB, evs []*meta.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail > 0 {
		l.fail--
		return errHandler
	}
	for _, ev := range evs {
		l.events = append(l.events, *ev)
	}
	return nil
}

func (l *eventLog) all() []meta.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]meta.Event(nil), l.events...)
}

type handlerError struct{}

func (handlerError) Error() string { return "handler failed" }

var errHandler error = handlerError{}

// serve starts h on a test server and returns its URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
