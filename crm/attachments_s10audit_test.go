package crm_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// hangUpStorage is a DirStorage whose caller goes away (its context ends,
// as an HTTP client's request does when it hangs up) just as an object is
// deleted.
type hangUpStorage struct {
	*crm.DirStorage
	cancel context.CancelFunc
}

func (h *hangUpStorage) Delete(ctx context.Context, tenantID, key string) error {
	err := h.DirStorage.Delete(ctx, tenantID, key)
	if h.cancel != nil {
		h.cancel()
	}
	return err
}

// TestS10AuditDeleteCutShortKeepsTheFiles: a delete that does not complete
// — its caller went away as the attachment's bytes were being deleted —
// leaves data as it was: the record, its attachments and their bytes. Once
// a delete has committed, the bytes are gone too. For a note (any record deleted
// with its files), a contact, a proposal, and an attachment alone.
func TestS10AuditDeleteCutShortKeepsTheFiles(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		dir, err := crm.NewDirStorage(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { dir.Close() })
		st := &hangUpStorage{DirStorage: dir}
		e := newEnv(t, db, crm.WithStorage(st, 0))
		s := e.store
		contact, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Files", Email: "files@example.com"})
		require.NoError(t, err)
		note, err := s.Notes().Create(e.A, crm.NoteInput{Body: "with a file", ContactID: contact.ID})
		require.NoError(t, err)
		client, err := s.Clients().Create(e.A, crm.ClientInput{Name: "Client"})
		require.NoError(t, err)
		proposal, err := s.Proposals().Create(e.A, crm.ProposalInput{ClientID: client.ID, ProposalContent: crm.ProposalContent{Title: "offer", Currency: "EUR"}})
		require.NoError(t, err)
		attach := func(kind, id string) crm.Attachment {
			a, err := s.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: kind, OwnerID: id, FileName: kind + ".txt", ContentType: "text/plain"},
				strings.NewReader("bytes of "+kind))
			require.NoError(t, err)
			return a
		}
		readable := func(a crm.Attachment) error {
			_, rc, err := s.Attachments().Open(e.A, a.ID)
			if err != nil {
				return err
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err == nil {
				require.Equal(t, "bytes of "+a.OwnerKind, string(b))
			}
			return err
		}
		cases := []struct {
			name   string
			att    crm.Attachment
			delete func(ctx context.Context) error
			exists func() error
		}{
			{"note", attach("note", note.ID), func(ctx context.Context) error { return s.Notes().Delete(ctx, note.ID) },
				func() error { _, err := s.Notes().Get(e.A, note.ID); return err }},
			{"proposal", attach("proposal", proposal.ID), func(ctx context.Context) error { return s.Proposals().Delete(ctx, proposal.ID) },
				func() error { _, err := s.Proposals().Get(e.A, proposal.ID); return err }},
			{"contact", attach("contact", contact.ID), func(ctx context.Context) error { return s.Contacts().Delete(ctx, contact.ID) },
				func() error { _, err := s.Contacts().Get(e.A, contact.ID); return err }},
		}
		alone := attach("contact", contact.ID)
		cases = append(cases, struct {
			name   string
			att    crm.Attachment
			delete func(ctx context.Context) error
			exists func() error
		}{"attachment", alone, func(ctx context.Context) error { return s.Attachments().Delete(ctx, alone.ID) },
			func() error { _, err := s.Attachments().Get(e.A, alone.ID); return err }})
		// The attachment alone goes first: the contact's delete takes it.
		cases[0], cases[1], cases[2], cases[3] = cases[3], cases[0], cases[1], cases[2]
		for _, c := range cases {
			ctx, cancel := context.WithCancel(e.A)
			st.cancel = cancel
			err := c.delete(ctx)
			st.cancel = nil
			if err != nil && c.exists() == nil {
				require.NoError(t, c.exists(), "%s: a delete that failed leaves the record", c.name)
				_, err := s.Attachments().Get(e.A, c.att.ID)
				require.NoError(t, err, "%s: and its attachment", c.name)
				require.NoError(t, readable(c.att), "%s: and the attachment's bytes", c.name)
				require.NoError(t, c.delete(e.A), "%s: deleted again", c.name)
			}
			require.ErrorIs(t, c.exists(), crm.ErrNotFound, c.name)
			_, err = s.Attachments().Get(e.A, c.att.ID)
			require.ErrorIs(t, err, crm.ErrNotFound, c.name)
			var left int
			require.NoError(t, dbtestWalk(st, e, c.att, &left))
			require.Zero(t, left, "%s: the bytes are gone once the delete completed", c.name)
		}
	}, setup)
}

// dbtestWalk counts the stored objects of attachment a (0 or 1).
func dbtestWalk(st *hangUpStorage, e *env, a crm.Attachment, n *int) error {
	rc, err := st.Get(context.Background(), principal(e.A).TenantID, a.ID)
	if err != nil {
		return nil // gone
	}
	rc.Close()
	*n = 1
	return nil
}
