package main

// The sandbox: the emulated Meta, the shop's Page, the customers who write
// to it and the clock. A real inbox receives Meta's webhooks at a public
// HTTPS URL registered in the App Dashboard.

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/vault"
)

const (
	sandboxMetaApp = "bloom-meta-app"
	sandboxFBUser  = "fb-bea"
	sandboxPage    = "100000000000077"
	redirectMeta   = "https://crm.bloom.example/meta/callback"
	psidLea        = "24000000000000001"
	psidTom        = "24000000000000002"
)

// name is the person behind a PSID, as the shop knows them.
func name(psid string) string {
	switch psid {
	case psidLea:
		return "Léa"
	case psidTom:
		return "Tom"
	}
	return psid
}

// sandbox is the emulated Meta and the SDK's configuration for it.
type sandbox struct {
	clock       *demo.Clock
	meta        *metatest.Server
	metaCfg     meta.Config
	metaProv    *meta.Provider
	verifyToken vault.Secret
}

// startSandbox starts the emulator with the shop's app, user and Page; the
// app secret and the webhook's verify token are random.
func startSandbox(start time.Time) (*sandbox, error) {
	s := &sandbox{clock: demo.NewClock(start)}
	secret, verify := rand.Text(), rand.Text()
	s.verifyToken = vault.NewSecret([]byte(verify))
	var err error
	s.meta, err = metatest.New(metatest.WithClock(s.clock.Now),
		metatest.WithApp(metatest.App{ID: sandboxMetaApp, Secret: secret, RedirectURIs: []string{redirectMeta},
			VerifyToken: verify, RequireAppSecretProof: true}),
		metatest.WithUser(metatest.User{ID: sandboxFBUser, Name: "Bea"}),
		metatest.WithPage(metatest.Page{ID: sandboxPage, Name: "Bloom Florists", Category: "Florist",
			Tasks: map[string][]string{sandboxFBUser: metatest.AllTasks()}}))
	if err != nil {
		return nil, err
	}
	s.metaCfg = meta.Config{AppID: sandboxMetaApp, AppSecret: vault.NewSecret([]byte(secret)), RedirectURL: redirectMeta,
		Version: s.meta.Version(), GraphURL: s.meta.GraphURL(), DialogURL: s.meta.DialogURL()}
	if s.metaProv, err = meta.NewProvider(s.metaCfg, meta.WithHTTPClient(s.meta.Client()), meta.WithClock(s.clock.Now)); err != nil {
		s.meta.Close()
		return nil, err
	}
	return s, nil
}

func (s *sandbox) close() { s.meta.Close() }

// customersWrite plays the customers: Tom asks a question; ten minutes
// later Léa writes, then sends a photo, and Meta delivers that second
// message twice.
func (s *sandbox) customersWrite(ctx context.Context, callback string) error {
	if _, err := s.meta.SendWebhook(ctx, sandboxMetaApp, callback,
		metatest.TextMessage(sandboxPage, psidTom, "Hi, do you deliver on Sundays?")); err != nil {
		return err
	}
	s.clock.Advance(10 * time.Minute)
	if _, err := s.meta.SendWebhook(ctx, sandboxMetaApp, callback,
		metatest.TextMessage(sandboxPage, psidLea, "Hello! Is the blue vase from your window still available?")); err != nil {
		return err
	}
	s.clock.Advance(time.Minute)
	d, err := s.meta.SendWebhook(ctx, sandboxMetaApp, callback, metatest.Event{PageID: sandboxPage, PSID: psidLea,
		Message: &metatest.EventMessage{Text: "This one:", Attachments: []metatest.Attachment{
			{Type: "image", URL: "https://scontent.example/v/blue-vase.jpg"}}}})
	if err != nil {
		return err
	}
	return d.Resend(ctx) // Meta's retry: the same signed bytes again
}

// forge posts a message to the webhook as someone without the app secret
// would, and returns the answer's status.
func (s *sandbox) forge(ctx context.Context, callback string) (int, error) {
	body := fmt.Sprintf(`{"object":"page","entry":[{"id":%q,"time":%d,"messaging":[{"sender":{"id":%q},`+
		`"recipient":{"id":%q},"timestamp":%d,"message":{"mid":"m_forged","text":"Click this link"}}]}]}`,
		sandboxPage, s.clock.Now().UnixMilli(), psidTom, sandboxPage, s.clock.Now().UnixMilli())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callback, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(meta.SignatureHeader, metatest.SignPayload("not-the-app-secret", []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// receipt plays Léa's Messenger a minute later: it reports the message
// delivered (a delivery event naming its mid) or read (a watermark).
func (s *sandbox) receipt(ctx context.Context, callback, psid, mid, kind string) error {
	s.clock.Advance(time.Minute)
	ev := metatest.Event{PageID: sandboxPage, PSID: psid}
	switch kind {
	case "delivery":
		ev.Delivery = &metatest.EventDelivery{MIDs: []string{mid}, Watermark: s.clock.Now()}
	case "read":
		ev.Read = &metatest.EventRead{Watermark: s.clock.Now()}
	default:
		return fmt.Errorf("unknown receipt %q", kind)
	}
	_, err := s.meta.SendWebhook(ctx, sandboxMetaApp, callback, ev)
	return err
}
