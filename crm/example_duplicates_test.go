package crm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// A second contact with a known e-mail address or phone number (in any
// format) is refused, naming the first; AllowDuplicate stores it anyway,
// and Merge folds it into the first.
func ExampleContacts_Merge() {
	db, v, done := exampleDB()
	defer done()
	store, _ := crm.New(db, v, crm.WithDefaultRegion("US"))
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	_, _ = v.EnsureKey(ctx)
	contacts := store.Contacts()

	ada, _ := contacts.Create(ctx, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "(415) 555-0100"})
	fmt.Println(ada.Phone)
	_, err := contacts.Create(ctx, crm.ContactInput{FirstName: "Ada", Phone: "+1 415 555 0100"})
	var dup *crm.DuplicateError
	if errors.As(err, &dup) {
		fmt.Println("duplicate of the first:", dup.ContactID == ada.ID, "by", dup.Field)
	}
	twin, _ := contacts.Create(ctx, crm.ContactInput{LastName: "Lovelace", Email: "ada@example.com"}, crm.AllowDuplicate())
	_, _ = store.Notes().Create(ctx, crm.NoteInput{Body: "met at the fair", ContactID: twin.ID})

	kept, err := contacts.Merge(ctx, ada.ID, twin.ID)
	if err != nil {
		panic(err)
	}
	notes, _ := store.Notes().List(ctx, crm.NoteFilter{ContactID: ada.ID}, crm.ListOptions{})
	fmt.Println(kept.FirstName, kept.LastName, len(notes.Items))
	// Output:
	// +14155550100
	// duplicate of the first: true by phone
	// Ada Lovelace 1
}

// An import maps the usual header spellings and updates the contact an
// e-mail address names; sent again, it creates nothing.
func ExampleContacts_ImportCSV() {
	db, v, done := exampleDB()
	defer done()
	store, _ := crm.New(db, v, crm.WithDefaultRegion("US"))
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	in := "First Name,Last Name,Email Address,Mobile\n" +
		"Ada,Lovelace,ada@example.com,(415) 555-0100\n" +
		",,,\n"
	for range 2 {
		rep, err := store.Contacts().ImportCSV(ctx, strings.NewReader(in), crm.ImportOptions{})
		if err != nil {
			panic(err)
		}
		for _, r := range rep.Results {
			fmt.Println(strings.TrimSpace(fmt.Sprintf("%d %s %s", r.Row, r.Action, r.MatchedBy+r.Reason)))
		}
	}
	// Output:
	// 2 created
	// 3 rejected no name, e-mail address or phone number
	// 2 unchanged email
	// 3 rejected no name, e-mail address or phone number
}
