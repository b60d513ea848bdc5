package social

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// FlowConfig is what an application connects accounts for.
type FlowConfig struct {
	// Features names the features used, from the provider's catalogue
	// (Provider.Features). The flow requests exactly the union of their
	// scopes. Required.
	Features []string
	// ReadOnly refuses every write feature and write scope, whatever
	// Features says.
	ReadOnly bool
	// Purposes are recorded on each connection made through the flow: what
	// the creator authorizes the data to be used for.
	Purposes []string
	// RedirectURL is the callback the platform redirects to (default: the
	// provider's RedirectURL). It is stored with each flow's state and sent
	// again at the code exchange, so two flows of one platform with
	// different callbacks never exchange with the wrong one.
	RedirectURL string
}

// Flow connects platform accounts with OAuth 2.0 authorization code and
// PKCE (S256). Begin stores a single-use state and a sealed code verifier,
// valid for StateLifetime, and returns the consent URL; Complete checks
// the callback's state, exchanges the code, seals the tokens, upserts the
// Connection and writes an audit entry. A Flow is safe for concurrent use.
type Flow struct {
	store    *Store
	p        Provider
	scopes   Scopes
	purposes Purposes
	redirect string
}

// authState is a pending authorization: the state's hash, the sealed PKCE
// verifier, and what was requested.
type authState struct {
	bun.BaseModel `bun:"table:socialcrm_social_oauth_states,alias:sst"`
	tenancy.Owned

	ID        string       `bun:"id,pk"`
	Platform  string       `bun:"platform,notnull"`
	Verifier  vault.Sealed `bun:"verifier,notnull"`
	Scopes    Scopes       `bun:"scopes,type:text,notnull"`
	Purposes  Purposes     `bun:"purposes,type:text,notnull"`
	Redirect  string       `bun:"redirect_url,notnull"`
	CreatedAt time.Time    `bun:"created_at,notnull"`
	ExpiresAt time.Time    `bun:"expires_at,notnull"`
	UsedAt    time.Time    `bun:"used_at,nullzero"`
}

// NewFlow returns a flow connecting accounts of p's platform for cfg.
// It fails with ErrWriteScope when cfg is read-only and a feature writes,
// and with ErrConfig for an unknown feature.
func (s *Store) NewFlow(p Provider, cfg FlowConfig) (*Flow, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: NewFlow: nil provider", ErrConfig)
	}
	scopes, err := RequestedScopes(p.Features(), cfg.Features, cfg.ReadOnly)
	if err != nil {
		return nil, err
	}
	redirect := cfg.RedirectURL
	if redirect == "" {
		redirect = p.RedirectURL()
	}
	if redirect == "" {
		return nil, fmt.Errorf("%w: NewFlow: no redirect URL", ErrConfig)
	}
	return &Flow{store: s, p: p, scopes: scopes, purposes: Purposes(NewScopes(cfg.Purposes...)), redirect: redirect}, nil
}

// Scopes returns the scopes the flow requests. The caller owns the slice.
func (f *Flow) Scopes() Scopes { return append(Scopes(nil), f.scopes...) }

// tenantTag ties a state to its tenant without revealing the tenant id.
func tenantTag(tid string) string {
	sum := sha256.Sum256([]byte("socialcrm/social/state/v1|" + tid))
	return hex.EncodeToString(sum[:8])
}

func stateID(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// Begin starts connecting an account for the context's tenant and returns
// the platform's consent URL to send the user to.
func (f *Flow) Begin(ctx context.Context) (string, error) {
	if err := noClient(ctx); err != nil {
		return "", err
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return "", err
	}
	state := tenantTag(tid) + "." + rand.Text()
	verifier := oauth2.GenerateVerifier()
	st := authState{
		ID: stateID(state), Platform: f.p.Platform(), Scopes: f.scopes, Purposes: f.purposes,
		Redirect: f.redirect, CreatedAt: f.store.clock(),
	}
	st.ExpiresAt = st.CreatedAt.Add(f.store.stateTTL)
	st.Verifier, err = f.store.vault.Seal(ctx, []byte(verifier), binding(st.ID, "verifier"))
	if err != nil {
		return "", fmt.Errorf("social: begin: %w", err)
	}
	err = f.store.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&st).Exec(ctx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("social: begin: %w", err)
	}
	return f.p.AuthCodeURL(AuthRequest{State: state, Verifier: verifier, Scopes: f.scopes, RedirectURL: f.redirect}), nil
}

// Complete finishes the flow with the query of the platform's redirect to
// the callback URL (code, state, and error when consent failed). The state
// is spent whatever the outcome. It fails with a *StateError for an
// unknown, replayed, expired or other tenant's state, a *ConsentError when
// the user refused, and the provider's error (wrapping ErrInvalidGrant for
// a refused code) when the exchange fails.
func (f *Flow) Complete(ctx context.Context, callback url.Values) (Connection, error) {
	if err := noClient(ctx); err != nil {
		return Connection{}, err
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return Connection{}, err
	}
	state := callback.Get("state")
	tag, _, ok := strings.Cut(state, ".")
	if !ok {
		return Connection{}, &StateError{Reason: ErrStateUnknown}
	}
	if tag != tenantTag(tid) {
		return Connection{}, &StateError{Reason: ErrStateTenant}
	}
	st, err := f.store.spendState(ctx, stateID(state))
	if err != nil {
		return Connection{}, err
	}
	if st.Platform != f.p.Platform() {
		return Connection{}, &StateError{Reason: ErrStateUnknown}
	}
	if !f.store.clock().Before(st.ExpiresAt) {
		return Connection{}, &StateError{Reason: ErrStateExpired}
	}
	if e := callback.Get("error"); e != "" {
		return Connection{}, &ConsentError{Code: e, Description: callback.Get("error_description")}
	}
	verifier, err := f.store.vault.Open(ctx, st.Verifier, binding(st.ID, "verifier"))
	if err != nil {
		return Connection{}, fmt.Errorf("social: complete: %w", err)
	}
	defer verifier.Wipe()
	grant, err := f.p.Exchange(ctx, ExchangeRequest{
		Code: callback.Get("code"), Verifier: string(verifier.Reveal()), RedirectURL: st.Redirect, Scopes: st.Scopes,
	})
	if err != nil {
		return Connection{}, fmt.Errorf("social: complete: %w", err)
	}
	defer grant.Wipe()
	return f.store.connect(ctx, f.p.Platform(), st.Scopes, st.Purposes, grant, "", connectingMember(ctx))
}

// spendState marks a state used, once.
func (s *Store) spendState(ctx context.Context, id string) (authState, error) {
	st := authState{ID: id}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&st).WherePK().Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return &StateError{Reason: ErrStateUnknown}
			}
			return err
		}
		if !st.UsedAt.IsZero() {
			return &StateError{Reason: ErrStateUsed}
		}
		res, err := tx.NewUpdate().Model((*authState)(nil)).Set("used_at = ?", s.clock()).
			Where("id = ?", id).Where("used_at IS NULL").Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return &StateError{Reason: ErrStateUsed}
		}
		return nil
	})
	var se *StateError
	if err != nil && !errors.As(err, &se) {
		err = fmt.Errorf("social: complete: %w", err)
	}
	return st, err
}

// connect seals grant's tokens onto the tenant's connection of the account,
// creating or reactivating it as derived from parent ("" for none), and
// audits it. A new connection belongs to member (see connectingMember); an
// existing one keeps its member. A grant that names no account makes a new
// connection whose account id is its own id; one that names no scope
// granted requested.
func (s *Store) connect(ctx context.Context, platform string, requested Scopes, purposes Purposes, g *Grant, parent, member string) (Connection, error) {
	if g.AccessToken.IsZero() {
		return Connection{}, fmt.Errorf("social: complete: the platform returned no token")
	}
	granted := requested
	if g.Scopes != nil {
		granted = g.Scopes.Intersect(requested)
	}
	now := s.clock()
	// A grant that names no account makes a connection named by its id.
	newID := tenancy.NewID()
	accountID := g.AccountID
	if accountID == "" {
		accountID = newID
	}
	// The account index's key is loaded before the transaction, so that
	// no database connection is held while the vault reads it.
	accountIdx, err := s.accountIndex(ctx, platform, accountID)
	if err != nil {
		return Connection{}, fmt.Errorf("social: complete: %w", err)
	}
	// The connection is found by the blind index of its account id.
	connIdx, err := s.connAccountIndex(ctx, accountID)
	if err != nil {
		return Connection{}, fmt.Errorf("social: complete: %w", err)
	}
	var c Connection
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		exists := false
		if g.AccountID != "" {
			err := tx.NewSelect().Model(&c).Where("platform = ?", platform).Where("account_id = ?", connIdx).Scan(ctx)
			exists = err == nil
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if !exists {
			c = Connection{ID: newID, Platform: platform, AccountID: accountID, CreatedAt: now}
			c.MemberID = member
		}
		c.AccountID = accountID
		var err error
		if c.AccountIDSealed, err = s.seal(ctx, accountID, c.ID, fieldAccountID); err != nil {
			return err
		}
		c.AccountIndex = connIdx
		c.Scopes, c.Requested, c.Purposes, c.Status, c.ParentID = granted, requested, purposes, StatusActive, parent
		if g.DisplayName != "" {
			c.DisplayName = g.DisplayName
			if c.DisplayNameSealed, err = s.seal(ctx, g.DisplayName, c.ID, fieldDisplayName); err != nil {
				return err
			}
		} else if exists {
			if c.DisplayName, err = s.open(ctx, c.DisplayNameSealed, c.ID, fieldDisplayName); err != nil {
				return err
			}
		}
		c.UpdatedAt, c.RevokedAt = now, time.Time{}
		c.TokenVersion++
		if err := s.sealGrant(ctx, &c, g, now); err != nil {
			return err
		}
		if exists {
			_, err = tx.NewUpdate().Model(&c).WherePK().Exec(ctx)
		} else {
			_, err = tx.NewInsert().Model(&c).Exec(ctx)
		}
		if err != nil {
			return takenByAnother(ctx, err) // creator.go
		}
		live := sql.NullBool{Bool: true, Valid: true}
		if _, err := tx.NewInsert().Model(&account{Platform: platform, AccountID: accountIdx, TenantID: mustTenant(ctx), ConnectionID: c.ID, Live: live}).
			On("CONFLICT (platform, account_id, tenant_id) DO UPDATE").Set("live = EXCLUDED.live").Exec(ctx); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenancy.AuditEvent{
			Action: "connection.connected", Target: "connection:" + c.ID,
			Metadata: map[string]string{
				"platform": platform, "scopes": granted.Join(" "),
				"declined": c.Declined().Join(" "), "purposes": joinSet(purposes),
			},
		})
	})
	if err != nil {
		return Connection{}, fmt.Errorf("social: complete: %w", err)
	}
	return c, nil
}

// sealGrant seals g's tokens into c and sets their expiries. A grant
// without a refresh token keeps c's (platforms that do not rotate).
func (s *Store) sealGrant(ctx context.Context, c *Connection, g *Grant, now time.Time) error {
	var err error
	c.AccessToken, err = s.vault.Seal(ctx, g.AccessToken.Reveal(), binding(c.ID, "access_token"))
	if err != nil {
		return err
	}
	c.TokenExpiry, c.TokenIssuedAt = time.Time{}, now
	if g.ExpiresIn > 0 {
		c.TokenExpiry = now.Add(g.ExpiresIn)
	}
	if !g.RefreshToken.IsZero() {
		c.RefreshToken, err = s.vault.Seal(ctx, g.RefreshToken.Reveal(), binding(c.ID, "refresh_token"))
		if err != nil {
			return err
		}
		c.RefreshExpiry = time.Time{}
		if g.RefreshExpiresIn > 0 {
			c.RefreshExpiry = now.Add(g.RefreshExpiresIn)
		}
	}
	return nil
}

// PruneStates deletes the context tenant's flow states that expired
// before the store's time (used or not) and returns how many. Call it from
// a periodic job, per tenant.
func (s *Store) PruneStates(ctx context.Context) (int64, error) {
	var n int64
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*authState)(nil)).Where("expires_at < ?", s.clock()).Exec(ctx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("social: prune states: %w", err)
	}
	return n, nil
}
