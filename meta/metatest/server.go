package metatest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Server is an in-process emulator of Meta's Graph API. It is safe for
// concurrent use.
type Server struct {
	cfg         *config
	ts          *httptest.Server
	client      *http.Client
	permissions map[string]bool

	mu            sync.Mutex
	offset        time.Duration
	seq           int64
	apps          map[string]*app
	users         map[string]*user
	pages         map[string]*page
	igAccounts    map[string]*InstagramAccount
	igByPage      map[string]string
	grants        map[grantKey]*grant
	tokens        map[string]*token
	codes         map[string]*authCode
	posts         map[string]*post
	postOrder     []string
	containers    map[string]*container
	media         map[string]*media
	mediaOrder    []string
	publishes     map[string][]time.Time // IG user id -> publish times
	conversations map[convKey]*Conversation
	subscriptions map[subKey][]string
	sent          []SentMessage
	metricValues  map[string]map[string]any
	retiredExtra  map[string]bool
	catalog       map[string]metricDef
	failingURLs   map[string]bool
	faults        []*fault
	calls         []callRecord
	requests      []Request
	// ig holds Instagram Login, demographics, uploads and comments.
	ig *igState
}

// New starts an emulator listening on a loopback address. Call Close when
// done; Start does that for tests.
func New(opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue // a nil Option means the default
		}
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	s := &Server{
		cfg:           cfg,
		client:        cfg.client,
		permissions:   map[string]bool{},
		apps:          map[string]*app{},
		users:         map[string]*user{},
		pages:         map[string]*page{},
		igAccounts:    map[string]*InstagramAccount{},
		igByPage:      map[string]string{},
		grants:        map[grantKey]*grant{},
		tokens:        map[string]*token{},
		codes:         map[string]*authCode{},
		posts:         map[string]*post{},
		containers:    map[string]*container{},
		media:         map[string]*media{},
		publishes:     map[string][]time.Time{},
		conversations: map[convKey]*Conversation{},
		subscriptions: map[subKey][]string{},
		metricValues:  map[string]map[string]any{},
		retiredExtra:  map[string]bool{},
		catalog:       metricCatalog(),
		failingURLs:   map[string]bool{},
		ig:            newIGState(),
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	for _, p := range builtinPermissions() {
		s.permissions[p] = true
	}
	for _, p := range cfg.permissions {
		s.permissions[p] = true
	}
	if err := s.register(cfg); err != nil {
		return nil, err
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s, nil
}

func (s *Server) register(cfg *config) error {
	for _, a := range cfg.apps {
		if err := s.AddApp(a); err != nil {
			return err
		}
	}
	for _, u := range cfg.users {
		if err := s.AddUser(u); err != nil {
			return err
		}
	}
	for _, p := range cfg.pages {
		if err := s.AddPage(p); err != nil {
			return err
		}
	}
	for _, a := range cfg.igAccounts {
		if err := s.AddInstagramAccount(a); err != nil {
			return err
		}
	}
	for _, m := range cfg.media {
		if err := s.AddMedia(m); err != nil {
			return err
		}
	}
	for _, c := range cfg.conversations {
		if err := s.AddConversation(c); err != nil {
			return err
		}
	}
	return nil
}

// Start is New for tests: it fails t on an invalid option and closes the
// server when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down and waits for requests in flight.
func (s *Server) Close() { s.ts.Close() }

// GraphURL is the base URL replacing https://graph.facebook.com, without a
// trailing slash or version.
func (s *Server) GraphURL() string { return s.ts.URL }

// Version is the Graph API version the emulator serves, such as "v26.0".
func (s *Server) Version() string { return s.cfg.version }

// DialogURL replaces https://www.facebook.com/{version}/dialog/oauth.
func (s *Server) DialogURL() string { return s.ts.URL + "/" + s.cfg.version + "/dialog/oauth" }

// TokenURL replaces https://graph.facebook.com/{version}/oauth/access_token.
func (s *Server) TokenURL() string { return s.ts.URL + "/" + s.cfg.version + "/oauth/access_token" }

// Endpoint is an oauth2.Endpoint for the emulator's dialog and token URL.
// The client credentials go in the parameters, as Meta expects.
func (s *Server) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: s.DialogURL(), TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInParams}
}

// Client returns an http.Client suited to the emulator.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Now is the emulator's current time: the configured clock plus every
// Advance so far.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Server) nowLocked() time.Time { return s.cfg.now().Add(s.offset) }

// Advance moves the emulator's clock forward by d (backward if d < 0).
// Tokens expire, containers finish and messaging windows close accordingly.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

func (s *Server) nextID(base int64) string {
	s.seq++
	return strconv.FormatInt(base+s.seq, 10)
}

func randomString(prefix string) string {
	return prefix + rand.Text() + rand.Text()
}

// call is one request to the Graph API as the handlers see it.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	method string
	path   string   // without the version prefix
	segs   []string // path segments
	params url.Values
	files  map[string]string
	header http.Header // headers to add to the response
	host   host        // which of Meta's hosts was called

	// set once authenticated
	tok   *token
	app   *app
	grant *grant
}

func (c *call) param(name string) string { return strings.TrimSpace(c.params.Get(name)) }

const maxBody = 32 << 20

// readParams merges the query with a form, multipart or JSON body, the ways
// Graph API accepts parameters.
func readParams(r *http.Request) (url.Values, map[string]string, []byte, error) {
	params := url.Values{}
	for k, vs := range r.URL.Query() {
		params[k] = slices.Clone(vs)
	}
	files := map[string]string{}
	if r.Body == nil || r.Method == http.MethodGet {
		return params, files, nil, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return params, files, nil, err
		}
		for k, vs := range r.MultipartForm.Value {
			params[k] = append(params[k], vs...)
		}
		for k, fhs := range r.MultipartForm.File {
			if len(fhs) > 0 {
				files[k] = fhs[0].Filename
			}
		}
		return params, files, nil, nil
	case "application/json":
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return params, files, nil, err
		}
		var obj map[string]json.RawMessage
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &obj); err != nil {
				return params, files, body, err
			}
		}
		for k, raw := range obj {
			var str string
			if json.Unmarshal(raw, &str) == nil {
				params.Add(k, str)
			} else {
				params.Add(k, string(raw))
			}
		}
		return params, files, body, nil
	default:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return params, files, nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return params, files, body, err
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
		return params, files, nil, nil
	}
}

// splitVersion separates "/v26.0/me" into "v26.0" and "/me".
func splitVersion(p string) (version, rest string) {
	trimmed := strings.TrimPrefix(p, "/")
	first, after, _ := strings.Cut(trimmed, "/")
	if versionPattern.MatchString(first) {
		return first, "/" + after
	}
	return "", p
}

func versionNumber(v string) (major, minor int) {
	a, b, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor
}

// versionError tells whether a request under version v is served.
func (s *Server) versionError(v, rest string) *graphError {
	if v == s.cfg.version {
		return nil
	}
	unknown := errUnknownPath("/" + strings.TrimPrefix(v+rest, "/"))
	if s.cfg.strictVersion {
		return unknown
	}
	if v == "" {
		return nil // unversioned calls resolve to an available version
	}
	ma, mi := versionNumber(v)
	sa, si := versionNumber(s.cfg.version)
	if ma > sa || (ma == sa && mi > si) {
		return unknown // not released yet
	}
	return nil
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h, p := hostOf(r.URL.Path)
	if h == hostUpload {
		s.serveUpload(w, r, p)
		return
	}
	version, rest := splitVersion(p)
	params, files, body, perr := readParams(r)
	c := &call{
		w: w, r: r, method: r.Method, path: rest, params: params, files: files,
		header: http.Header{}, host: h,
	}
	c.segs = splitPath(rest)
	if m := params.Get("method"); m != "" && r.Method == http.MethodGet {
		// Graph accepts ?method=post|delete on GET for clients without verbs.
		c.method = strings.ToUpper(m)
	}
	s.record(r, version, rest, params, files, body)
	if l := s.cfg.logger; l != nil {
		l.Debug("metatest request", slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("query", redactValues(r.URL.Query()).Encode()))
	}
	c.header.Set("Facebook-Api-Version", s.cfg.version)
	f, acted := s.takeFault(c.method, rest)
	graphCall := h != hostIGLogin && !(h == hostFacebook && (rest == "/dialog/oauth" || rest == "/oauth/access_token")) &&
		!(h == hostIGGraph && (rest == "/access_token" || rest == "/refresh_access_token"))
	if f != nil && (!acted || !graphCall) {
		s.writeError(c, f)
		return
	}
	if gerr := s.versionError(version, rest); gerr != nil {
		s.writeError(c, gerr)
		return
	}
	if perr != nil {
		s.writeError(c, errParam("(#100) Could not parse the request body"))
		return
	}
	switch {
	case h == hostIGLogin && rest == "/oauth/access_token":
		s.writeResult(c, s.lockedHandle(c, s.handleIGCode))
		return
	case h == hostIGLogin:
		s.writeError(c, errUnknownPath(rest))
		return
	case h == hostIGGraph && (rest == "/access_token" || rest == "/refresh_access_token"):
		s.writeResult(c, s.lockedHandle(c, func(c *call) result { return s.handleIGToken(c, rest) }))
		return
	case h == hostFacebook && rest == "/dialog/oauth":
		s.serveDialog(c)
		return
	case h == hostFacebook && rest == "/oauth/access_token":
		s.writeResult(c, s.lockedHandle(c, s.handleAccessToken))
		return
	}
	res := s.lockedHandle(c, s.handleGraph)
	if s.dropAnswer(c) {
		return
	}
	if f != nil { // Fault.Acted: carried out, answered with the error
		s.writeError(c, f)
		return
	}
	s.writeResult(c, res)
}

func splitPath(p string) []string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

type result struct {
	status int
	body   any
	err    *graphError
}

func ok(body any) result          { return result{status: http.StatusOK, body: body} }
func fail(err *graphError) result { return result{err: err} }
func success() result             { return ok(map[string]any{"success": true}) }
func (s *Server) lockedHandle(c *call, h func(*call) result) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return h(c)
}

func (s *Server) writeResult(c *call, res result) {
	if res.err != nil {
		s.writeError(c, res.err)
		return
	}
	for k, vs := range c.header {
		c.w.Header()[k] = vs
	}
	c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	c.w.Header().Set("X-Fb-Trace-Id", traceID())
	status := res.status
	if status == 0 {
		status = http.StatusOK
	}
	c.w.WriteHeader(status)
	_ = json.NewEncoder(c.w).Encode(res.body)
}

func (s *Server) writeError(c *call, e *graphError) {
	for k, vs := range c.header {
		c.w.Header()[k] = vs
	}
	if e.TraceID == "" {
		e.TraceID = traceID()
	}
	c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	c.w.Header().Set("X-Fb-Trace-Id", e.TraceID)
	if e.Type == typeOAuth {
		c.w.Header().Set("WWW-Authenticate", fmt.Sprintf("OAuth \"Facebook Platform\" %q %q", e.wwwAuthKind(), e.Message))
	}
	c.w.WriteHeader(e.httpStatus())
	_ = json.NewEncoder(c.w).Encode(map[string]any{"error": e})
}

func traceID() string { return rand.Text()[:11] }
