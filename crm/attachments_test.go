package crm_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestDirStorage(t *testing.T) {
	dir := t.TempDir()
	st, err := crm.NewDirStorage(dir)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	a, b := tenancy.NewID(), tenancy.NewID()

	_, err = st.Put(ctx, a, "k1", strings.NewReader("alpha"))
	require.NoError(t, err)
	_, err = st.Put(ctx, b, "k1", strings.NewReader("beta"))
	require.NoError(t, err)
	for tenant, want := range map[string]string{a: "alpha", b: "beta"} {
		rc, err := st.Get(ctx, tenant, "k1")
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		require.Equal(t, want, string(got), "each tenant has its own object under the same key")
	}
	require.FileExists(t, filepath.Join(dir, a, "k1"))

	// Keys and tenant ids that are not plain names never reach the disk.
	outside := filepath.Join(filepath.Dir(dir), "outside-"+filepath.Base(dir))
	for _, key := range []string{"../k1", "..", ".", "a/b", `a\b`, ".hidden", "", "../../" + filepath.Base(outside), strings.Repeat("x", 200)} {
		_, err := st.Put(ctx, a, key, strings.NewReader("x"))
		require.ErrorIs(t, err, crm.ErrBadKey, "Put key %q", key)
		_, err = st.Get(ctx, a, key)
		require.ErrorIs(t, err, crm.ErrBadKey, "Get key %q", key)
		require.ErrorIs(t, st.Delete(ctx, a, key), crm.ErrBadKey, "Delete key %q", key)
	}
	for _, tenant := range []string{"..", "../" + a, a + "/..", "", "not-a-uuid"} {
		_, err := st.Get(ctx, tenant, "k1")
		require.ErrorIs(t, err, crm.ErrBadKey, "tenant %q", tenant)
	}
	require.NoFileExists(t, outside)

	// A symbolic link planted in the directory cannot lead out of it.
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, a, "link")))
	_, err = st.Get(ctx, a, "link")
	require.Error(t, err)
	_, err = st.Put(ctx, a, "link", strings.NewReader("overwrite"))
	require.NoError(t, err, "a put replaces the link itself")
	got, _ := os.ReadFile(secret)
	require.Equal(t, "secret", string(got))

	// Delete is idempotent; a missing object is ErrNotFound.
	require.NoError(t, st.Delete(ctx, a, "k1"))
	require.NoError(t, st.Delete(ctx, a, "k1"))
	_, err = st.Get(ctx, a, "k1")
	require.ErrorIs(t, err, crm.ErrNotFound)

	// A failed stream leaves nothing behind.
	_, err = st.Put(ctx, a, "k2", io.MultiReader(strings.NewReader("part"), errReader{}))
	require.Error(t, err)
	entries, err := os.ReadDir(filepath.Join(dir, a))
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), "k2")
		require.False(t, strings.HasPrefix(e.Name(), ".tmp"), "temporary file left: %s", e.Name())
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken stream") }

// storageEnv is an env whose Store keeps attachments in a DirStorage.
func storageEnv(t testing.TB, db *dbtest.DB, limit int64) (*env, string) {
	dir := t.TempDir()
	st, err := crm.NewDirStorage(dir)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return newEnv(t, db, crm.WithStorage(st, limit)), dir
}

func TestAttachments(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, dir := storageEnv(t, db, 1<<20)
		s := e.store.Attachments()
		mine := newShop(t, e, e.A, "acme", "INV-1")
		other := newShop(t, e, e.A, "globex", "INV-2")

		body := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB, streamed
		att, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID,
			FileName: "brief.pdf", ContentType: "application/pdf"}, bytes.NewReader(body))
		require.NoError(t, err)
		require.Equal(t, int64(len(body)), att.Size)
		require.Equal(t, mine.client.ID, att.ClientID)
		require.FileExists(t, filepath.Join(dir, att.TenantID, att.ID))

		meta, rc, err := s.Open(e.A, att.ID)
		require.NoError(t, err)
		got, _ := io.ReadAll(rc)
		rc.Close()
		require.Equal(t, body, got)
		require.Equal(t, "brief.pdf", meta.FileName)

		// Validation, unknown owners, too large: nothing stored.
		_, err = s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID}, strings.NewReader("x"))
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: tenancy.NewID(), FileName: "a", ContentType: "text/plain"}, strings.NewReader("x"))
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = s.Attach(e.A, crm.AttachmentInput{OwnerKind: "spaceship", OwnerID: tenancy.NewID(), FileName: "a", ContentType: "text/plain"}, strings.NewReader("x"))
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindInvoice, OwnerID: mine.invoice.ID, FileName: "big", ContentType: "text/plain"},
			io.LimitReader(zeros{}, 1<<20+1))
		var tl *crm.TooLargeError
		require.True(t, errors.As(err, &tl), "got %v", err)
		p, err := s.List(e.A, crm.KindInvoice, mine.invoice.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)
		files, err := os.ReadDir(filepath.Join(dir, att.TenantID))
		require.NoError(t, err)
		require.Len(t, files, 1, "only the first attachment's bytes are stored")
		exact, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindInvoice, OwnerID: mine.invoice.ID, FileName: "limit", ContentType: "text/plain"},
			io.LimitReader(zeros{}, 1<<20))
		require.NoError(t, err, "exactly the limit is accepted")
		require.Equal(t, int64(1<<20), exact.Size)

		// Another tenant sees nothing.
		_, err = s.Get(e.B, att.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, _, err = s.Open(e.B, att.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, s.Delete(e.B, att.ID), crm.ErrNotFound)
		_, err = s.Attach(e.B, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID, FileName: "a", ContentType: "text/plain"}, strings.NewReader("x"))
		require.ErrorIs(t, err, crm.ErrNotFound)

		// The client portal: its client's files, read-only.
		theirs, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindProposal, OwnerID: other.proposal.ID, FileName: "b", ContentType: "text/plain"}, strings.NewReader("b"))
		require.NoError(t, err)
		_, cx := portalMember(t, e, e.A, mine.client.ID, "buyer@acme.example")
		_, rc, err = s.Open(cx, att.ID)
		require.NoError(t, err)
		rc.Close()
		_, _, err = s.Open(cx, theirs.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = s.List(cx, crm.KindProposal, other.proposal.ID, crm.ListOptions{})
		require.ErrorIs(t, err, crm.ErrNotFound)
		p, err = s.List(cx, crm.KindCampaign, mine.campaign.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		draft, err := e.store.Invoices().Create(e.A, invoiceInput(mine.client.ID, "INV-D"))
		require.NoError(t, err)
		draftFile, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindInvoice, OwnerID: draft.ID, FileName: "d", ContentType: "text/plain"}, strings.NewReader("d"))
		require.NoError(t, err)
		_, err = s.Get(cx, draftFile.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "a draft's file is not shown")
		_, err = s.List(cx, crm.KindInvoice, draft.ID, crm.ListOptions{})
		require.ErrorIs(t, err, crm.ErrNotFound)
		requireForbidden(t, s.Delete(cx, att.ID), "Attachments.Delete by a client")
		_, err = s.Attach(cx, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID, FileName: "a", ContentType: "text/plain"}, strings.NewReader("x"))
		requireForbidden(t, err, "Attachments.Attach by a client")

		// Delete takes the bytes along.
		require.NoError(t, s.Delete(e.A, att.ID))
		require.NoFileExists(t, filepath.Join(dir, att.TenantID, att.ID))
		_, err = s.Get(e.A, att.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)

		// A campaign moved to another client takes its files along in the
		// portal; a deleted campaign takes its files, bytes included.
		moved, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID, FileName: "m", ContentType: "text/plain"}, strings.NewReader("m"))
		require.NoError(t, err)
		_, err = s.Get(cx, moved.ID)
		require.NoError(t, err)
		in := mine.campaign.CampaignInput
		in.ClientID = other.client.ID
		_, err = e.store.Campaigns().Update(e.A, mine.campaign.ID, mine.campaign.Version, in)
		require.NoError(t, err)
		_, err = s.Get(cx, moved.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the file moved with its campaign")
		require.NoError(t, e.store.Campaigns().Delete(e.A, mine.campaign.ID))
		_, err = s.Get(e.A, moved.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.NoFileExists(t, filepath.Join(dir, moved.TenantID, moved.ID))

		// So does a deleted contact or note, through the core repositories.
		contact, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann"})
		require.NoError(t, err)
		note, err := e.store.Notes().Create(e.A, crm.NoteInput{Body: "b", ContactID: contact.ID})
		require.NoError(t, err)
		var coreFiles []crm.Attachment
		for kind, id := range map[string]string{"contact": contact.ID, "note": note.ID} {
			a, err := s.Attach(e.A, crm.AttachmentInput{OwnerKind: kind, OwnerID: id, FileName: "f", ContentType: "text/plain"}, strings.NewReader("f"))
			require.NoError(t, err)
			coreFiles = append(coreFiles, a)
		}
		_, err = s.List(cx, "contact", contact.ID, crm.ListOptions{})
		requireForbidden(t, err, "a client listing a contact's files")
		require.NoError(t, e.store.Notes().Delete(e.A, note.ID))
		require.NoError(t, e.store.Contacts().Delete(e.A, contact.ID))
		for _, a := range coreFiles {
			_, err = s.Get(e.A, a.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
			require.NoFileExists(t, filepath.Join(dir, a.TenantID, a.ID))
		}
	}, setup)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
