package metatest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// exampleServer starts an emulator with a fixed clock for the examples.
func exampleServer(opts ...metatest.Option) *metatest.Server {
	base := []metatest.Option{
		metatest.WithClock(func() time.Time { return time.Date(2026, time.September, 1, 12, 0, 0, 0, time.UTC) }),
		metatest.WithApp(metatest.App{ID: "1001", Secret: "s3cret", Name: "CRM",
			RedirectURIs: []string{"https://crm.example/callback"}, VerifyToken: "verify-me"}),
		metatest.WithUser(metatest.User{ID: "2001", Name: "Ada"}),
		metatest.WithPage(metatest.Page{ID: "3001", Name: "Ada's Bakery", Category: "Bakery",
			Tasks: map[string][]string{"2001": metatest.AllTasks()}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: "17841400000000001", PageID: "3001", Username: "adasbakery"}),
	}
	srv, err := metatest.New(append(base, opts...)...)
	if err != nil {
		panic(err)
	}
	return srv
}

func graphGet(client *http.Client, rawURL string) map[string]any {
	resp, err := client.Get(rawURL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// A full Facebook Login with golang.org/x/oauth2: the dialog, the person's
// consent, the code exchange and a call listing the person's Pages.
func ExampleServer_Consent() {
	srv := exampleServer()
	defer srv.Close()
	ctx := context.Background()

	conf := &oauth2.Config{
		ClientID: "1001", ClientSecret: "s3cret", Endpoint: srv.Endpoint(),
		RedirectURL: "https://crm.example/callback",
		Scopes:      []string{"pages_show_list", "pages_manage_posts", "pages_messaging"},
	}
	redirect, err := srv.Consent(conf.AuthCodeURL("state-123"), metatest.Consent{
		UserID: "2001", Decline: []string{"pages_messaging"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("state:", redirect.Query().Get("state"))

	tok, err := conf.Exchange(ctx, redirect.Query().Get("code"))
	if err != nil {
		panic(err)
	}
	client := conf.Client(ctx, tok)
	base := srv.GraphURL() + "/" + srv.Version()
	for _, p := range graphGet(client, base+"/me/permissions")["data"].([]any) {
		m := p.(map[string]any)
		fmt.Println(m["permission"], m["status"])
	}
	for _, p := range graphGet(client, base+"/me/accounts")["data"].([]any) {
		m := p.(map[string]any)
		fmt.Println("page:", m["name"], "token issued:", m["access_token"] != "")
	}
	// Output:
	// state: state-123
	// pages_manage_posts granted
	// pages_messaging declined
	// pages_show_list granted
	// public_profile granted
	// page: Ada's Bakery token issued: true
}

// Tokens expire with the emulator's clock, not the wall clock.
func ExampleServer_Advance() {
	srv := exampleServer()
	defer srv.Close()
	tok, _ := srv.UserToken("1001", "2001", metatest.ShortLived)
	me := srv.GraphURL() + "/" + srv.Version() + "/me?access_token=" + url.QueryEscape(tok)

	fmt.Println(graphGet(http.DefaultClient, me)["name"])
	srv.Advance(time.Hour)
	e := graphGet(http.DefaultClient, me)["error"].(map[string]any)
	fmt.Println(e["code"], e["error_subcode"])
	// Output:
	// Ada
	// 190 463
}

// Instagram containers stay IN_PROGRESS until the clock moves past their
// processing time.
func ExampleServer_FinishContainer() {
	srv := exampleServer(metatest.WithUser(metatest.User{ID: "2002", Granted: []string{
		"instagram_basic", "instagram_content_publish", "pages_read_engagement",
	}}))
	defer srv.Close()
	_ = srv.AddPage(metatest.Page{ID: "3002", Tasks: map[string][]string{"2002": metatest.AllTasks()}})
	_ = srv.AddInstagramAccount(metatest.InstagramAccount{ID: "17841400000000002", PageID: "3002"})
	tok, _ := srv.UserToken("1001", "2002", metatest.LongLived)
	base := srv.GraphURL() + "/" + srv.Version()

	resp, _ := http.PostForm(base+"/17841400000000002/media", url.Values{
		"access_token": {tok}, "image_url": {"https://cdn.example/bread.jpg"}, "caption": {"Rye"},
	})
	var created struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	statusURL := base + "/" + created.ID + "?fields=status_code&access_token=" + url.QueryEscape(tok)
	fmt.Println(graphGet(http.DefaultClient, statusURL)["status_code"])
	_ = srv.FinishContainer(created.ID) // or srv.Advance(5 * time.Second)
	fmt.Println(graphGet(http.DefaultClient, statusURL)["status_code"])
	// Output:
	// IN_PROGRESS
	// FINISHED
}

// Deliver a signed Messenger webhook to an endpoint under test, then
// deliver it again as Meta's retries do.
func ExampleServer_SendWebhook() {
	srv := exampleServer()
	defer srv.Close()
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ok := r.Header.Get("X-Hub-Signature-256") == metatest.SignPayload("s3cret", body)
		fmt.Println("signature valid:", ok, "bytes:", len(body) > 0)
	}))
	defer endpoint.Close()

	d, err := srv.SendWebhook(context.Background(), "1001", endpoint.URL,
		metatest.TextMessage("3001", "7001", "Are you open on Sunday?"))
	if err != nil {
		panic(err)
	}
	_ = d.Resend(context.Background())
	// Output:
	// signature valid: true bytes: true
	// signature valid: true bytes: true
}

// Make the next call to an endpoint fail, then check the request log.
func ExampleServer_InjectFault() {
	srv := exampleServer()
	defer srv.Close()
	_ = srv.InjectFault(metatest.Fault{Path: "/me/accounts", Count: 1, Code: 2})
	tok, _ := srv.UserToken("1001", "2001", metatest.LongLived)
	u := srv.GraphURL() + "/" + srv.Version() + "/me/accounts?access_token=" + url.QueryEscape(tok)

	e := graphGet(http.DefaultClient, u)["error"].(map[string]any)
	fmt.Println(e["code"], e["is_transient"])
	fmt.Println(len(graphGet(http.DefaultClient, u)["data"].([]any)))
	for _, r := range srv.Requests() {
		fmt.Println(r.Method, r.Path, r.Query.Get("access_token"))
	}
	// Output:
	// 2 true
	// 0
	// GET /me/accounts REDACTED
	// GET /me/accounts REDACTED
}

// Build the signed_request Meta posts to deauthorize and data deletion
// callbacks.
func ExampleServer_SignedRequest() {
	srv := exampleServer()
	defer srv.Close()
	sr, _ := srv.SignedRequest("1001", "2001")
	_, payload, _ := strings.Cut(sr, ".")
	fmt.Println(len(strings.Split(sr, ".")), payload != "")
	// Output:
	// 2 true
}
