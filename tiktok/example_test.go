package tiktok_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// exampleStore opens the SDK on a throwaway SQLite database, as an
// application does at start-up, and returns its social store.
func exampleStore() (*social.Store, func()) {
	dir, err := os.MkdirTemp("", "tiktok-example")
	if err != nil {
		panic(err)
	}
	// Open finds nothing to migrate in a copy of a migrated file.
	path := filepath.Join(dir, "crm.db")
	if err := dbtest.SQLiteFile(path, exampleMigrate); err != nil {
		panic(err)
	}
	db, err := socialcrm.OpenDB(path)
	if err != nil {
		panic(err)
	}
	kek, err := insecurekeyfile.Open(filepath.Join(dir, "kek.json"))
	if err != nil {
		panic(err)
	}
	sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db, KEK: kek})
	if err != nil {
		panic(err)
	}
	store := sdk.Social
	return store, func() { db.Close(); os.RemoveAll(dir) }
}

// Connect a creator's TikTok account read-only, then read the profile.
func Example() {
	srv, _ := tiktoktest.New(
		tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs",
			RedirectURIs: []string{"https://crm.example/callback/"},
			Scopes:       []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "u1", DisplayName: "Ana", FollowerCount: 1200}),
	)
	defer srv.Close()
	store, done := exampleStore()
	defer done()

	cfg := tiktok.Config{ClientKey: "ck", ClientSecret: "cs", RedirectURL: "https://crm.example/callback/",
		BaseURL: srv.BaseURL(), AuthorizeURL: srv.AuthorizeURL()}
	provider, _ := tiktok.NewProvider(cfg)
	flow, err := store.NewFlow(provider, social.FlowConfig{
		Features: []string{"profile", "stats", "video.read"}, ReadOnly: true, Purposes: []string{"analytics"},
	})
	if err != nil {
		panic(err)
	}
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})

	consentURL, _ := flow.Begin(ctx)
	// The creator consents but switches off the stats scope.
	callback, _ := srv.Consent(consentURL, "u1", tiktoktest.ConsentOptions{Decline: []string{"user.info.stats"}})
	u, _ := url.Parse(callback)
	conn, err := flow.Complete(ctx, u.Query())
	if err != nil {
		panic(err)
	}
	fmt.Println(conn.Status, conn.Scopes, "declined:", conn.Declined())

	sess, _ := store.Session(ctx, conn.ID, provider)
	client, _ := tiktok.New(cfg, tiktok.WithSession(sess))
	user, _, _ := client.User.Info(ctx, tiktok.UserInfoOptions{})
	fmt.Println(user.DisplayName, user.FollowerCount)

	_, _, err = client.User.Info(ctx, tiktok.UserInfoOptions{Fields: []string{"follower_count"}})
	var se *social.ScopeError
	fmt.Println(errors.As(err, &se), se.Missing)
	// Output:
	// active [user.info.basic user.info.profile video.list] declined: [user.info.stats]
	// Ana 0
	// true [user.info.stats]
}

// exampleMigrate is the examples' migration. Their databases start as
// copies of a file it migrated once per test binary (dbtest.SQLiteFile),
// where it then finds nothing to do: migrating a new SQLite file takes
// seconds under the race detector, copying one does not.
func exampleMigrate(ctx context.Context, db *bun.DB) error { return socialcrm.Migrate(ctx, db) }
