package main

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestInbox runs the example end to end on each database against the Meta
// emulator, which delivers signed webhooks to the example's HTTP server.
func TestInbox(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
		sim, err := startSandbox(start)
		require.NoError(t, err)
		t.Cleanup(sim.close)
		kek, err := demo.EphemeralKEK()
		require.NoError(t, err)
		var out bytes.Buffer
		ctx := context.Background()
		rep, err := run(ctx, options{DB: db.Owner, KEK: kek, Sim: sim, Out: &out})
		require.NoError(t, err, out.String())
		tctx := tenancy.WithPrincipal(ctx, rep.owner)
		convs := rep.sdk.CRM.Conversations()

		// Two conversations, Léa's (latest) first.
		list, err := convs.List(tctx, crm.ConversationFilter{Channel: crm.ChannelMessenger}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, list.Items, 2)
		require.Equal(t, []string{psidLea, psidTom}, []string{list.Items[0].ThreadID, list.Items[1].ThreadID})
		for _, c := range list.Items {
			require.Equal(t, sandboxPage, c.AccountID)
		}

		// Léa's conversation: her text, her photo — stored once although
		// Meta delivered it twice — and the reply, read.
		lea, err := convs.Messages(tctx, list.Items[0].ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, lea.Items, 3, "the retried delivery is stored once")
		reply, photo, text := lea.Items[0], lea.Items[1], lea.Items[2]
		require.Equal(t, crm.Inbound, text.Direction)
		require.Equal(t, "Hello! Is the blue vase from your window still available?", text.Text)
		require.Equal(t, start.Add(10*time.Minute), text.SentAt.UTC())
		require.Equal(t, crm.Inbound, photo.Direction)
		require.Equal(t, "This one:", photo.Text)
		require.Equal(t, []crm.MessageAttachment{{Type: "image", URL: "https://scontent.example/v/blue-vase.jpg"}}, photo.Attachments)
		require.NotEmpty(t, photo.ExternalID)
		require.Equal(t, crm.Outbound, reply.Direction)
		require.Equal(t, crm.StatusRead, reply.Status)
		require.Contains(t, reply.Text, "The blue vase is in stock")
		require.NotEmpty(t, reply.ExternalID)

		// The forged delivery was refused; Tom's conversation (below) holds
		// only his own message.
		require.Equal(t, 401, rep.Forged)

		// The reply's status followed the webhooks.
		require.Equal(t, []crm.DeliveryStatus{crm.StatusSent, crm.StatusDelivered, crm.StatusRead}, rep.Statuses)
		got, err := convs.Get(tctx, list.Items[0].ID)
		require.NoError(t, err)
		require.Equal(t, start.Add(13*time.Minute), got.ReadUntil.UTC())

		// The emulator received one message from the Page: the reply to Léa.
		sent := sim.meta.SentMessages()
		require.Len(t, sent, 1)
		require.Equal(t, psidLea, sent[0].RecipientID)
		require.Equal(t, reply.ExternalID, sent[0].MessageID)
		require.Equal(t, "RESPONSE", sent[0].MessagingType)

		// Outside the window the reply to Tom was refused, and nothing was
		// sent or stored.
		var we *meta.WindowError
		require.True(t, errors.As(rep.Refused, &we), "%v", rep.Refused)
		require.Equal(t, start, we.LastInbound.UTC())
		require.Equal(t, meta.StandardWindow, we.Window)
		tom, err := convs.Messages(tctx, list.Items[1].ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tom.Items, 1)
		require.Equal(t, "Hi, do you deliver on Sundays?", tom.Items[0].Text)

		// The send is in the audit log; no secret was printed.
		entries, err := rep.sdk.Audit.List(tctx, tenancy.AuditListOptions{})
		require.NoError(t, err)
		var sends int
		for _, e := range entries {
			if e.Action == "meta.messenger.send" {
				sends++
			}
		}
		require.Equal(t, 1, sends)
		require.NotContains(t, out.String(), string(sim.verifyToken.Reveal()))
		require.NotContains(t, out.String(), string(sim.metaCfg.AppSecret.Reveal()))
	})
}

// TestInboxWithoutConfiguration is `go run ./examples/inbox`.
func TestInboxWithoutConfiguration(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, mainErr(context.Background(), nil, &out))
	require.Contains(t, out.String(), "Meta: the in-process emulator (sandbox)")
	require.Contains(t, out.String(), "after the read webhook: read")
	require.Contains(t, out.String(), "the reply to Tom is refused, nothing sent")
}
