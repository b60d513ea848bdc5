package meta_test

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// connectCreator runs Instagram Login for a creator without a Facebook
// Page and returns a client on the new connection.
func (w *exampleWorld) connectCreator(features ...string) (social.Connection, *meta.Client) {
	if err := w.srv.AddInstagramAccount(metatest.InstagramAccount{ID: "17841400000000077", Username: "ada.creates", FollowersCount: 5400}); err != nil {
		panic(err)
	}
	cfg := w.cfg
	cfg.InstagramGraphURL, cfg.InstagramLoginURL = w.srv.InstagramGraphURL(), w.srv.InstagramLoginURL()
	prov, err := meta.NewInstagramProvider(cfg, meta.WithHTTPClient(w.srv.Client()))
	if err != nil {
		panic(err)
	}
	flow, err := w.store.NewFlow(prov, social.FlowConfig{Features: features, Purposes: []string{"analytics"}})
	if err != nil {
		panic(err)
	}
	authURL, err := flow.Begin(w.ctx)
	if err != nil {
		panic(err)
	}
	// The creator consents in Instagram's authorization window.
	redirect, err := w.srv.InstagramConsent(authURL, metatest.InstagramConsent{AccountID: "17841400000000077"})
	if err != nil {
		panic(err)
	}
	conn, err := flow.Complete(w.ctx, redirect.Query())
	if err != nil {
		panic(err)
	}
	sess, err := w.store.Session(w.ctx, conn.ID, prov)
	if err != nil {
		panic(err)
	}
	client, err := meta.New(cfg, meta.WithSession(sess), meta.WithHTTPClient(w.srv.Client()))
	if err != nil {
		panic(err)
	}
	return conn, client
}

// Connect a creator's Instagram account with Instagram Login (no
// Facebook Page), read the profile; a Page call fails before any request.
func ExampleInstagramProvider() {
	w := newExampleWorld()
	defer w.close()
	conn, client := w.connectCreator(meta.FeatureInstagram)
	fmt.Println(conn.Platform, conn.DisplayName, client.Flavour())
	p, _, err := client.Instagram.Profile(w.ctx, conn.AccountID)
	if err != nil {
		panic(err)
	}
	fmt.Println("followers:", p.FollowersCount)
	_, _, err = client.Pages.List(w.ctx, meta.ListOptions{})
	fmt.Println("pages:", errors.Is(err, meta.ErrFlavour))
	// Output:
	// instagram @ada.creates instagram_login
	// followers: 5400
	// pages: true
}

// Read a creator's follower demographics by country and gender.
func ExampleInstagramService_Demographics() {
	w := newExampleWorld()
	defer w.close()
	conn, client := w.connectCreator(meta.FeatureInstagramInsights)
	_ = w.srv.SetDemographics(conn.AccountID, metatest.MetricFollowerDemographics, "country", map[string]int{"US": 3100, "DE": 900})
	_ = w.srv.SetDemographics(conn.AccountID, metatest.MetricFollowerDemographics, "gender", map[string]int{"F": 3000, "M": 2100})
	d, _, err := client.Instagram.Demographics(w.ctx, conn.AccountID, meta.DemographicsOptions{
		Breakdowns: []meta.Breakdown{meta.BreakdownCountry, meta.BreakdownGender}})
	if err != nil {
		panic(err)
	}
	fmt.Println(d.By[meta.BreakdownCountry])
	fmt.Println(d.By[meta.BreakdownGender])
	fmt.Println(d.Source())
	// Output:
	// [{US 3100} {DE 900}]
	// [{F 3000} {M 2100}]
	// graph v26.0; follower_demographics; timeframe=this_month; breakdowns=gender,country
}

// Publish a local video file as a reel with a resumable upload, reporting
// progress.
func ExampleInstagramService_PublishVideo() {
	w := newExampleWorld()
	defer w.close()
	_, pages := w.connect(meta.FeatureInstagramPublish)
	ig := pages[0].Instagram
	cfg := w.cfg
	cfg.UploadURL = w.srv.UploadURL()
	sess, err := w.store.Session(w.ctx, ig.ID, w.prov)
	if err != nil {
		panic(err)
	}
	client, err := meta.New(cfg, meta.WithSession(sess), meta.WithHTTPClient(w.srv.Client()))
	if err != nil {
		panic(err)
	}
	file := bytes.NewReader(make([]byte, 3<<20))
	m, _, err := client.Instagram.PublishVideo(w.ctx, ig.AccountID, meta.VideoUpload{
		Caption: "In the bakery", File: file, Size: file.Size(), ChunkSize: 1 << 20, PollInterval: time.Second,
		Progress: func(sent, total int64) { fmt.Printf("%d of %d MiB\n", sent>>20, total>>20) }})
	if err != nil {
		panic(err)
	}
	fmt.Println("published:", m.ID != "")
	// Output:
	// 1 of 3 MiB
	// 2 of 3 MiB
	// 3 of 3 MiB
	// published: true
}
