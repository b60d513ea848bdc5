package crm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/vault"
)

// Table names of consent.
const (
	TableConsents      = TablePrefix + "consents"
	TableConsentEvents = TablePrefix + "consent_events"
)

// Purpose is what a contact is contacted for.
type Purpose string

// Purposes of consent.
const (
	PurposeMarketing Purpose = "marketing"
	PurposeBirthday  Purpose = "birthday"
	PurposeService   Purpose = "service"
)

// Consent is the current state of a contact's consent for one channel
// (email, sms, whatsapp or messenger) and purpose: the latest grant or
// withdrawal.
type Consent struct {
	bun.BaseModel `bun:"table:socialcrm_crm_consents,alias:cs"`
	Record

	ContactID string  `bun:"contact_id,notnull" json:"contact_id"`
	Channel   Channel `bun:"channel,notnull" json:"channel"`
	Purpose   Purpose `bun:"purpose,notnull" json:"purpose"`
	Granted   bool    `bun:"granted,notnull" json:"granted"`
	// Source and At are those of the latest change. Source is stored
	// sealed: it may name the person ("reply from +1 415…").
	Source string    `bun:"-" json:"source"`
	At     time.Time `bun:"at,notnull" json:"at"`

	SourceSealed vault.Sealed `bun:"source_sealed" json:"-"`
}

func (c *Consent) sealedFields() []sealedField {
	return []sealedField{{name: "source", sealed: &c.SourceSealed, text: &c.Source}}
}

// ConsentEvent is one entry of a contact's consent history.
type ConsentEvent struct {
	bun.BaseModel `bun:"table:socialcrm_crm_consent_events,alias:ce"`
	Record

	ContactID string  `bun:"contact_id,notnull" json:"contact_id"`
	Channel   Channel `bun:"channel,notnull" json:"channel"`
	Purpose   Purpose `bun:"purpose,notnull" json:"purpose"`
	// Action is "granted" or "withdrawn".
	Action string    `bun:"action,notnull" json:"action"`
	Source string    `bun:"-" json:"source"`
	Actor  string    `bun:"actor,notnull" json:"actor"`
	At     time.Time `bun:"at,notnull" json:"at"`

	SourceSealed vault.Sealed `bun:"source_sealed" json:"-"`
}

func (e *ConsentEvent) sealedFields() []sealedField {
	return []sealedField{{name: "source", sealed: &e.SourceSealed, text: &e.Source}}
}

// Consent actions.
const (
	ActionGranted   = "granted"
	ActionWithdrawn = "withdrawn"
)

// ConsentChange is a grant or withdrawal of consent.
type ConsentChange struct {
	ContactID string  `json:"contact_id" validate:"required"`
	Channel   Channel `json:"channel" validate:"required,oneof=email sms whatsapp messenger"`
	Purpose   Purpose `json:"purpose" validate:"required,oneof=marketing birthday service"`
	// Source says how consent was given or withdrawn ("signup form",
	// "reply STOP", "import").
	Source string `json:"source" validate:"required,max=200"`
}

// Consents is the repository of consent, reached with Store.Consents.
type Consents struct{ s *Store }

// Consents returns the repository of consent.
func (s *Store) Consents() *Consents { return &Consents{s: s} }

const kindConsent = "consent"

// Grant records that the contact consents to be contacted on the channel
// for the purpose.
func (r *Consents) Grant(ctx context.Context, c ConsentChange) (Consent, error) {
	return r.change(ctx, c, true)
}

// Withdraw records that the contact no longer consents to be contacted on
// the channel for the purpose. Withdrawing what was never granted is
// recorded too.
func (r *Consents) Withdraw(ctx context.Context, c ConsentChange) (Consent, error) {
	return r.change(ctx, c, false)
}

func (r *Consents) change(ctx context.Context, c ConsentChange, granted bool) (Consent, error) {
	c.Source = strings.TrimSpace(c.Source)
	if err := r.s.check(kindConsent, c); err != nil {
		return Consent{}, err
	}
	now := r.s.clock()
	action := ActionWithdrawn
	if granted {
		action = ActionGranted
	}
	actor := "unknown"
	if p, ok := principal(ctx); ok {
		actor = p
	}
	state := Consent{ContactID: c.ContactID, Channel: c.Channel, Purpose: c.Purpose, Granted: granted, Source: c.Source, At: now}
	state.stamp(now)
	// Sealed before the transaction (a tenant's first seal creates its keys).
	ev := ConsentEvent{ContactID: c.ContactID, Channel: c.Channel, Purpose: c.Purpose, Action: action, Source: c.Source, Actor: actor, At: now}
	ev.stamp(now)
	if err := r.s.sealFields(ctx, kindConsent, ev.ID, ev.sealedFields()); err != nil {
		return Consent{}, err
	}
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := mustExist(ctx, tx, (*Contact)(nil), kindConsent, "contact_id", c.ContactID); err != nil {
			return err
		}
		// The current state keeps its id: its source is sealed bound to it.
		var ids []string
		if err := tx.NewSelect().Model((*Consent)(nil)).Column("id").Where("?TableAlias.contact_id = ?", c.ContactID).
			Where("?TableAlias.channel = ?", c.Channel).Where("?TableAlias.purpose = ?", c.Purpose).Scan(ctx, &ids); err != nil {
			return fmt.Errorf("crm: record consent: %w", err)
		}
		if len(ids) > 0 {
			state.ID = ids[0]
		}
		if err := r.s.sealFields(ctx, kindConsent, state.ID, state.sealedFields()); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(&ev).Exec(ctx); err != nil {
			return fmt.Errorf("crm: record consent: %w", err)
		}
		if _, err := tx.NewInsert().Model(&state).
			On("CONFLICT (tenant_id, contact_id, channel, purpose) DO UPDATE").
			Set("granted = EXCLUDED.granted").
			// A row inserted meanwhile by another transaction has another
			// id: its source, sealed bound to that id, stays.
			Set("source_sealed = CASE WHEN ?TableAlias.id = EXCLUDED.id THEN EXCLUDED.source_sealed ELSE ?TableAlias.source_sealed END").
			Set("at = EXCLUDED.at").
			Set("updated_at = EXCLUDED.updated_at").
			Set("version = ?TableAlias.version + 1").Exec(ctx); err != nil {
			return fmt.Errorf("crm: record consent: %w", err)
		}
		cur, err := r.current(ctx, tx, c.ContactID)
		if err != nil {
			return err
		}
		for _, s := range cur {
			if s.Channel == c.Channel && s.Purpose == c.Purpose {
				state = s
			}
		}
		return nil
	})
	if err != nil {
		return Consent{}, err
	}
	return state, nil
}

func (r *Consents) current(ctx context.Context, tx bun.IDB, contactID string) ([]Consent, error) {
	var cs []Consent
	if err := tx.NewSelect().Model(&cs).Where("?TableAlias.contact_id = ?", contactID).Order("channel", "purpose").Scan(ctx); err != nil {
		return nil, fmt.Errorf("crm: read consent: %w", err)
	}
	for i := range cs {
		if err := openRecord(ctx, r.s, kindConsent, &cs[i], cs[i].ID); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// Current returns the contact's current consent, one entry per channel and
// purpose ever granted or withdrawn, ordered by channel and purpose.
//
// It returns a slice rather than a Page because its length is bounded by
// the declared channels times the declared purposes (a dozen today),
// whatever the contact's history; History pages through every change.
func (r *Consents) Current(ctx context.Context, contactID string) ([]Consent, error) {
	var cs []Consent
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		cs, err = r.current(ctx, tx, contactID)
		return err
	})
	return cs, err
}

// Allowed reports whether the contact's latest word for the channel and
// purpose is a grant.
func (r *Consents) Allowed(ctx context.Context, contactID string, ch Channel, p Purpose) (bool, error) {
	cs, err := r.Current(ctx, contactID)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		if c.Channel == ch && c.Purpose == p {
			return c.Granted, nil
		}
	}
	return false, nil
}

var consentEventOrder = keyset{name: "consent history", cols: []string{"at", "id"}}

// History returns a page of the contact's consent changes, oldest first.
func (r *Consents) History(ctx context.Context, contactID string, o ListOptions) (Page[ConsentEvent], error) {
	var es []ConsentEvent
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q, err := consentEventOrder.apply(tx.NewSelect().Model(&es).Where("?TableAlias.contact_id = ?", contactID), kindConsent, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: consent history: %w", err)
		}
		return nil
	})
	if err != nil {
		return Page[ConsentEvent]{}, err
	}
	p, err := page(consentEventOrder, o, es, func(e *ConsentEvent) []any { return []any{e.At, e.ID} })
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, r.s, kindConsent, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[ConsentEvent]{}, err
		}
	}
	return p, nil
}
