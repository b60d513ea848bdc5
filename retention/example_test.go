package retention_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// openExample opens a throw-away SQLite database with the tenancy,
// retention and test tables, and an engine over it with every table
// declared.
func openExample(now time.Time) (*bun.DB, *retention.Engine, *tenancy.Store, func()) {
	dir, _ := os.MkdirTemp("", "retention-example")
	path := filepath.Join(dir, "example.db")
	if err := dbtest.SQLiteFile(path, exampleMigrate); err != nil {
		panic(err)
	}
	db, err := socialcrm.OpenDB(path)
	if err != nil {
		panic(err)
	}
	// socialcrm's tables and the application's own (testMigrations), each
	// model of which the Guard learns.
	if err := exampleMigrate(context.Background(), db); err != nil {
		panic(err)
	}
	if _, err := socialcrm.Guard(db, testModels()...); err != nil {
		panic(err)
	}
	clock := func() time.Time { return now }
	store, err := tenancy.NewStore(db, tenancy.WithClock(clock))
	if err != nil {
		panic(err)
	}
	e, err := retention.New(db, retention.WithClock(clock), retention.WithStore(store), retention.WithPolicy(testPolicy()))
	if err != nil {
		panic(err)
	}
	for _, cats := range [][]retention.Category{testCategories(nil), retention.TenancyCategories(store.Audit()), retention.OwnCategories()} {
		if err := e.Register(cats...); err != nil {
			panic(err)
		}
	}
	return db, e, store, func() { db.Close(); os.RemoveAll(dir) }
}

func exampleTenant(store *tenancy.Store) context.Context {
	tn, m, err := store.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "acme", Owner: tenancy.NewMember{Email: "owner@example.com", Name: "Owner"}})
	if err != nil {
		panic(err)
	}
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})
}

// Sweep erases what the policy makes due, in every tenant, and reports it.
func ExampleEngine_Sweep() {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	db, engine, store, done := openExample(now)
	defer done()
	ctx := exampleTenant(store)
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&[]response{
			{ID: "old", AccountID: "a", Body: "{}", FetchedAt: now.AddDate(0, 0, -91)},
			{ID: "new", AccountID: "a", Body: "{}", FetchedAt: now.AddDate(0, 0, -89)},
		}).Exec(ctx)
		return err
	})
	if err != nil {
		panic(err)
	}
	report, err := engine.Sweep(tenancy.System(context.Background(), "retention"), now)
	if err != nil {
		panic(err)
	}
	for _, r := range report.Receipts {
		fmt.Printf("%s: erased %d (%s)\n", r.Category, r.Erased, r.Rule)
	}
	// Output:
	// social.raw_response: erased 1 (90 days after the time column)
}

// Erase carries out a verified erasure request across every category and
// returns what it did; legal-obligation keeps and holds are counted, not
// erased.
func ExampleEngine_Erase() {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	db, engine, store, done := openExample(now)
	defer done()
	ctx := exampleTenant(store)
	email := "ann@example.com"
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&contact{ID: "k1", Email: &email, Name: "Ann", UpdatedAt: now}).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(&note{ID: "n1", ContactID: "k1", Body: "called", CreatedAt: now}).Exec(ctx); err != nil {
			return err
		}
		_, err := tx.NewInsert().Model(&invoice{ID: "i1", ContactID: "k1", Amount: 100, IssuedAt: now.AddDate(-1, 0, 0)}).Exec(ctx)
		return err
	})
	if err != nil {
		panic(err)
	}
	req, err := engine.Submit(ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": email, "contact_id": "k1"}})
	if err != nil {
		panic(err)
	}
	fmt.Println("due:", req.DueAt.Format(time.DateOnly))
	if _, err := engine.SetVerification(ctx, req.ID, retention.VerificationVerified); err != nil {
		panic(err)
	}
	receipt, err := engine.Erase(ctx, req.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("outcome:", receipt.Outcome)
	for _, c := range receipt.Categories {
		fmt.Printf("%s: erased %d, kept %d\n", c.Category, c.Erased, c.Kept)
	}
	// Output:
	// due: 2026-12-23
	// outcome: data_found
	// crm.contact: erased 1, kept 0
	// crm.note: erased 1, kept 0
	// billing.invoice: erased 0, kept 1
	// tenancy.member: erased 0, kept 0
}

// A second Erase of a completed request (another replica got there first,
// or a scheduled ResumeErasures) returns ErrClosed; Receipt answers what
// the request recorded.
func ExampleEngine_Receipt() {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	db, engine, store, done := openExample(now)
	defer done()
	ctx := exampleTenant(store)
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&note{ID: "n1", ContactID: "k1", Body: "called", CreatedAt: now}).Exec(ctx)
		return err
	})
	if err != nil {
		panic(err)
	}
	req, err := engine.Submit(ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k1"}})
	if err != nil {
		panic(err)
	}
	if _, err := engine.SetVerification(ctx, req.ID, retention.VerificationVerified); err != nil {
		panic(err)
	}
	if _, err := engine.Erase(ctx, req.ID); err != nil {
		panic(err)
	}
	_, err = engine.Erase(ctx, req.ID)
	fmt.Println("again:", errors.Is(err, retention.ErrClosed))
	receipt, err := engine.Receipt(ctx, req.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("outcome:", receipt.Outcome, "erased:", receipt.Erased())
	// Output:
	// again: true
	// outcome: data_found erased: 1
}

// The data map is the record of processing, rendered from the declarations.
func ExampleEngine_DataMap() {
	_, engine, _, done := openExample(time.Now())
	defer done()
	for _, c := range engine.DataMap().Categories[:5] {
		fmt.Printf("%s: %s; %s\n", c.Name, c.Retention, c.Erase)
	}
	// Output:
	// social.raw_response: 90 days after the time column; delete
	// social.metrics: 24 months after the time column; delete
	// crm.contact: until erased on request or tenant purge; anonymize email, name
	// crm.note: until erased on request or tenant purge; delete
	// billing.invoice: kept 7 years (legal obligation), then erased; delete
}

// A resolver lets a request name the person by an identifier no category
// stores: here an account id leads to the contact it belongs to, and the
// contact's id reaches her notes. One request, no look-up by the caller.
func ExampleEngine_RegisterResolver() {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	db, engine, store, done := openExample(now)
	defer done()
	ctx := exampleTenant(store)
	owners := map[string]string{"acct-9": "k1"} // an application's own link
	err := engine.RegisterResolver("account_id", func(_ context.Context, _ bun.IDB, acct string) (map[string][]string, error) {
		if k, ok := owners[acct]; ok {
			return map[string][]string{"contact_id": {k}}, nil
		}
		return nil, nil
	})
	if err != nil {
		panic(err)
	}
	err = tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&[]note{{ID: "n1", ContactID: "k1", Body: "called", CreatedAt: now},
			{ID: "n2", ContactID: "k1", Body: "wrote", CreatedAt: now}}).Exec(ctx)
		return err
	})
	if err != nil {
		panic(err)
	}
	keys, err := engine.Resolve(ctx, map[string]string{"account_id": "acct-9"})
	if err != nil {
		panic(err)
	}
	fmt.Println("keys:", keys)
	req, err := engine.Submit(ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"account_id": "acct-9"}})
	if err != nil {
		panic(err)
	}
	if _, err := engine.SetVerification(ctx, req.ID, retention.VerificationVerified); err != nil {
		panic(err)
	}
	receipt, err := engine.Erase(ctx, req.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("outcome:", receipt.Outcome, "erased:", receipt.Erased())
	// Output:
	// keys: map[account_id:[acct-9] contact_id:[k1]]
	// outcome: data_found erased: 2
}

// exampleMigrate is the examples' migration. Their databases start as
// copies of a file it migrated once per test binary (dbtest.SQLiteFile),
// where it then finds nothing to do: migrating a new SQLite file takes
// seconds under the race detector, copying one does not.
func exampleMigrate(ctx context.Context, db *bun.DB) error {
	return socialcrm.Migrate(ctx, db, testMigrations())
}
