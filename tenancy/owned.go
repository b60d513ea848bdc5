package tenancy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// Owned is embedded in every tenant-owned model. Through bun's model hooks it
// scopes every select, update and delete on the model to the context's tenant
// and stamps every insert with it; without a tenant in the context the query
// fails with ErrNoTenant before anything is sent.
//
//	type Contact struct {
//		bun.BaseModel `bun:"table:crm_contacts,alias:c"`
//		tenancy.Owned
//		ID   string `bun:",pk"`
//		Name string
//	}
//
// What the hooks reach: Scan and ScanAndCount selects, single-row, slice and
// bulk Model((*T)(nil)) updates and deletes, and single-row and slice
// inserts. What they do not reach — bun's Count, Exists, Rows and Exec on a
// select, a model query used as a subquery, union arm or CTE, and raw
// queries — is stopped by the Guard (see InstallGuard); use Scope to make
// those queries legal. On PostgreSQL, row-level security (see
// EnableRowSecurity and RunInTx) is the second wall behind both.
type Owned struct {
	TenantID string `bun:"tenant_id,notnull" json:"tenant_id"`
}

// ownedModel is implemented only by models embedding Owned.
type ownedModel interface{ tenantOwned() }

func (*Owned) tenantOwned() {}

var (
	_ bun.BeforeSelectHook      = (*Owned)(nil)
	_ bun.BeforeUpdateHook      = (*Owned)(nil)
	_ bun.BeforeDeleteHook      = (*Owned)(nil)
	_ bun.BeforeAppendModelHook = (*Owned)(nil)
)

// BeforeSelect scopes the select to the context's tenant.
func (*Owned) BeforeSelect(ctx context.Context, q *bun.SelectQuery) error {
	return scope(ctx, q)
}

// BeforeUpdate scopes the update to the context's tenant.
func (*Owned) BeforeUpdate(ctx context.Context, q *bun.UpdateQuery) error {
	return scope(ctx, q)
}

// BeforeDelete scopes the delete to the context's tenant.
func (*Owned) BeforeDelete(ctx context.Context, q *bun.DeleteQuery) error {
	return scope(ctx, q)
}

// scope adds the tenant predicate to a select, update or delete, refusing
// one without a tenant or with a top-level OR.
func scope[Q interface{ Where(string, ...any) Q }](ctx context.Context, q Q) error {
	tid, err := TenantID(ctx)
	if err != nil {
		return err
	}
	if err := checkWhere(q); err != nil {
		return err
	}
	q.Where("?TableAlias.tenant_id = ?", tid)
	return nil
}

// BeforeAppendModel stamps inserted and updated rows with the context's
// tenant. A row that already names another tenant is refused with
// ErrTenantMismatch rather than silently moved.
func (o *Owned) BeforeAppendModel(ctx context.Context, q bun.Query) error {
	switch q.(type) {
	case *bun.InsertQuery, *bun.UpdateQuery, *bun.MergeQuery:
	default:
		return nil
	}
	tid, err := TenantID(ctx)
	if err != nil {
		return err
	}
	if o.TenantID != "" && o.TenantID != tid {
		return ErrTenantMismatch
	}
	o.TenantID = tid
	return nil
}

// Scope returns a function for bun's Apply that adds the tenant predicate to
// a select, for the calls bun runs without model hooks (Count, Exists, Rows):
//
//	n, err := db.NewSelect().Model((*Contact)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
//
// Without a tenant in ctx the query fails with ErrNoTenant. On a
// MemberOwned model under a creator's principal it adds the creator's
// member predicate too (see MemberOwned).
func Scope(ctx context.Context) func(*bun.SelectQuery) *bun.SelectQuery {
	return func(q *bun.SelectQuery) *bun.SelectQuery {
		tid, err := TenantID(ctx)
		if err != nil {
			return q.Err(err)
		}
		if err := checkWhere(q); err != nil {
			return q.Err(err)
		}
		return scopeMemberSelect(ctx, q.Where("?TableAlias.tenant_id = ?", tid)) // creator.go
	}
}

// ErrTopLevelOr is returned for a query whose WHERE joins conditions with OR
// outside a group. bun renders Where(a).WhereOr(b) as "(a) OR (b)", so the
// tenant predicate the hooks append would bind only to b and a would match
// every tenant's rows. Group the alternatives instead:
//
//	q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
//		return q.Where("email = ?", e).WhereOr("phone = ?", p)
//	})
var ErrTopLevelOr = errors.New("tenancy: top-level OR in WHERE would escape the tenant predicate; group it with WhereGroup")

// checkWhere refuses a query whose WHERE has an OR at the top level. bun
// keeps the conditions in an unexported slice of separators and groups; it
// is read by reflection, and if bun's layout ever changes the query is
// refused rather than let through.
func checkWhere(q any) error {
	v := reflect.ValueOf(q)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	idx, ok := whereIndex(v.Type())
	if !ok {
		return fmt.Errorf("%w: cannot inspect the WHERE of %T", ErrUnscoped, q)
	}
	where := v.FieldByIndex(idx)
	depth := 0
	for i := range where.Len() {
		e := where.Index(i)
		if e.Type() != reflect.TypeFor[schema.QueryWithSep]() || sepIndex == nil || queryIndex == nil {
			return fmt.Errorf("%w: cannot inspect the WHERE of %T", ErrUnscoped, q)
		}
		sep, query := e.FieldByIndex(sepIndex), e.FieldByIndex(queryIndex)
		if query.String() == "" {
			switch sep.String() {
			case "(":
				depth++
				continue
			case ")":
				depth--
				continue
			}
		}
		if i > 0 && depth == 0 && strings.Contains(strings.ToUpper(sep.String()), "OR") {
			return ErrTopLevelOr
		}
	}
	return nil
}

// whereIndexes caches, per bun query type, the index path of its where
// slice: looking a field up by name costs more than the query's own hooks.
var whereIndexes sync.Map // reflect.Type -> []int (nil: no such field)

func whereIndex(t reflect.Type) ([]int, bool) {
	if idx, ok := whereIndexes.Load(t); ok {
		return idx.([]int), idx.([]int) != nil
	}
	var idx []int
	if f, ok := t.FieldByName("where"); ok && f.Type.Kind() == reflect.Slice {
		idx = f.Index
	}
	whereIndexes.Store(t, idx)
	return idx, idx != nil
}

// Index paths of the separator and the condition in bun's where entries;
// nil if bun's layout ever changes, and then checkWhere refuses every query.
var (
	sepIndex   = fieldIndex(reflect.TypeFor[schema.QueryWithSep](), "Sep")
	queryIndex = fieldIndex(reflect.TypeFor[schema.QueryWithSep](), "Query")
)

func fieldIndex(t reflect.Type, name string) []int {
	if f, ok := t.FieldByName(name); ok && f.Type.Kind() == reflect.String {
		return f.Index
	}
	return nil
}
