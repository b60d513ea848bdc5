package tiktok

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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
	c := &Client{cfg: cfg, rt: o.retrier(), session: o.session, keepRaw: o.keepRaw}
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

// call sends one data API request: scope check, token, request with fields
// in the query string and body as JSON, envelope decoding. An
// access_token_invalid answer marks the connection needs_reauth.
func (c *Client) call(ctx context.Context, method, path string, fields []string, body any, out any, need ...string) (*Response, error) {
	return c.callKeep(ctx, method, path, fields, body, out, nil, need...)
}

// callKeep is call that also copies the raw answer into keep, if not nil.
func (c *Client) callKeep(ctx context.Context, method, path string, fields []string, body any, out any, keep *[]byte, need ...string) (*Response, error) {
	if err := c.session.Require(need...); err != nil {
		return nil, err
	}
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
	resp, err := c.rt.Do(req, true)
	if err != nil {
		return nil, transportError(path, err)
	}
	defer resp.Body.Close()
	r := &Response{Response: resp}
	r.LogID, err = decodeEnvelope(resp, out, keep)
	if errors.Is(err, social.ErrInvalidToken) {
		return r, c.session.Refused(ctx, err)
	}
	return r, err
}
