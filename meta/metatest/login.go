package metatest

import (
	"crypto/hmac"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func builtinPermissions() []string {
	return []string{
		"public_profile", "email",
		"pages_show_list", "pages_read_engagement", "pages_read_user_engagement",
		"pages_manage_posts", "pages_manage_metadata", "pages_manage_engagement",
		"pages_messaging", "read_insights", "publish_video", "business_management",
		"instagram_basic", "instagram_content_publish", "instagram_manage_insights",
		"instagram_manage_comments", "instagram_manage_messages",
		"ads_management", "ads_read",
	}
}

func (s *Server) knownPermission(p string) bool { return s.permissions[p] }

// Consent is what the simulated user does in the login dialog.
type Consent struct {
	UserID string // required: who logs in
	// Decline lists requested permissions the user unticks; the user's
	// registered User.Declined are declined as well.
	Decline []string
	// Deny cancels the dialog: the redirect carries error=access_denied.
	Deny bool
}

// dialogRequest is a validated login dialog request.
type dialogRequest struct {
	app          *app
	redirectURI  string
	state        string
	scopes       []string
	responseType map[string]bool
	rerequest    bool
}

// parseDialog validates the dialog parameters; the error text is shown to
// the user (never a secret).
func (s *Server) parseDialog(q url.Values) (*dialogRequest, string) {
	d := &dialogRequest{responseType: map[string]bool{}}
	clientID := q.Get("client_id")
	if clientID == "" {
		return nil, "The parameter client_id is required."
	}
	d.app = s.apps[clientID]
	if d.app == nil {
		return nil, "Invalid App ID: the app " + strconv.Quote(clientID) + " does not exist."
	}
	d.redirectURI = q.Get("redirect_uri")
	if d.redirectURI == "" {
		return nil, "The parameter redirect_uri is required."
	}
	if !slices.Contains(d.app.RedirectURIs, d.redirectURI) {
		return nil, "URL blocked: This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app domains as Valid OAuth Redirect URIs."
	}
	d.state = q.Get("state")
	if d.state == "" {
		return nil, "The parameter state is required."
	}
	rt := q.Get("response_type")
	if rt == "" {
		rt = "code"
	}
	for _, p := range strings.FieldsFunc(rt, func(r rune) bool { return r == ' ' || r == ',' || r == '+' }) {
		switch p {
		case "code", "token", "granted_scopes":
			d.responseType[p] = true
		default:
			return nil, "Invalid response_type " + strconv.Quote(p) + "."
		}
	}
	if !d.responseType["code"] && !d.responseType["token"] {
		d.responseType["code"] = true
	}
	var invalidScopes []string
	for _, p := range strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ' ' || r == ',' }) {
		if !s.knownPermission(p) {
			invalidScopes = append(invalidScopes, p)
			continue
		}
		if !slices.Contains(d.scopes, p) {
			d.scopes = append(d.scopes, p)
		}
	}
	if len(invalidScopes) > 0 {
		return nil, "Invalid Scopes: " + strings.Join(invalidScopes, ", ") + ". This message is only shown to developers."
	}
	d.rerequest = q.Get("auth_type") == "rerequest"
	return d, ""
}

// Consent simulates a person in the login dialog: it takes the dialog URL
// the client built (for example oauth2.Config.AuthCodeURL), validates it as
// the dialog does, applies the decision and returns the URL Meta would
// redirect the browser to: redirect_uri with code and state, error
// parameters on Deny, or a fragment with access_token for
// response_type=token. Declined permissions are recorded; a permission
// declined earlier is not asked again unless auth_type=rerequest.
func (s *Server) Consent(dialogURL string, c Consent) (*url.URL, error) {
	u, err := url.Parse(dialogURL)
	if err != nil {
		return nil, invalid("Consent: dialog URL: %v", err)
	}
	version, rest := splitVersion(u.Path)
	if rest != "/dialog/oauth" {
		return nil, invalid("Consent: %q is not a login dialog URL", u.Path)
	}
	if gerr := s.versionError(version, rest); gerr != nil {
		return nil, invalid("Consent: %s", gerr.Message)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, problem := s.parseDialog(u.Query())
	if problem != "" {
		return nil, invalid("Consent: dialog: %s", problem)
	}
	return s.decide(d, c)
}

// decide applies a consent decision; the caller holds s.mu.
func (s *Server) decide(d *dialogRequest, c Consent) (*url.URL, error) {
	usr := s.users[c.UserID]
	if usr == nil {
		return nil, fmt.Errorf("metatest: Consent: user %q: %w", c.UserID, ErrNotFound)
	}
	target, err := url.Parse(d.redirectURI)
	if err != nil {
		return nil, invalid("Consent: redirect_uri: %v", err)
	}
	q := target.Query()
	if c.Deny {
		q.Set("error_reason", "user_denied")
		q.Set("error", "access_denied")
		q.Set("error_description", "Permissions error.")
		q.Set("state", d.state)
		target.RawQuery = q.Encode()
		return target, nil
	}
	g := s.grantFor(d.app.ID, usr.ID)
	g.installed = true
	g.perms["public_profile"] = "granted"
	declined := append(slices.Clone(c.Decline), usr.Declined...)
	for _, p := range d.scopes {
		switch {
		case p == "public_profile":
		case g.perms[p] == "declined" && !d.rerequest:
			// The dialog does not ask again for a declined permission.
		case slices.Contains(declined, p):
			g.perms[p] = "declined"
		default:
			g.perms[p] = "granted"
		}
	}
	out := url.Values{}
	if d.responseType["granted_scopes"] {
		var granted, denied []string
		for p, st := range g.perms {
			if st == "granted" {
				granted = append(granted, p)
			} else {
				denied = append(denied, p)
			}
		}
		sort.Strings(granted)
		sort.Strings(denied)
		out.Set("granted_scopes", strings.Join(granted, ","))
		out.Set("denied_scopes", strings.Join(denied, ","))
	}
	if d.responseType["code"] {
		code := randomString("AQ")
		s.codes[code] = &authCode{
			appID: d.app.ID, userID: usr.ID, redirectURI: d.redirectURI,
			expires: s.nowLocked().Add(s.cfg.codeTTL),
		}
		out.Set("code", code)
	}
	out.Set("state", d.state)
	if d.responseType["token"] {
		t := s.issueUserToken(d.app.ID, usr.ID, ShortLived)
		out.Set("access_token", t.value)
		out.Set("expires_in", strconv.Itoa(int(s.cfg.shortTTL.Seconds())))
		target.Fragment = out.Encode()
		return target, nil
	}
	for k, vs := range out {
		q[k] = vs
	}
	target.RawQuery = q.Encode()
	return target, nil
}

var dialogPage = template.Must(template.New("dialog").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Log in with Facebook (metatest)</title></head>
<body>
<h1>{{.App}} is requesting access</h1>
{{if .Problem}}<p role="alert">{{.Problem}}</p>{{else}}
<form method="post">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}
<label>Continue as <select name="metatest_user">{{range .Users}}<option value="{{.ID}}">{{.Name}}</option>{{end}}</select></label>
<fieldset><legend>Permissions</legend>
{{range .Scopes}}<label><input type="checkbox" name="metatest_grant" value="{{.}}" checked> {{.}}</label><br>
{{end}}</fieldset>
<button name="metatest_decision" value="allow">Continue</button>
<button name="metatest_decision" value="deny">Cancel</button>
</form>{{end}}
</body></html>`))

// serveDialog renders the login dialog (GET) and applies the person's
// decision (POST), redirecting like Meta does.
func (s *Server) serveDialog(c *call) {
	s.mu.Lock()
	d, problem := s.parseDialog(c.params)
	if c.method == http.MethodPost && problem == "" {
		uid := c.params.Get("metatest_user")
		granted := c.params["metatest_grant"]
		var decline []string
		for _, p := range d.scopes {
			if !slices.Contains(granted, p) {
				decline = append(decline, p)
			}
		}
		target, err := s.decide(d, Consent{UserID: uid, Decline: decline, Deny: c.params.Get("metatest_decision") == "deny"})
		s.mu.Unlock()
		if err != nil {
			http.Error(c.w, "metatest: unknown user", http.StatusBadRequest)
			return
		}
		http.Redirect(c.w, c.r, target.String(), http.StatusFound)
		return
	}
	type option struct{ ID, Name string }
	var users []option
	for _, u := range s.users {
		users = append(users, option{u.ID, u.Name})
	}
	sort.Slice(users, func(i, j int) bool { return users[i].ID < users[j].ID })
	data := struct {
		App     string
		Problem string
		Params  url.Values
		Users   []option
		Scopes  []string
	}{App: "An app", Problem: problem, Users: users}
	if d != nil {
		data.App = d.app.Name
		data.Scopes = d.scopes
		data.Params = url.Values{}
		for _, k := range []string{"client_id", "redirect_uri", "state", "scope", "response_type", "auth_type"} {
			if v := c.params.Get(k); v != "" {
				data.Params.Set(k, v)
			}
		}
	}
	s.mu.Unlock()
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if problem != "" {
		c.w.WriteHeader(http.StatusBadRequest)
	}
	_ = dialogPage.Execute(c.w, data)
}

// handleAccessToken serves /oauth/access_token: the code exchange, the
// long-lived token exchange and client credentials.
func (s *Server) handleAccessToken(c *call) result {
	clientID := c.param("client_id")
	if clientID == "" {
		return fail(newErr(typeOAuth, 101, 0, "Missing client_id parameter."))
	}
	a := s.apps[clientID]
	if a == nil {
		return fail(newErr(typeOAuth, 101, 0, "Error validating application. Invalid application ID."))
	}
	secret := c.param("client_secret")
	if secret == "" {
		return fail(newErr(typeOAuth, 1, 0, "Missing client_secret parameter."))
	}
	if !hmac.Equal([]byte(secret), []byte(a.Secret)) {
		return fail(newErr(typeOAuth, 1, 0, "Error validating client secret."))
	}
	switch gt := c.param("grant_type"); gt {
	case "", "authorization_code":
		return s.exchangeCode(c, a)
	case "fb_exchange_token":
		return s.exchangeLongLived(c, a)
	case "client_credentials":
		t := &token{value: a.ID + "|" + randomString(""), kind: kindApp, appID: a.ID, issued: s.nowLocked()}
		s.tokens[t.value] = t
		return ok(map[string]any{"access_token": t.value, "token_type": "bearer"})
	default:
		return fail(errParam("Unsupported grant_type: " + strconv.Quote(gt)))
	}
}

func (s *Server) exchangeCode(c *call, a *app) result {
	redirect := c.param("redirect_uri")
	if redirect == "" {
		return fail(errParam("Missing redirect_uri parameter."))
	}
	raw := c.param("code")
	if raw == "" {
		return fail(errParam("Missing code parameter."))
	}
	code := s.codes[raw]
	if code == nil || code.appID != a.ID {
		return fail(newErr(typeOAuth, 100, 0, "Invalid verification code format."))
	}
	if code.used {
		return fail(newErr(typeOAuth, 100, 36009, "This authorization code has been used."))
	}
	if !s.nowLocked().Before(code.expires) {
		return fail(newErr(typeOAuth, 100, 36007, "This authorization code has expired."))
	}
	if redirect != code.redirectURI {
		return fail(newErr(typeOAuth, 100, 36008, "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request"))
	}
	code.used = true
	t := s.issueUserToken(a.ID, code.userID, ShortLived)
	return ok(map[string]any{
		"access_token": t.value, "token_type": "bearer",
		"expires_in": int(t.expires.Sub(t.issued).Seconds()),
	})
}

func (s *Server) exchangeLongLived(c *call, a *app) result {
	raw := c.param("fb_exchange_token")
	if raw == "" {
		return fail(errParam("(#100) The parameter fb_exchange_token is required"))
	}
	t := s.tokens[raw]
	if t == nil || t.kind != kindUser {
		return fail(errBadToken())
	}
	if t.appID != a.ID {
		return fail(errTokenOtherApp())
	}
	if gerr := s.tokenProblem(t); gerr != nil {
		return fail(gerr)
	}
	lt := s.issueUserToken(a.ID, t.userID, LongLived)
	return ok(map[string]any{
		"access_token": lt.value, "token_type": "bearer",
		"expires_in": int(lt.expires.Sub(lt.issued).Seconds()),
	})
}

// handleDebugToken serves /debug_token.
func (s *Server) handleDebugToken(c *call) result {
	viewer := s.lookupToken(accessToken(c))
	if viewer == nil {
		if accessToken(c) == "" {
			return fail(errTokenRequired())
		}
		return fail(errBadToken())
	}
	if gerr := s.tokenProblem(viewer); gerr != nil {
		return fail(gerr)
	}
	raw := c.param("input_token")
	if raw == "" {
		return fail(errParam("(#100) The parameter input_token is required"))
	}
	in := s.lookupToken(raw)
	if in == nil {
		return ok(map[string]any{"data": map[string]any{
			"error":    map[string]any{"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
			"is_valid": false,
			"scopes":   []string{},
		}})
	}
	if in.appID != viewer.appID {
		return fail(errParam("(#100) The App_id in the input_token did not match the Viewing App"))
	}
	a := s.apps[in.appID]
	data := map[string]any{
		"app_id":      appIDJSON(in.appID),
		"type":        in.kind.String(),
		"application": a.Name,
		"is_valid":    true,
	}
	if in.kind == kindApp {
		return ok(map[string]any{"data": data})
	}
	g := s.grantFor(in.appID, in.userID)
	var scopes []string
	for p, st := range g.perms {
		if st == "granted" {
			scopes = append(scopes, p)
		}
	}
	sort.Strings(scopes)
	if scopes == nil {
		scopes = []string{}
	}
	data["scopes"] = scopes
	data["user_id"] = in.userID
	data["issued_at"] = in.issued.Unix()
	data["data_access_expires_at"] = in.issued.Add(90 * 24 * time.Hour).Unix()
	if in.expires.IsZero() {
		data["expires_at"] = 0
	} else {
		data["expires_at"] = in.expires.Unix()
	}
	if in.kind == kindPage {
		data["profile_id"] = in.pageID
	}
	if gerr := s.tokenProblem(in); gerr != nil {
		data["is_valid"] = false
		data["error"] = map[string]any{"code": gerr.Code, "message": gerr.Message, "subcode": gerr.Subcode}
	}
	return ok(map[string]any{"data": data})
}

// appIDJSON renders a numeric app id as a JSON number, as Meta's
// debug_token example does, and any other id as a string.
func appIDJSON(id string) any {
	if n, err := strconv.ParseUint(id, 10, 64); err == nil && n < 1<<53 {
		return n
	}
	return id
}

// handlePermissions serves GET and DELETE on /{user}/permissions[/{name}].
func (s *Server) handlePermissions(c *call, userID, name string) result {
	if c.tok.kind == kindUser && c.tok.userID != userID {
		return fail(errNoObject(strings.ToLower(c.method), userID))
	}
	if c.tok.kind == kindPage {
		return fail(errNoObject(strings.ToLower(c.method), userID))
	}
	if s.users[userID] == nil {
		return fail(errNoObject(strings.ToLower(c.method), userID))
	}
	g := s.grantFor(c.tok.appID, userID)
	switch c.method {
	case http.MethodGet:
		var names []string
		for p := range g.perms {
			if name == "" || p == name {
				names = append(names, p)
			}
		}
		sort.Strings(names)
		data := []map[string]string{}
		if g.installed {
			for _, p := range names {
				data = append(data, map[string]string{"permission": p, "status": g.perms[p]})
			}
		}
		return ok(map[string]any{"data": data})
	case http.MethodDelete:
		if name == "" {
			s.revoke(c.tok.appID, userID)
			return success()
		}
		if name == "public_profile" {
			return fail(errParam("(#100) Cannot revoke the public_profile permission"))
		}
		if g.perms[name] == "granted" {
			g.perms[name] = "declined"
		}
		return success()
	}
	return fail(errNoObject(strings.ToLower(c.method), userID))
}

// revoke de-authorizes the app for the user; the caller holds s.mu.
func (s *Server) revoke(appID, userID string) {
	g := s.grantFor(appID, userID)
	g.installed = false
	g.gen++
	g.perms = map[string]string{}
}
