package crm

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// insertStatementBun is createOne's PostgreSQL statement as bun's query
// builder writes it (insertChecked's query, as it was written before
// insertStatementPG, with the duplicate checks one call of
// socialcrm_crm_contact_unclaimed): the reference TestInsertStatementPG
// compares with.
func insertStatementBun(ctx context.Context, db *bun.DB, c *Contact, checkDup bool) string {
	t := db.Dialect().Tables().Get(reflect.TypeFor[Contact]())
	vals := rowValues{fields: t.Fields, v: reflect.ValueOf(c).Elem(), casts: true}
	q := "INSERT INTO ? (?, name_index) SELECT ?, ?::text[]"
	args := []any{bun.Ident(TableContacts), columnList(t.Fields), vals, nullIfEmpty(c.nameIndex)}
	var conds []string
	exists := func(neg string, sub *bun.SelectQuery) {
		conds = append(conds, neg+"EXISTS (?)")
		args = append(args, sub.ColumnExpr("1").Apply(tenancy.Scope(ctx)))
	}
	if checkDup && (c.EmailIndex != "" || c.PhoneIndex != "") {
		tid, _ := tenancy.TenantID(ctx)
		keys, _ := lockKeys(ctx, [][2]string{{"email", c.EmailIndex}, {"phone", c.PhoneIndex}})
		conds = append(conds, "socialcrm_crm_contact_unclaimed(?::bigint[], ?::text, ?::text, ?::text)")
		args = append(args, lockKeysLiteral(keys), tid, c.EmailIndex, c.PhoneIndex)
	}
	if c.CompanyID != "" {
		exists("", db.NewSelect().Model((*Company)(nil)).Where("?TableAlias.id = ?", c.CompanyID))
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	return db.NewRaw(q, args...).String()
}

// TestInsertStatementPG: the PostgreSQL statement of a create, written
// straight into a buffer, is the text bun's query builder writes for it —
// with and without the duplicate checks, an e-mail address, a phone
// number, a company, a name, and with values that need quoting — so that
// the Guard, the shapes it caches and the parameters internal/sqldb makes
// of its literals see what they saw before.
func TestInsertStatementPG(t *testing.T) {
	db := bun.NewDB(new(sql.DB), pgdialect.New())
	sealed, err := vault.ParseSealed(append([]byte{1, 0, 0, 0, 7}, make([]byte, 60)...))
	require.NoError(t, err)
	at := time.Date(2026, 12, 8, 1, 2, 3, 456789000, time.UTC)
	for _, tid := range []string{tenancy.NewID(), tenancy.NewID()} {
		ctx := tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: tid, Role: tenancy.RoleStaff})
		for i, c := range []Contact{
			{EmailIndex: "e-_1", PhoneIndex: "p?2", BirthIndex: "b'3", nameIndex: "{a,b}"},
			{EmailIndex: "e", nameIndex: "{a}"},
			{PhoneIndex: "p"},
			{},
			{ContactInput: ContactInput{Stage: StageCustomer, Source: `it's a "?" --; $1`, CompanyID: "co'1", OwnerID: tenancy.NewID()},
				EmailIndex: "e", PhoneIndex: "p", nameIndex: "{x}"},
			{ContactInput: ContactInput{CompanyID: tenancy.NewID()}},
		} {
			c.TenantID, c.ID, c.CreatedAt, c.UpdatedAt, c.Version = tid, tenancy.NewID(), at, at, int64(i+1)
			if i%2 == 0 {
				c.ProfileSealed = sealed
			}
			for _, checkDup := range []bool{true, false} {
				require.Equal(t, insertStatementBun(ctx, db, &c, checkDup), string(insertStatementPG(db.Dialect(), &c, false, checkDup)),
					"contact %d, duplicate checks %v", i, checkDup)
			}
		}
	}
}
