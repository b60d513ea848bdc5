package crm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// exampleDB opens a migrated SQLite database in a temporary directory, as
// socialcrm.Open would, and returns it with a vault and a clean-up.
func exampleDB() (*bun.DB, *vault.Vault, func()) {
	dir, _ := os.MkdirTemp("", "crm-example")
	path := filepath.Join(dir, "crm.db")
	if err := dbtest.SQLiteFile(path, exampleMigrate); err != nil {
		panic(err)
	}
	db, err := socialcrm.OpenDB(path)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := exampleMigrate(ctx, db); err != nil {
		panic(err)
	}
	_, _ = socialcrm.Guard(db)
	h, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	kek, _ := aead.New(h)
	v, _ := vault.New(db, kek, vault.WithColumns(crm.SealedColumns()...))
	return db, v, func() { db.Close(); os.RemoveAll(dir) }
}

// exampleMigrate migrates every socialcrm package. The examples' databases
// start as copies of one file it migrated (dbtest.SQLiteFile), where it
// then finds nothing to do: migrating a new SQLite file takes seconds under
// the race detector, copying one does not.
func exampleMigrate(ctx context.Context, db *bun.DB) error { return socialcrm.Migrate(ctx, db) }

// A Store over a migrated database and a vault; every call acts on the
// tenant of the context's principal.
func ExampleNew() {
	db, v, done := exampleDB()
	defer done()
	store, err := crm.New(db, v, crm.WithClock(time.Now))
	if err != nil {
		panic(err)
	}
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})

	c, err := store.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "Ada@Example.com",
		Source: "instagram", UTM: crm.UTM{Source: "ig", Campaign: "spring"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Stage, c.Email, c.Version)

	// Invalid input changes nothing and says why, field by field.
	_, err = store.Contacts().Create(ctx, crm.ContactInput{Email: "nope"})
	var verr *crm.ValidationError
	if errors.As(err, &verr) {
		for _, f := range verr.Fields {
			fmt.Println(f.Field, f.Rule)
		}
	}

	// Updates name the version they read; a stale one is refused.
	c.Stage = crm.StageCustomer
	if _, err := store.Contacts().Update(ctx, c.ID, c.Version, c.ContactInput); err != nil {
		panic(err)
	}
	_, err = store.Contacts().Update(ctx, c.ID, c.Version, c.ContactInput)
	fmt.Println(errors.Is(err, crm.ErrConflict))

	// Another tenant sees nothing.
	other := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	_, err = store.Contacts().Get(other, c.ID)
	fmt.Println(errors.Is(err, crm.ErrNotFound))
	// Output:
	// lead ada@example.com 1
	// email email
	// true
	// true
}

// Contacts are found by exact e-mail address (sealed, through its blind
// index), by name prefix and by filters, a page at a time.
func ExampleContacts_List() {
	db, v, done := exampleDB()
	defer done()
	store, _ := crm.New(db, v)
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	for _, n := range [][3]string{{"John", "Smith", "vip"}, {"Jane", "Smithers", ""}, {"Mary", "Jones", "vip"}} {
		c := crm.ContactInput{FirstName: n[0], LastName: n[1], Email: n[0] + "@example.com"}
		if n[2] != "" {
			c.Tags = []string{n[2]}
		}
		if _, err := store.Contacts().Create(ctx, c); err != nil {
			panic(err)
		}
	}
	p, _ := store.Contacts().List(ctx, crm.ContactFilter{Email: " MARY@example.com"}, crm.ListOptions{})
	fmt.Println(p.Items[0].FirstName)

	f := crm.ContactFilter{NamePrefix: "smi"}
	for c, err := range crm.All(ctx, crm.ListOptions{Limit: 1}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Contact], error) {
		return store.Contacts().List(ctx, f, o)
	}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(c.FirstName, c.LastName)
	}
	p, _ = store.Contacts().List(ctx, crm.ContactFilter{Tag: "vip"}, crm.ListOptions{})
	fmt.Println(len(p.Items))
	// Output:
	// Mary
	// John Smith
	// Jane Smithers
	// 2
}

// printer is a Notifier that prints; in production, a Notifier sends the
// e-mail or message.
type printer struct{}

func (printer) Notify(_ context.Context, n crm.Notification) error {
	fmt.Println("greet", n.Contact.FirstName, "by", n.Channel, "for", n.Key)
	return nil
}

// The Scheduler hands today's birthdays to a Notifier — only the contacts
// whose latest word on that channel and purpose is a grant, and each once.
func ExampleScheduler() {
	db, v, done := exampleDB()
	defer done()
	today := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	store, _ := crm.New(db, v, crm.WithClock(func() time.Time { return today }))
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	consents := store.Consents()
	for _, name := range []string{"Ada", "Grace", "Alan"} {
		c, _ := store.Contacts().Create(ctx, crm.ContactInput{FirstName: name, Email: name + "@example.com", Birthday: crm.Birthday{Month: 12, Day: 10}})
		change := crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "signup form"}
		switch name {
		case "Ada":
			_, _ = consents.Grant(ctx, change)
		case "Grace": // granted, then withdrawn
			_, _ = consents.Grant(ctx, change)
			change.Source = "unsubscribe link"
			_, _ = consents.Withdraw(ctx, change)
		} // Alan never consented
	}
	sc, _ := crm.NewScheduler(store, printer{})
	n, _ := sc.Run(ctx, sc.Birthdays(crm.ChannelEmail))
	fmt.Println(n, "greeted")
	n, _ = sc.Run(ctx, sc.Birthdays(crm.ChannelEmail))
	fmt.Println(n, "greeted on the second run")
	// Output:
	// greet Ada by email for birthday:2026
	// 1 greeted
	// 0 greeted on the second run
}

// A deal moves through its pipeline's stages; the stage the pipeline names
// as won (or lost) closes it, and a move back reopens it. Amounts are
// integer minor units of their currency.
func ExampleDeals_Move() {
	db, v, done := exampleDB()
	defer done()
	store, _ := crm.New(db, v)
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})

	pl, err := store.Pipelines().Create(ctx, crm.PipelineInput{Name: "Bespoke rings",
		Stages: []string{"enquiry", "design", "sold", "declined"}, WonStage: "sold", LostStage: "declined"})
	if err != nil {
		panic(err)
	}
	d, err := store.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Engagement ring",
		Amount: 249950, Currency: "eur"}) // 2,499.50 EUR
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Stage, d.Status, d.Amount, d.Currency)
	for _, stage := range []string{"sold", "design"} {
		if d, err = store.Deals().Move(ctx, d.ID, d.Version, stage); err != nil {
			panic(err)
		}
		fmt.Println(d.Stage, d.Status)
	}

	// An update names the version it read: none is invalid input.
	_, err = store.Deals().Update(ctx, d.ID, 0, d.DealInput)
	var verr *crm.ValidationError
	fmt.Println(errors.As(err, &verr) && verr.Has("version", "required"))
	// Output:
	// enquiry open 249950 EUR
	// sold won
	// design open
	// true
}
