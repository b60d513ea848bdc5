package crm

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// The generic repository operations the record kinds share. Each runs in
// one tenant-scoped transaction; a validation or reference failure returns
// before anything is written.

type recordPtr[T any] interface {
	*T
	record
}

// ref is a reference from a record to another record of the tenant, checked
// before a write.
type ref struct {
	field string // JSON name of the referring field
	model any    // (*Target)(nil)
	id    string // empty: no reference
}

// checkRefs checks that each non-empty reference names a record of the
// context's tenant, else returns a *ValidationError listing those that do
// not.
//
// On PostgreSQL every reference — to a contact, a company, a deal — is
// checked as a foreign key is: the referenced row is
// locked FOR KEY SHARE until the transaction ends, so that a deletion of
// it (a Delete, an erasure's batch) that has not committed yet is waited
// for — the reference then names no record — and one that comes later
// waits for the write that references it. Without the lock, the check saw
// the row its deletion was removing and the write stored a reference to a
// record already gone (TestS15NoteForAContactBeingErased,
// TestS16NoReferenceToARecordBeingDeleted). The lock conflicts only with
// a deletion or a change of the row's key, never with an update of its
// other columns. On SQLite writers take turns, so the count suffices.
func checkRefs(ctx context.Context, tx bun.IDB, kind string, refs ...ref) error {
	var verr *ValidationError
	pg := tx.Dialect().Name() == dialect.PG
	for _, r := range refs {
		if r.id == "" {
			continue
		}
		q := tx.NewSelect().Model(r.model).Where("?TableAlias.id = ?", r.id).Apply(tenancy.Scope(ctx))
		var n int64
		var err error
		if pg {
			var ids []string
			err = q.Column("id").For("KEY SHARE").Scan(ctx, &ids)
			n = int64(len(ids))
		} else {
			n, err = q.Count(ctx)
		}
		if err != nil {
			return fmt.Errorf("crm: check %s %s: %w", kind, r.field, err)
		}
		if n == 0 {
			if verr == nil {
				verr = &ValidationError{Kind: kind}
			}
			verr.Fields = append(verr.Fields, FieldError{Field: r.field, Rule: "exists", Message: "names no record of this tenant"})
		}
	}
	if verr != nil {
		return verr
	}
	return nil
}

// lockRecord locks, on PostgreSQL, the row of record id of kind (one of
// RecordKinds) FOR KEY SHARE until the transaction ends, for a write that
// will refer to it — a campaign, proposal or invoice to its client or
// campaign, an attachment or a custom field value to its owner — as
// checkRefs does: a deletion of the record that has not committed yet is
// waited for, and the record is then not found (ErrNotFound); one that
// comes later waits for the write, whose rows it then finds and deletes
// with the record (deleteDependents) or refuses for (Clients.Delete,
// ErrInUse). Without it an attachment written beside its owner's
// deletion outlived the owner, bytes and all. strength "UPDATE" takes the
// row for a deletion that first checks what refers to it. On SQLite
// writers take turns: it does nothing.
func lockRecord(ctx context.Context, tx bun.IDB, kind, id string) error {
	return lockRecordFor(ctx, tx, kind, id, "KEY SHARE")
}

func lockRecordFor(ctx context.Context, tx bun.IDB, kind, id, strength string) error {
	table, ok := recordTables[kind]
	if !ok || tx.Dialect().Name() != dialect.PG {
		return nil // an unknown kind is the caller's *ValidationError
	}
	if err := checkText(kind, "id", id); err != nil { // validate_values.go, as get
		return err
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	var ids []string
	if err := tx.NewSelect().TableExpr(table+" AS r").Column("r.id").Where("r.tenant_id = ?", tid).Where("r.id = ?", id).
		For(strength).Scan(ctx, &ids); err != nil {
		return fmt.Errorf("crm: lock %s: %w", kind, err)
	}
	if len(ids) == 0 {
		return notFound(kind, id)
	}
	return nil
}

// getReferenced returns record id of kind as get does, for a write that
// will refer to it: its row locked first (lockRecord).
func getReferenced[T any, PT recordPtr[T]](ctx context.Context, tx bun.IDB, kind, id string) (T, error) {
	if err := lockRecord(ctx, tx, kind, id); err != nil {
		var zero T
		return zero, err
	}
	return get[T, PT](ctx, tx, kind, id)
}

// readable reports whether id names a record of model's table of the
// context's tenant, for a read: it takes no lock (checkRefs is for
// writes).
func readable(ctx context.Context, tx bun.IDB, model any, id string) (bool, error) {
	n, err := tx.NewSelect().Model(model).Where("?TableAlias.id = ?", id).Apply(tenancy.Scope(ctx)).Count(ctx)
	return n > 0, err
}

// mustExist checks one reference (see checkRefs).
func mustExist(ctx context.Context, tx bun.IDB, model any, kind, field, id string) error {
	return checkRefs(ctx, tx, kind, ref{field: field, model: model, id: id})
}

// createRecord validates in (the input rec was built from), then in one
// transaction checks refs, runs before (if set; it may write related rows,
// such as a stage history, and set the server-owned fields of rec), and
// inserts rec with a new id, times and Version 1.
func createRecord[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind string, in any, rec PT, refs []ref, before func(ctx context.Context, tx bun.Tx) error) (T, error) {
	*rec.base() = Record{}
	if err := s.check(kind, in); err != nil {
		var zero T
		return zero, err
	}
	rec.base().ID = tenancy.NewID()
	if err := sealRecord(ctx, s, kind, rec, rec.base().ID); err != nil {
		var zero T
		return zero, err
	}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := checkRefs(ctx, tx, kind, refs...); err != nil {
			return err
		}
		now := s.clock()
		rec.base().stamp(now) // before may need the id
		if before != nil {
			if err := before(ctx, tx); err != nil {
				return err
			}
		}
		if err := insert(ctx, tx, now, rec); err != nil {
			return fmt.Errorf("crm: create %s: %w", kind, err)
		}
		return nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return *rec, nil
}

// checkUpdate validates the arguments of an update: in (its input), and
// id and version, which are required — an update names the version it
// read, and an update without one is invalid input, not a conflict. Every
// failed field is reported in one *ValidationError.
func (s *Store) checkUpdate(kind, id string, version int64, in any) error {
	return joinInvalid(kind, s.check(kind, in), checkID(kind, id), checkVersion(kind, version))
}

// checkID checks the id an update names.
func checkID(kind, id string) error {
	if id == "" {
		return invalid(kind, "id", "required", "is required")
	}
	return checkText(kind, "id", id) // validate_values.go
}

// checkVersion checks the version an operation on a stored record names
// (see checkUpdate).
func checkVersion(kind string, version int64) error {
	if version < 1 {
		return invalid(kind, "version", "required", "is required: the version that was read (1 or more)")
	}
	return nil
}

// joinInvalid returns nil if every one of errs is nil, the first error
// that is not a *ValidationError if there is one, and else one
// *ValidationError of kind listing the fields of all of them.
func joinInvalid(kind string, errs ...error) error {
	var all *ValidationError
	for _, err := range errs {
		var verr *ValidationError
		switch {
		case err == nil:
		case !errors.As(err, &verr):
			return err
		case all == nil:
			all = &ValidationError{Kind: kind, Fields: append([]FieldError(nil), verr.Fields...)}
		default:
			all.Fields = append(all.Fields, verr.Fields...)
		}
	}
	if all == nil {
		return nil
	}
	return all
}

// updateRecord validates in (the input rec was built from), id and
// version, then in one transaction reads the stored record id
// (ErrNotFound), checks refs, runs before with the stored record (to set
// the server-owned fields of rec, or to record history), and writes rec if
// the stored Version is still version (*ConflictError otherwise).
func updateRecord[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind, id string, version int64, in any, rec PT, refs []ref, before func(ctx context.Context, tx bun.Tx, cur PT) error) (T, error) {
	var zero T
	if err := s.checkUpdate(kind, id, version, in); err != nil {
		return zero, err
	}
	*rec.base() = Record{ID: id, Version: version}
	if err := sealRecord(ctx, s, kind, rec, id); err != nil {
		return zero, err
	}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		cur, err := get[T, PT](ctx, tx, kind, id)
		if err != nil {
			return err
		}
		if err := openRecord(ctx, s, kind, PT(&cur), id); err != nil {
			return err
		}
		if err := checkRefs(ctx, tx, kind, refs...); err != nil {
			return err
		}
		rec.base().CreatedAt = PT(&cur).base().CreatedAt
		if before != nil {
			if err := before(ctx, tx, PT(&cur)); err != nil {
				return err
			}
		}
		return update(ctx, s, tx, s.clock(), kind, rec)
	})
	if err != nil {
		return zero, err
	}
	return *rec, nil
}

// getRecord returns the record id of kind.
func getRecord[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind, id string) (T, error) {
	var rec T
	err := s.one(ctx, func(ctx context.Context, tx bun.IDB) error {
		var err error
		rec, err = get[T, PT](ctx, tx, kind, id)
		return err
	})
	if err != nil {
		return rec, err
	}
	return rec, openRecord(ctx, s, kind, PT(&rec), id)
}

// deleteRecord deletes the record id of kind (ErrNotFound if there is
// none), running after in the same transaction to delete what depends on
// it.
func deleteRecord[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind, id string, after func(ctx context.Context, tx bun.Tx) error) error {
	var gone []string
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model(PT(nil)).Where("?TableAlias.id = ?", id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: delete %s: %w", kind, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("crm: delete %s: %w", kind, err)
		} else if n == 0 {
			return notFound(kind, id)
		}
		if gone, err = s.deleteDependents(ctx, tx, kind, []string{id}); err != nil { // files and custom fields (commerce.go)
			return err
		}
		if after != nil {
			if err := after(ctx, tx); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, kind, "deleted", id)
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, gone) // once the rows are gone for good
}

// listRecords returns a page of kind's records, filtered by filter, in the
// order of ks; key returns a record's sort key.
func listRecords[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind string, ks keyset, o ListOptions, filter func(q *bun.SelectQuery) *bun.SelectQuery, key func(*T) []any) (Page[T], error) {
	var p Page[T]
	err := s.one(ctx, func(ctx context.Context, tx bun.IDB) error {
		var items []T
		q := tx.NewSelect().Model(&items)
		if filter != nil {
			q = filter(q)
		}
		q, err := ks.apply(q, kind, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list %s: %w", kind, err)
		}
		p, err = page(ks, o, items, key)
		return err
	})
	if err != nil {
		return p, err
	}
	op := s.vault.Opener(ctx) // the tenant's keys looked up once for the page
	for i := range p.Items {
		if sr, ok := any(PT(&p.Items[i])).(sealer); ok {
			if err := openFieldsWith(&op, kind, PT(&p.Items[i]).base().ID, sr.sealedFields()); err != nil {
				return Page[T]{}, err
			}
		}
	}
	return p, nil
}

// byID is the sort key of lists in creation order (ids are time-ordered).
func byID[T any, PT recordPtr[T]](rec *T) []any { return []any{PT(rec).base().ID} }

// whereEq adds "column = value" for each pair of colsAndValues whose value
// is not empty.
func whereEq(q *bun.SelectQuery, colsAndValues ...string) *bun.SelectQuery {
	for i := 0; i+1 < len(colsAndValues); i += 2 {
		if v := colsAndValues[i+1]; v != "" {
			q = q.Where("?TableAlias.? = ?", bun.Ident(colsAndValues[i]), v)
		}
	}
	return q
}

// memberID returns the acting member's id, empty for a system principal.
func memberID(ctx context.Context) string {
	p, _ := tenancy.FromContext(ctx)
	return p.MemberID
}

// principal returns the acting principal's Actor.
func principal(ctx context.Context) (string, bool) {
	p, ok := tenancy.FromContext(ctx)
	if !ok {
		return "", false
	}
	return p.Actor(), true
}
