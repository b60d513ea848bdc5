package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// PlaceHold places a legal hold in the context's tenant and returns it. A
// HoldRecord hold needs Category (registered, without Category.HeldWith:
// a *ValidationError names the category to hold instead) and RecordID; a
// HoldSubject
// hold needs SubjectKind and SubjectValue; a HoldTenant hold needs neither.
// A subject hold holds every row a request by its identifier would reach:
// each operation (a sweep, an erasure, a tenant purge) resolves the
// identifier as a request's is resolved (Resolve) — an e-mail address or
// a phone number leads to every contact holding it sealed, duplicates
// included, to their conversations and messages, and to the member
// accounts signed in with the address; a PSID to its conversation's
// contact — and keeps out the rows of every category that finds the
// subject by one of those keys, recorded events included. Rows written
// after the hold was placed (a new contact with the held address) are
// held too. A kind that no resolver and no category knows is refused
// with a *ValidationError listing the kinds that can be held.
// Reason is required. Only an owner or admin, or the system, may place
// holds.
//
// Under WithIdentifierProtection the subject's identifier is stored only
// sealed (bound to the hold) beside the tenant's keyed hash of it, never
// in clear; the engine opens it when it reads the tenant's holds.
func (e *Engine) PlaceHold(ctx context.Context, h Hold) (Hold, error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return Hold{}, err
	}
	switch h.Scope {
	case HoldTenant:
		h.Category, h.RecordID, h.SubjectKind, h.SubjectValue = "", "", "", ""
	case HoldSubject:
		if h.SubjectKind == "" || h.SubjectValue == "" {
			return Hold{}, &ValidationError{Field: "Subject", Reason: "kind and value required for a subject hold"}
		}
		if known := e.Kinds(); !slices.Contains(known, h.SubjectKind) {
			// A kind nobody knows would hold no row at all.
			return Hold{}, &ValidationError{Field: "SubjectKind", Reason: fmt.Sprintf(
				"no resolver or category knows %q: hold by one of: %s", h.SubjectKind, strings.Join(known, ", "))}
		}
		h.Category, h.RecordID = "", ""
	case HoldRecord:
		c, ok := e.category(h.Category)
		if !ok {
			return Hold{}, fmt.Errorf("%w: %q", ErrUnknownCategory, h.Category)
		}
		if c.HeldWith != "" {
			return Hold{}, &ValidationError{Field: "Category", Reason: fmt.Sprintf(
				"%s rows go with their %s row and cannot be held apart from it: hold the %s record instead", c.Name, c.HeldWith, c.HeldWith)}
		}
		if h.RecordID == "" {
			return Hold{}, &ValidationError{Field: "RecordID", Reason: "required for a record hold"}
		}
		h.SubjectKind, h.SubjectValue = "", ""
	default:
		return Hold{}, &ValidationError{Field: "Scope", Reason: fmt.Sprintf("unknown scope %q", h.Scope)}
	}
	if strings.TrimSpace(h.Reason) == "" {
		return Hold{}, &ValidationError{Field: "Reason", Reason: "required"}
	}
	h.ID, h.CreatedAt, h.ReleasedAt, h.TenantID = tenancy.NewID(), e.clock(), nil, ""
	h.SubjectSealed, h.SubjectHash = nil, ""
	stored, err := e.protectHold(ctx, h)
	if err != nil {
		return Hold{}, err
	}
	err = tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&stored).Exec(ctx); err != nil {
			return fmt.Errorf("retention: place hold: %w", err)
		}
		return e.holdAudit(ctx, tx, "retention.hold_placed", h)
	})
	if err != nil {
		return Hold{}, err
	}
	return h, nil
}

func (e *Engine) holdAudit(ctx context.Context, tx bun.IDB, action string, h Hold) error {
	log, err := tenancy.NewAuditLog(tx, tenancy.WithClock(e.now), tenancy.WithAuditKeys(e.audit.Keys()))
	if err != nil {
		return err
	}
	// Not the reason: free text, kept (sealed) with the hold only.
	md := map[string]string{"scope": string(h.Scope)}
	if h.Category != "" {
		md["category"], md["record"] = h.Category, h.RecordID
	}
	if h.SubjectKind != "" {
		md["subject_kind"] = h.SubjectKind
	}
	_, err = log.Append(ctx, tenancy.AuditEvent{Action: action, Target: "hold:" + h.ID, Metadata: md})
	return err
}

// ReleaseHold releases the context tenant's hold id; the rows it held are
// erased by the next run that finds them due. Releasing twice changes
// nothing.
func (e *Engine) ReleaseHold(ctx context.Context, id string) (Hold, error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return Hold{}, err
	}
	var h Hold
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewSelect().Model(&h).Where("id = ?", id).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: hold %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("retention: release hold: %w", err)
		}
		if h.ReleasedAt != nil {
			return nil
		}
		now := e.clock()
		h.ReleasedAt = &now
		if _, err := tx.NewUpdate().Model(&h).Column("released_at").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("retention: release hold: %w", err)
		}
		return e.holdAudit(ctx, tx, "retention.hold_released", h)
	})
	if err != nil {
		return h, err
	}
	// Outside the transaction: opening may load the tenant's keys. The
	// release is done: a subject that no longer opens does not undo it.
	if err := e.revealHold(ctx, &h); err != nil {
		h.SubjectValue = ""
	}
	return h, nil
}

// Holds lists the context tenant's active holds, oldest first, each
// subject hold with its identifier (opened, when it is stored sealed).
func (e *Engine) Holds(ctx context.Context) ([]Hold, error) {
	return e.activeHolds(ctx, "")
}

// activeHolds returns the context tenant's active holds (of scope, or all
// when scope is empty), oldest first, with their identifiers opened.
func (e *Engine) activeHolds(ctx context.Context, scope HoldScope) ([]Hold, error) {
	var hs []Hold
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model(&hs).Where("released_at IS NULL")
		if scope != "" {
			q = q.Where("scope = ?", scope)
		}
		return q.Order("created_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("retention: list holds: %w", err)
	}
	for i := range hs {
		if err := e.revealHold(ctx, &hs[i]); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// holdSubjectRecord is the record a hold's sealed identifier is bound to.
func holdSubjectRecord(id string) string { return "hold:" + id }

// holdReasonRecord is the record a hold's sealed reason is bound to.
func holdReasonRecord(id string) string { return "hold-reason:" + id }

// protectHold returns h as it is stored: under WithIdentifierProtection
// its reason sealed, Reason empty, and a subject hold's identifier sealed
// and hashed, SubjectValue empty.
func (e *Engine) protectHold(ctx context.Context, h Hold) (Hold, error) {
	if e.protection == nil {
		return h, nil
	}
	if h.Reason != "" {
		sealed, err := e.protection.Seal(ctx, holdReasonRecord(h.ID), []byte(h.Reason))
		if err != nil {
			return h, fmt.Errorf("retention: seal hold reason: %w", err)
		}
		h.Reason, h.ReasonSealed = "", sealed
	}
	if h.SubjectValue == "" {
		return h, nil
	}
	hash, err := e.protection.Hash(ctx, h.SubjectKind, strings.TrimSpace(h.SubjectValue))
	if err != nil {
		return h, fmt.Errorf("retention: hash hold identifier: %w", err)
	}
	sealed, err := e.protection.Seal(ctx, holdSubjectRecord(h.ID), []byte(h.SubjectValue))
	if err != nil {
		return h, fmt.Errorf("retention: seal hold identifier: %w", err)
	}
	h.SubjectValue, h.SubjectSealed, h.SubjectHash = "", sealed, hash
	return h, nil
}

// revealHold opens h's sealed reason and identifier into its Reason and
// SubjectValue. A reason that does not open (the tenant's key was
// destroyed by a purge the hold outlived, or the engine has no
// IdentifierProtection) reads empty: the hold is still listed and can
// still be released.
func (e *Engine) revealHold(ctx context.Context, h *Hold) error {
	if len(h.ReasonSealed) > 0 && e.protection != nil {
		if plain, err := e.protection.Open(ctx, holdReasonRecord(h.ID), h.ReasonSealed); err == nil {
			h.Reason = string(plain)
		}
	}
	if len(h.SubjectSealed) == 0 {
		return nil
	}
	if e.protection == nil {
		return fmt.Errorf("retention: hold %s: its identifier is sealed and the engine has no IdentifierProtection", h.ID)
	}
	plain, err := e.protection.Open(ctx, holdSubjectRecord(h.ID), h.SubjectSealed)
	if err != nil {
		return fmt.Errorf("retention: open identifier of hold %s: %w", h.ID, err)
	}
	h.SubjectValue = string(plain)
	return nil
}

// protectHolds seals and hashes the identifiers, and seals the reasons,
// of the tenant's holds (released ones included) stored in clear, and
// returns how many it protected. tctx acts on the tenant.
func (e *Engine) protectHolds(tctx context.Context) (int, error) {
	var hs []Hold
	err := tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&hs).WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("subject_sealed IS NULL AND subject_value <> ''").WhereOr("reason_sealed IS NULL AND reason <> ''")
		}).Order("id").Scan(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("retention: protect hold identifiers: %w", err)
	}
	n := 0
	for _, h := range hs {
		p, err := e.protectHold(tctx, h)
		if err != nil {
			return n, err
		}
		err = tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			q := tx.NewUpdate().Model(&p).Column("subject_value", "subject_sealed", "subject_hash", "reason", "reason_sealed").WherePK().
				Where("reason = ?", h.Reason).Where("subject_value = ?", h.SubjectValue)
			if len(h.SubjectSealed) == 0 {
				q = q.Where("subject_sealed IS NULL")
			}
			if len(h.ReasonSealed) == 0 {
				q = q.Where("reason_sealed IS NULL")
			}
			res, err := q.Exec(ctx)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("retention: protect hold identifiers: %w", err)
		}
	}
	return n, nil
}

// addHoldMigrations adds the columns that keep a subject hold's
// identifier sealed and hashed (WithIdentifierProtection); holds stored
// before keep theirs in clear until ProtectIdentifiers seals them.
func addHoldMigrations(ms *migrate.Migrations) {
	// Staff's free text (a hold's reason, a request's extension reason),
	// sealed under WithIdentifierProtection; ProtectIdentifiers seals what
	// was stored before.
	migrations.Add(ms, "20261214070100", "retention_reasons_sealed", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_retention_holds ADD COLUMN reason_sealed BLOB`,
			`ALTER TABLE socialcrm_retention_requests ADD COLUMN extension_reason_sealed BLOB`)
	})
	migrations.Add(ms, "20261213080000", "retention_hold_identifiers", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_retention_holds ADD COLUMN subject_sealed BLOB`,
			`ALTER TABLE socialcrm_retention_holds ADD COLUMN subject_hash TEXT NOT NULL DEFAULT ''`)
	})
}

// protectExtensions seals the extension reasons of the tenant's requests
// stored in clear, and returns how many it sealed. tctx acts on the
// tenant.
func (e *Engine) protectExtensions(tctx context.Context) (int, error) {
	var rs []Request
	err := tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&rs).Column("id", "extension_reason").
			Where("extension_reason_sealed IS NULL").Where("extension_reason <> ''").Order("id").Scan(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("retention: protect extension reasons: %w", err)
	}
	n := 0
	for _, r := range rs {
		sealed, err := e.protection.Seal(tctx, extensionRecord(r.ID), []byte(r.ExtensionReason))
		if err != nil {
			return n, fmt.Errorf("retention: protect extension reasons: %w", err)
		}
		err = tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.NewUpdate().Model((*Request)(nil)).Set("extension_reason = ''").Set("extension_reason_sealed = ?", sealed).
				Where("id = ?", r.ID).Where("extension_reason = ?", r.ExtensionReason).Where("extension_reason_sealed IS NULL").Exec(ctx)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("retention: protect extension reasons: %w", err)
		}
	}
	return n, nil
}
