package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// tableFormKeys records the one-time keys of the console's forms whose
// action reaches a person or a platform (a Messenger reply, a post to a
// Page or Instagram, a data-subject request) or creates a record (a
// contact, deal, note or task): a form sent twice — a double click, a
// reload that resends it, the back button and Send again — acts once. A
// row is a random key and its time, nothing else.
const tableFormKeys = "example_form_keys"

// formKeyRecord is one form key of a tenant, recorded before the form's
// action runs.
type formKeyRecord struct {
	bun.BaseModel `bun:"table:example_form_keys,alias:efk"`
	tenancy.Owned

	Key       string    `bun:"form_key,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// formKeyKeep is how long a form key is kept: a form resent later acts
// again.
const formKeyKeep = 24 * time.Hour

// maxFormKey bounds a form key (randomToken makes 43 characters).
const maxFormKey = 64

// errFormKey answers a form posted without its one-time key, or with a
// malformed one.
var errFormKey = &apiError{Status: http.StatusBadRequest, Code: "invalid",
	Message: "this form is out of date: open the page again and send it from there",
	Fields:  []fieldProblem{{Field: "form_key", Problem: "missing or malformed; reload the page"}}}

// claimForm records the form's one-time key (its form_key field) before
// the form acts. It returns done, which the caller calls with the
// action's error (a failed action releases the key, so that the form may
// be sent again), and dup, true when the key was recorded already: the
// form was sent before and must not act again.
func (a *app) claimForm(r *http.Request) (done func(error), dup bool, err error) {
	key := r.PostFormValue("form_key")
	if key == "" || len(key) > maxFormKey {
		return nil, false, errFormKey
	}
	for i := range len(key) {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, false, errFormKey
		}
	}
	ctx := r.Context()
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return nil, false, tenancy.ErrNoTenant
	}
	rec := &formKeyRecord{Owned: tenancy.Owned{TenantID: p.TenantID}, Key: key, CreatedAt: a.now().UTC()}
	var n int64
	err = tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewInsert().Model(rec).On("CONFLICT (tenant_id, form_key) DO NOTHING").Exec(ctx)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if n == 0 {
		return nil, true, nil
	}
	return func(actErr error) {
		if actErr == nil {
			return
		}
		// Released without the request's cancellation: the browser may
		// have gone, the key must still be freed.
		ctx := context.WithoutCancel(ctx)
		if err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewDelete().Model((*formKeyRecord)(nil)).Where("form_key = ?", key).Exec(ctx)
			return err
		}); err != nil {
			a.log.WarnContext(ctx, "console: form key not released", "err", err)
		}
	}, false, nil
}

// actOnce runs act, the action of a form carrying a one-time key, unless
// the key was recorded already: the form was sent before, and the person
// is sent to back with alreadySent. A failed act frees the key.
func (a *app) actOnce(w http.ResponseWriter, r *http.Request, back string, act func() error) error {
	done, dup, err := a.claimForm(r)
	if err != nil {
		return err
	}
	if dup {
		return a.seeOther(w, r, back, alreadySent)
	}
	err = act()
	done(err)
	return err
}

// alreadySent is the flash of a form sent a second time.
const alreadySent = "Already done: this form was sent twice and acted once. Nothing more was sent."

// migrateFormKeys creates the form keys table, tenant-owned with
// row-level security on PostgreSQL.
func migrateFormKeys(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ? (tenant_id TEXT NOT NULL, form_key TEXT NOT NULL, "+
		"created_at TIMESTAMP NOT NULL, PRIMARY KEY (tenant_id, form_key))", bun.Ident(tableFormKeys)); err != nil {
		return fmt.Errorf("create %s: %w", tableFormKeys, err)
	}
	return tenancy.EnableRowSecurity(ctx, db, tableFormKeys)
}

// formKeyCategory declares the form keys to the retention engine: random
// keys and their times, no subject's data; kept a day, and purged with
// their tenant.
func formKeyCategory() retention.Category {
	return retention.Category{
		Name: "example.form_key", Table: tableFormKeys, ID: "form_key", Time: "created_at",
		LegalBasis: "legitimate interest: acting once on a form sent twice",
		Purpose:    "one-time keys of the console's forms, so that a form sent twice never replies, posts or records twice",
	}
}

func formKeyRule() retention.Rule {
	return retention.Rule{Category: "example.form_key", Period: formKeyKeep, Note: "a form resent after a day acts again"}
}
