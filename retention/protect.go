package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// IdentifierProtection keeps the identifiers a data subject gave (an
// e-mail address, a phone number, a PSID) out of the request records in
// clear. The root package wires it to the vault: Hash is the tenant's
// blind index, Seal and Open its envelope encryption bound to the request,
// so destroying the tenant's key shreds them with the rest of its data.
// Each function runs with a context acting on the request's tenant,
// outside any transaction of the engine.
type IdentifierProtection struct {
	// Hash returns a keyed hash of the identifier value of kind: equal
	// identifiers of one tenant hash alike, so that a later request can be
	// matched (Match), and nobody without the key can test a guess.
	Hash func(ctx context.Context, kind, value string) (string, error)
	// Seal encrypts the request's identifiers (JSON) bound to request id;
	// Open reverses it.
	Seal func(ctx context.Context, id string, plaintext []byte) ([]byte, error)
	Open func(ctx context.Context, id string, sealed []byte) ([]byte, error)
}

// WithIdentifierProtection stores requests' identifiers, subject holds'
// (Seal and Open bound to "hold:" and the hold's id) and recorded events'
// (bound to "event:" and the event's id), sealed, with a keyed hash of
// each, instead of in clear (default: in clear). A request finds the
// events of its subject by the hashes of its keys, so Hash must hash a
// kind and value alike wherever they come from. All three functions are
// required.
func WithIdentifierProtection(p IdentifierProtection) Option {
	return func(e *Engine) error {
		if p.Hash == nil || p.Seal == nil || p.Open == nil {
			return errors.New("retention: WithIdentifierProtection: Hash, Seal and Open are required")
		}
		e.protection = &p
		return nil
	}
}

// protect returns r as it is stored: with protection, its Subject empty,
// sealed in SubjectSealed and hashed in SubjectHashes.
func (e *Engine) protect(ctx context.Context, r Request) (Request, error) {
	if e.protection == nil {
		r.SubjectHashes = map[string]string{}
		return r, nil
	}
	hashes := make(map[string]string, len(r.Subject))
	for k, v := range r.Subject {
		h, err := e.protection.Hash(ctx, k, strings.TrimSpace(v))
		if err != nil {
			return r, fmt.Errorf("retention: hash identifier: %w", err)
		}
		hashes[k] = h
	}
	plain, err := json.Marshal(r.Subject)
	if err != nil {
		return r, err
	}
	sealed, err := e.protection.Seal(ctx, r.ID, plain)
	if err != nil {
		return r, fmt.Errorf("retention: seal identifiers: %w", err)
	}
	r.Subject, r.SubjectSealed, r.SubjectHashes = map[string]string{}, sealed, hashes
	return r, nil
}

// reveal opens r's sealed identifiers into its Subject (and its sealed
// extension reason).
func (e *Engine) reveal(ctx context.Context, r *Request) error {
	if err := e.revealExtension(ctx, r); err != nil {
		return err
	}
	if len(r.SubjectSealed) == 0 {
		return nil
	}
	if e.protection == nil {
		return fmt.Errorf("retention: request %s: its identifiers are sealed and the engine has no IdentifierProtection", r.ID)
	}
	plain, err := e.protection.Open(ctx, r.ID, r.SubjectSealed)
	if err != nil {
		return fmt.Errorf("retention: open identifiers of request %s: %w", r.ID, err)
	}
	subject := map[string]string{}
	if err := json.Unmarshal(plain, &subject); err != nil {
		return fmt.Errorf("retention: open identifiers of request %s: %w", r.ID, err)
	}
	r.Subject = subject
	return nil
}

// Match returns the context tenant's requests that name the identifier
// value of kind, oldest first, by its keyed hash: for example to tell a
// person who writes again that her erasure was carried out. It needs
// WithIdentifierProtection (a *ValidationError otherwise).
func (e *Engine) Match(ctx context.Context, kind, value string) ([]Request, error) {
	if e.protection == nil {
		return nil, &ValidationError{Field: "Match", Reason: "needs WithIdentifierProtection"}
	}
	h, err := e.protection.Hash(ctx, kind, strings.TrimSpace(value))
	if err != nil {
		return nil, fmt.Errorf("retention: match: %w", err)
	}
	var rs []Request
	err = tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		// The hashes are JSON text: narrow by the hash, then check the kind.
		return tx.NewSelect().Model(&rs).Where("subject_hashes LIKE ?", "%"+h+"%").Order("received_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("retention: match: %w", err)
	}
	out := rs[:0]
	for _, r := range rs {
		if r.SubjectHashes[kind] == h {
			r.utc()
			if err := e.reveal(ctx, &r); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// ProtectIdentifiers seals and hashes the identifiers of every request,
// subject hold and recorded event (RecordEvent) stored in clear — those
// written before the engine had an IdentifierProtection — in every
// tenant, and returns how many it protected. It runs as the system principal (tenancy.ErrNotSystem
// otherwise); running it again does nothing more.
func (e *Engine) ProtectIdentifiers(ctx context.Context) (int, error) {
	if err := requireSystem(ctx); err != nil {
		return 0, err
	}
	if e.protection == nil {
		return 0, &ValidationError{Field: "ProtectIdentifiers", Reason: "needs WithIdentifierProtection"}
	}
	tenants, err := e.store.Tenants(ctx, tenancy.TenantFilter{})
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(ctx, t.ID)
		if err != nil {
			return n, err
		}
		k, err := e.protectHolds(tctx)
		if n += k; err != nil {
			errs = append(errs, fmt.Errorf("retention: protect identifiers of tenant %s: %w", t.ID, err))
		}
		k, err = e.protectExtensions(tctx)
		if n += k; err != nil {
			errs = append(errs, fmt.Errorf("retention: protect identifiers of tenant %s: %w", t.ID, err))
		}
		k, err = e.protectEvents(tctx)
		if n += k; err != nil {
			errs = append(errs, fmt.Errorf("retention: protect identifiers of tenant %s: %w", t.ID, err))
		}
		for {
			var rs []Request
			err := tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewSelect().Model(&rs).Where("subject_sealed IS NULL").Where("subject <> '{}'").
					Order("id").Limit(100).Scan(ctx)
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("retention: protect identifiers of tenant %s: %w", t.ID, err))
				break
			}
			done := 0
			for _, r := range rs {
				if len(r.Subject) == 0 {
					continue
				}
				// Sealed and hashed outside the transaction; written only
				// if the row still holds what was read.
				p, err := e.protect(tctx, r)
				if err != nil {
					return n, err
				}
				err = tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
					res, err := tx.NewUpdate().Model(&p).Column("subject", "subject_sealed", "subject_hashes").WherePK().
						Where("subject_sealed IS NULL").Exec(ctx)
					if err != nil {
						return err
					}
					if k, _ := res.RowsAffected(); k == 1 {
						n++
						done++
					}
					return nil
				})
				if err != nil {
					return n, fmt.Errorf("retention: protect identifiers: %w", err)
				}
			}
			if len(rs) < 100 || done == 0 {
				break
			}
		}
	}
	return n, errors.Join(errs...)
}
