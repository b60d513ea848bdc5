package social_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// Connect an account with a read-only flow, then disconnect it: the
// platform revokes, the sealed tokens are deleted, and the hook hands the
// connection to retention.
func ExampleFlow() {
	srv, _ := tiktoktest.New(
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs",
			RedirectURIs: []string{"https://crm.example/callback/"},
			Scopes:       []string{"user.info.basic", "user.info.profile", "video.list", "video.publish"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "u1", DisplayName: "Ana"}),
	)
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "social-example")
	defer os.RemoveAll(dir)
	db, _ := socialcrm.OpenDB(filepath.Join(dir, "crm.db"))
	defer db.Close()
	ctx := context.Background()
	if err := socialcrm.Migrate(ctx, db); err != nil {
		panic(err)
	}
	_, _ = socialcrm.Guard(db)
	h, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	kek, _ := aead.New(h)
	v, _ := vault.New(db, kek, vault.WithColumns(social.SealedColumns()...))
	store, _ := social.New(db, v, social.WithDisconnectHook(func(_ context.Context, c social.Connection) error {
		fmt.Println("purge data of", c.Platform, "connection")
		return nil
	}))
	provider, _ := tiktok.NewProvider(tiktok.Config{ClientKey: "ck", ClientSecret: "cs",
		RedirectURL: "https://crm.example/callback/", BaseURL: srv.BaseURL(), AuthorizeURL: srv.AuthorizeURL()})

	_, err := store.NewFlow(provider, social.FlowConfig{Features: []string{"profile", "publish"}, ReadOnly: true})
	fmt.Println(errors.Is(err, social.ErrWriteScope))

	flow, _ := store.NewFlow(provider, social.FlowConfig{Features: []string{"profile", "video.read"}, ReadOnly: true})
	fmt.Println("requesting", flow.Scopes())
	ctx = tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	consentURL, _ := flow.Begin(ctx)
	callback, _ := srv.Consent(consentURL, "u1", tiktoktest.ConsentOptions{})
	u, _ := url.Parse(callback)
	conn, _ := flow.Complete(ctx, u.Query())
	_, err = flow.Complete(ctx, u.Query())
	fmt.Println("replay:", errors.Is(err, social.ErrStateUsed))

	conn, _ = store.Disconnect(ctx, conn.ID, provider)
	fmt.Println(conn.Status, conn.AccessToken.IsZero())
	// Output:
	// true
	// requesting [user.info.basic user.info.profile video.list]
	// replay: true
	// purge data of tiktok connection
	// revoked true
}

// A metric the platform did not give is unknown, not 0: it prints
// "unknown", marshals to null and is stored as NULL.
func ExampleCount() {
	followers := social.Count{} // user.info.stats declined
	views := social.KnownCount(4500)
	b, _ := json.Marshal(map[string]social.Count{"followers": followers, "views": views})
	fmt.Println(followers, views)
	fmt.Println(string(b))
	// Output:
	// unknown 4500
	// {"followers":null,"views":4500}
}

// Declare a platform that speaks standard OAuth 2.0 by configuration
// alone, and register it with the store.
func ExampleNewOAuth2Provider() {
	p, err := social.NewOAuth2Provider(social.OAuth2Config{
		Platform:      "acme",
		ClientID:      "crm-app",
		ClientSecret:  vault.NewSecret([]byte("from the secret store")),
		AuthURL:       "https://auth.acme.example/authorize",
		TokenURL:      "https://auth.acme.example/token",
		RevocationURL: "https://auth.acme.example/revoke",
		UserInfoURL:   "https://api.acme.example/me", // names the account ("sub")
		RedirectURL:   "https://crm.example/connect/acme/callback",
		Features: []social.Feature{
			{Name: "read", Scopes: social.NewScopes("offline", "read")},
			{Name: "publish", Scopes: social.NewScopes("offline", "write"), Write: true},
		},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Platform(), p.Features()[0].Scopes)
	// store, err := social.New(db, v, social.WithProviders(p))
	// Output: acme [offline read]
}
