package metatest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// EncodeSignedRequest builds a signed_request as Meta does for its
// deauthorize and data deletion callbacks: base64url(signature) + "." +
// base64url(payload JSON), without padding, where signature is the
// HMAC-SHA256 of the encoded payload string keyed with the app secret. Use
// it for negative tests (another secret, another algorithm); use
// Server.SignedRequest for a valid one.
func EncodeSignedRequest(appSecret string, payload any) (string, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("metatest: EncodeSignedRequest: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(raw)
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "." + p, nil
}

// SignedRequestPayload is the payload Meta signs for the callbacks.
type SignedRequestPayload struct {
	Algorithm string `json:"algorithm"` // "HMAC-SHA256"
	Expires   int64  `json:"expires"`
	IssuedAt  int64  `json:"issued_at"`
	UserID    string `json:"user_id"` // the app-scoped user id
}

// SignedRequest builds a valid signed_request for the app and user, issued
// at the emulator's now and expiring an hour later.
func (s *Server) SignedRequest(appID, userID string) (string, error) {
	s.mu.Lock()
	a := s.apps[appID]
	now := s.nowLocked()
	s.mu.Unlock()
	if a == nil {
		return "", fmt.Errorf("metatest: SignedRequest: app %q: %w", appID, ErrNotFound)
	}
	if userID == "" {
		return "", invalid("SignedRequest: empty user id")
	}
	return EncodeSignedRequest(a.Secret, SignedRequestPayload{
		Algorithm: "HMAC-SHA256", IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix(), UserID: userID,
	})
}

func (s *Server) postSignedRequest(ctx context.Context, kind, appID, userID, callbackURL string) (*http.Response, []byte, error) {
	sr, err := s.SignedRequest(appID, userID)
	if err != nil {
		return nil, nil, err
	}
	form := url.Values{"signed_request": {sr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, callbackURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, &CallbackError{Kind: kind, URL: callbackURL, Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, &CallbackError{Kind: kind, URL: callbackURL, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp, nil, &CallbackError{Kind: kind, URL: callbackURL, StatusCode: resp.StatusCode, Err: err}
	}
	return resp, body, nil
}

// Deauthorize simulates the user removing the app in their Facebook
// settings: the app loses its grant (the user's tokens now fail with code
// 190, subcode 458) and, when callbackURL is not empty, Meta's deauthorize
// callback is POSTed there with a signed_request form field. A non-2xx
// answer is reported as a *CallbackError; the grant is revoked either way.
func (s *Server) Deauthorize(ctx context.Context, appID, userID, callbackURL string) error {
	s.mu.Lock()
	if s.apps[appID] == nil {
		s.mu.Unlock()
		return fmt.Errorf("metatest: Deauthorize: app %q: %w", appID, ErrNotFound)
	}
	if s.users[userID] == nil {
		s.mu.Unlock()
		return fmt.Errorf("metatest: Deauthorize: user %q: %w", userID, ErrNotFound)
	}
	s.revoke(appID, userID)
	s.mu.Unlock()
	if callbackURL == "" {
		return nil
	}
	resp, _, err := s.postSignedRequest(ctx, "deauthorize", appID, userID, callbackURL)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &CallbackError{Kind: "deauthorize", URL: callbackURL, StatusCode: resp.StatusCode, Reason: "not acknowledged"}
	}
	return nil
}

// DeletionConfirmation is what a data deletion callback must answer.
type DeletionConfirmation struct {
	URL              string `json:"url"`
	ConfirmationCode string `json:"confirmation_code"`
}

var confirmationCodePattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// RequestDataDeletion simulates the user sending a data deletion request
// from their Facebook settings: it POSTs a signed_request form field to
// callbackURL and checks the answer as Meta requires: status 200 and a JSON
// object with an absolute status "url" and an alphanumeric
// "confirmation_code". Anything else is a *CallbackError.
func (s *Server) RequestDataDeletion(ctx context.Context, appID, userID, callbackURL string) (*DeletionConfirmation, error) {
	resp, body, err := s.postSignedRequest(ctx, "data deletion", appID, userID, callbackURL)
	if err != nil {
		return nil, err
	}
	bad := func(reason string) error {
		return &CallbackError{Kind: "data deletion", URL: callbackURL, StatusCode: resp.StatusCode, Reason: reason}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, bad("want status 200")
	}
	var dc DeletionConfirmation
	if err := json.Unmarshal(body, &dc); err != nil {
		return nil, bad("the body is not a JSON object with url and confirmation_code")
	}
	u, err := url.Parse(dc.URL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, bad("url must be an absolute status URL")
	}
	if !confirmationCodePattern.MatchString(dc.ConfirmationCode) {
		return nil, bad("confirmation_code must be a non-empty alphanumeric code")
	}
	return &dc, nil
}
