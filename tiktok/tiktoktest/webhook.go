package tiktoktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// SignatureHeader is the header that carries a webhook's signature. (The
// docs also print it as "Tiktok-Signature"; HTTP header names are
// case-insensitive.)
const SignatureHeader = "TikTok-Signature"

// Event is the body TikTok POSTs to a webhook URL
// (https://developers.tiktok.com/doc/webhooks-events). Content is itself a
// string of serialized JSON.
type Event struct {
	ClientKey  string `json:"client_key"`
	Event      string `json:"event"`
	CreateTime int64  `json:"create_time"`
	UserOpenID string `json:"user_openid,omitempty"`
	Content    string `json:"content"`
}

// Sign returns the TikTok-Signature value for body sent at timestamp (Unix
// seconds): "t=<timestamp>,s=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed
// with the client secret>".
func Sign(secret string, timestamp int64, body []byte) string {
	ts := strconv.FormatInt(timestamp, 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",s=" + hex.EncodeToString(mac.Sum(nil))
}

// WebhookError reports a delivery the receiver did not accept with 200.
type WebhookError struct {
	StatusCode int
}

func (e *WebhookError) Error() string {
	return fmt.Sprintf("tiktoktest: webhook answered HTTP %d, want 200", e.StatusCode)
}

// SendWebhook signs ev with the secret of the app ev.ClientKey names and
// POSTs it to targetURL, once (TikTok retries failures for 72 hours; tests
// call again to simulate that). A zero CreateTime is set from the server
// clock, which also gives the signature's timestamp. It returns the
// Delivery made (also with an error, once the request was sent); a
// receiver answering anything but 200 gives a *WebhookError.
func (s *Server) SendWebhook(ctx context.Context, targetURL string, ev Event) (*Delivery, error) {
	s.mu.Lock()
	app, ok := s.apps[ev.ClientKey]
	var secret string
	if ok {
		secret = app.ClientSecret
	}
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownApp, ev.ClientKey)
	}
	now := s.Now()
	if ev.CreateTime == 0 {
		ev.CreateTime = now.Unix()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("tiktoktest: SendWebhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, targetURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tiktoktest: SendWebhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	d := &Delivery{URL: targetURL, Body: body, Signature: Sign(secret, now.Unix(), body)}
	req.Header.Set(SignatureHeader, d.Signature)
	resp, err := s.cfg.webhookClient.Do(req)
	if err != nil {
		return d, fmt.Errorf("tiktoktest: SendWebhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	d.StatusCode = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		return d, &WebhookError{StatusCode: resp.StatusCode}
	}
	return d, nil
}

// Delivery is a webhook POST the emulator made.
type Delivery struct {
	URL        string
	Body       []byte // the exact payload
	Signature  string // the Tiktok-Signature header
	StatusCode int    // 0 when no answer arrived
}

// Deauthorize plays a user who disconnects the app (or whose account is
// deleted, banned…): every token of openID for clientKey is revoked,
// publishes in flight fail with auth_removed, and, if the app has a
// WebhookURL, an authorization.removed event with the given reason (0
// unknown, 1 user disconnected, 2 account deleted, 3 age changed, 4 account
// banned, 5 developer revoked) is delivered to it, after the revocation as
// TikTok documents.
func (s *Server) Deauthorize(ctx context.Context, clientKey, openID string, reason int) error {
	s.mu.Lock()
	app, ok := s.apps[clientKey]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownApp, clientKey)
	}
	if _, ok := s.users[openID]; !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownUser, openID)
	}
	hook := app.WebhookURL
	s.revokeLocked(clientKey, openID)
	s.mu.Unlock()
	if hook == "" {
		return nil
	}
	content, err := json.Marshal(map[string]int{"reason": reason})
	if err != nil {
		return err
	}
	_, err = s.SendWebhook(ctx, hook, Event{
		ClientKey:  clientKey,
		Event:      "authorization.removed",
		UserOpenID: openID,
		Content:    string(content),
	})
	return err
}
