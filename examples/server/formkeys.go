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
// Send again — acts once. A row is a random key and its time, nothing
// else.
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

// claimForm records the form's one-time key (its form_key field) before
// the form acts. It returns done, which the caller calls with the
// action's error (a failed action releases the key, so that the form may
// be sent again), and dup, true when the key was recorded already: the
// form was sent before and must not act again.
func (a *app) claimForm(r *http.Request) (done func(error), dup bool, err error) {
	key, err := formKeyOf(r)
	if err != nil {
		return nil, false, err
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
// message in dupFlash. A handler that fails frees the key, so that the
// corrected form may be sent with it. A form without its key, or with a
// malformed one, is refused before the handler runs.
func (a *app) form(pattern string, acc access, name, back string, h consoleHandler) {
	a.page(pattern, acc, name, func(w http.ResponseWriter, r *http.Request, p *page) error {
		done, dup, err := a.claimForm(r)
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
		if dup {
			_, path, _ := strings.Cut(pattern, " ")
			return a.seeOther(w, r, strings.ReplaceAll(back, "{id}", url.PathEscape(r.PathValue("id"))), cmp.Or(dupFlash[path], alreadySent))
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
	"/console/keys": "Already done: this form was sent twice and created one key. If its secret did not show, revoke that key and create another.",
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
