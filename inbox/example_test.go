package inbox_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	socialcrm "github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// A person writes to the Page on Messenger; the webhook's inbox stores the
// message in crm, and the reply goes out through the Send API within the
// window and is stored beside it. The emulator (graph) stands in for Meta.
func Example() {
	ctx := context.Background()
	graph, err := metatest.New(
		metatest.WithApp(metatest.App{ID: "1001", Secret: "s3cret", VerifyToken: "verify-me",
			RedirectURIs: []string{"https://crm.example/meta/callback"}}),
		metatest.WithUser(metatest.User{ID: "2001", Name: "Ada"}),
		metatest.WithPage(metatest.Page{ID: "3001", Name: "Ada's Bakery", Tasks: map[string][]string{"2001": metatest.AllTasks()}}))
	check(err)
	defer graph.Close()
	dir, err := os.MkdirTemp("", "inbox-example")
	check(err)
	defer os.RemoveAll(dir)
	db, err := socialcrm.OpenDB(filepath.Join(dir, "crm.db"))
	check(err)
	defer db.Close()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	check(err)
	kek, err := aead.New(h)
	check(err)
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db, KEK: kek})
	check(err)
	_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "bakery",
		Owner: tenancy.NewMember{Email: "ada@bakery.example", Name: "Ada"}})
	check(err)
	tctx := tenancy.WithPrincipal(ctx, owner.Principal())

	// The Page connects for messaging (Facebook Login, then its own token).
	cfg := meta.Config{AppID: "1001", AppSecret: vault.NewSecret([]byte("s3cret")), RedirectURL: "https://crm.example/meta/callback",
		Version: graph.Version(), GraphURL: graph.GraphURL(), DialogURL: graph.DialogURL()}
	prov, err := meta.NewProvider(cfg, meta.WithHTTPClient(graph.Client()))
	check(err)
	flow, err := sdk.Social.NewFlow(prov, social.FlowConfig{Features: []string{meta.FeatureProfile, meta.FeaturePages, meta.FeatureMessaging}})
	check(err)
	authURL, err := flow.Begin(tctx)
	check(err)
	back, err := graph.Consent(authURL, metatest.Consent{UserID: "2001"})
	check(err)
	user, err := flow.Complete(tctx, back.Query())
	check(err)
	sess, err := sdk.Social.Session(tctx, user.ID, prov)
	check(err)
	pages, err := prov.ConnectPages(tctx, sess)
	check(err)
	sess, err = sdk.Social.Session(tctx, pages[0].Connection.ID, prov)
	check(err)
	page, err := meta.New(cfg, meta.WithSession(sess), meta.WithHTTPClient(graph.Client()))
	check(err)

	// The webhook hands Messenger's events to the inbox.
	in, err := sdk.MetaInbox()
	check(err)
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: cfg.AppSecret, VerifyToken: vault.NewSecret([]byte("verify-me"))},
		sdk.Social, in.Handle, meta.WithIdempotentHandler())
	check(err)
	hook := httptest.NewServer(wh)
	defer hook.Close()
	_, err = graph.SendWebhook(ctx, "1001", hook.URL, metatest.TextMessage("3001", "9001", "Is the rye bread in?"))
	check(err)

	sent, _, err := in.Send(tctx, page, "3001", meta.SendRequest{PSID: "9001", MessagingType: meta.MessagingResponse,
		Text: "Yes, fresh at 9."})
	check(err)
	fmt.Println("reply:", sent.Stored.Status)

	conv, err := sdk.CRM.Conversations().Find(tctx, inbox.Key("3001", "9001"))
	check(err)
	msgs, err := sdk.CRM.Conversations().Messages(tctx, conv.ID, crm.ListOptions{})
	check(err)
	for _, m := range slices.Backward(msgs.Items) { // oldest first
		fmt.Println(m.Direction, m.Text)
	}
	// Output:
	// reply: sent
	// in Is the rye bread in?
	// out Yes, fresh at 9.
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
