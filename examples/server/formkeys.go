package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// tableFormKeys records the one-time keys of the console's forms that
// change something (every form registered with app.form): a form sent
// twice — a double click, a reload that resends it, the back button and
// Send again — acts once. A row is a random key, its time and the state
// of the sending that recorded it (pending while its action runs, done
// once it acted), nothing else.
const tableFormKeys = "example_form_keys"

// The states of a form key: recorded before the action runs (pending),
// and done once it acted. A failed action deletes its key.
const (
	formKeyPending = "pending"
	formKeyDone    = "done"
)

// formKeyRecord is one form key of a tenant, recorded before the form's
// action runs.
type formKeyRecord struct {
	bun.BaseModel `bun:"table:example_form_keys,alias:efk"`
	tenancy.Owned

	Key       string    `bun:"form_key,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	State     string    `bun:"state,notnull"`
}

// formKeyKeep is how long a form key is kept: a form resent later acts
// again.
const formKeyKeep = 24 * time.Hour

// formKeyWait is how long a form sent again waits for its first sending,
// still running, to end before it answers that the first is still
// working; formKeyPoll is how often it looks meanwhile.
const (
	formKeyWait = 4 * time.Second
	formKeyPoll = 50 * time.Millisecond
)

// formKeyStale is how long a pending form key is waited for at most: a
// sending still pending after it ended without settling its key (its
// process was killed), and the form may be sent again.
const formKeyStale = 10 * time.Minute

// maxFormKey bounds a form key (randomToken makes 43 characters).
const maxFormKey = 64

// errFormKey answers a form posted without its one-time key, or with a
// malformed one.
var errFormKey = &apiError{Status: http.StatusBadRequest, Code: "invalid",
	Message: "this form is out of date: open the page again and send it from there",
	Fields:  []fieldProblem{{Field: "form_key", Problem: "missing or malformed; reload the page"}}}

// formKeyOf returns the form's one-time key (its form_key field), or
// errFormKey when it is missing or malformed.
func formKeyOf(r *http.Request) (string, error) {
	key := r.PostFormValue("form_key")
	if key == "" || len(key) > maxFormKey {
		return "", errFormKey
	}
	for i := range len(key) {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", errFormKey
		}
	}
	return key, nil
}

// formClaim is what claimForm found of a form's key.
type formClaim int

const (
	// formClaimed: the key is this sending's, which acts.
	formClaimed formClaim = iota
	// formSentDone: an earlier sending of the form acted.
	formSentDone
	// formSentPending: an earlier sending is still running after the
	// wait; its outcome is not known yet.
	formSentPending
)

// claimForm records the form's one-time key (its form_key field) as
// pending before the form acts. It returns done, which the caller calls
// with the action's error (a failed action releases the key, so that the
// form may be sent again; one that acted marks it done), and what it
// found: formClaimed when this sending acts. When an earlier sending
// holds the key, claimForm waits up to the form wait (formKeyWait unless
// configured) for it to end: done answers formSentDone; failed frees the
// key, which this sending then claims, to act itself; still running
// answers formSentPending — never a claim that the form acted.
func (a *app) claimForm(r *http.Request) (done func(error), found formClaim, err error) {
	key, err := formKeyOf(r)
	if err != nil {
		return nil, 0, err
	}
	ctx := r.Context()
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return nil, 0, tenancy.ErrNoTenant
	}
	wait := cmp.Or(a.cfg.formWait, formKeyWait)
	deadline := time.Now().Add(wait)
	for {
		rec := &formKeyRecord{Owned: tenancy.Owned{TenantID: p.TenantID}, Key: key, CreatedAt: a.now().UTC(), State: formKeyPending}
		var n int64
		var state []string
		err = tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			// A sending pending for longer than any form acts ended
			// without settling its key (its process was killed): its
			// key is free again.
			if _, err := tx.NewDelete().Model((*formKeyRecord)(nil)).Where("form_key = ?", key).
				Where("state = ?", formKeyPending).Where("created_at < ?", rec.CreatedAt.Add(-formKeyStale)).Exec(ctx); err != nil {
				return err
			}
			res, err := tx.NewInsert().Model(rec).On("CONFLICT (tenant_id, form_key) DO NOTHING").Exec(ctx)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n == 1 {
				return err
			}
			return tx.NewSelect().Model((*formKeyRecord)(nil)).Column("state").Where("form_key = ?", key).Scan(ctx, &state)
		})
		if err != nil {
			return nil, 0, err
		}
		if n == 1 {
			break
		}
		if len(state) == 1 && state[0] != formKeyPending {
			return nil, formSentDone, nil
		}
		if len(state) == 0 {
			// The earlier sending failed and freed the key between the
			// insert and the look: claim it again.
			continue
		}
		if !time.Now().Before(deadline) {
			return nil, formSentPending, nil
		}
		t := time.NewTimer(formKeyPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, ctx.Err()
		case <-t.C:
		}
	}
	return func(actErr error) {
		// Settled without the request's cancellation: the browser may
		// have gone, the key must still be freed or marked done.
		ctx := context.WithoutCancel(ctx)
		if err := tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			if actErr != nil {
				_, err := tx.NewDelete().Model((*formKeyRecord)(nil)).Where("form_key = ?", key).Exec(ctx)
				return err
			}
			_, err := tx.NewUpdate().Model((*formKeyRecord)(nil)).Set("state = ?", formKeyDone).Where("form_key = ?", key).Exec(ctx)
			return err
		}); err != nil {
			a.log.WarnContext(ctx, "console: form key not settled", "err", err)
		}
	}, formClaimed, nil
}

// stillWorking is the flash of a form sent a second time while its first
// sending is still running: nothing is claimed of its outcome.
const stillWorking = "Still working: this form was sent twice and the first sending has not finished. Reload the page in a moment to see whether it was saved; do not send it again."

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

// form registers a console form that changes something. It carries a
// one-time key (its form_key field, rendered by the formKey template
// function), recorded before the handler runs: a form sent twice — a
// double click, a reload that resends it, the back button and Send again
// — acts once, and the second sending is sent to back (where "{id}"
// stands for the path's id) with alreadySent, or with the form's own
// message in dupFlash, once the first acted; while the first is still
// running, it waits for it a little (claimForm), and is sent back with
// stillWorking if it still runs. A handler that fails frees the key, so
// that the corrected form may be sent with it (and a second sending
// waiting for the first acts itself). A form without its key, or with a
// malformed one, is refused before the handler runs.
func (a *app) form(pattern string, acc access, name, back string, h consoleHandler) {
	a.page(pattern, acc, name, func(w http.ResponseWriter, r *http.Request, p *page) error {
		done, found, err := a.claimForm(r)
		if err != nil {
			// The form's page is not prepared yet: the error page says it.
			ae, ok := toAPIError(err)
			if !ok {
				a.log.ErrorContext(r.Context(), "console: form key not recorded", "path", r.URL.Path, "err", err)
				ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
			}
			a.render(w, ae.Status, "error", p, ae)
			return nil
		}
		switch found {
		case formSentDone:
			_, path, _ := strings.Cut(pattern, " ")
			return a.seeOther(w, r, strings.ReplaceAll(back, "{id}", url.PathEscape(r.PathValue("id"))), cmp.Or(dupFlash[path], alreadySent))
		case formSentPending:
			return a.seeOther(w, r, strings.ReplaceAll(back, "{id}", url.PathEscape(r.PathValue("id"))), stillWorking)
		}
		err = h(w, r, p)
		done(err)
		return err
	})
}

// dupFlash are the messages of forms whose second sending needs more said
// than alreadySent, by path.
var dupFlash = map[string]string{
	// The key's secret is shown once, in the answer to the first sending,
	// which a double click replaces with the second's.
	"/console/keys":         "Already done: this form was sent twice and created one key. If its secret did not show, revoke that key and create another.",
	"/console/tenant/close": "Already done: this form was sent twice and closed the organization once. An owner may reopen it from the overview.",
}

// tableSignupKeys records the one-time keys of the sign-up form, which no
// tenant owns yet: a sign-up sent twice creates one organization. A row
// is a random key, the tenant its sign-up created (empty while it is
// being created) and its time; rows older than formKeyKeep are pruned by
// the next sign-up.
const tableSignupKeys = "example_signup_keys"

// claimSignup records the sign-up form's one-time key before the
// organization is created. It returns done, which the caller calls with
// the tenant created or the error (a failed sign-up frees the key), and
// dup, true when the key was recorded already, with the tenant that
// sending created (empty while it is still being created).
func (a *app) claimSignup(r *http.Request) (done func(tenantID string, err error), tenantID string, dup bool, err error) {
	key, err := formKeyOf(r)
	if err != nil {
		return nil, "", false, err
	}
	ctx := r.Context()
	now := a.now().UTC()
	if _, err := a.db.NewRaw("DELETE FROM ? WHERE created_at < ?", bun.Ident(tableSignupKeys), now.Add(-formKeyKeep)).Exec(ctx); err != nil {
		return nil, "", false, fmt.Errorf("signup keys: %w", err)
	}
	res, err := a.db.NewRaw("INSERT INTO ? (form_key, created_tenant, created_at) VALUES (?, '', ?) ON CONFLICT (form_key) DO NOTHING",
		bun.Ident(tableSignupKeys), key, now).Exec(ctx)
	if err != nil {
		return nil, "", false, fmt.Errorf("signup keys: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, "", false, fmt.Errorf("signup keys: %w", err)
	} else if n == 0 {
		if err := a.db.NewRaw("SELECT created_tenant FROM ? WHERE form_key = ?", bun.Ident(tableSignupKeys), key).Scan(ctx, &tenantID); err != nil {
			return nil, "", false, fmt.Errorf("signup keys: %w", err)
		}
		return nil, tenantID, true, nil
	}
	return func(tenantID string, actErr error) {
		ctx := context.WithoutCancel(ctx)
		var err error
		if actErr != nil {
			_, err = a.db.NewRaw("DELETE FROM ? WHERE form_key = ?", bun.Ident(tableSignupKeys), key).Exec(ctx)
		} else {
			_, err = a.db.NewRaw("UPDATE ? SET created_tenant = ? WHERE form_key = ?", bun.Ident(tableSignupKeys), tenantID, key).Exec(ctx)
		}
		if err != nil {
			a.log.WarnContext(ctx, "console: signup key not updated", "err", err)
		}
	}, "", false, nil
}

// signedUpTwice is the flash of a sign-up sent a second time whose
// organization exists: the person is signed in to it.
const signedUpTwice = "Already done: this form was sent twice and created one organization."

// migrateSignupKeys creates the sign-up keys table (no tenant's: the
// tenant does not exist yet when the key is recorded; the tenant a key
// created is named by created_tenant, not owned by it).
func migrateSignupKeys(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ? (form_key TEXT PRIMARY KEY, created_tenant TEXT NOT NULL, "+
		"created_at TIMESTAMP NOT NULL)", bun.Ident(tableSignupKeys)); err != nil {
		return fmt.Errorf("create %s: %w", tableSignupKeys, err)
	}
	return nil
}

// migrateFormKeyStates adds the state of each form key (keys recorded
// before are done: their sendings acted, or failed and were deleted).
func migrateFormKeyStates(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "ALTER TABLE ? ADD COLUMN state TEXT NOT NULL DEFAULT 'done'", bun.Ident(tableFormKeys)); err != nil {
		return fmt.Errorf("alter %s: %w", tableFormKeys, err)
	}
	return nil
}
