// Package httpx is the HTTP plumbing of socialcrm's platform clients:
// bounded, jittered retries on 429 and 5xx that honour Retry-After and the
// context's deadline, and error messages with secrets redacted.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a Retrier.
const (
	DefaultAttempts  = 4
	DefaultBaseDelay = 250 * time.Millisecond
	DefaultMaxDelay  = 30 * time.Second
)

// Retrier sends requests and retries them safely. The zero value is usable
// with the defaults and http.DefaultClient.
type Retrier struct {
	// Client sends the requests (nil: http.DefaultClient).
	Client *http.Client
	// Attempts bounds the tries per request, the first included (0:
	// DefaultAttempts).
	Attempts int
	// BaseDelay and MaxDelay bound the jittered exponential backoff (0:
	// the defaults). A Retry-After longer than MaxDelay is not waited for:
	// the response is returned.
	BaseDelay, MaxDelay time.Duration
	// Now is the clock for Retry-After dates (nil: time.Now).
	Now func() time.Time
	// Wait waits d or until ctx ends (nil: a timer). Tests replace it to
	// record the delays instead of sleeping.
	Wait func(ctx context.Context, d time.Duration) error

	mu           sync.Mutex
	blockedUntil time.Time // a 429 said to come back later than we could wait
}

// RateLimitedError is returned without sending anything while a previous
// 429 asked to wait longer than MaxDelay (or longer than the context
// allowed): the rate limit is known to be spent.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("httpx: rate limited, retry after %s", e.RetryAfter)
}

func (r *Retrier) blocked() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blockedUntil.IsZero() {
		return 0
	}
	return r.blockedUntil.Sub(r.now())
}

func (r *Retrier) block(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if until := r.now().Add(d); until.After(r.blockedUntil) {
		r.blockedUntil = until
	}
}

// Do sends req, retrying on transport errors, 429 and 5xx responses while
// attempts remain and ctx allows. A request that is not idempotent is
// retried only after a 429, which says it was not processed. The body must
// be replayable (req.GetBody, as http.NewRequest sets for in-memory
// bodies). The last response is returned as is, with a non-nil error only
// for a transport failure, whose message has secrets removed from the URL.
func (r *Retrier) Do(req *http.Request, idempotent bool) (*http.Response, error) {
	ctx := req.Context()
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if d := r.blocked(); d > 0 {
		return nil, &RateLimitedError{RetryAfter: d}
	}
	for n := 1; ; n++ {
		if n > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("httpx: replay body: %w", err)
			}
			req.Body = body
		}
		resp, err := r.client().Do(req)
		if err != nil {
			err = sanitize(err)
			if n >= attempts || !idempotent || ctx.Err() != nil {
				return nil, err
			}
			if werr := r.wait(ctx, r.backoff(n)); werr != nil {
				return nil, errors.Join(err, werr)
			}
			continue
		}
		limited := resp.StatusCode == http.StatusTooManyRequests
		ra, hasRA := r.retryAfter(resp.Header.Get("Retry-After"))
		retry := limited || idempotent && resp.StatusCode >= 500
		if !retry || n >= attempts {
			if limited && hasRA {
				r.block(ra)
			}
			return resp, nil
		}
		d := r.backoff(n)
		if hasRA {
			if ra > r.maxDelay() {
				if limited {
					r.block(ra)
				}
				return resp, nil
			}
			d = max(d, ra)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			if limited && hasRA {
				r.block(ra)
			}
			return resp, nil // waiting would outlive the caller
		}
		drain(resp)
		if err := r.wait(ctx, d); err != nil {
			return nil, err
		}
	}
}

func (r *Retrier) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return http.DefaultClient
}

func (r *Retrier) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Retrier) maxDelay() time.Duration {
	if r.MaxDelay > 0 {
		return r.MaxDelay
	}
	return DefaultMaxDelay
}

// backoff returns the jittered delay before attempt n+1: uniformly in
// [d/2, d] for d = BaseDelay·2^(n-1), capped at MaxDelay.
func (r *Retrier) backoff(n int) time.Duration {
	base := r.BaseDelay
	if base <= 0 {
		base = DefaultBaseDelay
	}
	d := min(base<<min(n-1, 20), r.maxDelay())
	half := d / 2
	return half + rand.N(half+1)
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func (r *Retrier) retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(r.now()), 0), true
	}
	return 0, false
}

func (r *Retrier) wait(ctx context.Context, d time.Duration) error {
	if r.Wait != nil {
		return r.Wait(ctx, d)
	}
	return Sleep(ctx, d)
}

// Sleep waits d or until ctx ends, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func drain(resp *http.Response) {
	buf := make([]byte, 4096)
	for range 16 {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// secretParams are query parameters whose values never appear in errors.
var secretParams = []string{
	"access_token", "refresh_token", "client_secret", "code", "code_verifier",
	"token", "upload_token", "appsecret_proof", "fb_exchange_token", "input_token",
}

// RedactURL returns u as a string with the values of secret query
// parameters replaced by "REDACTED" and any user info removed.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	q := c.Query()
	changed := false
	for k := range q {
		for _, s := range secretParams {
			if strings.EqualFold(k, s) {
				q[k] = []string{"REDACTED"}
				changed = true
			}
		}
	}
	if changed {
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// Sanitize rewrites a *url.Error so that its URL has no secrets; other
// errors are returned as they are.
func Sanitize(err error) error { return sanitize(err) }

// sanitize rewrites a *url.Error so that its URL has no secrets.
func sanitize(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		redacted := "[unparseable URL]"
		if perr == nil {
			redacted = RedactURL(u)
		}
		return &url.Error{Op: ue.Op, URL: redacted, Err: ue.Err}
	}
	return err
}

// ScrubJSONError returns err with no value of the input in its text:
// encoding/json's type errors quote a number they could not store
// ("cannot unmarshal number 88005512 into …"), and the platform clients'
// errors reach logs (a webhook's refusal among them). The scrubbed text
// names the field, the JSON kind and the type wanted; other errors are
// returned as they are (a syntax error quotes one character at most).
func ScrubJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	kind, _, _ := strings.Cut(te.Value, " ")
	where := "value"
	if te.Field != "" {
		where = "field " + te.Field
	}
	return fmt.Errorf("json: %s: a JSON %s where %s expected", where, kind, te.Type)
}
