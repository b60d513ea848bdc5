package tiktok

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/social"
)

// Client is the typed TikTok API client of one connected account. Every
// method checks the connection's granted scopes first and returns a
// *social.ScopeError, sending nothing, when one is missing; the access
// token is opened in memory for each call (and refreshed when it expires
// soon) by the session. A Client is safe for concurrent use.
type Client struct {
	cfg     Config
	rt      *httpx.Retrier
	session *social.Session

	// User reads the account's profile and stats.
	User *UserService
	// Videos lists and queries the account's public videos.
	Videos *VideoService
	// Posting publishes videos (Content Posting API).
	Posting *PostingService

	keepRaw bool
	now     func() time.Time
}

// WithSession sets the connection the client acts for (required by New):
//
//	sess, err := store.Session(ctx, connID, provider)
//	client, err := tiktok.New(cfg, tiktok.WithSession(sess))
func WithSession(s *social.Session) Option {
	return func(o *options) error {
		if s == nil {
			return fmt.Errorf("tiktok: WithSession: nil session")
		}
		o.session = s
		return nil
	}
}

// New returns a client for cfg's app acting for the WithSession connection.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.session == nil {
		return nil, fmt.Errorf("tiktok: New: WithSession is required")
	}
	c := &Client{cfg: cfg, rt: o.retrier(), session: o.session, keepRaw: o.keepRaw, now: o.now}
	c.User = &UserService{c: c}
	c.Videos = &VideoService{c: c}
	c.Posting = &PostingService{c: c}
	return c, nil
}

// Response is the HTTP answer of a call, with TikTok's log_id.
type Response struct {
	*http.Response
	// LogID identifies the call for TikTok support.
	LogID string
}

// writes are the data API methods that change something at TikTok. They
// are not idempotent: none is sent again after a server error or a lost
// answer (only after a 429, which says nothing was done), and such an
// outcome is an *OutcomeUnknownError. Every other method only reads and is
// retried.
var writes = map[string]bool{
	"/v2/post/publish/video/init/":       true,
	"/v2/post/publish/inbox/video/init/": true,
	"/v2/post/publish/content/init/":     true,
	"/v2/post/publish/cancel/":           true,
}

// OutcomeUnknownError is returned for a write (a publish init, a cancel)
// whose answer was lost or was a server error: TikTok may or may not have
// carried it out, and it is not sent again. Check before deciding:
// Posting.Lookup fetches the task's status when PublishID is set, and
// otherwise looks for the post among the creator's videos after SentAt.
// errors.Is(err, social.ErrOutcomeUnknown) holds.
type OutcomeUnknownError struct {
	// Path is the endpoint called; SentAt when.
	Path   string
	SentAt time.Time
	// StatusCode is the HTTP status, 0 when no answer arrived.
	StatusCode int
	// LogID and PublishID are what the answer named, if anything.
	LogID, PublishID string
	// Err is the transport error or the server's refusal.
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("tiktok: %s: outcome unknown (HTTP %d, not sent again): %v", e.Path, e.StatusCode, e.Err)
}

// Unwrap returns Err.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, social.ErrOutcomeUnknown) hold.
func (e *OutcomeUnknownError) Is(target error) bool { return target == social.ErrOutcomeUnknown }

// call sends one data API request: scope check, token, request with fields
// in the query string and body as JSON, envelope decoding. An
// access_token_invalid answer first tries a newer or refreshed token, once,
// and marks the connection needs_reauth only when there is none.
func (c *Client) call(ctx context.Context, method, path string, fields []string, body any, out any, need ...string) (*Response, error) {
	return c.callKeep(ctx, method, path, fields, body, out, nil, need...)
}

// callKeep is call that also copies the raw answer into keep, if not nil.
func (c *Client) callKeep(ctx context.Context, method, path string, fields []string, body any, out any, keep *[]byte, need ...string) (*Response, error) {
	if err := c.session.Require(need...); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		r, err := c.send(ctx, method, path, fields, body, out, keep)
		if !errors.Is(err, social.ErrInvalidToken) {
			return r, err
		}
		// A refused token: nothing was done, so even a write may go again.
		err = c.session.Refused(ctx, err)
		if try > 0 || !errors.Is(err, social.ErrTokenRenewed) {
			return r, err
		}
	}
}

func (c *Client) send(ctx context.Context, method, path string, fields []string, body any, out any, keep *[]byte) (*Response, error) {
	tok, err := c.session.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("tiktok: %s: %w", path, err)
	}
	u := c.cfg.base() + path
	if len(fields) > 0 {
		u += "?" + url.Values{"fields": {strings.Join(fields, ",")}}.Encode()
	}
	var rdr *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("tiktok: %s: %w", path, err)
		}
		rdr = bytes.NewReader(b)
	}
	var req *http.Request
	if rdr != nil {
		req, err = http.NewRequestWithContext(ctx, method, u, rdr)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("tiktok: %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}
	write := writes[path]
	sent := c.now()
	resp, err := c.rt.Do(req, !write)
	if err != nil {
		var rl *httpx.RateLimitedError
		if write && !errors.As(err, &rl) {
			return nil, &OutcomeUnknownError{Path: path, SentAt: sent, Err: transportError(path, err)}
		}
		return nil, transportError(path, err)
	}
	defer resp.Body.Close()
	r := &Response{Response: resp}
	var data struct {
		PublishID string `json:"publish_id"`
	}
	if write && resp.StatusCode >= 500 {
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		r.LogID, err = parseEnvelope(resp.StatusCode, raw, &data)
		if err == nil {
			err = rerr
		}
		if err == nil {
			err = fmt.Errorf("tiktok: %s: HTTP %d", path, resp.StatusCode)
		}
		return r, &OutcomeUnknownError{Path: path, SentAt: sent, StatusCode: resp.StatusCode, LogID: r.LogID, PublishID: data.PublishID, Err: err}
	}
	r.LogID, err = decodeEnvelope(resp, out, keep)
	var ae *APIError
	if write && err != nil && !errors.As(err, &ae) {
		// The answer was cut short: TikTok acted or not.
		return r, &OutcomeUnknownError{Path: path, SentAt: sent, StatusCode: resp.StatusCode, LogID: r.LogID, Err: err}
	}
	return r, err
}
