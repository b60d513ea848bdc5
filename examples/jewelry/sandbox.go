package main

// The sandbox: the shop's sample data and the emulated platforms the
// example runs against. A real shop connects its own accounts.

import (
	"context"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// inventory is the shop's stock; the last piece is the new one published.
var inventory = []Item{
	{SKU: "RG-0101", Description: "Solitaire ring, 1.02 ct round brilliant, platinum", CertLab: "GIA", CertNumber: "2141438171",
		CostMinor: 820_000, Currency: "EUR", Supplier: "Antwerp Diamond House"},
	{SKU: "ER-0207", Description: "Stud earrings, 2 x 0.50 ct, 18k white gold", CertLab: "IGI", CertNumber: "LG583214467",
		CostMinor: 145_000, Currency: "EUR", Supplier: "Lumen Lab Stones"},
	{SKU: "PD-0311", Description: "Emerald-cut pendant, 0.75 ct, 18k yellow gold", CertLab: "gia", CertNumber: " 6235 871 042 ",
		CostMinor: 310_050, Currency: "eur", Supplier: "Antwerp Diamond House"},
}

// customers are the shop's customers; four have their birthday today.
func customers(today time.Time) []customer {
	bday := crm.Birthday{Month: int(today.Month()), Day: today.Day()}
	tomorrow := today.AddDate(0, 0, 1)
	return []customer{
		{first: "Amélie", last: "Roux", email: "amelie@example.org", birthday: withYear(bday, 1988), consent: crm.ChannelEmail},
		{first: "Bruno", last: "Sato", email: "bruno@example.org", birthday: withYear(bday, 1975)},
		{first: "Chiara", last: "Bianchi", email: "chiara@example.org", birthday: bday, consent: crm.ChannelEmail, withdrawn: true},
		{first: "Dmitri", last: "Volkov", email: "dmitri@example.org", birthday: withYear(bday, 1992), consent: crm.ChannelSMS},
		{first: "Esther", last: "Nagy", email: "esther@example.org", consent: crm.ChannelEmail,
			birthday: crm.Birthday{Month: int(tomorrow.Month()), Day: tomorrow.Day()}},
	}
}

func withYear(b crm.Birthday, y int) crm.Birthday { b.Year = y; return b }

// turntableVideo stands for the piece's 360° video.
var turntableVideo = strings.Repeat("\x00\x00\x00\x18ftypmp42", 4096)

// The emulated accounts.
const (
	sandboxMetaApp    = "opale-meta-app"
	sandboxMetaSecret = "opale-meta-secret"
	sandboxFBUser     = "fb-odile"
	sandboxPage       = "100000000000042"
	sandboxIG         = "17841400000000042"
	sandboxTikTokKey  = "opale-tiktok"
	sandboxTikTokSec  = "opale-tiktok-secret"
	sandboxTikTokUser = "open-opale"
	redirectMeta      = "https://crm.opale.example/meta/callback"
	redirectTikTok    = "https://crm.opale.example/tiktok/callback/"
)

// platforms are the emulated Meta and TikTok and the SDK's configuration
// for them.
type platforms struct {
	now        func() time.Time
	meta       *metatest.Server
	metaCfg    meta.Config
	metaProv   *meta.Provider
	tiktok     *tiktoktest.Server
	tiktokCfg  tiktok.Config
	tiktokProv *tiktok.Provider
}

func startPlatforms(now func() time.Time) (*platforms, error) {
	p := &platforms{now: now}
	var err error
	p.meta, err = metatest.New(metatest.WithClock(now),
		metatest.WithApp(metatest.App{ID: sandboxMetaApp, Secret: sandboxMetaSecret, RedirectURIs: []string{redirectMeta},
			RequireAppSecretProof: true}),
		metatest.WithUser(metatest.User{ID: sandboxFBUser, Name: "Odile"}),
		metatest.WithPage(metatest.Page{ID: sandboxPage, Name: "Maison Opale", Category: "Jewelry/Watches",
			Tasks: map[string][]string{sandboxFBUser: metatest.AllTasks()}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: sandboxIG, PageID: sandboxPage, Username: "maison.opale"}),
		metatest.WithContainerProcessing(0, 0))
	if err != nil {
		return nil, err
	}
	p.metaCfg = meta.Config{AppID: sandboxMetaApp, AppSecret: vault.NewSecret([]byte(sandboxMetaSecret)),
		RedirectURL: redirectMeta, Version: p.meta.Version(), GraphURL: p.meta.GraphURL(), DialogURL: p.meta.DialogURL()}
	if p.metaProv, err = meta.NewProvider(p.metaCfg, meta.WithHTTPClient(p.meta.Client()), meta.WithClock(now)); err != nil {
		p.close()
		return nil, err
	}
	p.tiktok, err = tiktoktest.New(tiktoktest.WithClock(now), tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{}),
		tiktoktest.WithApp(tiktoktest.App{ClientKey: sandboxTikTokKey, ClientSecret: sandboxTikTokSec,
			RedirectURIs: []string{redirectTikTok}, Scopes: []string{tiktok.ScopeUserInfoBasic, tiktok.ScopeVideoPublish}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: sandboxTikTokUser, DisplayName: "Maison Opale"}))
	if err != nil {
		p.close()
		return nil, err
	}
	p.tiktokCfg = tiktok.Config{ClientKey: sandboxTikTokKey, ClientSecret: sandboxTikTokSec, RedirectURL: redirectTikTok,
		BaseURL: p.tiktok.BaseURL(), AuthorizeURL: p.tiktok.AuthorizeURL()}
	if p.tiktokProv, err = tiktok.NewProvider(p.tiktokCfg, tiktok.WithClock(now)); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// metaClient returns a Graph API client acting through connection id.
func (p *platforms) metaClient(ctx context.Context, store *social.Store, id string) (*meta.Client, error) {
	sess, err := store.Session(ctx, id, p.metaProv)
	if err != nil {
		return nil, err
	}
	return meta.New(p.metaCfg, meta.WithSession(sess), meta.WithHTTPClient(p.meta.Client()), meta.WithClock(p.now))
}

func (p *platforms) close() {
	if p.meta != nil {
		p.meta.Close()
	}
	if p.tiktok != nil {
		p.tiktok.Close()
	}
}
