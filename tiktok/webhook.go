package tiktok

import (
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
	"strconv"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/internal/jsonint"
	"github.com/socialcrm/socialcrm/social"
)

// SignatureHeader carries a webhook delivery's signature (TikTok writes it
// with both capitalizations; HTTP header names are case-insensitive).
const SignatureHeader = "TikTok-Signature"

// Webhook defaults.
const (
	// DefaultTolerance is how old a delivery's signed timestamp may be.
	// TikTok names no number; five minutes is the common choice.
	DefaultTolerance = 5 * time.Minute
	// MaxWebhookBody bounds a delivery's body.
	MaxWebhookBody = 1 << 20
)

// Webhook event names (https://developers.tiktok.com/doc/webhooks-events).
const (
	EventAuthorizationRemoved      = "authorization.removed"
	EventVideoUploadFailed         = "video.upload.failed"
	EventVideoPublishCompleted     = "video.publish.completed"
	EventPostPublishFailed         = "post.publish.failed"
	EventPostPublishComplete       = "post.publish.complete"
	EventPostPublishInboxDelivered = "post.publish.inbox_delivered"
	EventPostPublicAvailable       = "post.publish.publicly_available"
	// EventPostNoLongerPublic is spelled as TikTok documents it;
	// ParseEvent also accepts the corrected spelling and normalizes to it.
	EventPostNoLongerPublic = "post.publish.no_longer_publicaly_available"
)

// logEventName is how a log names the event type name: as it is when
// TikTok documents it (the Event… constants), else "unknown". The name
// comes from the body, and a log must never carry arbitrary body text.
func logEventName(name string) string {
	switch name {
	case EventAuthorizationRemoved, EventVideoUploadFailed, EventVideoPublishCompleted, EventPostPublishFailed,
		EventPostPublishComplete, EventPostPublishInboxDelivered, EventPostPublicAvailable, EventPostNoLongerPublic:
		return name
	}
	return "unknown"
}

// ErrSignature is returned for a delivery whose signature is missing,
// malformed, wrong, or too old.
var ErrSignature = errors.New("tiktok: webhook signature invalid")

// Event is a webhook delivery. Content is the event's payload, already
// decoded from the JSON string TikTok sends it as.
type Event struct {
	ClientKey  string          `json:"client_key"`
	Event      string          `json:"event"`
	CreateTime int64           `json:"create_time"` // Unix seconds
	UserOpenID string          `json:"user_openid"`
	Content    json.RawMessage `json:"-"`
}

// AuthorizationRemoved is the content of authorization.removed. Reason: 0
// unknown, 1 user disconnected, 2 account deleted, 3 age changed, 4 account
// banned, 5 developer revoked.
type AuthorizationRemoved struct {
	Reason int `json:"reason"`
}

// UnmarshalJSON reads reason as any JSON number whose value is an integer
// within int (1, 1e0, 1.0); a fraction or a larger number is refused.
func (a *AuthorizationRemoved) UnmarshalJSON(b []byte) error {
	var w struct {
		Reason *wireInt `json:"reason"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("tiktok: reason: %w", err)
	}
	a.Reason = 0
	if w.Reason != nil {
		if int64(int(*w.Reason)) != int64(*w.Reason) {
			return fmt.Errorf("tiktok: reason: %w", jsonint.ErrRange)
		}
		a.Reason = int(*w.Reason)
	}
	return nil
}

// PostEvent is the content of the post.publish.* events.
type PostEvent struct {
	PublishID string `json:"publish_id"`
	// PostID is the post's id in decimal, however the number was spelled
	// (7.3e18 is 7300000000000000000), every digit kept (see
	// UnmarshalJSON).
	PostID      json.Number `json:"post_id"`
	PublishType string      `json:"publish_type"`
	Reason      string      `json:"reason"`
}

// UnmarshalJSON reads post_id as a number or a numeric string: one whose
// value is an integer of at most 20 digits is written in decimal, however
// it is spelled; any other (7.5, 1e400) is kept as written, as
// encoding/json keeps a json.Number.
func (e *PostEvent) UnmarshalJSON(b []byte) error {
	type plain PostEvent
	var w struct {
		*plain
		PostID json.Number `json:"post_id"`
	}
	w.plain = (*plain)(e)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.PostID = w.PostID
	if id, err := jsonint.Canonical([]byte(w.PostID)); err == nil {
		e.PostID = json.Number(id)
	}
	return nil
}

// wireInt is an integer TikTok sends as a JSON number: any spelling of
// an integer within int64 (1700000000, 1.7e9, 1700000000.0) is read by
// its value; a fraction or a larger number is refused.
type wireInt int64

func (n *wireInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json leaves an int64
	}
	v, err := jsonint.Parse(b)
	if err != nil {
		return fmt.Errorf("integer: %w", err)
	}
	*n = wireInt(v)
	return nil
}

// ParseEvent decodes a delivery body, including the second decode of its
// content string. It does not verify the signature (VerifySignature).
func ParseEvent(body []byte) (*Event, error) {
	var raw struct {
		ClientKey  string  `json:"client_key"`
		Event      string  `json:"event"`
		CreateTime wireInt `json:"create_time"`
		UserOpenID string  `json:"user_openid"`
		Content    string  `json:"content"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("tiktok: webhook body: %w", httpx.ScrubJSONError(err))
	}
	if raw.Event == "" {
		return nil, errors.New("tiktok: webhook body without event")
	}
	ev := &Event{ClientKey: raw.ClientKey, Event: raw.Event, CreateTime: int64(raw.CreateTime), UserOpenID: raw.UserOpenID}
	if ev.Event == "post.publish.no_longer_publicly_available" {
		ev.Event = EventPostNoLongerPublic
	}
	if raw.Content != "" {
		if !json.Valid([]byte(raw.Content)) {
			return nil, errors.New("tiktok: webhook content is not JSON")
		}
		ev.Content = json.RawMessage(raw.Content)
	}
	return ev, nil
}

// Decode decodes the event's content into v (*AuthorizationRemoved,
// *PostEvent, …).
func (e *Event) Decode(v any) error {
	if len(e.Content) == 0 {
		return errors.New("tiktok: webhook event without content")
	}
	if err := json.Unmarshal(e.Content, v); err != nil {
		return fmt.Errorf("tiktok: webhook content: %w", httpx.ScrubJSONError(err))
	}
	return nil
}

// VerifySignature checks a TikTok-Signature value ("t=<unix>,s=<hex>")
// against the raw body with the app's client secret, in constant time,
// and that its timestamp is within tolerance of now. Failures match
// ErrSignature.
func VerifySignature(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "s":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("%w: malformed header", ErrSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: malformed header", ErrSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: mismatch", ErrSignature)
	}
	if age := now.Sub(time.Unix(t, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: timestamp outside the tolerance", ErrSignature)
	}
	return nil
}

// Webhook is the http.Handler for TikTok's webhook deliveries: it reads
// the raw body up to MaxWebhookBody, verifies the signature, dedupes
// deliveries (they come at least once), disconnects the account's
// connections on authorization.removed (starting their purge through the
// store's disconnect hook), and passes every new event to the
// EventHandler given to NewWebhook. It answers 200 once a delivery is handled or
// known, 401 for a bad signature, 400 for a malformed body, 413 for a body
// too large, and 500 when handling failed (TikTok then retries). It is
// safe for concurrent use.
type Webhook struct {
	cfg       Config
	store     *social.Store
	now       func() time.Time
	tolerance time.Duration
	onEvent   EventHandler
	log       *slog.Logger
}

// WithTolerance sets how old a signed timestamp the Webhook accepts may be
// (default DefaultTolerance).
func WithTolerance(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("tiktok: WithTolerance: must be positive")
		}
		o.tolerance = d
		return nil
	}
}

// EventHandler is called with each new, verified event, after the
// built-in handling. An error makes the delivery fail (500), so TikTok
// retries it.
type EventHandler func(ctx context.Context, ev *Event) error

// NewWebhook returns the webhook handler of cfg's app over store, passing
// each new event to handle after the built-in handling (nil: the built-in
// handling only). WithClock sets the clock of the timestamp check,
// WithLogger the logger, WithTolerance the accepted age.
func NewWebhook(cfg Config, store *social.Store, handle EventHandler, opts ...Option) (*Webhook, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("tiktok: NewWebhook: nil store")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	w := &Webhook{cfg: cfg, store: store, onEvent: handle, now: o.now, log: o.log, tolerance: o.tolerance}
	if w.tolerance == 0 {
		w.tolerance = DefaultTolerance
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w, nil
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(rw, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "bad body", http.StatusBadRequest)
		return
	}
	if err := VerifySignature(r.Header.Get(SignatureHeader), body, w.cfg.ClientSecret, w.now(), w.tolerance); err != nil {
		w.log.WarnContext(r.Context(), "tiktok: webhook refused", "error", err)
		http.Error(rw, "invalid signature", http.StatusUnauthorized)
		return
	}
	ev, err := ParseEvent(body)
	if err != nil || ev.ClientKey != w.cfg.ClientKey {
		http.Error(rw, "malformed event", http.StatusBadRequest)
		return
	}
	if err := w.handle(r.Context(), ev, body); err != nil {
		w.log.ErrorContext(r.Context(), "tiktok: webhook handling failed", "event", logEventName(ev.Event), "error", err)
		http.Error(rw, "handling failed", http.StatusInternalServerError)
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// handle processes ev once: TikTok documents no event id, so a delivery is
// identified by its event, user, time and content. The key is claimed
// before and marked processed after the handling (social.Store.Once), so a
// process dying in between loses nothing: the redelivery handles the
// event again (revoking a revoked account does nothing). A delivery
// another process is handling answers 500, and TikTok retries it.
func (w *Webhook) handle(ctx context.Context, ev *Event, body []byte) error {
	sum := sha256.Sum256(append([]byte(ev.Event+"\x00"+ev.UserOpenID+"\x00"+strconv.FormatInt(ev.CreateTime, 10)+"\x00"), ev.Content...))
	key := hex.EncodeToString(sum[:])
	return w.store.Once(ctx, Platform, key, 0, func(ctx context.Context) error { return w.dispatch(ctx, ev) })
}

func (w *Webhook) dispatch(ctx context.Context, ev *Event) error {
	if ev.Event == EventAuthorizationRemoved && ev.UserOpenID != "" {
		var ar AuthorizationRemoved
		if len(ev.Content) > 0 {
			if err := ev.Decode(&ar); err != nil {
				return err
			}
		}
		if _, err := w.store.AccountRemoved(ctx, Platform, ev.UserOpenID, "authorization.removed:"+strconv.Itoa(ar.Reason)); err != nil {
			return err
		}
	}
	if w.onEvent != nil {
		return w.onEvent(ctx, ev)
	}
	return nil
}
