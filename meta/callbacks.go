package meta

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Errors of signed_request verification. Every failure matches
// ErrSignedRequest; a stale one matches ErrSignedRequestExpired too.
var (
	ErrSignedRequest        = errors.New("meta: invalid signed_request")
	ErrSignedRequestExpired = errors.New("meta: signed_request expired")
)

// DefaultSignedRequestMaxAge is how long after its issued_at a
// signed_request is accepted. Meta posts the callbacks as the user acts.
const DefaultSignedRequestMaxAge = time.Hour

// signedRequestSkew tolerates clocks that disagree a little.
const signedRequestSkew = 5 * time.Minute

// SignedRequest is the verified payload of Meta's signed_request, as
// posted to the deauthorize and data deletion callbacks.
type SignedRequest struct {
	Algorithm string
	// UserID is the app-scoped id of the Facebook user.
	UserID   string
	IssuedAt time.Time
	// Expires is zero when Meta sent none.
	Expires time.Time
}

// ParseSignedRequest verifies and decodes a signed_request:
// base64url(signature) + "." + base64url(payload), padding optional,
// where signature is the HMAC-SHA256 of the payload string as received,
// keyed with the app secret, compared in constant time. The payload's
// algorithm must be HMAC-SHA256 and its user_id set; it must have been
// issued within maxAge of now (DefaultSignedRequestMaxAge when 0), not in
// the future, and not be past its expires. Failures match
// ErrSignedRequest and never contain the secret.
func ParseSignedRequest(signed string, appSecret vault.Secret, now time.Time, maxAge time.Duration) (SignedRequest, error) {
	bad := func(reason string) (SignedRequest, error) {
		return SignedRequest{}, fmt.Errorf("%w: %s", ErrSignedRequest, reason)
	}
	if maxAge <= 0 {
		maxAge = DefaultSignedRequestMaxAge
	}
	encSig, payload, ok := strings.Cut(strings.TrimSpace(signed), ".")
	if !ok || encSig == "" || payload == "" {
		return bad("not signature.payload")
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(encSig, "="))
	if err != nil {
		return bad("signature is not base64url")
	}
	mac := hmac.New(sha256.New, appSecret.Reveal())
	mac.Write([]byte(payload))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return bad("signature mismatch")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return bad("payload is not base64url")
	}
	var p struct {
		Algorithm string    `json:"algorithm"`
		IssuedAt  Timestamp `json:"issued_at"`
		Expires   Timestamp `json:"expires"`
		UserID    ID        `json:"user_id"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return bad("payload is not JSON")
	}
	switch {
	case !strings.EqualFold(p.Algorithm, "HMAC-SHA256"):
		return bad("algorithm is not HMAC-SHA256")
	case p.UserID == "":
		return bad("no user_id")
	case p.IssuedAt.IsZero():
		return bad("no issued_at")
	case p.IssuedAt.After(now.Add(signedRequestSkew)):
		return bad("issued in the future")
	case now.Sub(p.IssuedAt.Time) > maxAge || (!p.Expires.IsZero() && now.After(p.Expires.Time)):
		return SignedRequest{}, fmt.Errorf("%w: %w", ErrSignedRequest, ErrSignedRequestExpired)
	}
	return SignedRequest{Algorithm: p.Algorithm, UserID: string(p.UserID), IssuedAt: p.IssuedAt.Time, Expires: p.Expires.Time}, nil
}

// TableDeletions maps the confirmation codes of data deletion callbacks to
// the erasure requests they started, one row per tenant (tenant_id "" when
// no tenant held the user's data). It holds no personal data: the code is
// a keyed hash. It is not tenant-scoped, because the status URL is looked
// up by code alone.
const TableDeletions = "socialcrm_meta_deletions"

type deletion struct {
	bun.BaseModel `bun:"table:socialcrm_meta_deletions,alias:mdl"`

	Code       string    `bun:"code,pk"`
	TenantID   string    `bun:"tenant_id,pk"`
	RequestID  string    `bun:"request_id,notnull"`
	ReceivedAt time.Time `bun:"received_at,notnull"`
}

// TenantRegistryKey makes the deletion records a tenant registry to the
// Guard (see tenancy.InstallGuard): under a tenant's principal a
// statement on them is confined to the tenant's own rows. Callbacks reads
// and writes them without a tenant, as the status URL is looked up by
// code alone; tenant B's ordinary statements could otherwise read every
// tenant's requests and re-point or delete A's, so that A's status URL
// and ResumeDeletions lost A's erasure.
func (*deletion) TenantRegistryKey() string { return "tenant_id" }

// Models returns a pointer to each model of the callbacks' table, for
// tenancy.InstallGuard (socialcrm.Models includes them).
func Models() []any { return []any{(*deletion)(nil)} }

// CallbackMigrations returns the migrations of the callbacks' table; run
// them with those of tenancy, vault, retention and social.
func CallbackMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "20261201004700", "meta_deletions", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx, `CREATE TABLE IF NOT EXISTS socialcrm_meta_deletions (
			code TEXT NOT NULL,
			tenant_id TEXT NOT NULL,
			request_id TEXT NOT NULL,
			received_at TIMESTAMP NOT NULL,
			PRIMARY KEY (code, tenant_id)
		)`)
	})
	return ms
}

// CategoryDeletionRequest is the retention category of the records of
// Meta data deletion callbacks.
const CategoryDeletionRequest = "meta.deletion_request"

// Categories declares the callbacks' table to the retention
// engine: the record that a deletion was asked for and carried out, kept
// as proof of it.
func Categories() []retention.Category {
	return []retention.Category{{
		Name: CategoryDeletionRequest, Table: TableDeletions, ID: "code", Time: "received_at",
		LegalBasis: "legal obligation: accountability for erasure requests (GDPR art. 5(2))",
		Purpose:    "confirmation codes of Meta data deletion callbacks, to report their progress",
	}}
}

// CallbackConfig is what the callbacks act on. Every field is required.
type CallbackConfig struct {
	// DB holds the deletions table (CallbackMigrations).
	DB bun.IDB
	// Social finds the tenants that connected a user (its account index)
	// and disconnects them.
	Social *social.Store
	// Retention carries out the erasures.
	Retention *retention.Engine
	// StatusURL is the absolute URL where DeletionStatusHandler is
	// served; the answer to a deletion request is StatusURL?code=<code>.
	StatusURL string
	// Platform is whose connections the callbacks act on: Platform
	// ("meta", zero) for the Facebook Login app's callbacks,
	// PlatformInstagram for the Deauthorize and Data Deletion Request
	// URLs of the app's Instagram Login settings (signed with the
	// Instagram app secret, naming the Instagram account).
	Platform string
}

// Callbacks serves Meta's Deauthorize Callback and Data Deletion Request
// Callback for one app, and the status page of deletion requests. It is
// safe for concurrent use.
type Callbacks struct {
	app    Config
	cfg    CallbackConfig
	now    func() time.Time
	maxAge time.Duration
	log    *slog.Logger
}

// WithSignedRequestMaxAge sets how old a signed_request the Callbacks
// accept may be (default DefaultSignedRequestMaxAge).
func WithSignedRequestMaxAge(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithSignedRequestMaxAge: must be positive", ErrConfig)
		}
		o.maxAge = d
		return nil
	}
}

// NewCallbacks returns the callbacks of app (AppID and AppSecret are used).
// WithClock sets the clock of the signed_request freshness check,
// WithLogger the logger (which never receives the app secret or signed
// requests), WithSignedRequestMaxAge the accepted age.
func NewCallbacks(app Config, cfg CallbackConfig, opts ...Option) (*Callbacks, error) {
	if app.AppID == "" || app.AppSecret.IsZero() {
		return nil, fmt.Errorf("%w: NewCallbacks: AppID and AppSecret are required", ErrConfig)
	}
	if cfg.DB == nil || cfg.Social == nil || cfg.Retention == nil {
		return nil, fmt.Errorf("%w: NewCallbacks: DB, Social and Retention are required", ErrConfig)
	}
	switch cfg.Platform {
	case "":
		cfg.Platform = Platform
	case Platform, PlatformInstagram:
	default:
		return nil, fmt.Errorf("%w: NewCallbacks: Platform %q", ErrConfig, cfg.Platform)
	}
	if u, err := url.Parse(cfg.StatusURL); err != nil || !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("%w: NewCallbacks: StatusURL must be an absolute URL", ErrConfig)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	c := &Callbacks{app: app, cfg: cfg, now: o.now, log: o.log, maxAge: o.maxAge}
	if c.maxAge == 0 {
		c.maxAge = DefaultSignedRequestMaxAge
	}
	return c, nil
}

// signedRequest reads and verifies the signed_request form field of r,
// writing the error answer when it fails.
func (c *Callbacks) signedRequest(w http.ResponseWriter, r *http.Request) (SignedRequest, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return SignedRequest{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("signed_request") == "" {
		http.Error(w, "signed_request required", http.StatusBadRequest)
		return SignedRequest{}, false
	}
	sr, err := ParseSignedRequest(r.PostForm.Get("signed_request"), c.app.AppSecret, c.now(), c.maxAge)
	if err != nil {
		c.log.WarnContext(r.Context(), "meta: callback refused", "error", err)
		http.Error(w, "invalid signed_request", http.StatusUnauthorized)
		return SignedRequest{}, false
	}
	return sr, true
}

// DeauthorizeHandler serves the Deauthorize Callback URL: for a valid
// signed_request, the user's connections are revoked in every tenant that
// connected them (tokens deleted, audited as connection.deauthorized) and
// handed to the social store's disconnect hook, which schedules the purge
// of their data. Meta has revoked the tokens already; nothing is sent to
// it. It answers 200 {"success":true}, 401 for an invalid or expired
// signed_request, 500 when the revocation failed.
func (c *Callbacks) DeauthorizeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr, ok := c.signedRequest(w, r)
		if !ok {
			return
		}
		n, err := c.cfg.Social.AccountRemoved(r.Context(), c.cfg.Platform, sr.UserID, "meta.deauthorize")
		if err != nil {
			c.log.ErrorContext(r.Context(), "meta: deauthorize failed", "error", err)
			http.Error(w, "deauthorization failed", http.StatusInternalServerError)
			return
		}
		c.log.InfoContext(r.Context(), "meta: user deauthorized the app", "connections", n)
		writeJSON(w, http.StatusOK, map[string]any{"success": true})
	})
}

// DeletionConfirmation is the Data Deletion Request Callback's answer.
type DeletionConfirmation struct {
	URL              string `json:"url"`
	ConfirmationCode string `json:"confirmation_code"`
}

// DataDeletionHandler serves the Data Deletion Request Callback URL. For a
// valid signed_request it starts an erasure of the app-scoped user in
// every tenant that connected them: a retention erasure request with the
// subject {"account_id": user id}, verified (Meta vouches for the user),
// recorded under a confirmation code, then carried out (Engine.Erase).
// It answers {"url": StatusURL?code=…, "confirmation_code": …}, the code
// being alphanumeric. The same signed_request posted again gets the same
// answer and starts nothing new for the tenants already recorded; a
// tenant that a failed first call did not reach is reached by the retry. An erasure that fails stays open in
// retention (Engine.Overdue lists it), and the status page says it is in
// progress until ResumeDeletions finishes it; Meta still gets its
// answer, since the request is recorded.
func (c *Callbacks) DataDeletionHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr, ok := c.signedRequest(w, r)
		if !ok {
			return
		}
		conf, err := c.startDeletion(r.Context(), sr)
		if err != nil {
			c.log.ErrorContext(r.Context(), "meta: data deletion request failed", "error", err)
			http.Error(w, "deletion request failed", http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, conf)
	})
}

// confirmationCode derives the code from the request: a replay gets the
// same one, and the code reveals nothing of the user.
func (c *Callbacks) confirmationCode(sr SignedRequest) string {
	mac := hmac.New(sha256.New, c.app.AppSecret.Reveal())
	kind := "meta-data-deletion"
	if c.cfg.Platform == PlatformInstagram {
		kind = "instagram-data-deletion"
	}
	mac.Write([]byte(kind + "\x00" + sr.UserID + "\x00" + strconv.FormatInt(sr.IssuedAt.Unix(), 10)))
	return strings.ToUpper(hex.EncodeToString(mac.Sum(nil)[:10]))
}

func (c *Callbacks) startDeletion(ctx context.Context, sr SignedRequest) (DeletionConfirmation, error) {
	code := c.confirmationCode(sr)
	conf := DeletionConfirmation{URL: c.statusURL(code), ConfirmationCode: code}
	// A replay — Meta retrying after an error, say — does not stop at "a
	// row exists": every tenant that connected the user and has no request
	// recorded under this code yet gets one now, so a request that failed
	// in its second tenant is completed by the retry, not reported done.
	var started []deletion
	if err := c.cfg.DB.NewSelect().Model(&started).Where("code = ?", code).Scan(ctx); err != nil {
		return conf, fmt.Errorf("meta: data deletion: %w", err)
	}
	have := make(map[string]bool, len(started))
	received := c.now().UTC().Truncate(time.Microsecond)
	for _, d := range started {
		have[d.TenantID] = true
		received = d.ReceivedAt // the first call's time stands for the request
	}
	tenants, err := c.cfg.Social.AccountTenants(ctx, c.cfg.Platform, sr.UserID)
	if err != nil {
		return conf, err
	}
	if len(tenants) == 0 && len(started) == 0 {
		return conf, c.record(ctx, deletion{Code: code, ReceivedAt: received})
	}
	sys := tenancy.System(ctx, "meta-data-deletion")
	var erase []func() error
	for _, at := range tenants {
		if have[at.TenantID] {
			continue
		}
		tctx, err := tenancy.AsTenant(sys, at.TenantID)
		if err != nil {
			return conf, err
		}
		req, err := c.cfg.Retention.Submit(tctx, retention.Request{Kind: retention.KindErasure,
			Subject: map[string]string{"account_id": sr.UserID}, ReceivedAt: received})
		if err != nil {
			return conf, fmt.Errorf("meta: data deletion: %w", err)
		}
		if _, err := c.cfg.Retention.SetVerification(tctx, req.ID, retention.VerificationVerified); err != nil {
			return conf, fmt.Errorf("meta: data deletion: %w", err)
		}
		if err := c.record(ctx, deletion{Code: code, TenantID: at.TenantID, RequestID: req.ID, ReceivedAt: received}); err != nil {
			return conf, err
		}
		erase = append(erase, func() error { _, err := c.cfg.Retention.Erase(tctx, req.ID); return err })
	}
	for _, fn := range erase {
		if err := fn(); err != nil {
			c.log.ErrorContext(ctx, "meta: erasure failed; it stays open", "error", err)
		}
	}
	return conf, nil
}

// ResumeDeletions carries out the erasures that deletion requests
// started but did not finish (an erasure that failed during the
// callback), so that a scheduler can call it periodically; it returns how
// many it completed. Erasures are idempotent; a failing one is reported
// and the others still run.
func (c *Callbacks) ResumeDeletions(ctx context.Context) (int, error) {
	var rows []deletion
	if err := c.cfg.DB.NewSelect().Model(&rows).Where("tenant_id <> ''").Order("received_at", "code").Scan(ctx); err != nil {
		return 0, fmt.Errorf("meta: resume deletions: %w", err)
	}
	sys := tenancy.System(ctx, "meta-data-deletion")
	done := 0
	var errs []error
	for _, d := range rows {
		tctx, err := tenancy.AsTenant(sys, d.TenantID)
		if err != nil {
			return done, err
		}
		req, err := c.cfg.Retention.Get(tctx, d.RequestID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if req.Status != retention.StatusOpen {
			continue
		}
		if _, err := c.cfg.Retention.Erase(tctx, d.RequestID); err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("meta: resume deletions: %w", errors.Join(errs...))
	}
	return done, nil
}

func (c *Callbacks) record(ctx context.Context, d deletion) error {
	_, err := c.cfg.DB.NewInsert().Model(&d).Exec(ctx)
	if err != nil && !dberr.IsUniqueViolation(err) {
		return fmt.Errorf("meta: data deletion: record: %w", err)
	}
	return nil
}

func (c *Callbacks) statusURL(code string) string {
	u, _ := url.Parse(c.cfg.StatusURL) // checked by NewCallbacks
	q := u.Query()
	q.Set("code", code)
	u.RawQuery = q.Encode()
	return u.String()
}

// DeletionState is the progress of a data deletion request.
type DeletionState string

// Deletion states.
const (
	DeletionInProgress DeletionState = "in_progress"
	DeletionCompleted  DeletionState = "completed"
	// DeletionRejected: a tenant refused the erasure (retention rejected
	// the request); the status page must say why.
	DeletionRejected DeletionState = "rejected"
)

// ErrUnknownCode is returned by DeletionStatus for a code no deletion
// request was answered with.
var ErrUnknownCode = errors.New("meta: unknown confirmation code")

// DeletionStatus is what the status URL reports.
type DeletionStatus struct {
	ConfirmationCode string        `json:"confirmation_code"`
	State            DeletionState `json:"state"`
	ReceivedAt       time.Time     `json:"received_at"`
	// CompletedAt is when the last erasure finished (zero until then).
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Tenants counts the accounts that held the user's data; Completed
	// those whose erasure is done.
	Tenants   int `json:"tenants"`
	Completed int `json:"completed"`
}

// DeletionStatus reports the progress of the deletion request answered
// with code. It needs no tenant in ctx.
func (c *Callbacks) DeletionStatus(ctx context.Context, code string) (DeletionStatus, error) {
	var rows []deletion
	if err := c.cfg.DB.NewSelect().Model(&rows).Where("code = ?", code).Order("tenant_id").Scan(ctx); err != nil {
		return DeletionStatus{}, fmt.Errorf("meta: deletion status: %w", err)
	}
	if len(rows) == 0 {
		return DeletionStatus{}, ErrUnknownCode
	}
	st := DeletionStatus{ConfirmationCode: code, State: DeletionCompleted, ReceivedAt: rows[0].ReceivedAt.UTC()}
	sys := tenancy.System(ctx, "meta-data-deletion")
	for _, d := range rows {
		if d.TenantID == "" {
			continue // no tenant held the user's data
		}
		st.Tenants++
		tctx, err := tenancy.AsTenant(sys, d.TenantID)
		if err != nil {
			return DeletionStatus{}, err
		}
		req, err := c.cfg.Retention.Get(tctx, d.RequestID)
		if err != nil {
			return DeletionStatus{}, fmt.Errorf("meta: deletion status: %w", err)
		}
		switch req.Status {
		case retention.StatusCompleted:
			st.Completed++
			if req.CompletedAt != nil && req.CompletedAt.After(st.CompletedAt) {
				st.CompletedAt = req.CompletedAt.UTC()
			}
		case retention.StatusRejected:
			st.State = DeletionRejected
		default:
			if st.State == DeletionCompleted {
				st.State = DeletionInProgress
			}
		}
	}
	if st.State != DeletionCompleted {
		st.CompletedAt = time.Time{}
	}
	return st, nil
}

// DeletionStatusHandler serves the status URL: GET ?code=… answers a
// short human-readable page (text/plain), or the DeletionStatus as JSON
// when the request accepts application/json; 404 for an unknown code.
func (c *Callbacks) DeletionStatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st, err := c.DeletionStatus(r.Context(), r.URL.Query().Get("code"))
		switch {
		case errors.Is(err, ErrUnknownCode):
			http.Error(w, "No data deletion request has this confirmation code.", http.StatusNotFound)
			return
		case err != nil:
			c.log.ErrorContext(r.Context(), "meta: deletion status failed", "error", err)
			http.Error(w, "status unavailable, try again later", http.StatusInternalServerError)
			return
		}
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusOK, st)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Data deletion request %s\nReceived: %s\n", st.ConfirmationCode, st.ReceivedAt.Format(time.RFC1123))
		switch st.State {
		case DeletionCompleted:
			if st.Tenants == 0 {
				fmt.Fprintf(w, "Status: completed. We held no data about you from Facebook.\n")
			} else {
				fmt.Fprintf(w, "Status: completed on %s. Your Facebook data was deleted; records the law obliges us to keep are kept only as long as it requires.\n", st.CompletedAt.Format(time.RFC1123))
			}
		case DeletionRejected:
			fmt.Fprintf(w, "Status: refused by %d of %d accounts holding your data, under a legal obligation to keep it. Contact us for the justification.\n", st.Tenants-st.Completed, st.Tenants)
		default:
			fmt.Fprintf(w, "Status: in progress (%d of %d done).\n", st.Completed, st.Tenants)
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
