package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// Sandbox accounts of the emulated platforms, offered on their consent pages.
const (
	sandboxTikTokKey    = "sandbox-tiktok-app"
	sandboxTikTokSecret = "sandbox-tiktok-secret"
	sandboxCreator      = "sandbox-creator"
	sandboxBrand        = "sandbox-brand"
)

// platforms holds each platform's configuration: emulated in-process in
// sandbox mode (the default), the real hosts when credentials are set.
type platforms struct {
	tiktokSandbox bool
	tiktokSrv     *tiktoktest.Server
	tiktokCfg     tiktok.Config
	tiktokProv    *tiktok.Provider
	tiktokFlow    *social.Flow

	metaSandbox bool
	metaSrv     *metatest.Server
}

// mode names a platform's mode as shown in responses and pages.
func mode(sandbox bool) string {
	if sandbox {
		return "sandbox"
	}
	return "live"
}

func startPlatforms(cfg config, publicURL string, store *social.Store, log *slog.Logger) (*platforms, error) {
	p := &platforms{}
	p.tiktokCfg = tiktok.Config{ClientKey: cfg.TikTokKey, ClientSecret: cfg.TikTokSecret,
		RedirectURL: publicURL + "/connect/tiktok/callback"}
	if cfg.TikTokKey == "" || cfg.TikTokSecret == "" {
		p.tiktokSandbox = true
		p.tiktokCfg.ClientKey, p.tiktokCfg.ClientSecret = sandboxTikTokKey, sandboxTikTokSecret
		now := time.Now()
		srv, err := tiktoktest.NewServer(
			tiktoktest.WithApp(tiktoktest.App{ClientKey: sandboxTikTokKey, ClientSecret: sandboxTikTokSecret,
				RedirectURIs: []string{p.tiktokCfg.RedirectURL},
				Scopes: []string{tiktok.ScopeUserInfoBasic, tiktok.ScopeUserInfoProfile, tiktok.ScopeUserInfoStats,
					tiktok.ScopeVideoList, tiktok.ScopeVideoPublish, tiktok.ScopeVideoUpload},
				WebhookURL: publicURL + "/webhooks/tiktok"}),
			tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: sandboxCreator, DisplayName: "Mia Sandbox", Username: "mia.sandbox",
				FollowerCount: 1200, FollowingCount: 80, LikesCount: 15400, BioDescription: "An emulated creator account",
				Videos: []tiktoktest.Video{
					{ID: "7300000000000000001", CreateTime: now.Add(-72 * time.Hour), Title: "Unboxing", ViewCount: 5400, LikeCount: 420, CommentCount: 31, ShareCount: 12, Duration: 34},
					{ID: "7300000000000000002", CreateTime: now.Add(-48 * time.Hour), Title: "Behind the scenes", ViewCount: 3100, LikeCount: 260, CommentCount: 18, ShareCount: 9, Duration: 51},
					{ID: "7300000000000000003", CreateTime: now.Add(-24 * time.Hour), Title: "Q&A", ViewCount: 8800, LikeCount: 910, CommentCount: 120, ShareCount: 40, Duration: 62},
				}}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: sandboxBrand, DisplayName: "Brand Sandbox", FollowerCount: 300}),
		)
		if err != nil {
			return nil, fmt.Errorf("start the TikTok emulator: %w", err)
		}
		p.tiktokSrv = srv
		p.tiktokCfg.BaseURL, p.tiktokCfg.AuthorizeURL = srv.URL, srv.AuthorizeURL
	}
	var err error
	if p.tiktokProv, err = tiktok.NewProvider(p.tiktokCfg); err != nil {
		p.close()
		return nil, err
	}
	if p.tiktokFlow, err = store.NewFlow(p.tiktokProv, social.FlowConfig{
		Features: []string{"profile", "stats", "video.read", "publish"},
		Purposes: []string{"analytics", "publishing"},
	}); err != nil {
		p.close()
		return nil, err
	}

	p.metaSandbox = cfg.MetaAppID == "" || cfg.MetaSecret == ""
	if p.metaSandbox {
		if p.metaSrv, err = metatest.New(); err != nil {
			p.close()
			return nil, fmt.Errorf("start the Meta emulator: %w", err)
		}
	}
	log.Info("platforms", "tiktok", mode(p.tiktokSandbox), "meta", mode(p.metaSandbox))
	return p, nil
}

// tiktokClient returns a TikTok client acting through connection id.
func (p *platforms) tiktokClient(ctx context.Context, store *social.Store, id string) (*tiktok.Client, error) {
	sess, err := store.Session(ctx, id, p.tiktokProv)
	if err != nil {
		return nil, err
	}
	return tiktok.New(p.tiktokCfg, tiktok.WithSession(sess))
}

// sandboxGrowth plays an audience in sandbox mode: each sync of an emulated
// account finds it with a few more followers, so the follower trend moves.
func (p *platforms) sandboxGrowth(openID string) {
	if p.tiktokSrv == nil {
		return
	}
	_ = p.tiktokSrv.UpdateUser(openID, func(u *tiktoktest.User) {
		u.FollowerCount += 10 + u.FollowerCount/50
		u.LikesCount += 100
	})
}

func (p *platforms) close() {
	if p.tiktokSrv != nil {
		p.tiktokSrv.Close()
	}
	if p.metaSrv != nil {
		p.metaSrv.Close()
	}
}
