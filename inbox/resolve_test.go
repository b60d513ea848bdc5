package inbox_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
)

// TestUserRefDataSubject: a data-subject request naming a chat plugin
// guest by the user_ref the website gave the plugin reaches their
// conversation (their messages and the Page's replies) and the contact it
// is linked to: exported whole, then erased, while a PSID person of the
// same Page and the same guest's conversation in another tenant that
// connected the Page stay untouched.
func TestUserRefDataSubject(t *testing.T) {
	const ref = "checkout-guest-51"
	eachWorld(t, func(t *testing.T, w *world) {
		tenantB := w.tenant("cafe")
		w.connectPage(tenantB, messaging)
		client := w.connectPage(w.ctx, messaging)
		w.deliver(metatest.Event{PageID: pageID, UserRef: ref, Message: &metatest.EventMessage{Text: "guest-canary-question"}})
		w.deliver(metatest.TextMessage(pageID, psid, "control-canary-message"))
		_, _, err := w.in.Send(w.ctx, client, pageID, meta.SendRequest{UserRef: ref, MessagingType: meta.MessagingResponse, Text: "guest-canary-reply"})
		require.NoError(t, err)
		conv, err := w.sdk.CRM.Conversations().Find(w.ctx, inbox.UserRefKey(pageID, ref))
		require.NoError(t, err)
		gina, err := w.sdk.CRM.Contacts().Create(w.ctx, crm.ContactInput{FirstName: "Gina", Email: "gina-canary@example.com"})
		require.NoError(t, err)
		_, err = w.sdk.CRM.Conversations().LinkContact(w.ctx, conv.ID, gina.ID, conv.Version)
		require.NoError(t, err)

		subject := map[string]string{inbox.SubjectUserRef: ref}
		require.Contains(t, w.sdk.Retention.Kinds(), inbox.SubjectUserRef)

		// Export: the guest's messages, the Page's reply and the contact.
		text, m := export(t, w, w.ctx, subject)
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		for _, v := range []string{"guest-canary-question", "guest-canary-reply", "gina-canary@example.com"} {
			require.Contains(t, text, v)
		}
		require.NotContains(t, text, "control-canary-message", "nothing of the PSID person")
		// Given as crm shows the thread id, the reference reaches the same.
		text, _ = export(t, w, w.ctx, map[string]string{inbox.SubjectUserRef: "user_ref:" + ref})
		require.Contains(t, text, "guest-canary-question")

		// Erasure: the conversation, its messages and the contact go.
		er := submit(t, w, w.ctx, retention.KindErasure, subject)
		rc, err := w.sdk.Retention.Erase(w.ctx, er.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, rc.Outcome)
		erased := map[string]int64{}
		for _, c := range rc.Categories {
			erased[c.Category] = c.Erased
		}
		require.Equal(t, int64(1), erased["crm.conversation"], "%+v", rc.Categories)
		require.Equal(t, int64(2), erased["crm.message"], "%+v", rc.Categories)
		require.Equal(t, int64(1), erased["crm.contact"], "%+v", rc.Categories)
		_, err = w.sdk.CRM.Conversations().Find(w.ctx, inbox.UserRefKey(pageID, ref))
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = w.sdk.CRM.Contacts().Get(w.ctx, gina.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, m = export(t, w, w.ctx, subject)
		require.Equal(t, retention.OutcomeNoDataFound, m.Outcome, "nothing of the guest is found any more")

		// Controls: the PSID person here, the guest in the other tenant.
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 1)
		require.Len(t, w.messages(tenantB, inbox.UserRefKey(pageID, ref)), 1)

		// A kind nobody resolves is still refused.
		_, err = w.sdk.Retention.Submit(w.ctx, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"user_reference": ref}})
		var uk *retention.UnknownKindError
		require.True(t, errors.As(err, &uk), "Submit returned %v, want an *UnknownKindError", err)
	})
}

func submit(t *testing.T, w *world, ctx context.Context, kind retention.RequestKind, subject map[string]string) retention.Request {
	t.Helper()
	r, err := w.sdk.Retention.Submit(ctx, retention.Request{Kind: kind, Subject: subject})
	require.NoError(t, err)
	r, err = w.sdk.Retention.SetVerification(ctx, r.ID, retention.VerificationVerified)
	require.NoError(t, err)
	return r
}

// export runs an access request for subject and returns every file of
// the archive as one text, and the manifest.
func export(t *testing.T, w *world, ctx context.Context, subject map[string]string) (string, retention.Manifest) {
	t.Helper()
	r := submit(t, w, ctx, retention.KindAccess, subject)
	var archive bytes.Buffer
	m, err := w.sdk.Retention.Export(ctx, r.ID, &archive)
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(archive.Bytes()), int64(archive.Len()))
	require.NoError(t, err)
	var b strings.Builder
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		b.Write(data)
		b.WriteByte(0)
	}
	return b.String(), m
}
