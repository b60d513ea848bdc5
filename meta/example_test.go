package meta_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// exampleWorld is what an application has at start-up: a database with
// the tables, a vault, a social store, and here the emulator standing in
// for Meta.
type exampleWorld struct {
	srv   *metatest.Server
	store *social.Store
	prov  *meta.Provider
	cfg   meta.Config
	ctx   context.Context
	close func()
}

func newExampleWorld() *exampleWorld {
	srv, err := metatest.New(
		metatest.WithApp(metatest.App{ID: "1001", Secret: "s3cret", RedirectURIs: []string{"https://crm.example/meta/callback"}}),
		metatest.WithUser(metatest.User{ID: "2001", Name: "Ada"}),
		metatest.WithPage(metatest.Page{ID: "3001", Name: "Ada's Bakery", FollowersCount: 900,
			Tasks: map[string][]string{"2001": metatest.AllTasks()}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: "17841400000000001", PageID: "3001", Username: "adasbakery"}),
		metatest.WithContainerProcessing(0, 0),
	)
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "meta-example")
	if err != nil {
		panic(err)
	}
	// The SDK as an application opens it (see socialcrm.Open). The file
	// starts as a copy of one that worldSetup migrated once per test
	// binary, so Open finds nothing to migrate: migrating a new SQLite
	// file takes seconds under the race detector, copying one does not.
	ctx := context.Background()
	path := filepath.Join(dir, "crm.db")
	if err := dbtest.SQLiteFile(path, worldSetup); err != nil {
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
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db, KEK: kek})
	if err != nil {
		panic(err)
	}
	store := sdk.Social
	cfg := meta.Config{AppID: "1001", AppSecret: vault.NewSecret([]byte("s3cret")),
		RedirectURL: "https://crm.example/meta/callback", Version: srv.Version(),
		GraphURL: srv.GraphURL(), DialogURL: srv.DialogURL()}
	prov, err := meta.NewProvider(cfg, meta.WithHTTPClient(srv.Client()))
	if err != nil {
		panic(err)
	}
	tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
	return &exampleWorld{srv: srv, store: store, prov: prov, cfg: cfg, ctx: tctx,
		close: func() { srv.Close(); db.Close(); os.RemoveAll(dir) }}
}

// connect runs Facebook Login for features and connects the user's Pages.
func (w *exampleWorld) connect(features ...string) (social.Connection, []meta.PageConnection) {
	flow, err := w.store.NewFlow(w.prov, social.FlowConfig{Features: features, Purposes: []string{"publishing"}})
	if err != nil {
		panic(err)
	}
	authURL, err := flow.Begin(w.ctx)
	if err != nil {
		panic(err)
	}
	// The user consents in the Login dialog; Meta redirects back.
	redirect, err := w.srv.Consent(authURL, metatest.Consent{UserID: "2001"})
	if err != nil {
		panic(err)
	}
	user, err := flow.Complete(w.ctx, redirect.Query())
	if err != nil {
		panic(err)
	}
	sess, err := w.store.Session(w.ctx, user.ID, w.prov)
	if err != nil {
		panic(err)
	}
	pages, err := w.prov.ConnectPages(w.ctx, sess)
	if err != nil {
		panic(err)
	}
	return user, pages
}

func (w *exampleWorld) client(conn social.Connection) *meta.Client {
	sess, err := w.store.Session(w.ctx, conn.ID, w.prov)
	if err != nil {
		panic(err)
	}
	c, err := meta.New(w.cfg, meta.WithSession(sess), meta.WithHTTPClient(w.srv.Client()))
	if err != nil {
		panic(err)
	}
	return c
}

// Connect a Facebook user and their Page, then publish to the Page.
func Example() {
	w := newExampleWorld()
	defer w.close()
	user, pages := w.connect(meta.FeaturePagesPublish)
	fmt.Println("user:", user.DisplayName, user.Scopes.Has(meta.PermPagesManagePosts))
	page := pages[0].Connection
	fmt.Println("page:", page.DisplayName, "token expires:", !page.TokenExpiry.IsZero())

	client := w.client(page)
	post, _, err := client.Pages.Publish(w.ctx, "3001", meta.PostRequest{Message: "Fresh bread", Link: "https://bakery.example"})
	if err != nil {
		panic(err)
	}
	fmt.Println("published a", post.Kind, "post")
	// Output:
	// user: Ada true
	// page: Ada's Bakery token expires: false
	// published a link post
}

// Metrics Meta retired are refused before any request; a fallback to a
// current name is used instead when configured.
func ExamplePagesService_Insights() {
	w := newExampleWorld()
	defer w.close()
	_, pages := w.connect(meta.FeaturePagesInsights)
	client := w.client(pages[0].Connection)

	_, _, err := client.Pages.Insights(w.ctx, "3001", meta.InsightsOptions{Metrics: []meta.Metric{{Name: "page_impressions"}}})
	var dep *meta.DeprecatedMetricError
	if errors.As(err, &dep) {
		fmt.Println("retired:", dep.Metric, "→", dep.Replacement)
	}
	in, _, err := client.Pages.Insights(w.ctx, "3001", meta.InsightsOptions{
		Metrics: []meta.Metric{{Name: "page_impressions", Fallbacks: []string{"page_media_view"}}}})
	if err != nil {
		panic(err)
	}
	fmt.Println("source:", in.Source())
	// Output:
	// retired: page_impressions → page_media_view
	// source: graph v26.0; page_media_view
}

// Publish an image to the Instagram account behind the Page: the
// publishing limit is checked, the container polled until FINISHED, then
// published.
func ExampleInstagramService_Publish() {
	w := newExampleWorld()
	defer w.close()
	_, pages := w.connect(meta.FeatureInstagramPublish)
	ig := pages[0].Instagram
	fmt.Println("instagram:", ig.DisplayName)
	client := w.client(*ig)
	m, _, err := client.Instagram.Publish(w.ctx, ig.AccountID, meta.MediaRequest{
		ImageURL: "https://cdn.example/bread.jpg", Caption: "Bread", PollInterval: time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Println("published:", m.ID != "")
	// Output:
	// instagram: @adasbakery
	// published: true
}

// Sync each kind of connection: the Facebook user's profile only, the
// Page's snapshot and posts with their insights.
func ExampleClient_Sync() {
	w := newExampleWorld()
	defer w.close()
	user, pages := w.connect(meta.FeaturePagesPublish, meta.FeaturePagesInsights)
	res, _, err := w.client(user).Sync(w.ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("user:", res.DisplayName, "snapshot:", res.Snapshot != nil)

	page := w.client(pages[0].Connection)
	if _, _, err := page.Pages.Publish(w.ctx, "3001", meta.PostRequest{Message: "Fresh bread"}); err != nil {
		panic(err)
	}
	res, _, err = page.Sync(w.ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("page followers:", res.Snapshot.Followers, "following:", res.Snapshot.Following)
	posts, err := w.store.Media(w.ctx, pages[0].Connection.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("posts:", len(posts), posts[0].Title)
	// Output:
	// user: Ada snapshot: false
	// page followers: 900 following: unknown
	// posts: 1 Fresh bread
}
