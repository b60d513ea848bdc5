package retention

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// addEventMigrations adds the columns that keep a recorded event's
// identifier sealed and hashed (WithIdentifierProtection), with an index
// on the hash, by which requests find a subject's events; events stored
// before keep theirs in clear until ProtectIdentifiers seals them.
func addEventMigrations(ms *migrate.Migrations) {
	migrations.Add(ms, "20261214030000", "retention_event_identifiers", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_retention_events ADD COLUMN subject_sealed BLOB`,
			`ALTER TABLE socialcrm_retention_events ADD COLUMN subject_hash TEXT NOT NULL DEFAULT ''`,
			`CREATE INDEX IF NOT EXISTS socialcrm_retention_events_hash_idx ON socialcrm_retention_events (tenant_id, subject_hash)`)
	})
}

// eventSubjectRecord is the record an event's sealed identifier is bound
// to.
func eventSubjectRecord(id string) string { return "event:" + id }

// protectEvent returns ev as it is stored: under WithIdentifierProtection
// its identifier sealed and hashed, SubjectValue empty.
func (e *Engine) protectEvent(ctx context.Context, ev event) (event, error) {
	if e.protection == nil || ev.SubjectValue == "" {
		return ev, nil
	}
	hash, err := e.protection.Hash(ctx, ev.SubjectKind, strings.TrimSpace(ev.SubjectValue))
	if err != nil {
		return ev, fmt.Errorf("retention: hash event identifier: %w", err)
	}
	sealed, err := e.protection.Seal(ctx, eventSubjectRecord(ev.ID), []byte(ev.SubjectValue))
	if err != nil {
		return ev, fmt.Errorf("retention: seal event identifier: %w", err)
	}
	ev.SubjectValue, ev.SubjectSealed, ev.SubjectHash = "", sealed, hash
	return ev, nil
}

// revealEvent opens ev's sealed identifier into its SubjectValue.
func (e *Engine) revealEvent(ctx context.Context, ev *event) error {
	if len(ev.SubjectSealed) == 0 {
		return nil
	}
	plain, err := e.openEventSubject(ctx, ev.ID, ev.SubjectSealed)
	if err != nil {
		return err
	}
	ev.SubjectValue = plain
	return nil
}

// openEventSubject opens the sealed identifier of event id.
func (e *Engine) openEventSubject(ctx context.Context, id string, sealed []byte) (string, error) {
	if e.protection == nil {
		return "", fmt.Errorf("retention: event %s: its identifier is sealed and the engine has no IdentifierProtection", id)
	}
	plain, err := e.protection.Open(ctx, eventSubjectRecord(id), sealed)
	if err != nil {
		return "", fmt.Errorf("retention: open identifier of event %s: %w", id, err)
	}
	return string(plain), nil
}

// protectEvents seals and hashes the identifiers of the tenant's events
// stored in clear, and returns how many it protected. tctx acts on the
// tenant.
func (e *Engine) protectEvents(tctx context.Context) (int, error) {
	n := 0
	for {
		var evs []event
		err := tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&evs).Where("subject_sealed IS NULL").Where("subject_value <> ''").
				Order("id").Limit(100).Scan(ctx)
		})
		if err != nil {
			return n, fmt.Errorf("retention: protect event identifiers: %w", err)
		}
		done := 0
		for _, ev := range evs {
			// Sealed and hashed outside the transaction; written only if
			// the row still holds what was read.
			p, err := e.protectEvent(tctx, ev)
			if err != nil {
				return n, err
			}
			err = tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
				res, err := tx.NewUpdate().Model(&p).Column("subject_value", "subject_sealed", "subject_hash").WherePK().
					Where("subject_sealed IS NULL").Where("subject_value = ?", ev.SubjectValue).Exec(ctx)
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
				return n, fmt.Errorf("retention: protect event identifiers: %w", err)
			}
		}
		if len(evs) < 100 || done == 0 {
			return n, nil
		}
	}
}

// subjectKeys are a data subject's keys as the engine matches them: the
// keys, and under WithIdentifierProtection the keyed hash of each, by
// which the engine's own events are found.
type subjectKeys struct {
	keys   Keys
	hashes []string
}

// subjectOf returns keys with their keyed hashes (none without
// WithIdentifierProtection). ctx acts on the keys' tenant.
func (e *Engine) subjectOf(ctx context.Context, keys Keys) (subjectKeys, error) {
	s := subjectKeys{keys: keys}
	if e.protection == nil {
		return s, nil
	}
	for _, kind := range keys.Kinds() {
		for _, v := range keys[kind] {
			h, err := e.protection.Hash(ctx, kind, strings.TrimSpace(v))
			if err != nil {
				return s, fmt.Errorf("retention: hash identifier: %w", err)
			}
			s.hashes = append(s.hashes, h)
		}
	}
	return s, nil
}

// isEventTable reports whether c declares the engine's events table,
// whose rows are found by the keyed hash of their identifier (eventMatch)
// rather than by Category.Subject.
func isEventTable(c Category) bool { return c.Table == TableEvents }

// eventMatch returns the condition finding the events of the subject s:
// those whose keyed hash is one of s's, and those still stored in clear
// (recorded without protection, or before it) whose kind and value are one
// of s's keys.
func eventMatch(s subjectKeys) (string, []any, bool) {
	var conds []string
	var args []any
	if len(s.hashes) > 0 {
		conds = append(conds, "r.subject_hash IN (?)")
		args = append(args, bun.In(s.hashes))
	}
	for _, kind := range s.keys.Kinds() {
		if len(s.keys[kind]) == 0 {
			continue
		}
		conds = append(conds, "r.subject_sealed IS NULL AND r.subject_kind = ? AND r.subject_value IN (?)")
		args = append(args, kind, bun.In(s.keys[kind]))
	}
	if len(conds) == 0 {
		return "", nil, false
	}
	return "(" + strings.Join(conds, ") OR (") + ")", args, true
}

// hasEvents reports, for the events category c, whether the subject's
// condition (cond, args) finds any event of tenant tid; true for any other
// category. Every request can find events (they are recorded for an
// identifier of any kind), so a request lists the category, in its export
// and its receipt, only when the subject has some.
func (e *Engine) hasEvents(ctx context.Context, c Category, tid, cond string, args []any) (bool, error) {
	if !isEventTable(c) {
		return true, nil
	}
	n, err := e.count(ctx, c, tid, []string{cond}, args)
	return n > 0, err
}

// bindOwn returns c, when it declares the engine's events table, with the
// event's sealed identifier exported opened (as subject_identifier) and
// its keyed hash left out; other categories as they are.
func (e *Engine) bindOwn(c Category) Category {
	if !isEventTable(c) {
		return c
	}
	for _, sc := range c.Sealed {
		if sc.Column == "subject_sealed" {
			return c
		}
	}
	c.Sealed = append(append([]SealedColumn(nil), c.Sealed...), SealedColumn{Column: "subject_sealed", As: "subject_identifier",
		Open: func(ctx context.Context, _, id string, sealed []byte) (string, error) {
			return e.openEventSubject(ctx, id, sealed)
		}})
	c.Omit = append(append([]string(nil), c.Omit...), "subject_hash")
	if c.Clear == "" {
		c.Clear = "ids, the event's name, the identifier's kind and time; under identifier protection the identifier is sealed, " +
			"beside the tenant's keyed hash of it (by which a request finds the event)"
	}
	return c
}
