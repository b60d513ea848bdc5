package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// Sandbox accounts of the emulated platforms, offered on their consent pages.
const (
	sandboxTikTokKey    = "sandbox-tiktok-app"
	sandboxTikTokSecret = "sandbox-tiktok-secret"
	sandboxCreator      = "sandbox-creator"
	sandboxBrand        = "sandbox-brand"

	sandboxMetaApp    = "sandbox-meta-app"
	sandboxMetaSecret = "sandbox-meta-secret"
	sandboxMetaVerify = "sandbox-meta-verify"
	sandboxFBUser     = "sandbox-fb-user"
	sandboxPage       = "100000000000001"
	sandboxIG         = "17841400000000001"
)

// platforms holds each platform's configuration: emulated in-process in
// sandbox mode (the default), the real hosts when credentials are set.
type platforms struct {
	tiktokSandbox bool
	tiktokSrv     *tiktoktest.Server
	tiktokCfg     tiktok.Config
	tiktokProv    *tiktok.Provider
	tiktokFlow    *social.Flow
	tiktokOpts    []tiktok.Option

	metaSandbox bool
	metaSrv     *metatest.Server
	metaCfg     meta.Config
	metaOpts    []meta.Option
	metaProv    *meta.Provider
	metaFlow    *social.Flow
	metaVerify  string
}

// mode names a platform's mode as shown in responses and pages.
func mode(sandbox bool) string {
	if sandbox {
		return "sandbox"
	}
	return "live"
}

// startPlatforms starts the emulators (sandbox mode) and builds the
// providers, which socialcrm.Open registers; makeFlows then builds the
// flows over the social store.
func startPlatforms(cfg config, publicURL string, log *slog.Logger) (*platforms, error) {
	p := &platforms{}
	p.tiktokCfg = tiktok.Config{ClientKey: cfg.TikTokKey, ClientSecret: cfg.TikTokSecret,
		RedirectURL: publicURL + "/connect/tiktok/callback"}
	if cfg.TikTokKey == "" || cfg.TikTokSecret == "" {
		p.tiktokSandbox = true
		p.tiktokCfg.ClientKey, p.tiktokCfg.ClientSecret = sandboxTikTokKey, sandboxTikTokSecret
		now := time.Now()
		srv, err := tiktoktest.New(
			tiktoktest.WithApp(tiktoktest.App{ClientKey: sandboxTikTokKey, ClientSecret: sandboxTikTokSecret,
				RedirectURIs: []string{p.tiktokCfg.RedirectURL},
				Scopes: []string{tiktok.ScopeUserInfoBasic, tiktok.ScopeUserInfoProfile, tiktok.ScopeUserInfoStats,
					tiktok.ScopeVideoList, tiktok.ScopeVideoPublish, tiktok.ScopeVideoUpload},
				WebhookURL: publicURL + "/webhooks/tiktok"}),
			tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: sandboxCreator, DisplayName: "Mia Sandbox", Username: "mia.sandbox",
				FollowerCount: 1200, FollowingCount: 80, LikesCount: 15400, BioDescription: "An emulated creator account",
				StitchDisabled: true, // the post form shows a toggle the creator turned off
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
		p.tiktokCfg.BaseURL, p.tiktokCfg.AuthorizeURL = srv.BaseURL(), srv.AuthorizeURL()
	}
	var err error
	if p.tiktokProv, err = tiktok.NewProvider(p.tiktokCfg, p.tiktokOpts...); err != nil {
		p.close()
		return nil, err
	}
	if err := p.startMeta(cfg, publicURL); err != nil {
		p.close()
		return nil, err
	}
	log.Info("platforms", "tiktok", mode(p.tiktokSandbox), "meta", mode(p.metaSandbox))
	return p, nil
}

// startMeta configures Meta: the emulator with a sandbox user, Page and
// Instagram account, or the real Graph API with the app's credentials.
func (p *platforms) startMeta(cfg config, publicURL string) error {
	p.metaSandbox = cfg.MetaAppID == "" || cfg.MetaSecret == ""
	appID, secret, verify := cfg.MetaAppID, cfg.MetaSecret, cfg.MetaVerifyToken
	redirect := publicURL + "/connect/meta/callback"
	if p.metaSandbox {
		appID, secret, verify = sandboxMetaApp, sandboxMetaSecret, sandboxMetaVerify
		srv, err := metatest.New(
			metatest.WithApp(metatest.App{ID: appID, Secret: secret, Name: "socialcrm sandbox", RedirectURIs: []string{redirect},
				VerifyToken: verify, RequireAppSecretProof: true}),
			metatest.WithUser(metatest.User{ID: sandboxFBUser, Name: "Sam Sandbox"}),
			metatest.WithPage(metatest.Page{ID: sandboxPage, Name: "Gem Atelier (sandbox Page)", Category: "Jewelry",
				FollowersCount: 2400, FanCount: 2100, Tasks: map[string][]string{sandboxFBUser: metatest.AllTasks()}}),
			metatest.WithInstagramAccount(metatest.InstagramAccount{ID: sandboxIG, PageID: sandboxPage, Username: "gem.sandbox",
				Name: "Gem Atelier", FollowersCount: 5300, FollowsCount: 120, MediaCount: 42}),
			metatest.WithContainerProcessing(0, 0),
		)
		if err != nil {
			return fmt.Errorf("start the Meta emulator: %w", err)
		}
		// The sandbox account's audience, for the insights page.
		for breakdown, values := range map[string]map[string]int{
			"age":     {"18-24": 1400, "25-34": 2100, "35-44": 900, "45-54": 300},
			"gender":  {"F": 3900, "M": 1200, "U": 200},
			"country": {"US": 2300, "GB": 900, "DE": 700, "FR": 400},
			"city":    {"London, England": 600, "New York, New York": 550, "Berlin, Germany": 300},
		} {
			if err := srv.SetDemographics(sandboxIG, metatest.MetricFollowerDemographics, breakdown, values); err != nil {
				return fmt.Errorf("start the Meta emulator: %w", err)
			}
		}
		p.metaSrv = srv
		p.metaCfg = meta.Config{GraphURL: srv.GraphURL(), DialogURL: srv.DialogURL(), Version: srv.Version()}
		p.metaOpts = append(p.metaOpts, meta.WithHTTPClient(srv.Client()))
	}
	if verify == "" {
		verify = randomToken()
	}
	p.metaVerify = verify
	p.metaCfg.AppID, p.metaCfg.AppSecret, p.metaCfg.RedirectURL = appID, vault.NewSecret([]byte(secret)), redirect
	var err error
	p.metaProv, err = meta.NewProvider(p.metaCfg, p.metaOpts...)
	return err
}

// providers are the providers to register with socialcrm.Open.
func (p *platforms) providers() []social.Provider {
	return []social.Provider{p.tiktokProv, p.metaProv}
}

// makeFlows builds the platforms' OAuth flows over store.
func (p *platforms) makeFlows(store *social.Store) error {
	var err error
	if p.tiktokFlow, err = store.NewFlow(p.tiktokProv, social.FlowConfig{
		Features: []string{tiktok.FeatureProfile, tiktok.FeatureStats, tiktok.FeatureVideoRead, tiktok.FeaturePublish},
		Purposes: []string{"analytics", "publishing"},
	}); err != nil {
		return err
	}
	p.metaFlow, err = store.NewFlow(p.metaProv, social.FlowConfig{
		Features: []string{meta.FeatureProfile, meta.FeaturePages, meta.FeaturePagesPublish, meta.FeaturePagesInsights,
			meta.FeatureInstagram, meta.FeatureInstagramPublish, meta.FeatureInstagramInsights, meta.FeatureMessaging},
		Purposes: []string{"publishing", "analytics", "messaging"},
	})
	return err
}

// metaClient returns a Graph API client acting through connection id.
func (p *platforms) metaClient(ctx context.Context, store *social.Store, id string, opts ...meta.Option) (*meta.Client, error) {
	sess, err := store.Session(ctx, id, p.metaProv)
	if err != nil {
		return nil, err
	}
	opts = append(append([]meta.Option{meta.WithSession(sess)}, p.metaOpts...), opts...)
	return meta.New(p.metaCfg, opts...)
}

// tiktokClient returns a TikTok client acting through connection id.
func (p *platforms) tiktokClient(ctx context.Context, store *social.Store, id string) (*tiktok.Client, error) {
	sess, err := store.Session(ctx, id, p.tiktokProv)
	if err != nil {
		return nil, err
	}
	return tiktok.New(p.tiktokCfg, append([]tiktok.Option{tiktok.WithSession(sess)}, p.tiktokOpts...)...)
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
