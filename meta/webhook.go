package meta

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// SignatureHeader carries a webhook delivery's signature:
// "sha256=" + the lowercase hex HMAC-SHA256 of the raw body keyed with the
// app secret.
const SignatureHeader = "X-Hub-Signature-256"

// DefaultMaxWebhookBody bounds a delivery's body. Meta batches up to 1,000
// updates in one delivery; 4 MiB holds them with room to spare.
const DefaultMaxWebhookBody = 4 << 20

// deliveryPlatform names Meta's webhook deliveries in social's delivery
// table.
const deliveryPlatform = "meta"

// ErrSignature is returned for a delivery whose X-Hub-Signature-256 is
// missing, malformed or wrong.
var ErrSignature = errors.New("meta: webhook signature invalid")

// VerifySignature checks an X-Hub-Signature-256 value against the exact
// raw body with the app secret, in constant time. Meta signs the body as
// it sends it (non-ASCII escaped as \uXXXX), so verify the received bytes
// before decoding them, never a re-encoding. Failures match ErrSignature.
func VerifySignature(header string, body []byte, appSecret vault.Secret) error {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return fmt.Errorf("%w: malformed header", ErrSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed header", ErrSignature)
	}
	mac := hmac.New(sha256.New, appSecret.Reveal())
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: mismatch", ErrSignature)
	}
	return nil
}

// WebhookConfig is what the webhook endpoint of one Meta app needs. Both
// fields are required; as vault.Secret values they print as [REDACTED]
// and never appear in logs or errors.
type WebhookConfig struct {
	// AppSecret signs deliveries (App Dashboard > App settings > Basic):
	// the same secret as Config.AppSecret.
	AppSecret vault.Secret
	// VerifyToken is the string entered with the callback URL in the App
	// Dashboard; Meta echoes it in the verification request.
	VerifyToken vault.Secret
}

// EventHandler processes the new, verified events of one entry (one
// Page's part of a delivery), in timestamp order, through db: the
// transaction that records the delivery's events as processed (see
// social.Store.Deliver). What it writes through db commits together with
// those records, so a crash or an error loses nothing and stores nothing
// twice: an error fails the delivery (500), rolls back every entry's
// records and writes, and Meta's redelivery hands the events over again.
// A handler that writes elsewhere must be idempotent, since its writes
// survive a rollback. It must not use the database but through db (on
// SQLite that would wait for the transaction's write lock).
//
// A handler declared with WithIdempotentHandler gets every event of the
// delivery and, as db, the social store's database without a
// transaction: each statement it sends commits on its own, and what it
// wrote before an error stays (the redelivery, stored idempotently, adds
// the rest).
type EventHandler func(ctx context.Context, db bun.IDB, events []*Event) error

// Webhook is the http.Handler of a Meta app's webhook callback URL.
//
// GET answers Meta's verification request: with hub.mode=subscribe and
// the configured hub.verify_token (compared in constant time) it writes
// hub.challenge back verbatim with 200, and 403 otherwise.
//
// POST reads the raw body up to the size limit (413 beyond), verifies
// X-Hub-Signature-256 over those bytes (401 when wrong), decodes the typed
// events (400 when malformed), and hands each entry's new events to the
// EventHandler in timestamp order — once: Meta delivers at least once, so
// each event is recorded by its DedupeKey in social's delivery table, in
// the same transaction as the handler's writes (social.Store.Deliver), and
// an event already recorded is skipped (a handler declared with
// WithIdempotentHandler gets every event, nothing is recorded, and no
// transaction is opened). It answers 200 when every event is
// handled or known, and 500 when the handler failed (nothing of the
// delivery is then recorded, so the redelivery processes it whole).
// Processing is synchronous, so a 200 means the events are stored; Meta
// wants an answer within 5 seconds, so a handler should only store (as
// inbox.Inbox does) and leave slow work to a queue. Prune old records with
// social.Store.PruneDeliveries, keeping them longer than Meta retries
// (hours; a day is ample).
//
// A Webhook is safe for concurrent use.
type Webhook struct {
	cfg     WebhookConfig
	store   *social.Store
	handle  EventHandler
	log     *slog.Logger
	maxBody int64
	// idempotent: no delivery records (WithIdempotentHandler).
	idempotent bool
}

// WithMaxWebhookBody bounds a delivery's body (default
// DefaultMaxWebhookBody).
func WithMaxWebhookBody(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxWebhookBody: must be positive", ErrConfig)
		}
		o.maxBody = n
		return nil
	}
}

// WithIdempotentHandler declares that the EventHandler stores every event
// idempotently, so that handing it an event a second time — a redelivery,
// or the same delivery processed by two replicas at once — changes nothing
// (inbox.Inbox.Handle is such a handler: it stores a message once per
// conversation and mid, and only moves watermarks forward). The webhook
// then records no delivery keys in social's delivery table and opens no
// transaction (social.Delivery.Idempotent): each delivery, redeliveries
// too, hands all its events to the handler with the database as db. That
// saves a row and two index entries per event, and the COMMIT's round
// trip. Nor does it look up the delivery's Pages in the account index
// (which it does with the records otherwise): the handler routes them —
// social.Store.AccountTenants reads the index then, and inbox.Inbox,
// which keeps each Page's routes, reads it only when they change. A
// handler with any other effect (a reply sent, a counter moved) must not
// be declared idempotent.
func WithIdempotentHandler() Option {
	return func(o *options) error {
		o.idempotent = true
		return nil
	}
}

// NewWebhook returns the webhook handler of cfg's app, deduplicating
// through store and passing each new event to handle. WithLogger sets the
// logger (which never receives the app secret, the verify token or message
// text), WithMaxWebhookBody the largest body accepted, and
// WithIdempotentHandler spares a handler that needs it no delivery
// records.
func NewWebhook(cfg WebhookConfig, store *social.Store, handle EventHandler, opts ...Option) (*Webhook, error) {
	switch {
	case cfg.AppSecret.IsZero() || cfg.VerifyToken.IsZero():
		return nil, fmt.Errorf("%w: NewWebhook: AppSecret and VerifyToken are required", ErrConfig)
	case store == nil:
		return nil, fmt.Errorf("%w: NewWebhook: nil store", ErrConfig)
	case handle == nil:
		return nil, fmt.Errorf("%w: NewWebhook: nil handler", ErrConfig)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	w := &Webhook{cfg: cfg, store: store, handle: handle, log: o.log, maxBody: o.maxBody, idempotent: o.idempotent}
	if w.maxBody == 0 {
		w.maxBody = DefaultMaxWebhookBody
	}
	return w, nil
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		w.verify(rw, r)
	case http.MethodPost:
		w.receive(rw, r)
	default:
		rw.Header().Set("Allow", "GET, POST")
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// verify answers the hub.challenge handshake.
func (w *Webhook) verify(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := q.Get("hub.verify_token")
	if q.Get("hub.mode") != "subscribe" || subtle.ConstantTimeCompare([]byte(token), w.cfg.VerifyToken.Reveal()) != 1 {
		w.log.WarnContext(r.Context(), "meta: webhook verification refused")
		http.Error(rw, "forbidden", http.StatusForbidden)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(rw, q.Get("hub.challenge"))
}

func (w *Webhook) receive(rw http.ResponseWriter, r *http.Request) {
	body, err := readBody(http.MaxBytesReader(rw, r.Body, w.maxBody), r.ContentLength)
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			http.Error(rw, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "bad body", http.StatusBadRequest)
		return
	}
	if err := VerifySignature(r.Header.Get(SignatureHeader), body, w.cfg.AppSecret); err != nil {
		w.log.WarnContext(r.Context(), "meta: webhook refused", "error", err)
		http.Error(rw, "invalid signature", http.StatusUnauthorized)
		return
	}
	p, err := parseOwned(body) // the body is the payload's: its events' Raw slice it
	if err != nil {
		w.log.WarnContext(r.Context(), "meta: webhook malformed", "error", err)
		http.Error(rw, "malformed payload", http.StatusBadRequest)
		return
	}
	if err := w.Process(r.Context(), p); err != nil {
		w.log.ErrorContext(r.Context(), "meta: webhook handling failed", "error", err)
		http.Error(rw, "handling failed", http.StatusInternalServerError)
		return
	}
	rw.WriteHeader(http.StatusOK)
}

// readBody reads r whole, as io.ReadAll does, into room for size bytes
// (the request's Content-Length, -1 when unknown) to begin with, up to
// bodyHint: a delivery's body is read without the copies of a buffer
// that doubles from 512 bytes (about 38 KB allocated for the
// benchmark's 14 KB deliveries). A Content-Length that lies costs at
// most bodyHint.
func readBody(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > bodyHint {
		size = bodyHint
	}
	b := make([]byte, 0, size+1) // +1: EOF is seen without growing
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// bodyHint bounds the room readBody makes before reading.
const bodyHint = 256 << 10

// Process hands the new events of a verified payload to the handler, as
// ServeHTTP does after verifying and decoding a delivery (for payloads
// that arrive another way, such as from a queue), in one transaction (none
// for a handler declared with WithIdempotentHandler).
func (w *Webhook) Process(ctx context.Context, p *Payload) error {
	d := social.Delivery{Platform: deliveryPlatform, Idempotent: w.idempotent}
	events := 0
	for i := range p.Entries {
		en := &p.Entries[i]
		events += len(en.Events)
		if !w.idempotent {
			for j := range en.Events {
				d.Keys = append(d.Keys, en.Events[j].DedupeKey())
			}
		}
		// The delivery's Pages are looked up with its records, in the
		// same statement; without records the handler routes them (one
		// that keeps routes, as inbox.Inbox does, needs no look-up).
		if !w.idempotent && en.PageID != "" && len(en.Events) > 0 && !slices.Contains(d.Accounts, en.PageID) {
			d.Accounts = append(d.Accounts, en.PageID)
		}
	}
	if events == 0 {
		return nil
	}
	return w.store.Deliver(ctx, d, func(ctx context.Context, db bun.IDB, first []bool) error {
		k := 0
		for i := range p.Entries {
			en := &p.Entries[i]
			batch := make([]*Event, 0, len(en.Events))
			for j := range en.Events {
				if w.idempotent || first[k] {
					batch = append(batch, &en.Events[j])
				}
				k++
			}
			if len(batch) == 0 {
				continue
			}
			if err := w.handle(ctx, db, batch); err != nil {
				return fmt.Errorf("meta: events of page %s: %w", pageForLog(en.PageID), err)
			}
		}
		return nil
	})
}

// pageForLog is how an error (which the webhook logs) names the Page id
// id, which comes from the body: as it is when it is an id as Meta
// writes one (decimal digits), else as "(not an id)", so that no
// arbitrary text of a body reaches a log.
func pageForLog(id string) string {
	if id == "" {
		return "(none)"
	}
	if len(id) > 32 {
		return "(not an id)"
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return "(not an id)"
		}
	}
	return id
}
