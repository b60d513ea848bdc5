package meta_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

const (
	appID     = "1001"
	appSecret = "app-secret-canary-1001"
	redirect  = "https://crm.example/meta/callback"
	userID    = "2001"
	user2ID   = "2002"
	pageID    = "3001"
	page2ID   = "3002"
	igID      = "17841400000000001"
)

// allFeatures are every feature of the catalogue but messaging.
var allFeatures = []string{meta.FeatureProfile, meta.FeaturePages, meta.FeaturePagesPublish, meta.FeaturePagesInsights,
	meta.FeatureInstagram, meta.FeatureInstagramPublish, meta.FeatureInstagramInsights}

func setupDB(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), social.Migrations()); err != nil {
		return err
	}
	models := append(append(vault.Models(), (*tenancy.AuditEntry)(nil)), social.Models()...)
	_, err := tenancy.InstallGuard(db, models...)
	return err
}

func each(t *testing.T, fn func(t *testing.T, db *dbtest.DB)) {
	dbtest.Each(t, fn, setupDB)
}

func owner(tenant string) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
}

// env is one test's world: emulator, database, vault, store, provider.
type env struct {
	t     testing.TB
	db    *dbtest.DB
	clk   *fakeclock.Clock
	srv   *metatest.Server
	vault *vault.Vault
	store *social.Store
	prov  *meta.Provider
	cfg   meta.Config
	ctx   context.Context

	mu    sync.Mutex
	logs  bytes.Buffer
	waits []time.Duration
}

func newEnv(t testing.TB, db *dbtest.DB, srvOpts ...metatest.Option) *env {
	t.Helper()
	e := &env{t: t, db: db, clk: fakeclock.New()}
	opts := append([]metatest.Option{
		metatest.WithClock(e.clk.Now),
		metatest.WithApp(metatest.App{ID: appID, Secret: appSecret, Name: "CRM", RedirectURIs: []string{redirect},
			VerifyToken: "verify-me", RequireAppSecretProof: true}),
		metatest.WithUser(metatest.User{ID: userID, Name: "Ada Admin"}),
		metatest.WithUser(metatest.User{ID: user2ID, Name: "Bob Analyst"}),
		metatest.WithPage(metatest.Page{ID: pageID, Name: "Ada's Bakery", Category: "Bakery", FollowersCount: 900, FanCount: 800,
			Tasks: map[string][]string{userID: metatest.AllTasks(), user2ID: {metatest.TaskAnalyze}}}),
		metatest.WithPage(metatest.Page{ID: page2ID, Name: "Ada's Cafe", Category: "Cafe",
			Tasks: map[string][]string{userID: {metatest.TaskCreateContent}}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: igID, PageID: pageID, Username: "adasbakery",
			Name: "Ada's Bakery", FollowersCount: 1234, FollowsCount: 56, MediaCount: 10}),
	}, srvOpts...)
	e.srv = metatest.Start(t, opts...)
	v, err := vault.New(db.DB, testkit.NewKEK(t), vault.WithClock(e.clk.Now))
	require.NoError(t, err)
	e.vault = v
	e.store, err = social.New(db.DB, v, social.WithClock(e.clk.Now), social.WithLogger(e.logger()))
	require.NoError(t, err)
	e.cfg = meta.Config{AppID: appID, AppSecret: vault.NewSecret([]byte(appSecret)), RedirectURL: redirect,
		Version: e.srv.Version(), GraphURL: e.srv.GraphURL(), DialogURL: e.srv.DialogURL()}
	e.prov, err = meta.NewProvider(e.cfg, e.clientOpts()...)
	require.NoError(t, err)
	e.ctx = owner(tenancy.NewID())
	return e
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{e}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct{ e *env }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.logs.Write(p)
}

// clientOpts use the emulator's client, log at debug level and advance the
// fake clock instead of sleeping.
func (e *env) clientOpts() []meta.Option {
	return []meta.Option{
		meta.WithHTTPClient(e.srv.Client()),
		meta.WithClock(e.clk.Now),
		meta.WithLogger(e.logger()),
		meta.WithRetry(3, func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.waits = append(e.waits, d)
			e.mu.Unlock()
			e.clk.Advance(d)
			return ctx.Err()
		}),
	}
}

// connect runs Facebook Login through social.Flow for features, the user
// declining decline.
func (e *env) connect(user string, features []string, decline ...string) social.Connection {
	e.t.Helper()
	flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: features, Purposes: []string{"analytics", "publishing"}})
	require.NoError(e.t, err)
	authURL, err := flow.Begin(e.ctx)
	require.NoError(e.t, err)
	cb, err := e.srv.Consent(authURL, metatest.Consent{UserID: user, Decline: decline})
	require.NoError(e.t, err)
	conn, err := flow.Complete(e.ctx, cb.Query())
	require.NoError(e.t, err)
	return conn
}

func (e *env) session(conn social.Connection) *social.Session {
	e.t.Helper()
	sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
	require.NoError(e.t, err)
	return sess
}

// connectPages connects the user's Pages and returns their connections,
// and those of the linked Instagram accounts, by account id.
func (e *env) connectPages(user social.Connection) map[string]social.Connection {
	e.t.Helper()
	pcs, err := e.prov.ConnectPages(e.ctx, e.session(user))
	require.NoError(e.t, err)
	out := map[string]social.Connection{}
	for _, pc := range pcs {
		require.NoError(e.t, pc.Err, "page %s", pc.PageID)
		out[pc.PageID] = pc.Connection
		if pc.Instagram != nil {
			out[pc.Instagram.AccountID] = *pc.Instagram
		}
	}
	return out
}

func (e *env) client(conn social.Connection) *meta.Client {
	e.t.Helper()
	c, err := meta.New(e.cfg, append(e.clientOpts(), meta.WithSession(e.session(conn)))...)
	require.NoError(e.t, err)
	return c
}

func (e *env) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logs.String()
}

// auditActions lists the tenant's audit actions and verifies the chain.
func (e *env) auditActions() []string {
	e.t.Helper()
	log, err := e.vault.AuditLog(e.ctx, e.db.DB) // keyed when the SDK keyed it
	require.NoError(e.t, err)
	es, err := log.List(e.ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(e.t, err)
	var as []string
	for _, en := range es {
		as = append(as, en.Action)
	}
	_, err = log.Verify(e.ctx)
	require.NoError(e.t, err)
	return as
}

// pageEnv connects the user with features (declining decline) and their
// Pages, and returns the user connection, the first Page's connection and
// a client for that Page.
func (e *env) pageClient(features []string, decline ...string) (user, page social.Connection, c *meta.Client) {
	e.t.Helper()
	user = e.connect(userID, features, decline...)
	pages := e.connectPages(user)
	page = pages[pageID]
	return user, page, e.client(page)
}

// graphCalls counts the requests the emulator received since the last
// ClearRequests.
func (e *env) graphCalls() int { return len(e.srv.Requests()) }
