package tiktoktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Paths served by the emulator. They are the paths of the real hosts, so a
// client only has to swap the base URL.
const (
	AuthorizePath   = "/v2/auth/authorize/"
	TokenPath       = "/v2/oauth/token/"
	RevokePath      = "/v2/oauth/revoke/"
	UserInfoPath    = "/v2/user/info/"
	VideoListPath   = "/v2/video/list/"
	VideoQueryPath  = "/v2/video/query/"
	CreatorInfoPath = "/v2/post/publish/creator_info/query/"
	VideoInitPath   = "/v2/post/publish/video/init/"
	InboxInitPath   = "/v2/post/publish/inbox/video/init/"
	StatusFetchPath = "/v2/post/publish/status/fetch/"
	CancelPath      = "/v2/post/publish/cancel/"
	// UploadPath is the path of the upload_url returned by the init
	// endpoints. It is served by a second listener (Server.UploadURL), as the
	// real upload host differs from the API host.
	UploadPath = "/video/"
)

// Documented defaults (see doc.go for the sources).
const (
	// DefaultAccessTokenLifetime is the access token lifetime of the
	// November 2026 docs revision (the older pages said 24 hours).
	DefaultAccessTokenLifetime = 2 * time.Hour
	// DefaultRefreshTokenLifetime is the refresh token lifetime of the
	// November 2026 docs revision (the older pages said 365 days).
	DefaultRefreshTokenLifetime = 180 * 24 * time.Hour
	// DefaultCodeLifetime is how long an authorization code can be
	// exchanged. TikTok does not document it; five minutes is what
	// developers report.
	DefaultCodeLifetime = 5 * time.Minute
	// UploadURLLifetime is how long an upload_url accepts chunks.
	UploadURLLifetime = time.Hour
)

// Rotation says what the token endpoint does with refresh tokens.
type Rotation int

const (
	// RotateSingleUse issues a new refresh token on every refresh and
	// invalidates the one that was sent, as the November 2026 docs say
	// ("The previous refresh token stops working once a new one is
	// issued"). A reused refresh token fails with invalid_grant. This is the
	// default.
	RotateSingleUse Rotation = iota
	// RotateReusable issues a new refresh token on every refresh but keeps
	// the earlier ones valid until they expire (the older docs: "may be
	// different … You must use the newly-returned token").
	RotateReusable
	// RotateNever returns the same refresh token on every refresh.
	RotateNever
)

func (r Rotation) String() string {
	switch r {
	case RotateSingleUse:
		return "single-use"
	case RotateReusable:
		return "reusable"
	case RotateNever:
		return "never"
	}
	return fmt.Sprintf("Rotation(%d)", int(r))
}

// Option configures a Server. Options validate their arguments; New
// reports the first invalid one.
type Option func(*config) error

type config struct {
	now            func() time.Time
	accessTTL      time.Duration
	refreshTTL     time.Duration
	codeTTL        time.Duration
	rotation       Rotation
	oauthErrStatus int
	timings        PublishTimings
	limits         UploadLimits
	rateLimits     map[string]rateRule
	logger         *slog.Logger
	webhookClient  *http.Client
	apps           []App
	users          []User
}

type rateRule struct {
	limit  int
	window time.Duration
}

// WithClock makes the server read time from now instead of time.Now. Pass
// the same function to the client under test so both agree on expiry.
// Server.Advance still works on top of it.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("tiktoktest: WithClock: nil func")
		}
		c.now = now
		return nil
	}
}

// WithAccessTokenLifetime sets expires_in for issued access tokens
// (default DefaultAccessTokenLifetime).
func WithAccessTokenLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second {
			return fmt.Errorf("tiktoktest: WithAccessTokenLifetime: %v is shorter than a second", d)
		}
		c.accessTTL = d
		return nil
	}
}

// WithRefreshTokenLifetime sets refresh_expires_in for issued refresh
// tokens (default DefaultRefreshTokenLifetime). Each refresh token lives
// this long from its own issuance.
func WithRefreshTokenLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second {
			return fmt.Errorf("tiktoktest: WithRefreshTokenLifetime: %v is shorter than a second", d)
		}
		c.refreshTTL = d
		return nil
	}
}

// WithCodeLifetime sets how long an authorization code stays exchangeable
// (default DefaultCodeLifetime).
func WithCodeLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("tiktoktest: WithCodeLifetime: %v is not positive", d)
		}
		c.codeTTL = d
		return nil
	}
}

// WithRotation sets the refresh token rotation mode (default
// RotateSingleUse).
func WithRotation(r Rotation) Option {
	return func(c *config) error {
		switch r {
		case RotateSingleUse, RotateReusable, RotateNever:
			c.rotation = r
			return nil
		}
		return fmt.Errorf("tiktoktest: WithRotation: unknown mode %d", int(r))
	}
}

// WithOAuthErrorStatus makes every OAuth error (token and revoke endpoints)
// use the given HTTP status instead of the RFC 6749 ones (401 for
// invalid_client, 503 for temporarily_unavailable, 500 for server_error, 400
// otherwise). TikTok documents no status for OAuth errors and developers
// report HTTP 200 with an error body; use WithOAuthErrorStatus(200) to prove
// a client reads the body whatever the status.
func WithOAuthErrorStatus(status int) Option {
	return func(c *config) error {
		if status < 100 || status > 599 {
			return fmt.Errorf("tiktoktest: WithOAuthErrorStatus: %d is not an HTTP status", status)
		}
		c.oauthErrStatus = status
		return nil
	}
}

// WithRateLimit limits each access token to limit requests to path per
// sliding window; further requests get HTTP 429 rate_limit_exceeded. The
// window follows the server clock.
func WithRateLimit(path string, limit int, window time.Duration) Option {
	return func(c *config) error {
		if path == "" || limit < 1 || window <= 0 {
			return fmt.Errorf("tiktoktest: WithRateLimit(%q, %d, %v): need a path, a positive limit and window", path, limit, window)
		}
		c.rateLimits[path] = rateRule{limit: limit, window: window}
		return nil
	}
}

// WithDocumentedRateLimits applies TikTok's documented limits, counted per
// access token: 600/min for user info, video list and video query; 20/min
// for creator info; 6/min for the init endpoints; 30/min for status fetch.
func WithDocumentedRateLimits() Option {
	return func(c *config) error {
		for path, n := range map[string]int{
			UserInfoPath: 600, VideoListPath: 600, VideoQueryPath: 600,
			CreatorInfoPath: 20, VideoInitPath: 6, InboxInitPath: 6,
			StatusFetchPath: 30,
		} {
			c.rateLimits[path] = rateRule{limit: n, window: time.Minute}
		}
		return nil
	}
}

// WithLogger makes the server log each request (secrets redacted) at debug
// level. Nil, the default, discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithWebhookClient sets the HTTP client that delivers webhooks (default: a
// client with a 10 second timeout).
func WithWebhookClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("tiktoktest: WithWebhookClient: nil client")
		}
		c.webhookClient = hc
		return nil
	}
}

// WithApp registers an app at start; see Server.AddApp.
func WithApp(a App) Option {
	return func(c *config) error {
		c.apps = append(c.apps, a)
		return nil
	}
}

// WithUser registers a user at start; see Server.AddUser.
func WithUser(u User) Option {
	return func(c *config) error {
		c.users = append(c.users, u)
		return nil
	}
}

// Server is an in-process emulator of the TikTok v2 APIs. Its methods are
// safe for concurrent use.
type Server struct {
	baseURL, authorizeURL, uploadURL string

	cfg    config
	api    *httptest.Server
	upload *httptest.Server
	offset atomic.Int64 // nanoseconds added by Advance

	mu        sync.Mutex
	apps      map[string]*App
	users     map[string]*userState
	codes     map[string]*authCode
	access    map[string]*accessToken
	refresh   map[string]*refreshToken
	grants    []*grant
	publishes map[string]*publish
	uploads   map[string]*publish // by upload_id
	faults    []*pendingFault
	hits      map[string][]time.Time // rate limit windows by path + token
	requests  []Request
	seq       int64
}

// New starts an emulator listening on loopback. Close it when done.
func New(opts ...Option) (*Server, error) {
	cfg := config{
		now:        time.Now,
		accessTTL:  DefaultAccessTokenLifetime,
		refreshTTL: DefaultRefreshTokenLifetime,
		codeTTL:    DefaultCodeLifetime,
		timings:    DefaultPublishTimings(),
		limits:     DocumentedUploadLimits(),
		rateLimits: map[string]rateRule{},
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.webhookClient == nil {
		cfg.webhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{
		cfg:       cfg,
		apps:      map[string]*App{},
		users:     map[string]*userState{},
		codes:     map[string]*authCode{},
		access:    map[string]*accessToken{},
		refresh:   map[string]*refreshToken{},
		publishes: map[string]*publish{},
		uploads:   map[string]*publish{},
		hits:      map[string][]time.Time{},
	}
	for _, a := range cfg.apps {
		if err := s.AddApp(a); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.users {
		if err := s.AddUser(u); err != nil {
			return nil, err
		}
	}
	s.api = httptest.NewServer(s.middleware(http.HandlerFunc(s.routeAPI), false))
	s.upload = httptest.NewServer(s.middleware(http.HandlerFunc(s.handleUpload), true))
	s.baseURL = s.api.URL
	s.authorizeURL = s.api.URL + AuthorizePath
	s.uploadURL = s.upload.URL
	return s, nil
}

// Start is New for tests: it fails t on a bad option and closes the
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

// Close shuts both listeners down. It blocks until outstanding requests end.
func (s *Server) Close() {
	s.api.Close()
	s.upload.Close()
}

// BaseURL is the API base that replaces https://open.tiktokapis.com
// (tiktok.Config.BaseURL).
func (s *Server) BaseURL() string { return s.baseURL }

// AuthorizeURL replaces https://www.tiktok.com/v2/auth/authorize/
// (tiktok.Config.AuthorizeURL).
func (s *Server) AuthorizeURL() string { return s.authorizeURL }

// UploadURL is the base of the upload host; init endpoints return
// upload_url values under it.
func (s *Server) UploadURL() string { return s.uploadURL }

// Client returns an HTTP client suited to the server's listeners.
func (s *Server) Client() *http.Client { return s.api.Client() }

// Now is the server's current time: the configured clock plus everything
// passed to Advance.
func (s *Server) Now() time.Time {
	return s.cfg.now().Add(time.Duration(s.offset.Load()))
}

// Advance moves the server clock forward by d, so tokens, codes and upload
// URLs expire and publishing progresses without sleeping.
func (s *Server) Advance(d time.Duration) {
	if d < 0 {
		return
	}
	s.offset.Add(int64(d))
}

// routeAPI dispatches a request on the API listener.
func (s *Server) routeAPI(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case AuthorizePath:
		s.handleAuthorize(w, r)
	case TokenPath:
		s.handleToken(w, r)
	case RevokePath:
		s.handleRevoke(w, r)
	case UserInfoPath:
		s.handleUserInfo(w, r)
	case VideoListPath:
		s.handleVideoList(w, r)
	case VideoQueryPath:
		s.handleVideoQuery(w, r)
	case CreatorInfoPath:
		s.handleCreatorInfo(w, r)
	case VideoInitPath:
		s.handleInit(w, r, false)
	case InboxInitPath:
		s.handleInit(w, r, true)
	case StatusFetchPath:
		s.handleStatusFetch(w, r)
	case CancelPath:
		s.handleCancel(w, r)
	default:
		s.writeAPIError(w, http.StatusNotFound, codeInvalidParams, "The requested path does not exist.")
	}
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// middleware buffers the body, applies injected faults and records the
// request (redacted) in the log.
func (s *Server) middleware(next http.Handler, upload bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		entry := s.newRequestEntry(r, body, upload)
		rec := &statusRecorder{ResponseWriter: w}
		if f, ok := s.takeFault(r.URL.Path); ok && f.Pass {
			out := httptest.NewRecorder()
			if f.Processed {
				next.ServeHTTP(out, r)
			}
			if f.Hold != nil {
				f.Hold()
			}
			if !f.Processed {
				next.ServeHTTP(out, r)
			}
			for k, v := range out.Header() {
				rec.Header()[k] = v
			}
			rec.WriteHeader(out.Code)
			_, _ = rec.Write(out.Body.Bytes())
		} else if ok {
			if f.Processed {
				next.ServeHTTP(httptest.NewRecorder(), r)
			}
			if f.Hold != nil {
				f.Hold()
			}
			if f.Drop {
				entry.Status = 0
				s.mu.Lock()
				s.requests = append(s.requests, entry)
				s.mu.Unlock()
				drop(w)
				return
			}
			s.writeFault(rec, r.URL.Path, f)
		} else {
			next.ServeHTTP(rec, r)
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		entry.Status = rec.status
		s.mu.Lock()
		s.requests = append(s.requests, entry)
		s.mu.Unlock()
		if s.cfg.logger != nil {
			s.cfg.logger.LogAttrs(context.Background(), slog.LevelDebug, "tiktoktest request",
				slog.String("method", entry.Method),
				slog.String("path", entry.Path),
				slog.String("query", entry.Query.Encode()),
				slog.Int("status", entry.Status))
		}
	})
}

// nextSeq returns a process-unique number; callers hold s.mu.
func (s *Server) nextSeq() int64 {
	s.seq++
	return s.seq
}

// cloneValues deep-copies url.Values.
func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
