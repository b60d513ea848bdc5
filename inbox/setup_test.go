package inbox_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	socialcrm "github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

const (
	appID       = "1001"
	appSecret   = "app-secret-canary-1001"
	verifyToken = "verify-me"
	redirect    = "https://crm.example/meta/callback"
	userID      = "2001"
	pageID      = "3001"
	igID        = "17841400000000001"
	psid        = "9001"
)

var messaging = []string{meta.FeatureProfile, meta.FeaturePages, meta.FeatureMessaging}

// world is one test's SDK (socialcrm.Open over the test database), the
// Meta emulator, and the inbox under test serving the webhook at hook.
type world struct {
	t    testing.TB
	db   *dbtest.DB
	clk  *fakeclock.Clock
	srv  *metatest.Server
	sdk  *socialcrm.SDK
	prov *meta.Provider
	cfg  meta.Config
	in   *inbox.Inbox
	ctx  context.Context // the owner of tenant A
	hook string          // the webhook's URL
	kek  tink.AEAD
	// records: the webhook records each event's delivery key, as for a
	// handler not declared idempotent (by default it is declared so).
	records bool

	mu   sync.Mutex
	logs bytes.Buffer
}

func eachWorld(t *testing.T, fn func(t *testing.T, w *world)) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) { fn(t, newWorld(t, db)) }, migrated)
}

// migrated is the dbtest setup of every world: a named function, so dbtest
// migrates once per test binary into a template each test copies (migrating
// from scratch takes seconds per test under the race detector).
func migrated(ctx context.Context, db *bun.DB) error {
	return socialcrm.Migrate(ctx, db)
}

// eachWorldAndMode runs fn as eachWorld does, with the inbox's webhook
// declared idempotent (meta.WithIdempotentHandler: no delivery records)
// and not (each event recorded by its delivery key).
func eachWorldAndMode(t *testing.T, fn func(t *testing.T, w *world)) {
	for _, records := range []bool{false, true} {
		name := "idempotent"
		if records {
			name = "records"
		}
		t.Run(name, func(t *testing.T) {
			eachWorld(t, func(t *testing.T, w *world) {
				w.records = records
				w.hook = w.serve(w.in.Handle)
				require.NoError(t, w.srv.VerifyWebhook(t.Context(), appID, w.hook))
				fn(t, w)
			})
		})
	}
}

// hookOptions are the options of the webhooks the world serves.
func (w *world) hookOptions() []meta.Option {
	opts := []meta.Option{meta.WithLogger(w.logger())}
	if !w.records {
		opts = append(opts, meta.WithIdempotentHandler())
	}
	return opts
}

func newWorld(t testing.TB, db *dbtest.DB) *world {
	t.Helper()
	w := &world{t: t, db: db, clk: fakeclock.New()}
	w.srv = metatest.Start(t,
		metatest.WithClock(w.clk.Now),
		metatest.WithApp(metatest.App{ID: appID, Secret: appSecret, Name: "CRM", RedirectURIs: []string{redirect},
			VerifyToken: verifyToken, RequireAppSecretProof: true}),
		metatest.WithUser(metatest.User{ID: userID, Name: "Ada Admin"}),
		metatest.WithPage(metatest.Page{ID: pageID, Name: "Ada's Bakery", Category: "Bakery",
			Tasks: map[string][]string{userID: metatest.AllTasks()}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: igID, PageID: pageID, Username: "adasbakery", Name: "Ada's Bakery"}))
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	w.kek, err = aead.New(h)
	require.NoError(t, err)
	w.sdk, err = socialcrm.Open(t.Context(), socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: w.kek, Now: w.clk.Now, Logger: w.logger()})
	require.NoError(t, err)
	w.cfg = meta.Config{AppID: appID, AppSecret: vault.NewSecret([]byte(appSecret)), RedirectURL: redirect,
		Version: w.srv.Version(), GraphURL: w.srv.GraphURL(), DialogURL: w.srv.DialogURL()}
	w.prov, err = meta.NewProvider(w.cfg, w.clientOpts()...)
	require.NoError(t, err)
	w.in, err = w.sdk.MetaInbox()
	require.NoError(t, err)
	w.hook = w.serve(w.in.Handle)
	require.NoError(t, w.srv.VerifyWebhook(t.Context(), appID, w.hook))
	w.ctx = w.tenant("bakery")
	return w
}

// tenant creates a tenant and returns a context acting as its owner.
func (w *world) tenant(name string) context.Context {
	w.t.Helper()
	_, owner, err := w.sdk.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: name,
		Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner"}})
	require.NoError(w.t, err)
	return tenancy.WithPrincipal(context.Background(), owner.Principal())
}

// serve serves a Messenger webhook handing its events to handle and
// returns its URL.
func (w *world) serve(handle meta.EventHandler) string {
	w.t.Helper()
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(appSecret)),
		VerifyToken: vault.NewSecret([]byte(verifyToken))}, w.sdk.Social, handle, w.hookOptions()...)
	require.NoError(w.t, err)
	s := httptest.NewServer(wh)
	w.t.Cleanup(s.Close)
	return s.URL
}

func (w *world) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{w}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct{ w *world }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.logs.Write(p)
}

func (w *world) logText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

func (w *world) clientOpts() []meta.Option {
	return []meta.Option{meta.WithHTTPClient(w.srv.Client()), meta.WithClock(w.clk.Now), meta.WithLogger(w.logger())}
}

// connectPage runs Facebook Login for features in tenant ctx, connects
// the user's Pages and returns a client acting for the Page pageID.
func (w *world) connectPage(ctx context.Context, features []string) *meta.Client {
	w.t.Helper()
	flow, err := w.sdk.Social.NewFlow(w.prov, social.FlowConfig{Features: features})
	require.NoError(w.t, err)
	authURL, err := flow.Begin(ctx)
	require.NoError(w.t, err)
	cb, err := w.srv.Consent(authURL, metatest.Consent{UserID: userID})
	require.NoError(w.t, err)
	user, err := flow.Complete(ctx, cb.Query())
	require.NoError(w.t, err)
	pcs, err := w.prov.ConnectPages(ctx, w.session(ctx, user.ID))
	require.NoError(w.t, err)
	for _, pc := range pcs {
		require.NoError(w.t, pc.Err, "page %s", pc.PageID)
		if pc.PageID == pageID {
			c, err := meta.New(w.cfg, append(w.clientOpts(), meta.WithSession(w.session(ctx, pc.Connection.ID)))...)
			require.NoError(w.t, err)
			return c
		}
	}
	w.t.Fatalf("page %s not connected", pageID)
	return nil
}

func (w *world) session(ctx context.Context, connID string) *social.Session {
	w.t.Helper()
	sess, err := w.sdk.Social.Session(ctx, connID, w.prov)
	require.NoError(w.t, err)
	return sess
}

// deliver has the emulator deliver events to the inbox's webhook.
func (w *world) deliver(events ...metatest.Event) *metatest.Delivery {
	w.t.Helper()
	d, err := w.srv.SendWebhook(w.t.Context(), appID, w.hook, events...)
	require.NoError(w.t, err)
	return d
}

// messages lists the messages of the conversation with key in tenant
// ctx, oldest first.
func (w *world) messages(ctx context.Context, key crm.ConversationKey) []crm.Message {
	w.t.Helper()
	conv, err := w.sdk.CRM.Conversations().Find(ctx, key)
	require.NoError(w.t, err)
	var out []crm.Message
	for m, err := range crm.All(ctx, crm.ListOptions{}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return w.sdk.CRM.Conversations().Messages(ctx, conv.ID, o)
	}) {
		require.NoError(w.t, err)
		out = append([]crm.Message{m}, out...)
	}
	return out
}

// auditActions lists tenant ctx's audit actions.
func (w *world) auditActions(ctx context.Context) []string {
	w.t.Helper()
	es, err := w.sdk.Audit.List(ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(w.t, err)
	var as []string
	for _, e := range es {
		as = append(as, e.Action)
	}
	return as
}

// replica serves the webhook as another process would: an SDK of its own
// over another handle on the same database, with the same key-encryption
// key. It returns the webhook's URL.
func (w *world) replica() string {
	w.t.Helper()
	sdk, err := socialcrm.Open(w.t.Context(), socialcrm.Config{DB: w.db.Reopen(w.t), KEK: w.kek, Now: w.clk.Now, Logger: w.logger()})
	require.NoError(w.t, err)
	in, err := sdk.MetaInbox()
	require.NoError(w.t, err)
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(appSecret)),
		VerifyToken: vault.NewSecret([]byte(verifyToken))}, sdk.Social, in.Handle, w.hookOptions()...)
	require.NoError(w.t, err)
	s := httptest.NewServer(wh)
	w.t.Cleanup(s.Close)
	return s.URL
}
