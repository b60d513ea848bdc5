package meta

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/internal/jsonint"
	"github.com/socialcrm/socialcrm/internal/telemetry"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Platform is the name stored on Meta connections (Facebook users, Pages
// and the Instagram accounts behind them).
const Platform = "meta"

// Defaults of a Config.
const (
	// DefaultVersion is the Graph API version a zero Config uses: the
	// current one when this package was written (v26.0, released July 29,
	// 2026). Pin Config.Version in production.
	DefaultVersion = "v26.0"
	// DefaultGraphURL is the host of the Graph API.
	DefaultGraphURL = "https://graph.facebook.com"
	// DefaultDialogHost is the host of the Login dialog; the dialog's URL is
	// DefaultDialogHost + "/{version}/dialog/oauth".
	DefaultDialogHost = "https://www.facebook.com"
)

// DefaultRateLimitWait is how long a client stops calling after a
// rate-limit answer that carries no estimated_time_to_regain_access.
const DefaultRateLimitWait = time.Minute

var versionPattern = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// Config is a Meta app's registration and the Graph API version it talks.
// The zero values of the optional fields are documented on each.
type Config struct {
	// AppID and AppSecret identify the app. Required. The secret signs
	// every call (appsecret_proof) and the token exchanges; it prints and
	// marshals as [REDACTED].
	AppID     string
	AppSecret vault.Secret
	// RedirectURL is the callback registered in the app's Valid OAuth
	// redirect URIs, sent byte-identical to the dialog and the code
	// exchange. Required for the Provider.
	RedirectURL string
	// Version is the Graph API version, such as "v26.0" (zero:
	// DefaultVersion). Every call names it in its path.
	Version string
	// GraphURL replaces DefaultGraphURL (metatest.Server.GraphURL in tests).
	GraphURL string
	// DialogURL replaces the Login dialog's URL,
	// DefaultDialogHost/{Version}/dialog/oauth (metatest.Server.DialogURL in
	// tests).
	DialogURL string
	// LegacyProof sends the untimestamped appsecret_proof, the HMAC of the
	// token alone, for setups that still expect it. By default the proof is
	// the current time-stamped form, HMAC-SHA256(secret, token|time), sent
	// with appsecret_time.
	LegacyProof bool
	// Metrics names the insights metrics requested by default, with
	// fallbacks (zero lists: DefaultMetrics).
	Metrics MetricConfig
	// InstagramGraphURL replaces DefaultInstagramGraphURL, the host of the
	// Instagram API with Instagram Login (metatest.Server.InstagramGraphURL
	// in tests). Clients of Instagram Login connections call it.
	InstagramGraphURL string
	// InstagramLoginURL replaces DefaultInstagramLoginURL, the host of
	// Business Login for Instagram's authorization window and code exchange
	// (metatest.Server.InstagramLoginURL in tests).
	InstagramLoginURL string
	// UploadURL replaces DefaultUploadURL, the host of resumable video
	// uploads (metatest.Server.UploadURL in tests).
	UploadURL string
}

func (c Config) validate() error {
	if c.AppID == "" || c.AppSecret.IsZero() {
		return fmt.Errorf("%w: Config: AppID and AppSecret are required", ErrConfig)
	}
	if c.Version != "" && !versionPattern.MatchString(c.Version) {
		return fmt.Errorf("%w: Config: Version %q is not like v26.0", ErrConfig, c.Version)
	}
	for _, u := range []string{c.GraphURL, c.DialogURL, c.InstagramGraphURL, c.InstagramLoginURL, c.UploadURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("%w: Config: %q is not an absolute http(s) URL", ErrConfig, u)
		}
	}
	return nil
}

// version returns the Graph API version in use.
func (c Config) version() string {
	if c.Version != "" {
		return c.Version
	}
	return DefaultVersion
}

func (c Config) graphBase() string {
	base := DefaultGraphURL
	if c.GraphURL != "" {
		base = strings.TrimRight(c.GraphURL, "/")
	}
	return base + "/" + c.version()
}

func (c Config) dialogURL() string {
	if c.DialogURL != "" {
		return c.DialogURL
	}
	return DefaultDialogHost + "/" + c.version() + "/dialog/oauth"
}

// Option configures a Client, a Provider, an InstagramProvider, a Webhook
// or Callbacks: one option type for every constructor of the package, each
// reading the options that concern it (WithClock and WithLogger concern
// all; WithMaxWebhookBody only the Webhook). Options validate their
// arguments: the constructors report the first invalid one. A nil Option
// means the default.
type Option func(*options) error

type options struct {
	hc      *http.Client
	tel     telemetry.Providers
	now     func() time.Time
	log     *slog.Logger
	wait    func(context.Context, time.Duration) error
	tries   int
	session *social.Session
	keepRaw bool
	limits  *Limits
	// maxAge is WithSignedRequestMaxAge's (Callbacks), maxBody
	// WithMaxWebhookBody's (Webhook).
	maxAge  time.Duration
	maxBody int64
	// idempotent is WithIdempotentHandler's (Webhook).
	idempotent bool
}

// WithLimits shares rate-limit blocks between clients (see Limits).
func WithLimits(l *Limits) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: WithLimits: nil Limits", ErrConfig)
		}
		o.limits = l
		return nil
	}
}

// WithRawResponses makes Pages.Snapshot keep the raw insights answers it
// read, as social.RawResponse rows (a retention category of their own, 90
// days by default). Off by default.
func WithRawResponses() Option {
	return func(o *options) error {
		o.keepRaw = true
		return nil
	}
}

// WithHTTPClient sets the HTTP client (default http.DefaultClient).
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return fmt.Errorf("%w: WithHTTPClient: nil client", ErrConfig)
		}
		o.hc = hc
		return nil
	}
}

// WithTelemetry traces and measures the client's requests through tp and
// mp with otelhttp (either may be nil: nothing of that kind is recorded;
// without this option nothing is, whatever the global providers). Spans
// show the method, host and path with each id replaced by ":id", never the
// query (tokens, appsecret_proof) nor a body; no trace context is sent to
// Meta. It wraps the WithHTTPClient client, whatever the options' order.
func WithTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) Option {
	return func(o *options) error {
		o.tel = telemetry.Providers{Tracer: tp, Meter: mp}
		return nil
	}
}

// WithClock sets the clock (default time.Now): appsecret_time, rate-limit
// blocks and Instagram container polling use it.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrConfig)
		}
		o.now = now
		return nil
	}
}

// WithLogger sets the logger (nil, the default, discards). It receives one
// debug line per call with the method, the path without its query, the
// status, fbtrace_id and usage; never a token, proof or secret.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithRetry bounds the attempts per request (default 4, the first
// included) and sets how the client waits between them and while polling
// (nil: a timer honouring the context). Tests pass a wait that advances a
// fake clock instead of sleeping.
func WithRetry(attempts int, wait func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) error {
		if attempts < 1 {
			return fmt.Errorf("%w: WithRetry: attempts must be at least 1", ErrConfig)
		}
		o.tries, o.wait = attempts, wait
		return nil
	}
}

// WithSession sets the connection the client acts for (required by New):
// a Facebook user connection, or a Page connection (see
// Provider.ConnectPages) whose token is a Page token.
//
//	sess, err := store.Session(ctx, connID, provider)
//	client, err := meta.New(cfg, meta.WithSession(sess))
func WithSession(s *social.Session) Option {
	return func(o *options) error {
		if s == nil {
			return fmt.Errorf("%w: WithSession: nil session", ErrConfig)
		}
		o.session = s
		return nil
	}
}

func buildOptions(opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		if opt == nil {
			continue // a nil Option means the default
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.tel.Enabled() {
		o.hc = telemetry.HTTPClient(o.hc, o.tel)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func (o options) retrier() *httpx.Retrier {
	return &httpx.Retrier{Client: o.hc, Attempts: o.tries, Now: o.now, Wait: o.wait}
}

func (o options) sleep(ctx context.Context, d time.Duration) error {
	if o.wait != nil {
		return o.wait(ctx, d)
	}
	return httpx.Sleep(ctx, d)
}

// Client is the typed Graph API client of one connection. Every method
// checks the connection's granted permissions first and returns a
// *social.ScopeError, sending nothing, when one is missing. The access
// token is opened in memory for each call by the session and sent in the
// Authorization header, never in a URL; each call carries a fresh
// appsecret_proof and appsecret_time. A token Meta refuses (code 190)
// marks the connection needs_reauth. A Client is safe for concurrent use.
type Client struct {
	*graph
	session *social.Session

	// Pages lists Pages, publishes to them and reads their insights.
	Pages *PagesService
	// Instagram reads and publishes to the Instagram account behind a Page.
	Instagram *InstagramService
	// Messenger sends messages as a Page.
	Messenger *MessengerService
	// InstagramComments and PageComments read and moderate comments on
	// Instagram media and on a Page's posts.
	InstagramComments, PageComments *CommentsService

	limits *Limits

	mu        sync.Mutex
	lastUsage Usage
}

// New returns a client for cfg's app acting for the WithSession
// connection.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.session == nil {
		return nil, fmt.Errorf("%w: New: WithSession is required", ErrConfig)
	}
	switch p := o.session.Connection().Platform; p {
	case Platform:
	case PlatformInstagram: // Instagram Login: its own host
		cfg.GraphURL = cfg.instagramGraphURL()
	default:
		return nil, fmt.Errorf("%w: New: session of a %q connection", ErrConfig, p)
	}
	c := &Client{graph: newGraph(cfg, o), session: o.session, limits: o.limits}
	if c.limits == nil {
		c.limits = NewLimits()
	}
	c.init()
	return c, nil
}

// Version returns the Graph API version the client calls.
func (c *Client) Version() string { return c.cfg.version() }

// Connection returns the connection the client acts for, as loaded when
// its session began.
func (c *Client) Connection() social.Connection { return c.session.Connection() }

// Usage returns the usage headers of the last answer.
func (c *Client) Usage() Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastUsage.clone()
}

// Response is the HTTP answer of a call with Meta's headers parsed. Its
// Body has been read and closed.
type Response struct {
	*http.Response
	// Usage holds the parsed rate-limit headers.
	Usage Usage
	// TraceID is the X-Fb-Trace-Id header; give it to Meta support.
	TraceID string
	// Version is the Facebook-Api-Version header: the version that answered.
	Version string
}

// AppSecretProof returns appsecret_proof for token: the hex HMAC-SHA256 of
// token keyed with secret, over token + "|" + unixTime when unixTime is
// not zero (the current, time-stamped form, sent with appsecret_time) and
// over the token alone otherwise (the legacy form).
func AppSecretProof(secret vault.Secret, token string, unixTime int64) string {
	m := hmac.New(sha256.New, secret.Reveal())
	m.Write([]byte(token))
	if unixTime != 0 {
		m.Write([]byte("|" + strconv.FormatInt(unixTime, 10)))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// request is one Graph API call.
type request struct {
	method string
	path   string     // after the version, starting with "/"
	query  url.Values // sent in the URL
	form   url.Values // sent as an urlencoded body (POST, DELETE)
	json   any        // sent as a JSON body instead of form (Send API)
	need   []string   // permissions the call needs
	// idempotent says the call may be resent after a 5xx or a transport
	// error; writes are resent only after a 429.
	idempotent bool
	// keep receives the raw answer, if not nil.
	keep *[]byte
	// intent, if set, is the audit action recorded before the call is
	// sent (a publish), so that a process killed before the answer was
	// read leaves the publish in doubt in the log. attempt names the
	// call in that entry and in the one that closes it (the caller's
	// success entry, meta.write_outcome_unknown or meta.write_refused);
	// do makes one up when it is empty.
	intent  string
	attempt string
	// appToken says the token is the app token ("{app-id}|{secret}"),
	// which is sent without appsecret_proof.
	appToken bool
	// base replaces the versioned Graph base URL the path follows (the
	// unversioned Instagram Login token endpoints).
	base string
}

// maxBody bounds what is read of an answer.
const maxBody = 8 << 20

// get is a GET of path with query, decoded into out.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any, need ...string) (*Response, error) {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: query, need: need, idempotent: true}, out)
}

// post is a form POST of path, decoded into out.
func (c *Client) post(ctx context.Context, path string, form url.Values, out any, need ...string) (*Response, error) {
	return c.do(ctx, request{method: http.MethodPost, path: path, form: form, need: need}, out)
}

// do sends one call: permission check, token, proof, request, envelope
// decoding, usage headers. A 190 answer marks the connection
// needs_reauth (except 190/492, a lost Page role that no new token fixes),
// unless the stored token changed meanwhile (the user logged in again in
// another process): the call is then sent again, once, with it.
func (c *Client) do(ctx context.Context, r request, out any) (*Response, error) {
	if err := c.require(r.need...); err != nil {
		return nil, err
	}
	if r.intent != "" {
		if r.attempt == "" {
			r.attempt = tenancy.NewID()
		}
		if err := c.session.Audit(ctx, r.intent, c.writeFacts(r, c.opts.now())); err != nil {
			return nil, fmt.Errorf("meta: audit %s: %w", r.intent, err)
		}
	}
	for try := 0; ; try++ {
		resp, err := c.attempt(ctx, r, out)
		if try > 0 || !errors.Is(err, social.ErrTokenRenewed) {
			if r.intent != "" && err != nil && !errors.Is(err, ErrOutcomeUnknown) {
				// Refused by Meta, or never sent: nothing was done.
				facts := c.writeFacts(r, c.opts.now())
				facts["reason"] = refusal(err)
				if aerr := c.session.Audit(context.WithoutCancel(ctx), "meta.write_refused", facts); aerr != nil {
					err = errors.Join(err, aerr)
				}
			}
			return resp, err
		}
	}
}

// refusal names why a write was not carried out, for the audit log:
// Meta's error code, or what stopped it before it was sent. It never
// quotes the error's text.
func refusal(err error) string {
	var rl *RateLimitError
	var ae *APIError
	switch {
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.Is(err, social.ErrRevoked):
		return "revoked"
	case errors.Is(err, social.ErrNeedsReauth):
		return "needs_reauth"
	case errors.As(err, &ae):
		if ae.Subcode != 0 {
			return fmt.Sprintf("code %d/%d", ae.Code, ae.Subcode)
		}
		return fmt.Sprintf("code %d", ae.Code)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	return "not_sent"
}

// writeFacts are what the audit log records of a write in doubt: enough
// to look it up (Pages.Lookup, Instagram.Lookup), nothing of its content.
func (c *Client) writeFacts(r request, sent time.Time) map[string]string {
	m := map[string]string{"method": r.method, "path": r.path, "sent_at": sent.UTC().Format(time.RFC3339Nano)}
	if r.attempt != "" {
		m["attempt"] = r.attempt
	}
	if id := r.form.Get("creation_id"); id != "" {
		m["container_id"] = id
	}
	return m
}

// attempt is one attempt of do, after the permission check.
func (c *Client) attempt(ctx context.Context, r request, out any) (*Response, error) {
	if d := c.limits.blocked(c.limitKeys(), c.opts.now()); d > 0 {
		return nil, &RateLimitError{APIError: &APIError{Message: "rate limit spent, not calling", Method: r.method, Path: r.path}, RetryAfter: d, Usage: c.Usage()}
	}
	tok, err := c.session.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("meta: %s %s: %w", r.method, r.path, err)
	}
	sent := c.opts.now()
	resp, err := c.call(ctx, r, tok.AccessToken, out)
	if resp != nil {
		c.mu.Lock()
		c.lastUsage = resp.Usage.clone()
		c.mu.Unlock()
	}
	if err != nil && !r.idempotent {
		err = c.outcome(ctx, r, resp, sent, err)
		var ou *OutcomeUnknownError
		if errors.As(err, &ou) {
			// Recorded all the same, even if the caller has gone: the
			// post or message may exist at Meta.
			aerr := c.session.Audit(context.WithoutCancel(ctx), "meta.write_outcome_unknown", c.writeFacts(r, sent))
			return resp, errors.Join(err, aerr)
		}
	}
	var apiErr *APIError
	if err != nil && errors.As(err, &apiErr) && resp != nil {
		return resp, c.classify(ctx, apiErr, resp)
	}
	return resp, err
}

// ErrOutcomeUnknown matches *OutcomeUnknownError; it is
// social.ErrOutcomeUnknown, which the other platforms' clients match too.
var ErrOutcomeUnknown = social.ErrOutcomeUnknown

// OutcomeUnknownError is returned for a write (a publish, a message, an
// Instagram media_publish) whose answer was lost, cut short (a body that
// could not be read) or was a server error: Meta may or may not have
// carried it out, and it is not sent again.
// Check before deciding: Pages.Lookup looks the post up on the Page,
// Instagram.Lookup reads the status of the container (ContainerID). Each
// is recorded in the audit log as "meta.write_outcome_unknown" (method,
// path, sent_at, container_id), even when the caller's context has ended.
// errors.Is(err, ErrOutcomeUnknown) holds, and so does what Err matches
// (ErrTransient for Meta's codes 1 and 2).
type OutcomeUnknownError struct {
	// Method and Path are the call; SentAt when it was sent.
	Method, Path string
	SentAt       time.Time
	// StatusCode is the HTTP status, 0 when no answer arrived; TraceID is
	// Meta's fbtrace_id, if any.
	StatusCode int
	TraceID    string
	// Operation ("media_publish") and ContainerID name an Instagram
	// publication in doubt.
	Operation, ContainerID string
	// Err is the transport error or the server's refusal.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	what := e.Method + " " + e.Path
	if e.Operation != "" {
		what = e.Operation + " of container " + e.ContainerID
	}
	return fmt.Sprintf("meta: %s: outcome unknown (HTTP %d, not sent again): %v", what, e.StatusCode, e.Err)
}

// Unwrap returns Err.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrOutcomeUnknown) hold.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// outcome turns the failure of a write whose effect is unknown (no answer,
// an answer that could not be read, or a server error) into an *OutcomeUnknownError, classifying an API
// error first; other failures are returned as they are.
func (c *Client) outcome(ctx context.Context, r request, resp *Response, sent time.Time, err error) error {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return err // nothing was sent, or Meta refused it
	}
	if resp == nil {
		return &OutcomeUnknownError{Method: r.method, Path: r.path, SentAt: sent, Err: err}
	}
	var apiErr *APIError
	isAPI := errors.As(err, &apiErr)
	if !isAPI {
		// An answer began and was cut short or could not be read: Meta
		// may have acted, and what it made is unknown.
		return &OutcomeUnknownError{Method: r.method, Path: r.path, SentAt: sent, StatusCode: resp.StatusCode, TraceID: resp.TraceID, Err: err}
	}
	if resp.StatusCode < 500 {
		return err
	}
	if isAPI {
		err = c.classify(ctx, apiErr, resp)
	}
	return &OutcomeUnknownError{Method: r.method, Path: r.path, SentAt: sent, StatusCode: resp.StatusCode, TraceID: resp.TraceID, Err: err}
}

// graph sends Graph API calls for a Client or a Provider.
type graph struct {
	cfg  Config
	opts options
	rt   *httpx.Retrier
}

func newGraph(cfg Config, o options) *graph {
	return &graph{cfg: cfg, opts: o, rt: o.retrier()}
}

// call sends r with token and decodes the answer into out; an error
// envelope is returned as an *APIError (or a transport error).
func (g *graph) call(ctx context.Context, r request, token string, out any) (*Response, error) {
	resp, body, err := g.send(ctx, r, token)
	if err != nil {
		return resp, err
	}
	if r.keep != nil {
		*r.keep = body
	}
	if apiErr := parseError(resp, body, r, token); apiErr != nil {
		return resp, apiErr
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return resp, fmt.Errorf("meta: %s %s: decode answer: %w", r.method, r.path, httpx.ScrubJSONError(err))
		}
	}
	return resp, nil
}

// send builds and sends the HTTP request with token and its proof, and
// reads the answer.
func (c *graph) send(ctx context.Context, r request, token string) (*Response, []byte, error) {
	q := url.Values{}
	for k, vs := range r.query {
		q[k] = vs
	}
	proof := url.Values{}
	switch {
	case token == "" || r.appToken: // authenticated with the secret itself
	case c.cfg.LegacyProof:
		proof.Set("appsecret_proof", AppSecretProof(c.cfg.AppSecret, token, 0))
	default:
		now := c.opts.now().Unix()
		proof.Set("appsecret_proof", AppSecretProof(c.cfg.AppSecret, token, now))
		proof.Set("appsecret_time", strconv.FormatInt(now, 10))
	}
	var body io.Reader
	contentType := ""
	switch {
	case r.json != nil:
		for k, vs := range proof {
			q[k] = vs
		}
		b, err := json.Marshal(r.json)
		if err != nil {
			return nil, nil, fmt.Errorf("meta: %s %s: encode body: %w", r.method, r.path, err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case r.method != http.MethodGet:
		f := url.Values{}
		for k, vs := range r.form {
			f[k] = vs
		}
		for k, vs := range proof {
			f[k] = vs
		}
		body, contentType = strings.NewReader(f.Encode()), "application/x-www-form-urlencoded"
	default:
		for k, vs := range proof {
			q[k] = vs
		}
	}
	u := c.cfg.graphBase() + r.path
	if r.base != "" {
		u = r.base + r.path
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, nil, fmt.Errorf("meta: %s %s: %w", r.method, r.path, httpx.Sanitize(err))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hr, err := c.rt.Do(req, r.idempotent)
	if err != nil {
		var rl *httpx.RateLimitedError
		if errors.As(err, &rl) {
			return nil, nil, &RateLimitError{APIError: &APIError{Message: "rate limit spent, not calling", Method: r.method, Path: r.path}, RetryAfter: rl.RetryAfter}
		}
		return nil, nil, fmt.Errorf("meta: %s %s: %w", r.method, r.path, redactToken(err, token))
	}
	defer hr.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	resp := &Response{Response: hr, Usage: parseUsage(hr.Header),
		TraceID: hr.Header.Get("X-Fb-Trace-Id"), Version: hr.Header.Get("Facebook-Api-Version")}
	// The request behind the response holds the URL with the proof and the
	// Authorization header: keep neither reachable from the Response.
	hr.Request = nil
	c.opts.log.DebugContext(ctx, "meta: call", slog.String("method", r.method), slog.String("path", r.path),
		slog.Int("status", hr.StatusCode), slog.String("fbtrace_id", resp.TraceID), slog.Any("usage", resp.Usage))
	if err != nil {
		return resp, nil, fmt.Errorf("meta: %s %s: read answer: %w", r.method, r.path, err)
	}
	return resp, raw, nil
}

// redactToken returns err with any occurrence of token replaced: a
// transport error may quote what was sent.
func redactToken(err error, token string) error {
	err = httpx.Sanitize(err)
	if token != "" && strings.Contains(err.Error(), token) {
		return errors.New(strings.ReplaceAll(err.Error(), token, vault.Redacted))
	}
	return err
}

// classify turns an API error into the typed error of its family, marks
// the connection needs_reauth for refused tokens and blocks the client
// after a rate limit.
func (c *Client) classify(ctx context.Context, e *APIError, resp *Response) error {
	switch {
	case e.IsRateLimit():
		rl := &RateLimitError{APIError: e, Usage: resp.Usage.clone(), RetryAfter: resp.Usage.RegainAccess()}
		if rl.RetryAfter <= 0 {
			// Meta gave no estimate (X-App-Usage has none): calling during
			// the block extends it, so wait a while all the same.
			rl.RetryAfter = DefaultRateLimitWait
		}
		c.limits.block(c.limitKey(e.Code), c.opts.now().Add(rl.RetryAfter))
		return rl
	case e.Code == CodeInvalidToken && e.Subcode == SubcodeAppNotInstalled:
		// The user removed the app: a deauthorization, as the Deauthorize
		// Callback reports it (which may come later, or never arrive).
		return c.session.Removed(ctx, e)
	case e.Code == CodeInvalidToken && e.Subcode != SubcodeNoPageRole, e.Code == CodeTokenInvalidLegacy:
		return c.session.Refused(ctx, e)
	}
	return e
}

// limitKey is what a rate-limit code blocks: the whole app for the app
// limits (4, 341), the connection's account otherwise (a Page, an
// Instagram account or a user).
func (c *Client) limitKey(code int) string {
	if code == CodeTooManyCalls || code == CodeAppLimit {
		return "app"
	}
	return "account:" + c.session.Connection().AccountID
}

func (c *Client) limitKeys() []string {
	return []string{"app", "account:" + c.session.Connection().AccountID}
}

// Limits remembers rate-limit blocks so that no call is made while Meta
// said to wait: calls made during a block extend it. Share one Limits
// between the clients of an app (WithLimits) so that a block seen by one
// holds for all; without it each client remembers its own. It is safe for
// concurrent use.
type Limits struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// NewLimits returns an empty Limits.
func NewLimits() *Limits { return &Limits{until: map[string]time.Time{}} }

func (l *Limits) blocked(keys []string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, k := range keys {
		if u, ok := l.until[k]; ok {
			if !now.Before(u) {
				delete(l.until, k)
				continue
			}
			d = max(d, u.Sub(now))
		}
	}
	return d
}

func (l *Limits) block(key string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.until[key]) {
		l.until[key] = until
	}
}

// Usage is what Meta's rate-limit headers said about the last call. The
// figures are percentages of the budget (0–100 and beyond).
type Usage struct {
	// App is X-App-Usage: the app's platform limit (user and app tokens).
	App *UsageFigures `json:"app,omitempty"`
	// Page is X-Page-Usage (Page tokens; not in Meta's current rate-limit
	// page, parsed when present).
	Page *UsageFigures `json:"page,omitempty"`
	// Business is X-Business-Use-Case-Usage by business object id (a Page,
	// an Instagram account); a repeated key is merged.
	Business map[string][]BusinessUsage `json:"business,omitempty"`
}

// UsageFigures are the percentages of X-App-Usage and X-Page-Usage.
type UsageFigures struct {
	CallCount    int `json:"call_count"`
	TotalCPUTime int `json:"total_cputime"`
	TotalTime    int `json:"total_time"`
}

// Max returns the highest of the figures.
func (u UsageFigures) Max() int { return max(u.CallCount, u.TotalCPUTime, u.TotalTime) }

// BusinessUsage is one entry of X-Business-Use-Case-Usage.
type BusinessUsage struct {
	// Type is the use case: pages, instagram, messenger, ads_management…
	Type         string `json:"type"`
	CallCount    int    `json:"call_count"`
	TotalCPUTime int    `json:"total_cputime"`
	TotalTime    int    `json:"total_time"`
	// RegainAccess is estimated_time_to_regain_access (sent in minutes);
	// zero while not throttled.
	RegainAccess time.Duration `json:"estimated_time_to_regain_access"`
}

// Max returns the highest usage percentage in u (0 without headers).
func (u Usage) Max() int {
	m := 0
	for _, f := range []*UsageFigures{u.App, u.Page} {
		if f != nil {
			m = max(m, f.Max())
		}
	}
	for _, bs := range u.Business {
		for _, b := range bs {
			m = max(m, b.CallCount, b.TotalCPUTime, b.TotalTime)
		}
	}
	return m
}

// RegainAccess returns the longest estimated_time_to_regain_access of the
// business use cases (zero when none is throttled).
func (u Usage) RegainAccess() time.Duration {
	var d time.Duration
	for _, bs := range u.Business {
		for _, b := range bs {
			d = max(d, b.RegainAccess)
		}
	}
	return d
}

func (u Usage) clone() Usage {
	out := u
	if u.App != nil {
		a := *u.App
		out.App = &a
	}
	if u.Page != nil {
		p := *u.Page
		out.Page = &p
	}
	if u.Business != nil {
		out.Business = make(map[string][]BusinessUsage, len(u.Business))
		for k, v := range u.Business {
			out.Business[k] = append([]BusinessUsage(nil), v...)
		}
	}
	return out
}

// parseUsage reads the usage headers, leniently: a header that does not
// parse is left out.
func parseUsage(h http.Header) Usage {
	var u Usage
	u.App = parseFigures(h.Get("X-App-Usage"))
	u.Page = parseFigures(h.Get("X-Page-Usage"))
	u.Business = parseBusinessUsage(h.Get("X-Business-Use-Case-Usage"))
	return u
}

type wireFigures struct {
	CallCount    Int `json:"call_count"`
	TotalCPUTime Int `json:"total_cputime"`
	TotalTime    Int `json:"total_time"`
}

func parseFigures(v string) *UsageFigures {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var w wireFigures
	if json.Unmarshal([]byte(v), &w) != nil {
		return nil
	}
	return &UsageFigures{CallCount: int(w.CallCount), TotalCPUTime: int(w.TotalCPUTime), TotalTime: int(w.TotalTime)}
}

type wireBUC struct {
	Type         string `json:"type"`
	CallCount    Int    `json:"call_count"`
	TotalCPUTime Int    `json:"total_cputime"`
	TotalTime    Int    `json:"total_time"`
	Regain       Int    `json:"estimated_time_to_regain_access"`
}

// parseBusinessUsage reads X-Business-Use-Case-Usage token by token, so
// that a repeated key (Meta's own sample has one) adds to the first.
func parseBusinessUsage(v string) map[string][]BusinessUsage {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(v))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	out := map[string][]BusinessUsage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return out
		}
		key, ok := t.(string)
		if !ok {
			return out
		}
		var ws []wireBUC
		if err := dec.Decode(&ws); err != nil {
			return out
		}
		for _, w := range ws {
			out[key] = append(out[key], BusinessUsage{Type: w.Type, CallCount: int(w.CallCount),
				TotalCPUTime: int(w.TotalCPUTime), TotalTime: int(w.TotalTime), RegainAccess: time.Duration(w.Regain) * time.Minute})
		}
	}
	return out
}

// Lenient decoding: Graph answers spell the same kind of value several ways.

// ID is a Graph object id. It decodes from a JSON string or number
// (debug_token's app_id is a number) and encodes as a string. A number
// whose value is an integer within 64 bits is written in decimal however
// it is spelled (1e3 is "1000"); any other number is kept as written.
type ID string

// UnmarshalJSON accepts a string, a number or null.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*id = ""
		return nil
	case len(b) > 1 && b[0] == '"' && b[len(b)-1] == '"' && plainString(b[1:len(b)-1]):
		// A string with nothing to unescape, as every id Meta sends:
		// taken as it is, without a second decode (a webhook delivery's
		// events hold three ids each). BenchmarkParseWebhook (100
		// events): 1945 allocations and 147 KB → 1383 and 102 KB, a
		// median of 1.02 → 0.62 ms over six alternated runs on a loaded
		// 2-core host (before ParseWebhook decoded each event once).
		*id = ID(b[1 : len(b)-1])
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errors.New("meta: id: a malformed JSON string")
		}
		*id = ID(s)
		return nil
	}
	if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return fmt.Errorf("meta: id: %s is neither a string nor a number", jsonKind(b))
	}
	s, err := idNumber(b)
	if err != nil {
		return fmt.Errorf("meta: id: %s is neither a string nor a number: %w", jsonKind(b), err)
	}
	*id = ID(s)
	return nil
}

// idNumber is the id a JSON number spells: a number whose value is an
// integer within int64 or uint64 is written in decimal, however it is
// spelled (1e3, 1000.0 and 1000 are the id "1000", -0 is "0"); any other
// number (1.5, 1e400) is an odd id but a well-formed one, kept as it is
// written, as before (a delivery is not refused for it: crm stores it
// as the opaque text it is). What is not a JSON number is refused.
func idNumber(b []byte) (string, error) {
	s, err := jsonint.Canonical(b)
	switch {
	case errors.Is(err, jsonint.ErrSyntax):
		return "", err
	case err != nil:
		return string(b), nil
	}
	if s[0] == '-' {
		_, err = strconv.ParseInt(s, 10, 64)
	} else {
		_, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return string(b), nil
	}
	return s, nil
}

// plainString reports whether s, the inside of a JSON string, is printable
// ASCII with no escape and no quote: the string's value is s itself.
func plainString(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x80 || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// Int is an integer that decodes from a JSON number or a numeric string.
type Int int64

// UnmarshalJSON accepts a number or a numeric string whose value is an
// integer within int64, however it is spelled (1e3, 1000.0), and "" or
// null (zero). A fraction (1.5) or a larger integer is refused.
func (n *Int) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte(`""`)) {
		*n = 0
		return nil
	}
	num := bytes.Trim(b, `"`)
	if v, err := strconv.ParseInt(string(num), 10, 64); err == nil {
		*n = Int(v)
		return nil
	}
	v, err := jsonint.Parse(num)
	switch {
	case errors.Is(err, jsonint.ErrSyntax):
		return fmt.Errorf("meta: integer: %s is not an integer", jsonKind(b))
	case err != nil:
		return fmt.Errorf("meta: integer: %s: %w", jsonKind(b), err)
	}
	*n = Int(v)
	return nil
}

// Bool is a boolean that decodes from true/false, "true"/"false", 1/0 and
// "1"/"0".
type Bool bool

// UnmarshalJSON accepts the spellings above and null (false).
func (v *Bool) UnmarshalJSON(b []byte) error {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(b)), `"`)) {
	case "true", "1":
		*v = true
	case "false", "0", "null", "":
		*v = false
	default:
		return fmt.Errorf("meta: boolean: %s is not a boolean", jsonKind(b))
	}
	return nil
}

// Timestamp is a time that decodes from Unix seconds or milliseconds (as
// a number or a numeric string), RFC 3339, and Graph's
// "2006-01-02T15:04:05+0000" (insights end_time). A number is read by its
// value, however it is spelled (1e3, 1000.0), and must be an integer
// within int64: a fraction is refused. Zero (0, -0, "0") and null decode
// to the zero time. It is always in UTC.
type Timestamp struct {
	time.Time
}

// graphTimeLayouts are the string forms Graph uses.
var graphTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// UnmarshalJSON accepts the forms above.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" || s == "0" {
		t.Time = time.Time{}
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		t.Time = unixAuto(n)
		return nil
	}
	if c := s[0]; c == '-' || c >= '0' && c <= '9' {
		// A number spelled otherwise (1e3, 1000.0, -0) is read by its
		// value, which must be an integer within int64.
		n, err := jsonint.Parse([]byte(s))
		switch {
		case err == nil:
			t.Time = unixAuto(n)
			return nil
		case !errors.Is(err, jsonint.ErrSyntax):
			return fmt.Errorf("meta: time: %s: %w", jsonKind(b), err)
		}
	}
	for _, l := range graphTimeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("meta: time: %s is not a time", jsonKind(b))
}

// MarshalJSON encodes RFC 3339 (null for the zero time).
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// unixAuto reads n as milliseconds when it is too large for seconds (any
// time after 2286 in seconds is a time after 1970 in milliseconds).
func unixAuto(n int64) time.Time {
	if n == 0 {
		return time.Time{} // 0 however spelled (-0, 0e3): no time
	}
	if n > 1e11 || n < -1e11 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

// jsonKind names the kind of the JSON value b holds ("a JSON object"),
// never its content: the errors of the lenient decoders above reach the
// log ("meta: webhook malformed"), and a value of a body is a PSID, a
// text, a token.
func jsonKind(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "an empty value"
	}
	switch c := b[0]; {
	case c == '{':
		return "a JSON object"
	case c == '[':
		return "a JSON array"
	case c == '"':
		return "a JSON string"
	case c == 't' || c == 'f':
		return "a JSON boolean"
	case c == 'n':
		return "JSON null"
	case c == '-' || c >= '0' && c <= '9':
		return "a JSON number"
	}
	return "malformed JSON"
}

// paging is a Graph list's paging object.
type paging struct {
	Cursors struct {
		Before string `json:"before"`
		After  string `json:"after"`
	} `json:"cursors"`
	Next string `json:"next"`
}

// list is a Graph list answer.
type list[T any] struct {
	Data   []T    `json:"data"`
	Paging paging `json:"paging"`
}

// init builds the services.
func (c *Client) init() {
	c.Pages = &PagesService{c: c}
	c.Instagram = &InstagramService{c: c}
	c.Messenger = &MessengerService{c: c}
	c.InstagramComments = &CommentsService{c: c, instagram: true}
	c.PageComments = &CommentsService{c: c}
}

// tokenKind names the kind of a JSON token (json.Decoder.Token), never
// its value: a delimiter as itself, any other as its kind.
func tokenKind(t json.Token) string {
	switch t := t.(type) {
	case json.Delim:
		return t.String()
	case string:
		return "a JSON string"
	case float64, json.Number:
		return "a JSON number"
	case bool:
		return "a JSON boolean"
	case nil:
		return "JSON null"
	}
	return "a JSON value"
}
