package tiktok_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

const (
	clientKey    = "ck-test"
	clientSecret = "cs-secret-canary-4711"
	redirectURI  = "https://crm.example/callback/"
	openID       = "open-ana"
)

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

// clock is the shared manual test clock: tests advance it instead of sleeping.
type clock = fakeclock.Clock

func newClock() *clock {
	c := fakeclock.New()
	c.Set(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	return c
}

func owner(tenant string) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
}

// env is one test's world: emulator, database, vault, store, provider.
type env struct {
	t     testing.TB
	db    *dbtest.DB
	clk   *clock
	srv   *tiktoktest.Server
	kek   tink.AEAD
	vault *vault.Vault
	store *social.Store
	prov  *tiktok.Provider
	cfg   tiktok.Config
	ctx   context.Context
	logs  *bytes.Buffer
	waits []time.Duration
	mu    sync.Mutex
}

func newEnv(t testing.TB, db *dbtest.DB, srvOpts ...tiktoktest.Option) *env {
	t.Helper()
	e := &env{t: t, db: db, clk: newClock(), kek: testkit.NewKEK(t), logs: &bytes.Buffer{}}
	opts := append([]tiktoktest.Option{
		tiktoktest.WithClock(e.clk.Now),
		tiktoktest.WithApp(tiktoktest.App{
			ClientKey: clientKey, ClientSecret: clientSecret, RedirectURIs: []string{redirectURI},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list", "video.publish", "video.upload"},
		}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: openID, DisplayName: "Ana", Username: "ana", FollowerCount: 1200, LikesCount: 50}),
	}, srvOpts...)
	e.srv = tiktoktest.Start(t, opts...)
	e.cfg = tiktok.Config{ClientKey: clientKey, ClientSecret: clientSecret, RedirectURL: redirectURI,
		BaseURL: e.srv.BaseURL(), AuthorizeURL: e.srv.AuthorizeURL()}
	var err error
	e.prov, err = tiktok.NewProvider(e.cfg, e.clientOpts()...)
	require.NoError(t, err)
	e.vault = e.newVault(db.DB)
	e.store = e.newStore(db.DB, e.vault)
	e.ctx = owner(tenancy.NewID())
	return e
}

func (e *env) newVault(db bun.IDB) *vault.Vault {
	v, err := vault.New(db, e.kek, vault.WithClock(e.clk.Now))
	require.NoError(e.t, err)
	return v
}

func (e *env) newStore(db bun.IDB, v *vault.Vault) *social.Store {
	logger := slog.New(slog.NewTextHandler(lockedWriter{e}, nil))
	s, err := social.New(db, v, social.WithClock(e.clk.Now), social.WithLogger(logger), social.WithProviders(e.prov))
	require.NoError(e.t, err)
	return s
}

type lockedWriter struct{ e *env }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.logs.Write(p)
}

// clientOpts use the emulator's client and record retry waits instead of
// sleeping.
func (e *env) clientOpts() []tiktok.Option {
	return []tiktok.Option{
		tiktok.WithHTTPClient(e.srv.Client()),
		tiktok.WithClock(e.clk.Now),
		tiktok.WithRetry(4, func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.waits = append(e.waits, d)
			e.mu.Unlock()
			return ctx.Err()
		}),
	}
}

// connect runs the whole flow for features, declining decline.
func (e *env) connect(features []string, decline ...string) social.Connection {
	e.t.Helper()
	flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: features, Purposes: []string{"analytics"}})
	require.NoError(e.t, err)
	authURL, err := flow.Begin(e.ctx)
	require.NoError(e.t, err)
	cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{Decline: decline})
	require.NoError(e.t, err)
	conn, err := flow.Complete(e.ctx, callbackQuery(e.t, cb))
	require.NoError(e.t, err)
	return conn
}

func callbackQuery(t testing.TB, cb string) url.Values {
	t.Helper()
	u, err := url.Parse(cb)
	require.NoError(t, err)
	return u.Query()
}

func (e *env) client(conn social.Connection) *tiktok.Client {
	e.t.Helper()
	sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
	require.NoError(e.t, err)
	c, err := tiktok.New(e.cfg, append(e.clientOpts(), tiktok.WithSession(sess))...)
	require.NoError(e.t, err)
	return c
}

// auditActions lists the tenant's audit actions and verifies the chain.
func (e *env) auditActions() []string {
	e.t.Helper()
	log, err := tenancy.NewAuditLog(e.db.DB)
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

type (
	contextT = context.Context
	bunTx    = bun.Tx
)

func mustTenant(ctx context.Context) string {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		panic(err)
	}
	return tid
}

func appUnaudited() tiktoktest.App {
	return tiktoktest.App{ClientKey: "ck-unaudited", ClientSecret: "cs-unaudited", RedirectURIs: []string{redirectURI},
		Scopes: []string{"user.info.basic", "video.publish"}, Unaudited: true}
}
