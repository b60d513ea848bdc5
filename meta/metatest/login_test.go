package metatest_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

func oauthConfig(srv *metatest.Server, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: appID, ClientSecret: appSecret, Endpoint: srv.Endpoint(),
		RedirectURL: redirect, Scopes: scopes,
	}
}

// login runs the dialog and returns the code from the redirect.
func login(t *testing.T, srv *metatest.Server, conf *oauth2.Config, c metatest.Consent, opts ...oauth2.AuthCodeOption) string {
	t.Helper()
	u, err := srv.Consent(conf.AuthCodeURL("xyz-state", opts...), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("state"); got != "xyz-state" {
		t.Fatalf("state = %q, want xyz-state", got)
	}
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("redirect %s has no code", u)
	}
	return code
}

func permissions(t *testing.T, srv *metatest.Server, token string) map[string]string {
	t.Helper()
	r := get(t, srv, "/me/permissions", token)
	wantOK(t, r)
	out := map[string]string{}
	for _, d := range r.data() {
		m := d.(map[string]any)
		out[m["permission"].(string)] = m["status"].(string)
	}
	return out
}

func TestLoginCodeFlow(t *testing.T) {
	srv := fixture(t)
	conf := oauthConfig(srv, "pages_show_list", "pages_manage_posts")
	code := login(t, srv, conf, metatest.Consent{UserID: user2ID})
	u, _ := url.Parse(conf.AuthCodeURL("s"))
	if u.Path != "/"+srv.Version()+"/dialog/oauth" {
		t.Errorf("dialog path = %q", u.Path)
	}
	tok, err := conf.Exchange(context.Background(), code)
	if err != nil {
		t.Fatalf("Exchange returned %v", err)
	}
	if tok.TokenType != "bearer" {
		t.Errorf("token_type = %q, want bearer", tok.TokenType)
	}
	if got := tok.Expiry.Sub(time.Now()); got < 50*time.Minute || got > 61*time.Minute {
		t.Errorf("short-lived token expires in %v, want about an hour", got)
	}
	client := conf.Client(context.Background(), tok)
	resp, err := client.Get(srv.GraphURL() + "/" + srv.Version() + "/me?fields=id,name")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /me with the bearer token: status %d", resp.StatusCode)
	}
	perms := permissions(t, srv, tok.AccessToken)
	for _, p := range []string{"public_profile", "pages_show_list", "pages_manage_posts"} {
		if perms[p] != "granted" {
			t.Errorf("permission %s = %q, want granted (all: %v)", p, perms[p], perms)
		}
	}
}

func TestCodeSingleUse(t *testing.T) {
	srv := fixture(t)
	conf := oauthConfig(srv, "pages_show_list")
	code := login(t, srv, conf, metatest.Consent{UserID: userID})
	ex := func() response {
		return get(t, srv, "/oauth/access_token", "", "client_id", appID, "client_secret", appSecret,
			"redirect_uri", redirect, "code", code)
	}
	first := ex()
	wantOK(t, first)
	if first.str("access_token") == "" || first.body["expires_in"] == nil {
		t.Fatalf("exchange body = %s", first.raw)
	}
	wantError(t, ex(), 100, 36009)
}

func TestCodeExchangeChecks(t *testing.T) {
	srv := fixture(t)
	conf := oauthConfig(srv, "email")
	code := login(t, srv, conf, metatest.Consent{UserID: userID})
	tests := []struct {
		name          string
		kv            []string
		code, subcode int
	}{
		{"redirect mismatch", []string{"client_id", appID, "client_secret", appSecret, "redirect_uri", redirect + "/x", "code", code}, 100, 36008},
		{"wrong secret", []string{"client_id", appID, "client_secret", "nope", "redirect_uri", redirect, "code", code}, 1, 0},
		{"unknown app", []string{"client_id", "999", "client_secret", appSecret, "redirect_uri", redirect, "code", code}, 101, 0},
		{"other app's code", []string{"client_id", otherApp, "client_secret", "other-secret", "redirect_uri", redirect, "code", code}, 100, 0},
		{"missing code", []string{"client_id", appID, "client_secret", appSecret, "redirect_uri", redirect}, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, srv, "/oauth/access_token", "", tt.kv...)
			wantError(t, r, tt.code, tt.subcode)
			if strings.Contains(r.raw, appSecret) || strings.Contains(r.raw, code) {
				t.Errorf("error body leaks a secret: %s", r.raw)
			}
		})
	}
	// None of the failures consumed the code.
	wantOK(t, get(t, srv, "/oauth/access_token", "", "client_id", appID, "client_secret", appSecret, "redirect_uri", redirect, "code", code))
}

func TestCodeExpires(t *testing.T) {
	srv := fixture(t, metatest.WithCodeLifetime(5*time.Minute))
	code := login(t, srv, oauthConfig(srv, "email"), metatest.Consent{UserID: userID})
	srv.Advance(5 * time.Minute)
	r := get(t, srv, "/oauth/access_token", "", "client_id", appID, "client_secret", appSecret, "redirect_uri", redirect, "code", code)
	wantError(t, r, 100, 36007)
}

func TestDeclinedPermissions(t *testing.T) {
	srv := fixture(t)
	conf := oauthConfig(srv, "pages_show_list", "pages_messaging", "instagram_basic")
	code := login(t, srv, conf, metatest.Consent{UserID: user2ID, Decline: []string{"pages_messaging"}})
	tok, err := conf.Exchange(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	perms := permissions(t, srv, tok.AccessToken)
	if perms["pages_messaging"] != "declined" || perms["instagram_basic"] != "granted" {
		t.Fatalf("permissions = %v, want pages_messaging declined, instagram_basic granted", perms)
	}

	// The dialog does not ask again for a declined permission...
	login(t, srv, conf, metatest.Consent{UserID: user2ID})
	if got := permissions(t, srv, tok.AccessToken)["pages_messaging"]; got != "declined" {
		t.Fatalf("after a second login without rerequest pages_messaging = %q, want declined", got)
	}
	// ...unless auth_type=rerequest.
	login(t, srv, conf, metatest.Consent{UserID: user2ID}, oauth2.SetAuthURLParam("auth_type", "rerequest"))
	if got := permissions(t, srv, tok.AccessToken)["pages_messaging"]; got != "granted" {
		t.Fatalf("after rerequest pages_messaging = %q, want granted", got)
	}
}

func TestRegisteredDeclinesAndGrantedScopes(t *testing.T) {
	srv := fixture(t, metatest.WithUser(metatest.User{ID: "2003", Declined: []string{"email"}}))
	conf := oauthConfig(srv, "email", "pages_show_list")
	u, err := srv.Consent(conf.AuthCodeURL("s", oauth2.SetAuthURLParam("response_type", "code granted_scopes")), metatest.Consent{UserID: "2003"})
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("denied_scopes") != "email" || !strings.Contains(q.Get("granted_scopes"), "pages_show_list") || q.Get("code") == "" {
		t.Fatalf("redirect query = %v", q)
	}
}

func TestConsentDeny(t *testing.T) {
	srv := fixture(t)
	u, err := srv.Consent(oauthConfig(srv, "email").AuthCodeURL("st"), metatest.Consent{UserID: userID, Deny: true})
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("error") != "access_denied" || q.Get("error_reason") != "user_denied" || q.Get("state") != "st" || q.Get("code") != "" {
		t.Fatalf("deny redirect = %s", u)
	}
	if !strings.HasPrefix(u.String(), redirect+"?") {
		t.Errorf("deny redirect %s does not go to the redirect URI", u)
	}
}

func TestConsentTokenResponseType(t *testing.T) {
	srv := fixture(t)
	u, err := srv.Consent(oauthConfig(srv, "email").AuthCodeURL("st", oauth2.SetAuthURLParam("response_type", "token")), metatest.Consent{UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	if frag.Get("access_token") == "" || frag.Get("state") != "st" || u.Query().Get("code") != "" {
		t.Fatalf("token redirect = %s", u)
	}
	wantOK(t, get(t, srv, "/me", frag.Get("access_token")))
}

func TestDialogValidation(t *testing.T) {
	srv := fixture(t)
	good := url.Values{"client_id": {appID}, "redirect_uri": {redirect}, "state": {"s"}, "scope": {"email"}}
	tests := []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"unknown app", func(v url.Values) { v.Set("client_id", "42") }, "Invalid App ID"},
		{"redirect not exact", func(v url.Values) { v.Set("redirect_uri", redirect+"?x=1") }, "URL blocked"},
		{"missing state", func(v url.Values) { v.Del("state") }, "state is required"},
		{"invalid scope", func(v url.Values) { v.Set("scope", "email,publish_actions") }, "Invalid Scopes: publish_actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := cloneValues(good)
			tt.change(v)
			_, err := srv.Consent(srv.DialogURL()+"?"+v.Encode(), metatest.Consent{UserID: userID})
			if !errors.Is(err, metatest.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Consent returned %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			r := do(t, srv, http.MethodGet, "/dialog/oauth", v)
			if r.status != http.StatusBadRequest || !strings.Contains(r.raw, strings.Split(tt.want, ":")[0]) {
				t.Fatalf("GET dialog: status %d body %s", r.status, r.raw)
			}
		})
	}
	if _, err := srv.Consent(srv.DialogURL()+"?"+good.Encode(), metatest.Consent{UserID: "404"}); !errors.Is(err, metatest.ErrNotFound) {
		t.Errorf("Consent for an unknown user returned %v, want ErrNotFound", err)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func TestDialogOverHTTP(t *testing.T) {
	srv := fixture(t)
	q := url.Values{"client_id": {appID}, "redirect_uri": {redirect}, "state": {"s1"}, "scope": {"pages_show_list,email"}}
	page := do(t, srv, http.MethodGet, "/dialog/oauth", q)
	if page.status != http.StatusOK || !strings.Contains(page.raw, "CRM is requesting access") || !strings.Contains(page.raw, `value="email"`) {
		t.Fatalf("dialog page: %d %s", page.status, page.raw)
	}
	form := cloneValues(q)
	form.Set("metatest_user", user2ID)
	form.Set("metatest_decision", "allow")
	form["metatest_grant"] = []string{"pages_show_list"} // email unticked
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(srv.DialogURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("POST dialog status = %d, want 302", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "s1" {
		t.Fatalf("Location = %s", loc)
	}
	tok, err := oauthConfig(srv).Exchange(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	if got := permissions(t, srv, tok.AccessToken)["email"]; got != "declined" {
		t.Errorf("email = %q, want declined", got)
	}
}

func TestLongLivedExchange(t *testing.T) {
	srv := fixture(t)
	short := userToken(t, srv, userID, metatest.ShortLived)
	r := get(t, srv, "/oauth/access_token", "", "grant_type", "fb_exchange_token", "client_id", appID,
		"client_secret", appSecret, "fb_exchange_token", short)
	wantOK(t, r)
	if r.str("token_type") != "bearer" || r.body["expires_in"].(float64) != (60*24*time.Hour).Seconds() {
		t.Fatalf("long-lived exchange = %s", r.raw)
	}
	long := r.str("access_token")
	srv.Advance(59 * 24 * time.Hour)
	wantOK(t, get(t, srv, "/me", long))
	wantError(t, get(t, srv, "/me", short), 190, 463)
	srv.Advance(24 * time.Hour)
	wantError(t, get(t, srv, "/me", long), 190, 463)

	// An expired token cannot be extended.
	r = get(t, srv, "/oauth/access_token", "", "grant_type", "fb_exchange_token", "client_id", appID,
		"client_secret", appSecret, "fb_exchange_token", long)
	wantError(t, r, 190, 463)
	// Another app cannot exchange it either.
	fresh := userToken(t, srv, userID, metatest.ShortLived)
	r = get(t, srv, "/oauth/access_token", "", "grant_type", "fb_exchange_token", "client_id", otherApp,
		"client_secret", "other-secret", "fb_exchange_token", fresh)
	wantError(t, r, 190, 467)
}

func TestShortLivedExpiryViaClock(t *testing.T) {
	srv := fixture(t, metatest.WithTokenLifetimes(2*time.Hour, 30*24*time.Hour))
	tok := userToken(t, srv, userID, metatest.ShortLived)
	srv.Advance(2*time.Hour - time.Second)
	wantOK(t, get(t, srv, "/me", tok))
	srv.Advance(time.Second)
	r := get(t, srv, "/me", tok)
	wantError(t, r, 190, 463)
	if !strings.Contains(r.errMessage(), "Session has expired") || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("expired token error = %q, WWW-Authenticate %q", r.errMessage(), r.header.Get("WWW-Authenticate"))
	}
}

func TestDebugToken(t *testing.T) {
	srv := fixture(t)
	appToken := appID + "|" + appSecret
	user := userToken(t, srv, userID, metatest.LongLived)
	page := pageToken(t, srv, userID, pageID)

	r := get(t, srv, "/debug_token", appToken, "input_token", user)
	wantOK(t, r)
	d := r.body["data"].(map[string]any)
	if d["app_id"] != float64(1001) || d["user_id"] != userID || d["type"] != "USER" || d["is_valid"] != true {
		t.Fatalf("debug_token(user) = %s", r.raw)
	}
	if want := t0.Add(60 * 24 * time.Hour).Unix(); int64(d["expires_at"].(float64)) != want {
		t.Errorf("expires_at = %v, want %d", d["expires_at"], want)
	}
	if !slices.Contains(toStrings(d["scopes"]), "pages_manage_posts") {
		t.Errorf("scopes = %v", d["scopes"])
	}

	r = get(t, srv, "/debug_token", appToken, "input_token", page)
	d = r.body["data"].(map[string]any)
	if d["type"] != "PAGE" || d["expires_at"] != float64(0) || d["profile_id"] != pageID {
		t.Fatalf("debug_token(long-lived page) = %s", r.raw)
	}

	// Client-credentials app token works as the viewer too.
	cc := get(t, srv, "/oauth/access_token", "", "grant_type", "client_credentials", "client_id", appID, "client_secret", appSecret)
	wantOK(t, cc)
	srv.Advance(61 * 24 * time.Hour)
	r = get(t, srv, "/debug_token", cc.str("access_token"), "input_token", user)
	d = r.body["data"].(map[string]any)
	if d["is_valid"] != false || d["error"].(map[string]any)["subcode"] != float64(463) {
		t.Fatalf("debug_token(expired) = %s", r.raw)
	}

	wantError(t, get(t, srv, "/debug_token", "1002|other-secret", "input_token", page), 100, 0)
	r = get(t, srv, "/debug_token", appToken, "input_token", "garbage")
	if d := r.body["data"].(map[string]any); d["is_valid"] != false {
		t.Fatalf("debug_token(garbage) = %s", r.raw)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestRevokePermissions(t *testing.T) {
	srv := fixture(t)
	tok := userToken(t, srv, userID, metatest.LongLived)
	page := pageToken(t, srv, userID, pageID)

	r := do(t, srv, http.MethodDelete, "/me/permissions/pages_messaging", vals(tok))
	wantOK(t, r)
	if r.body["success"] != true {
		t.Fatalf("DELETE one permission = %s", r.raw)
	}
	if got := permissions(t, srv, tok)["pages_messaging"]; got != "declined" {
		t.Fatalf("after revoking one permission it is %q, want declined", got)
	}

	wantOK(t, do(t, srv, http.MethodDelete, "/me/permissions", vals(tok)))
	wantError(t, get(t, srv, "/me", tok), 190, 458)
	wantError(t, get(t, srv, "/me", page), 190, 458)

	// Logging in again yields working tokens; the old ones stay dead.
	fresh := userToken(t, srv, userID, metatest.ShortLived)
	wantOK(t, get(t, srv, "/me", fresh))
	wantError(t, get(t, srv, "/me", tok), 190, 458)
}

func TestPasswordChangeInvalidatesSessions(t *testing.T) {
	srv := fixture(t)
	tok := userToken(t, srv, userID, metatest.LongLived)
	page := pageToken(t, srv, userID, pageID)
	if err := srv.ChangePassword(userID); err != nil {
		t.Fatal(err)
	}
	wantError(t, get(t, srv, "/me", tok), 190, 460)
	wantError(t, get(t, srv, "/me", page), 190, 460)
	wantOK(t, get(t, srv, "/me", userToken(t, srv, userID, metatest.ShortLived)))
}

func TestTokenErrors(t *testing.T) {
	srv := fixture(t)
	wantError(t, get(t, srv, "/me", ""), 104, 0)
	r := get(t, srv, "/me", "EAAnotatoken")
	wantError(t, r, 190, 0)
	if r.status != http.StatusBadRequest || r.body["error"].(map[string]any)["type"] != "OAuthException" {
		t.Errorf("bad token: status %d body %s", r.status, r.raw)
	}
	wantError(t, get(t, srv, "/me", appID+"|wrong-secret"), 190, 0)
	wantError(t, get(t, srv, "/me", appID+"|"+appSecret), 2500, 0)
}
