package socialcrm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestOpenKeepsAttachments: with Config.Attachments the SDK's CRM takes
// files, and the retention engine the SDK wired exports a contact's sealed
// e-mail address in clear and erases her files with her, bytes included;
// without it Attach fails with crm.ErrConfig.
func TestOpenKeepsAttachments(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx, kek, clk := context.Background(), testkit.NewKEK(t), fakeclock.New()
		dir := t.TempDir()
		st, err := crm.NewDirStorage(dir)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: kek, Now: clk.Now, Attachments: st, MaxAttachmentSize: 1 << 10})
		require.NoError(t, err)

		_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
		require.NoError(t, err)
		octx := tenancy.WithPrincipal(ctx, owner.Principal())
		grace, err := sdk.CRM.Contacts().Create(octx, crm.ContactInput{FirstName: "Grace", Email: "grace@example.com"})
		require.NoError(t, err)
		bob, err := sdk.CRM.Contacts().Create(octx, crm.ContactInput{FirstName: "Bob", Email: "bob@example.com"})
		require.NoError(t, err)
		attach := func(c crm.Contact) crm.Attachment {
			a, err := sdk.CRM.Attachments().Attach(octx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: c.ID,
				FileName: "passport.png", ContentType: "image/png"}, strings.NewReader("png of "+c.FirstName))
			require.NoError(t, err)
			require.FileExists(t, filepath.Join(dir, a.TenantID, a.ID))
			return a
		}
		gAtt, bAtt := attach(grace), attach(bob)
		_, err = sdk.CRM.Attachments().Attach(octx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: bob.ID,
			FileName: "big.bin", ContentType: "application/octet-stream"}, strings.NewReader(strings.Repeat("x", 2<<10)))
		var tooLarge *crm.TooLargeError
		require.True(t, errors.As(err, &tooLarge), "the size limit of the Config applies: %v", err)

		// The SDK's export opens her sealed e-mail address.
		x, err := sdk.Retention.Submit(octx, retention.Request{Kind: retention.KindAccess,
			Subject: map[string]string{crm.SubjectContact: grace.ID}})
		require.NoError(t, err)
		_, err = sdk.Retention.SetVerification(octx, x.ID, retention.VerificationVerified)
		require.NoError(t, err)
		var archive bytes.Buffer
		_, err = sdk.Retention.Export(octx, x.ID, &archive)
		require.NoError(t, err)
		zr, err := zip.NewReader(bytes.NewReader(archive.Bytes()), int64(archive.Len()))
		require.NoError(t, err)
		var contactJSON []byte
		for _, f := range zr.File {
			if f.Name == "crm.contact.json" {
				rc, err := f.Open()
				require.NoError(t, err)
				contactJSON, err = io.ReadAll(rc)
				require.NoError(t, err)
				rc.Close()
			}
		}
		require.Contains(t, string(contactJSON), `"email":"grace@example.com"`)
		require.NotContains(t, string(contactJSON), "bob@example.com")

		r, err := sdk.Retention.Submit(octx, retention.Request{Kind: retention.KindErasure,
			Subject: map[string]string{crm.SubjectContact: grace.ID}})
		require.NoError(t, err)
		_, err = sdk.Retention.SetVerification(octx, r.ID, retention.VerificationVerified)
		require.NoError(t, err)
		_, err = sdk.Retention.Erase(octx, r.ID)
		require.NoError(t, err)
		require.NoFileExists(t, filepath.Join(dir, gAtt.TenantID, gAtt.ID), "the erased contact's file is gone from storage")
		_, err = sdk.CRM.Attachments().Get(octx, gAtt.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.FileExists(t, filepath.Join(dir, bAtt.TenantID, bAtt.ID), "another contact's file stays")

		// Without storage the SDK's CRM refuses files.
		plain, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.Reopen(t), KEK: kek, Now: clk.Now})
		require.NoError(t, err)
		_, err = plain.CRM.Attachments().Attach(octx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: bob.ID,
			FileName: "a.txt", ContentType: "text/plain"}, strings.NewReader("a"))
		require.ErrorIs(t, err, crm.ErrConfig)
	}, migrated)
}
