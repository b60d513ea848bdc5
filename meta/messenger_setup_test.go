package meta_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Messenger test fixtures. The secrets are canaries: tests assert they
// never reach logs, errors or answers.
const (
	msAppID       = "1001"
	msAppSecret   = "app-secret-canary-5150"
	msVerifyToken = "verify-token-canary-6160"
	msPageID      = "3001"
	msUserID      = "2001"
	msPSID        = "9001"
)

func msSetupDB(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), social.Migrations()); err != nil {
		return err
	}
	models := append(append(vault.Models(), (*tenancy.AuditEntry)(nil)), social.Models()...)
	_, err := tenancy.InstallGuard(db, models...)
	return err
}

// msEnv is one Messenger test's world: emulator, database, social store.
type msEnv struct {
	t     testing.TB
	db    *dbtest.DB
	clk   *fakeclock.Clock
	srv   *metatest.Server
	store *social.Store
	vault *vault.Vault
}

func newMsEnv(t testing.TB, db *dbtest.DB, opts ...metatest.Option) *msEnv {
	t.Helper()
	e := &msEnv{t: t, db: db, clk: fakeclock.New()}
	e.srv = metatest.Start(t, append([]metatest.Option{
		metatest.WithClock(e.clk.Now),
		metatest.WithApp(metatest.App{ID: msAppID, Secret: msAppSecret, VerifyToken: msVerifyToken,
			RedirectURIs: []string{"https://crm.example/callback"}}),
		metatest.WithUser(metatest.User{ID: msUserID, Name: "Ada"}),
		metatest.WithPage(metatest.Page{ID: msPageID, Name: "Ada's Bakery",
			Tasks: map[string][]string{msUserID: metatest.AllTasks()}}),
	}, opts...)...)
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	kek, err := aead.New(h)
	require.NoError(t, err)
	e.vault, err = vault.New(db.DB, kek, vault.WithClock(e.clk.Now))
	require.NoError(t, err)
	e.store, err = social.New(db.DB, e.vault, social.WithClock(e.clk.Now))
	require.NoError(t, err)
	return e
}

// eventLog records what a webhook handed to its handler.
type eventLog struct {
	mu     sync.Mutex
	events []meta.Event
	fail   int // fail the next n calls
}

func (l *eventLog) handle(_ context.Context, evs []*meta.Event) error {
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

func msOwner(tenant string) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
}

// requireNoCanary fails when text holds a planted secret.
func requireNoCanary(t testing.TB, text string) {
	t.Helper()
	for _, s := range []string{msAppSecret, msVerifyToken} {
		if strings.Contains(text, s) {
			t.Fatalf("secret leaked into %q", text)
		}
	}
}

func at(d time.Duration) time.Time { return fakeclock.Start.Add(d) }

func msWebhookConfig() meta.WebhookConfig {
	return meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(msAppSecret)), VerifyToken: vault.NewSecret([]byte(msVerifyToken))}
}
