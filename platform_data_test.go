package socialcrm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// Canaries planted in every platform field the syncs store.
const (
	canaryOpenID     = "open-CANARY-7f3a"
	canaryTTName     = "CANARY-tt-display-name"
	canaryTTUser     = "canary_tt_username"
	canaryTTBio      = "CANARY-tt-bio"
	canaryTTAvatar   = "https://cdn.example/CANARY-tt-avatar.jpg"
	canaryTTTitle    = "CANARY-tt-video-title"
	canaryTTDesc     = "CANARY-tt-video-description"
	canaryTTShare    = "https://www.tiktok.com/@canary/video/CANARY-tt-share"
	canaryFBUserID   = "7317731773177"
	canaryFBUserName = "CANARY-fb-user-name"
	canaryFBPageName = "CANARY-fb-page-name"
	canaryFBPost     = "CANARY-fb-post-message"
	canaryIGUser     = "canary_ig_username"
	canaryIGCaption  = "CANARY-ig-caption"
	canaryIGLink     = "https://www.instagram.com/p/CANARY-ig-permalink"

	fbPageID = "3001"
	fbIGID   = "17841400000000001"
)

// platformWorld is an SDK over a test database with a tenant that
// connected a TikTok creator, a Facebook user, their Page and its
// Instagram account, all through the emulators.
type platformWorld struct {
	t      *testing.T
	db     *dbtest.DB
	clk    *fakeclock.Clock
	sdk    *socialcrm.SDK
	ctx    context.Context
	tt     *tiktoktest.Server
	ttProv *tiktok.Provider
	ttCfg  tiktok.Config
	fb     *metatest.Server
	fbProv *meta.Provider
	fbCfg  meta.Config
	// Connections by kind: "tiktok", "user", "page", "instagram".
	conns map[string]social.Connection
}

func newPlatformWorld(t *testing.T, db *dbtest.DB) *platformWorld {
	t.Helper()
	ctx := context.Background()
	kek := testkit.NewKEK(t)
	w := &platformWorld{t: t, db: db, clk: fakeclock.New(), conns: map[string]social.Connection{}}
	w.clk.Set(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	var err error
	const redirect = "https://crm.example/callback"
	w.tt = tiktoktest.Start(t, tiktoktest.WithClock(w.clk.Now),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURIs: []string{redirect},
			Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: canaryOpenID, DisplayName: canaryTTName, Username: canaryTTUser,
			BioDescription: canaryTTBio, AvatarURL: canaryTTAvatar, FollowerCount: 1200}))
	require.NoError(t, w.tt.AddVideo(canaryOpenID, tiktoktest.Video{ID: "7000000000000000001", CreateTime: w.clk.Now().Add(-time.Hour),
		Title: canaryTTTitle, VideoDescription: canaryTTDesc, ShareURL: canaryTTShare, ViewCount: 100, LikeCount: 5}))
	w.ttCfg = tiktok.Config{ClientKey: "ck", ClientSecret: "cs-secret", RedirectURL: redirect, BaseURL: w.tt.BaseURL(), AuthorizeURL: w.tt.AuthorizeURL()}
	w.ttProv, err = tiktok.NewProvider(w.ttCfg, tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now))
	require.NoError(t, err)

	w.fb = metatest.Start(t, metatest.WithClock(w.clk.Now),
		metatest.WithApp(metatest.App{ID: "1001", Secret: "app-secret", Name: "CRM", RedirectURIs: []string{redirect}}),
		metatest.WithUser(metatest.User{ID: canaryFBUserID, Name: canaryFBUserName}),
		metatest.WithPage(metatest.Page{ID: fbPageID, Name: canaryFBPageName, FollowersCount: 900,
			Tasks: map[string][]string{canaryFBUserID: metatest.AllTasks()}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: fbIGID, PageID: fbPageID, Username: canaryIGUser,
			FollowersCount: 1234, FollowsCount: 56}))
	require.NoError(t, w.fb.AddMedia(metatest.Media{ID: "17950000000000001", OwnerID: fbIGID, Caption: canaryIGCaption,
		Permalink: canaryIGLink, LikeCount: 3}))
	w.fbCfg = meta.Config{AppID: "1001", AppSecret: vault.NewSecret([]byte("app-secret")), RedirectURL: redirect,
		Version: w.fb.Version(), GraphURL: w.fb.GraphURL(), DialogURL: w.fb.DialogURL()}
	w.fbProv, err = meta.NewProvider(w.fbCfg, meta.WithHTTPClient(w.fb.Client()), meta.WithClock(w.clk.Now))
	require.NoError(t, err)

	w.sdk, err = socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: w.clk.Now,
		Providers: []social.Provider{w.ttProv, w.fbProv}})
	require.NoError(t, err)
	_, owner, err := w.sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
		Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
	require.NoError(t, err)
	w.ctx = tenancy.WithPrincipal(ctx, owner.Principal())
	return w
}

// connectTikTok runs the TikTok flow for features, declining decline.
func (w *platformWorld) connectTikTok(features []string, decline ...string) social.Connection {
	w.t.Helper()
	flow, err := w.sdk.Social.NewFlow(w.ttProv, social.FlowConfig{Features: features, Purposes: []string{"analytics"}})
	require.NoError(w.t, err)
	authURL, err := flow.Begin(w.ctx)
	require.NoError(w.t, err)
	cb, err := w.tt.Consent(authURL, canaryOpenID, tiktoktest.ConsentOptions{Decline: decline})
	require.NoError(w.t, err)
	u, err := url.Parse(cb)
	require.NoError(w.t, err)
	c, err := flow.Complete(w.ctx, u.Query())
	require.NoError(w.t, err)
	w.conns["tiktok"] = c
	return c
}

// connectMeta runs Facebook Login and connects the user's Page and its
// Instagram account.
func (w *platformWorld) connectMeta() {
	w.t.Helper()
	flow, err := w.sdk.Social.NewFlow(w.fbProv, social.FlowConfig{Purposes: []string{"analytics", "publishing"},
		Features: []string{meta.FeatureProfile, meta.FeaturePages, meta.FeaturePagesPublish, meta.FeaturePagesInsights,
			meta.FeatureInstagram, meta.FeatureInstagramInsights, meta.FeatureMessaging}})
	require.NoError(w.t, err)
	authURL, err := flow.Begin(w.ctx)
	require.NoError(w.t, err)
	cb, err := w.fb.Consent(authURL, metatest.Consent{UserID: canaryFBUserID})
	require.NoError(w.t, err)
	user, err := flow.Complete(w.ctx, cb.Query())
	require.NoError(w.t, err)
	w.conns["user"] = user
	sess, err := w.sdk.Social.Session(w.ctx, user.ID, w.fbProv)
	require.NoError(w.t, err)
	pcs, err := w.fbProv.ConnectPages(w.ctx, sess)
	require.NoError(w.t, err)
	require.Len(w.t, pcs, 1)
	require.NoError(w.t, pcs[0].Err)
	require.NotNil(w.t, pcs[0].Instagram)
	w.conns["page"], w.conns["instagram"] = pcs[0].Connection, *pcs[0].Instagram
}

func (w *platformWorld) tiktokClient(raw bool) *tiktok.Client {
	w.t.Helper()
	sess, err := w.sdk.Social.Session(w.ctx, w.conns["tiktok"].ID, w.ttProv)
	require.NoError(w.t, err)
	opts := []tiktok.Option{tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now), tiktok.WithSession(sess)}
	if raw {
		opts = append(opts, tiktok.WithRawResponses())
	}
	c, err := tiktok.New(w.ttCfg, opts...)
	require.NoError(w.t, err)
	return c
}

func (w *platformWorld) metaClient(kind string) *meta.Client {
	w.t.Helper()
	sess, err := w.sdk.Social.Session(w.ctx, w.conns[kind].ID, w.fbProv)
	require.NoError(w.t, err)
	c, err := meta.New(w.fbCfg, meta.WithHTTPClient(w.fb.Client()), meta.WithClock(w.clk.Now), meta.WithSession(sess), meta.WithRawResponses())
	require.NoError(w.t, err)
	return c
}

// TestPlatformDataCanaries plants canaries in every platform field —
// TikTok profile (name, username, bio, avatar), video texts and share URL,
// raw answers; Facebook user and Page names, a Page post, an Instagram
// username, caption and permalink — syncs everything through the public
// paths against the emulators, reads it back in clear, then scans every
// text and blob column of the social and Meta tables (and, on SQLite, the
// database file and its WAL): no canary is stored in plaintext, the
// platform account ids included (sealed, found by a keyed blind index).
func TestPlatformDataCanaries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		w.connectTikTok([]string{"profile", "stats", "video.read"})
		w.connectMeta()

		res, _, err := w.tiktokClient(true).Sync(w.ctx)
		require.NoError(t, err)
		require.Len(t, res.Media, 1)
		page := w.metaClient("page")
		_, _, err = page.Pages.Publish(w.ctx, fbPageID, meta.PostRequest{Message: canaryFBPost})
		require.NoError(t, err)
		for _, kind := range []string{"user", "page", "instagram"} {
			_, _, err := w.metaClient(kind).Sync(w.ctx)
			require.NoError(t, err, kind)
		}

		// Callers read everything in clear.
		tt, err := w.sdk.Social.Get(w.ctx, w.conns["tiktok"].ID)
		require.NoError(t, err)
		require.Equal(t, canaryTTName, tt.DisplayName)
		require.Empty(t, tt.AvatarURL, "an expiring avatar URL is not kept")
		media, err := w.sdk.Social.Media(w.ctx, tt.ID)
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, canaryTTTitle, media[0].Title)
		require.Equal(t, canaryTTDesc, media[0].Description)
		require.Equal(t, canaryTTShare, media[0].ShareURL)
		raws, err := w.sdk.Social.RawResponseBodies(w.ctx, tt.ID)
		require.NoError(t, err)
		require.Len(t, raws, 2)
		require.Contains(t, raws[0].Body, canaryTTBio, "the raw user info answer is kept whole")
		list, err := w.sdk.Social.List(w.ctx, social.ConnectionFilter{Platform: meta.Platform}, social.ListOptions{})
		require.NoError(t, err)
		names := map[string]string{}
		for _, c := range list.Items {
			names[c.AccountID] = c.DisplayName
		}
		require.Equal(t, map[string]string{canaryFBUserID: canaryFBUserName, fbPageID: canaryFBPageName, fbIGID: "@" + canaryIGUser}, names)
		posts, err := w.sdk.Social.Media(w.ctx, w.conns["page"].ID)
		require.NoError(t, err)
		require.Len(t, posts, 1, "after publishing, the Page sync shows the post")
		require.Equal(t, canaryFBPost, posts[0].Title)
		igMedia, err := w.sdk.Social.Media(w.ctx, w.conns["instagram"].ID)
		require.NoError(t, err)
		require.Len(t, igMedia, 1)
		require.Equal(t, canaryIGCaption, igMedia[0].Title)
		require.Equal(t, canaryIGLink, igMedia[0].ShareURL)
		ts, err := w.sdk.Social.AccountTenants(context.Background(), tiktok.Platform, canaryOpenID)
		require.NoError(t, err)
		require.Len(t, ts, 1, "the account index still routes the account")

		// A data-subject export by connection opens the sealed fields.
		files := exportSubject(t, w, map[string]string{"connection_id": tt.ID})
		require.Contains(t, files["social.media.json"], canaryTTTitle)
		require.Contains(t, files["social.media.json"], canaryTTShare)
		require.Contains(t, files[social.CategoryRawResponse+".json"], "CANARY-tt-bio", "the raw body, opened")
		require.Contains(t, files[social.CategoryConnection+".json"], canaryTTName)
		for name, f := range files {
			require.NotContains(t, f, "_sealed", "a sealed column's bytes in %s", name)
			require.NotContains(t, f, canaryFBPageName, "another connection's data in %s", name)
		}

		canaries := []string{canaryTTName, canaryTTUser, canaryTTBio, canaryTTAvatar, canaryTTTitle, canaryTTDesc, canaryTTShare,
			canaryFBUserName, canaryFBPageName, canaryFBPost, canaryIGUser, canaryIGCaption, canaryIGLink}
		accountKeys := []string{canaryOpenID, canaryFBUserID}
		for _, hit := range scanColumns(t, db, w.ctx, append(canaries, accountKeys...)...) {
			t.Errorf("canary %q in plaintext in %s.%s", hit.canary, hit.table, hit.column)
		}
		if db.Name == "sqlite" {
			_, err := db.DB.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
			require.NoError(t, err)
			for _, path := range []string{db.Path, db.Path + "-wal"} {
				b, err := os.ReadFile(path)
				if os.IsNotExist(err) {
					continue
				}
				require.NoError(t, err)
				for _, c := range canaries {
					require.False(t, bytes.Contains(b, []byte(c)), "canary %q in %s", c, path)
				}
			}
		}
	}, migrated)
}

type columnHit struct{ table, column, canary string }

// scanColumns returns every text or blob column value of the social and
// Meta tables that holds one of canaries, reading the tenant's rows (and
// the rows of tables without a tenant).
func scanColumns(t *testing.T, db *dbtest.DB, ctx context.Context, canaries ...string) []columnHit {
	t.Helper()
	type col struct {
		Table string `bun:"table_name"`
		Name  string `bun:"column_name"`
		Type  string `bun:"data_type"`
	}
	var cols []col
	bg := ctx
	raw := db.Reopen(t) // without the Guard: the scan reads every column on purpose
	if db.Name == "sqlite" {
		var tables []string
		require.NoError(t, raw.NewRaw(`SELECT name FROM sqlite_master WHERE type = 'table' AND (name LIKE 'socialcrm_social%' OR name LIKE 'socialcrm_meta%')`).Scan(bg, &tables))
		for _, tb := range tables {
			var info []col
			require.NoError(t, raw.NewRaw("SELECT ? AS table_name, name AS column_name, lower(type) AS data_type FROM pragma_table_info(?)", tb, tb).Scan(bg, &info))
			cols = append(cols, info...)
		}
	} else {
		require.NoError(t, raw.NewRaw(`SELECT table_name, column_name, data_type FROM information_schema.columns
			WHERE table_schema = current_schema() AND (table_name LIKE 'socialcrm_social%' OR table_name LIKE 'socialcrm_meta%')`).Scan(bg, &cols))
	}
	hasTenant := map[string]bool{}
	var scan []col
	for _, c := range cols {
		hasTenant[c.Table] = hasTenant[c.Table] || c.Name == "tenant_id"
		switch c.Type {
		case "text", "blob", "bytea", "character varying":
			scan = append(scan, c)
		}
	}
	require.NotEmpty(t, scan)
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	var hits []columnHit
	require.NoError(t, tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, c := range scan {
			where := bun.Safe("1 = 1")
			if hasTenant[c.Table] {
				where = bun.Safe("tenant_id = '" + tid + "'")
			}
			var vals [][]byte
			if c.Type == "blob" || c.Type == "bytea" {
				if err := tx.NewRaw("SELECT ? FROM ? WHERE ? AND ? IS NOT NULL", bun.Ident(c.Name), bun.Ident(c.Table), where, bun.Ident(c.Name)).
					Scan(ctx, &vals); err != nil {
					return err
				}
			} else {
				var sv []string
				if err := tx.NewRaw("SELECT ? FROM ? WHERE ? AND ? IS NOT NULL", bun.Ident(c.Name), bun.Ident(c.Table), where, bun.Ident(c.Name)).
					Scan(ctx, &sv); err != nil {
					return err
				}
				for _, v := range sv {
					vals = append(vals, []byte(v))
				}
			}
			for _, v := range vals {
				for _, cn := range canaries {
					if bytes.Contains(v, []byte(cn)) {
						hits = append(hits, columnHit{c.Table, c.Name, cn})
					}
				}
			}
		}
		return nil
	}))
	return hits
}

// exportSubject exports the data of subject through the SDK's retention
// engine and returns the archive's files by name.
func exportSubject(t *testing.T, w *platformWorld, subject map[string]string) map[string]string {
	t.Helper()
	r, err := w.sdk.Retention.Submit(w.ctx, retention.Request{Kind: retention.KindExport, Subject: subject})
	require.NoError(t, err)
	_, err = w.sdk.Retention.SetVerification(w.ctx, r.ID, retention.VerificationVerified)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = w.sdk.Retention.Export(w.ctx, r.ID, &buf)
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		files[f.Name] = string(b)
	}
	return files
}
