package tenancy

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// MemberOwned is embedded, in place of Owned, in a tenant-owned model whose
// rows also belong to one member of the tenant: a connected account and
// what was pulled through it belong to the creator who connected it. It
// scopes every query to the tenant as Owned does and, under a creator
// principal (RoleCreator), also to the creator's own rows:
//
//	type Connection struct {
//		bun.BaseModel `bun:"table:socialcrm_social_connections,alias:scn"`
//		tenancy.MemberOwned
//		ID string `bun:",pk"`
//	}
//
// What a creator's statements reach: Scan, ScanAndCount, updates and
// deletes get member_id = <the creator> from the hooks, Scope adds it for
// Count, Exists and Rows, an insert is stamped with the creator (a row that
// names another member is ErrForbidden), the Guard refuses any statement —
// raw, a subquery, a join, a CTE, an upsert — unless every reference to
// such a table is confined to the creator's member_id as a tenant-owned
// table's is to tenant_id (see InstallGuard), and on PostgreSQL the
// table's member policy (EnableMemberSecurity) hides every other member's
// rows. A creator principal without a member (an API key with the creator
// role) reaches no row: ErrForbidden. Owners, admins, staff and the system
// are not confined by member. An empty MemberID is a row that no creator
// made (the tenant's own, or made before rows recorded their member).
//
// The table needs a column member_id (TEXT NOT NULL, empty by default), unique keys
// that an upsert under a creator names should include it (the Guard
// requires a creator's conflict target to name member_id), and its
// migration calls EnableRowSecurity and then EnableMemberSecurity.
type MemberOwned struct {
	Owned
	// MemberID is the member the row belongs to; empty for the tenant's
	// own rows.
	MemberID string `bun:"member_id,notnull" json:"member_id,omitempty"`
}

// memberOwnedModel is implemented only by models embedding MemberOwned.
type memberOwnedModel interface{ memberOwned() }

func (*MemberOwned) memberOwned() {}

var (
	_ bun.BeforeSelectHook      = (*MemberOwned)(nil)
	_ bun.BeforeUpdateHook      = (*MemberOwned)(nil)
	_ bun.BeforeDeleteHook      = (*MemberOwned)(nil)
	_ bun.BeforeAppendModelHook = (*MemberOwned)(nil)
)

// memberColumn is the column that names a MemberOwned row's member.
const memberColumn = "member_id"

// BeforeSelect scopes the select to the context's tenant and, for a
// creator, to the creator's rows.
func (*MemberOwned) BeforeSelect(ctx context.Context, q *bun.SelectQuery) error {
	return scopeMember(ctx, q)
}

// BeforeUpdate scopes the update as BeforeSelect does.
func (*MemberOwned) BeforeUpdate(ctx context.Context, q *bun.UpdateQuery) error {
	return scopeMember(ctx, q)
}

// BeforeDelete scopes the delete as BeforeSelect does.
func (*MemberOwned) BeforeDelete(ctx context.Context, q *bun.DeleteQuery) error {
	return scopeMember(ctx, q)
}

func scopeMember[Q interface{ Where(string, ...any) Q }](ctx context.Context, q Q) error {
	if err := scope(ctx, q); err != nil {
		return err
	}
	mid, confined, err := CreatorMember(ctx)
	if err != nil || !confined {
		return err
	}
	q.Where("?TableAlias.member_id = ?", mid)
	return nil
}

// BeforeAppendModel stamps inserted rows with the tenant (as Owned does)
// and, under a creator principal, with the creator: a row a creator writes
// that names another member is refused with ErrForbidden.
func (o *MemberOwned) BeforeAppendModel(ctx context.Context, q bun.Query) error {
	if err := o.Owned.BeforeAppendModel(ctx, q); err != nil {
		return err
	}
	switch q.(type) {
	case *bun.InsertQuery, *bun.UpdateQuery, *bun.MergeQuery:
	default:
		return nil
	}
	mid, confined, err := CreatorMember(ctx)
	if err != nil || !confined {
		return err
	}
	if _, insert := q.(*bun.InsertQuery); insert && o.MemberID == "" {
		o.MemberID = mid
	}
	if o.MemberID != mid {
		return fmt.Errorf("%w: a creator writes only its own rows", ErrForbidden)
	}
	return nil
}

// CreatorMember tells whether ctx's principal is confined to its own
// member's rows of MemberOwned tables — a member with RoleCreator — and
// returns that member. It fails with ErrForbidden for a creator principal
// without a member (such as an API key with the creator role): it would
// reach no row. The system principal is never confined.
func CreatorMember(ctx context.Context) (memberID string, confined bool, err error) {
	p, ok := FromContext(ctx)
	if !ok || p.IsSystem() || p.Role != RoleCreator {
		return "", false, nil
	}
	if p.MemberID == "" {
		return "", true, fmt.Errorf("%w: a creator principal without a member reaches no connected account", ErrForbidden)
	}
	return p.MemberID, true, nil
}

// memberOwnedTable reports whether t's model embeds MemberOwned.
func memberOwnedTable(t *schema.Table) bool {
	return t != nil && reflect.PointerTo(t.Type).Implements(reflect.TypeFor[memberOwnedModel]())
}

// scopeMemberSelect adds the creator's member predicate to a select of a
// MemberOwned model, for Scope.
func scopeMemberSelect(ctx context.Context, q *bun.SelectQuery) *bun.SelectQuery {
	mid, confined, err := CreatorMember(ctx)
	if !confined {
		return q // the tenant's own people: nothing to look up
	}
	if tm, ok := q.GetModel().(bun.TableModel); !ok || !memberOwnedTable(tm.Table()) {
		return q
	}
	if err != nil {
		return q.Err(err)
	}
	return q.Where("?TableAlias.member_id = ?", mid)
}

// memberKey returns the column that names the member in table name, ""
// when name is not a MemberOwned table.
func (g *Guard) memberKey(name string) string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.members[strings.ToLower(name)] {
		return memberColumn
	}
	return ""
}

// memberCheck refuses, under a creator principal, a statement that names a
// MemberOwned table without confining every reference to it to the
// creator's member_id (sh.member, worked out by analyze as registries
// are).
func (sh *shape) memberCheck(ctx context.Context, query string, lits []int) error {
	if sh.member == nil {
		return nil
	}
	mid, confined, err := CreatorMember(ctx)
	if err != nil || !confined {
		return err
	}
	if sh.member.err != nil {
		return fmt.Errorf("%w (under a creator's principal, by member_id)", sh.member.err)
	}
	quoted := "'" + strings.ReplaceAll(mid, "'", "''") + "'"
	for _, l := range sh.member.tenant {
		if l.ord >= 0 && literalAt(query, lits[l.ord]) != quoted || l.ord < 0 && l.val != mid {
			return fmt.Errorf("%w: statement on %s names another member's rows", ErrForbidden, sh.member.tables[0])
		}
	}
	return nil
}

// memberSetting is the server setting the member policies of MemberOwned
// tables compare member_id with (EnableMemberSecurity): RunInTx and
// RunScoped set it, with app.tenant_id, to a creator's member and empty it
// for everyone else.
const memberSetting = "app.member_id"

// noMember is the member setting of a creator principal without a member:
// no row's member_id, so such a principal sees no MemberOwned row even
// through row-level security.
const noMember = "-"

// memberValue is the value of app.member_id for ctx's principal: the
// creator's member, noMember for a creator without one, "" otherwise.
func memberValue(ctx context.Context) string {
	mid, confined, err := CreatorMember(ctx)
	switch {
	case err != nil:
		return noMember
	case confined:
		return mid
	}
	return ""
}

// withSettings returns ctx carrying, for the driver of a handle from
// socialcrm.OpenDB, the settings row-level security compares with: the
// tenant and, for a creator, its member.
func withSettings(ctx context.Context, tid string) context.Context {
	if m := memberValue(ctx); m != "" {
		return sqldb.WithSettings(ctx, tenantSetting, tid, memberSetting, m)
	}
	return sqldb.WithSetting(ctx, tenantSetting, tid)
}

// EnableMemberSecurity adds to PostgreSQL table, tenant-owned (see
// EnableRowSecurity) and with a member_id column, a restrictive
// row-level-security policy: while the transaction's app.member_id is set
// — RunInTx and RunScoped set it to a creator's member — only rows of that
// member are visible and writable; while it is empty or unset (owners,
// admins, staff, the system) the policy adds nothing to the tenant's.
// Migrations of MemberOwned tables call it. On other dialects it does
// nothing.
func EnableMemberSecurity(ctx context.Context, db bun.IDB, table string) error {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	const cond = `(NULLIF(current_setting('app.member_id', true), '') IS NULL OR member_id = current_setting('app.member_id', true))`
	ctx = context.WithValue(ctx, rowSecurityKey{}, true)
	for _, s := range []string{
		"DROP POLICY IF EXISTS member_isolation ON ?",
		"CREATE POLICY member_isolation ON ? AS RESTRICTIVE USING " + cond + " WITH CHECK " + cond,
	} {
		if _, err := db.ExecContext(ctx, s, bun.Ident(table)); err != nil {
			return fmt.Errorf("tenancy: member security on %s: %w", table, err)
		}
	}
	return nil
}
