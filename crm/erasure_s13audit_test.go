package crm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS13AuditErasureByEachIdentifier: a person whose Messenger messages
// came over several deliveries and hours (the later ones into the
// conversation the Store remembers, on PostgreSQL written without their
// conversation's row within the hour), her conversation linked to her
// contact with an e-mail address and a phone number, is exported with
// the exact last message time and then erased by each identifier kind
// she may give — e-mail, phone, contact id, PSID. Afterwards no table
// holds her contact's or conversation's id (the audit log names records
// by id, by design; the request records what she asked by), and the
// control person in the same tenant keeps
// everything.
func TestS13AuditErasureByEachIdentifier(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
		require.NoError(t, err)
		require.NoError(t, eng.Register(e.store.Categories()...))
		for kind, r := range e.store.Resolvers() {
			require.NoError(t, eng.RegisterResolver(kind, r))
		}
		hour := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		for round, kind := range []string{crm.SubjectEmail, crm.SubjectPhone, crm.SubjectContact, crm.SubjectThread} {
			t.Run(kind, func(t *testing.T) {
				ctx := owner(tenancy.NewID())
				_, err := e.vault.EnsureKey(ctx)
				require.NoError(t, err)
				s := e.store
				convs := s.Conversations()
				email, phone, psid := fmt.Sprintf("erin.%d@example.com", round), fmt.Sprintf("+1415555%04d", 200+round), fmt.Sprintf("psid-erin-%d", round)
				erin, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Erin", Email: email, Phone: phone})
				require.NoError(t, err)
				carl, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Carl", Email: fmt.Sprintf("carl.%d@example.com", round)})
				require.NoError(t, err)
				key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-erin", ThreadID: psid}
				ckey := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-erin", ThreadID: "psid-carl"}
				last := hour.Add(2*time.Hour + 20*time.Minute)
				for i, at := range []time.Time{hour.Add(10 * time.Minute), hour.Add(50 * time.Minute), last} {
					res, err := convs.Ingest(ctx, crm.Batch{Messages: []crm.NewMessage{
						{Conversation: key, Direction: crm.Inbound, ExternalID: fmt.Sprintf("erin-%d", i), Text: fmt.Sprintf("erin says %d", i), SentAt: at},
						{Conversation: ckey, Direction: crm.Inbound, ExternalID: fmt.Sprintf("carl-%d", i), Text: "carl says", SentAt: at}}})
					require.NoError(t, err)
					require.Equal(t, int64(2), res.Stored)
				}
				conv, err := convs.Find(ctx, key)
				require.NoError(t, err)
				_, err = convs.LinkContact(ctx, conv.ID, erin.ID, conv.Version)
				require.NoError(t, err)
				cconv, err := convs.Find(ctx, ckey)
				require.NoError(t, err)
				_, err = convs.LinkContact(ctx, cconv.ID, carl.ID, cconv.Version)
				require.NoError(t, err)
				// Erin and the delivery after the link: into the remembered
				// conversation, within the hour of the last one.
				res, err := convs.Ingest(ctx, crm.Batch{Messages: []crm.NewMessage{
					{Conversation: key, Direction: crm.Inbound, ExternalID: "erin-3", Text: "erin says 3", SentAt: last.Add(5 * time.Minute)}}})
				require.NoError(t, err)
				require.Equal(t, int64(1), res.Stored)
				if e.db.Name == "postgres" {
					var stored time.Time
					require.NoError(t, e.db.Admin(t).NewRaw("SELECT last_message_at FROM "+crm.TableConversations+" WHERE id = ?", conv.ID).Scan(context.Background(), &stored))
					require.Equal(t, last, stored.UTC(), "the stored time lags (else the export's check proves nothing)")
				}
				last = last.Add(5 * time.Minute)

				subject := map[string]string{kind: map[string]string{crm.SubjectEmail: strings.ToUpper(email), crm.SubjectPhone: phone,
					crm.SubjectContact: erin.ID, crm.SubjectThread: psid}[kind]}
				r := request(t, ctx, eng, retention.KindAccess, subject)
				files := exportFiles(t, ctx, eng, r.ID)
				var rows []map[string]any
				require.NoError(t, json.Unmarshal([]byte(files["crm.conversation.json"]), &rows))
				require.Len(t, rows, 1, "her one conversation")
				got, err := time.Parse(time.RFC3339Nano, rows[0]["last_message_at"].(string))
				require.NoError(t, err)
				require.Equal(t, last, got.UTC(), "the export's exact last message time")
				require.Equal(t, 4, strings.Count(files["crm.message.json"], "erin says"))
				require.NotContains(t, files["crm.message.json"], "carl says")

				r = request(t, ctx, eng, retention.KindErasure, subject)
				_, err = eng.Erase(ctx, r.ID)
				require.NoError(t, err)
				hits, err := leakscan.Tables(context.Background(), e.db.Admin(t), []string{erin.ID, conv.ID})
				require.NoError(t, err)
				for _, h := range hits {
					// The request's own record keeps what she asked by: in
					// clear here, sealed with the SDK's IdentifierProtection
					// (TestRequestIdentifiersSealed).
					if !strings.HasPrefix(h.Where, tenancy.TableAuditLog+".") && h.Where != retention.TableRequests+".subject" {
						t.Errorf("a trace of her erased records: %s", h)
					}
				}
				var left int
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE conversation_id = ?", conv.ID).Scan(context.Background(), &left))
				require.Zero(t, left)
				_, err = convs.Find(ctx, key)
				require.ErrorIs(t, err, crm.ErrNotFound)
				ms, err := whole(convs.Messages(ctx, cconv.ID, crm.ListOptions{Limit: 10}))
				require.NoError(t, err)
				require.Len(t, ms, 3, "the control person keeps her messages")
				_, err = s.Contacts().Get(ctx, carl.ID)
				require.NoError(t, err)
			})
		}
	})
}

// exportFiles exports request id and returns the archive's files by name.
func exportFiles(t *testing.T, ctx context.Context, eng *retention.Engine, id string) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	_, err := eng.Export(ctx, id, &buf)
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		files[f.Name] = string(b)
	}
	return files
}
