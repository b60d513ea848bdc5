package crm

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"
)

// RunMigration runs the up function of the crm migration version again on
// db, in a transaction of its own, as a second run would.
func RunMigration(ctx context.Context, db *bun.DB, version string) error {
	for _, m := range append(append(coreMigrations(), commerceMigrations()...), claimMigrations()...) {
		if m.version == version {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return m.up(ctx, tx) })
		}
	}
	return fmt.Errorf("no crm migration %s", version)
}

// NameRows is the number of rows of TableContactNames that a contact
// whose name has the words words (folded, distinct, sharing no prefix)
// has on PostgreSQL: its keyed prefixes'.
func NameRows(words ...string) int {
	n := 0
	for _, w := range words {
		if len(pgNameSingles(w)) == 1 {
			n++
		}
		for i := 2; i <= len([]rune(w)) && i <= MaxNamePrefix; i++ {
			if pgNameKeyed(i) {
				n++
			}
		}
	}
	return n
}

// PgUnclaimedLookup is the query of socialcrm_crm_contact_unclaimed.
const PgUnclaimedLookup = pgUnclaimedLookup

// PgUnclaimedCall is the call of socialcrm_crm_contact_unclaimed that
// checks a contact of tenant with the blind indexes email and phone.
func PgUnclaimedCall(tenant, email, phone string) string {
	c := &Contact{EmailIndex: email, PhoneIndex: phone}
	c.TenantID = tenant
	return string(appendUnclaimed(schema.NewQueryGen(pgdialect.New()), nil, c))
}
