package tiktoktest

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

// ConsentOptions is what the simulated user does on the consent page. The
// zero value approves every requested scope.
type ConsentOptions struct {
	// Decline lists requested scopes the user switches off. user.info.basic
	// cannot be declined.
	Decline []string
	// Deny refuses the whole request; the redirect carries
	// error=access_denied.
	Deny bool
}

type authRequest struct {
	app         *App
	redirectURI string
	state       string
	scopes      []string
	challenge   string
}

// parseAuthorizeLocked validates authorization request parameters. A
// non-nil page error means TikTok shows an error page (nothing can be
// redirected safely); a non-nil redirect error is sent back to the
// redirect_uri.
func (s *Server) parseAuthorizeLocked(q url.Values) (req authRequest, redirectErr, pageErr *AuthorizeError) {
	app, ok := s.apps[q.Get("client_key")]
	if !ok {
		return req, nil, &AuthorizeError{Code: oauthInvalidClient, Description: "client_key is unknown."}
	}
	req.app = app
	req.redirectURI = q.Get("redirect_uri")
	if req.redirectURI == "" {
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "redirect_uri is missing."}
	}
	if !slices.ContainsFunc(app.RedirectURIs, func(reg string) bool { return redirectMatches(reg, req.redirectURI) }) {
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "redirect_uri is not registered for this app."}
	}
	req.state = q.Get("state")
	req.challenge = q.Get("code_challenge")
	method := q.Get("code_challenge_method")
	switch {
	case req.challenge == "" && !app.PKCEOptional:
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "code_challenge is required."}
	case req.challenge == "" && method != "":
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "code_challenge_method without code_challenge."}
	case req.challenge != "" && method != "S256":
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "code_challenge_method must be S256."}
	case req.challenge != "" && !validChallenge(req.challenge, app.Challenge):
		return req, nil, &AuthorizeError{Code: oauthInvalidRequest, Description: "code_challenge is malformed for this app's platform."}
	}
	if rt := q.Get("response_type"); rt != "code" {
		return req, &AuthorizeError{Code: oauthUnsupportedResponse, Description: "response_type must be code."}, nil
	}
	req.scopes = parseScopes(q.Get("scope"))
	if len(req.scopes) == 0 {
		return req, &AuthorizeError{Code: oauthInvalidScope, Description: "scope is missing."}, nil
	}
	for _, sc := range req.scopes {
		if !slices.Contains(app.Scopes, sc) {
			return req, &AuthorizeError{Code: oauthInvalidScope, Description: "The app is not approved for a requested scope."}, nil
		}
	}
	return req, nil, nil
}

func withParams(base string, params url.Values) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func errorRedirect(req authRequest, e *AuthorizeError) string {
	v := url.Values{"error": {e.Code}, "error_description": {e.Description}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	return withParams(req.redirectURI, v)
}

// Consent plays the user who opens authorizeURL (which must start with
// s.AuthorizeURL), is signed in as openID, and answers the consent page as
// opts says. It returns the URL TikTok redirects the browser to: the
// redirect_uri with code, scopes (the granted ones, comma-separated) and
// state, or with error and error_description. When TikTok would show an
// error page instead of redirecting, Consent returns an *AuthorizeError.
func (s *Server) Consent(authorizeURL, openID string, opts ConsentOptions) (string, error) {
	if !strings.HasPrefix(authorizeURL, s.authorizeURL) {
		return "", fmt.Errorf("tiktoktest: Consent: URL does not start with %s", s.authorizeURL)
	}
	u, err := url.Parse(authorizeURL)
	if err != nil {
		return "", fmt.Errorf("tiktoktest: Consent: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.consentLocked(u.Query(), openID, opts)
}

func (s *Server) consentLocked(q url.Values, openID string, opts ConsentOptions) (string, error) {
	req, redirectErr, pageErr := s.parseAuthorizeLocked(q)
	if pageErr != nil {
		return "", pageErr
	}
	if redirectErr != nil {
		return errorRedirect(req, redirectErr), nil
	}
	if _, ok := s.users[openID]; !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownUser, openID)
	}
	if opts.Deny {
		return errorRedirect(req, &AuthorizeError{Code: oauthAccessDenied, Description: "The user denied the authorization request."}), nil
	}
	for _, d := range opts.Decline {
		if d == "user.info.basic" {
			return "", fmt.Errorf("tiktoktest: Consent: user.info.basic cannot be declined")
		}
	}
	var granted []string
	for _, sc := range req.scopes {
		if !slices.Contains(opts.Decline, sc) {
			granted = append(granted, sc)
		}
	}
	if len(granted) == 0 {
		return errorRedirect(req, &AuthorizeError{Code: oauthAccessDenied, Description: "The user granted no scope."}), nil
	}
	code := newCode()
	s.codes[code] = &authCode{
		clientKey:   req.app.ClientKey,
		openID:      openID,
		redirectURI: req.redirectURI,
		scopes:      granted,
		challenge:   req.challenge,
		encoding:    req.app.Challenge,
		expires:     s.Now().Add(s.cfg.codeTTL),

		allRequested: len(granted) == len(req.scopes),
	}
	v := url.Values{"code": {code}, "scopes": {strings.Join(granted, ",")}}
	if req.state != "" {
		v.Set("state", req.state)
	}
	return withParams(req.redirectURI, v), nil
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize {{.ClientKey}} (TikTok emulator)</title></head>
<body>
<h1>{{.ClientKey}} wants to access your TikTok account</h1>
<form method="post" action="{{.Action}}">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p><label>Sign in as <select name="open_id">{{range .Users}}<option value="{{.OpenID}}">{{.DisplayName}} ({{.OpenID}})</option>{{end}}</select></label></p>
<ul>
{{range .Scopes}}<li><label><input type="checkbox" name="grant_scope" value="{{.Name}}" checked{{if .Required}} disabled{{end}}> {{.Name}}</label></li>
{{end}}</ul>
<button type="submit" name="decision" value="approve">Authorize</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
</body></html>
`))

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>TikTok emulator: authorization error</title></head>
<body><h1>Something went wrong</h1><p>{{.Code}}: {{.Description}}</p></body></html>
`))

type hiddenField struct{ Name, Value string }
type scopeBox struct {
	Name     string
	Required bool
}

// handleAuthorize serves the consent page (GET) and its form (POST), so a
// browser test can click through.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.authorizePage(w, r)
	case http.MethodPost:
		s.authorizeSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func writeErrorPage(w http.ResponseWriter, e *AuthorizeError) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_ = errorPage.Execute(w, e)
}

func (s *Server) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	req, redirectErr, pageErr := s.parseAuthorizeLocked(q)
	var users []User
	for _, u := range s.users {
		users = append(users, u.User)
	}
	s.mu.Unlock()
	if pageErr != nil {
		writeErrorPage(w, pageErr)
		return
	}
	if redirectErr != nil {
		http.Redirect(w, r, errorRedirect(req, redirectErr), http.StatusFound)
		return
	}
	sort.Slice(users, func(i, j int) bool { return users[i].OpenID < users[j].OpenID })
	var hidden []hiddenField
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		hidden = append(hidden, hiddenField{Name: k, Value: q.Get(k)})
	}
	var boxes []scopeBox
	for _, sc := range req.scopes {
		boxes = append(boxes, scopeBox{Name: sc, Required: sc == "user.info.basic"})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consentPage.Execute(w, map[string]any{
		"ClientKey": req.app.ClientKey,
		"Action":    AuthorizePath,
		"Hidden":    hidden,
		"Users":     users,
		"Scopes":    boxes,
	})
}

// authorizeSubmit handles the consent form: the hidden fields carry the
// original request, open_id the chosen account, grant_scope the scopes left
// switched on, and decision approve or deny.
func (s *Server) authorizeSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeErrorPage(w, &AuthorizeError{Code: oauthInvalidRequest, Description: "The form is malformed."})
		return
	}
	f := r.PostForm
	q := url.Values{}
	for k, vs := range f {
		switch k {
		case "open_id", "grant_scope", "decision":
		default:
			q[k] = vs
		}
	}
	opts := ConsentOptions{Deny: f.Get("decision") == "deny"}
	for _, sc := range parseScopes(q.Get("scope")) {
		if sc != "user.info.basic" && !slices.Contains(f["grant_scope"], sc) {
			opts.Decline = append(opts.Decline, sc)
		}
	}
	s.mu.Lock()
	target, err := s.consentLocked(q, f.Get("open_id"), opts)
	s.mu.Unlock()
	if err != nil {
		var ae *AuthorizeError
		if !errors.As(err, &ae) {
			ae = &AuthorizeError{Code: oauthInvalidRequest, Description: "Unknown account."}
		}
		writeErrorPage(w, ae)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}
