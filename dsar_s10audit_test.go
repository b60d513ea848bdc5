package socialcrm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// countingNotifier counts the notifications it is handed.
type countingNotifier struct{ n int }

func (c *countingNotifier) Notify(context.Context, crm.Notification) error { c.n++; return nil }

// TestS10AuditDSARReachesClientContactsAndHistory: a person is also the
// billing contact of a client (her e-mail address and phone number on the
// client), had a birthday greeting sent, consented and withdrew, and has a
// deal that moved stage. Asked for by e-mail, by phone written nationally
// and by the id of her contact, one export holds her client billing
// details and a row of each of those histories; one erasure clears her
// details from the client (kept, with its name) and leaves no
// notification, consent event or stage change of hers. The control client
// and contact are untouched.
func TestS10AuditDSARReachesClientContactsAndHistory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := fakeclock.New()
		st, err := crm.NewDirStorage(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now,
			Attachments: st, PhoneRegion: "US"})
		require.NoError(t, err)
		for i, subject := range []func(email, contactID string) map[string]string{
			func(email, _ string) map[string]string { return map[string]string{crm.SubjectEmail: email} },
			func(_, _ string) map[string]string { return map[string]string{crm.SubjectPhone: "(415) 555-0142"} },
			func(_, id string) map[string]string { return map[string]string{crm.SubjectContact: id} },
		} {
			a := dsarTenant(t, sdk, "hist"+string(rune('a'+i)))
			s := sdk.CRM
			now := clk.Now()
			cleo, err := s.Contacts().Create(a, crm.ContactInput{FirstName: "Cleo", Email: "cleo@example.com", Phone: "+14155550142",
				Birthday: crm.Birthday{Month: int(now.Month()), Day: now.Day()}})
			require.NoError(t, err)
			ctl, err := s.Contacts().Create(a, crm.ContactInput{FirstName: "Control", Email: "control@example.com", Phone: "+14155550199",
				Birthday: crm.Birthday{Month: int(now.Month()), Day: now.Day()}})
			require.NoError(t, err)
			for _, c := range []crm.Contact{cleo, ctl} {
				_, err = s.Consents().Grant(a, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelSMS, Purpose: crm.PurposeMarketing, Source: "form"})
				require.NoError(t, err)
				_, err = s.Consents().Withdraw(a, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelSMS, Purpose: crm.PurposeMarketing, Source: "reply STOP"})
				require.NoError(t, err)
				_, err = s.Consents().Grant(a, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "form"})
				require.NoError(t, err)
			}
			n := &countingNotifier{}
			sc, err := crm.NewScheduler(s, n)
			require.NoError(t, err)
			_, err = sc.Run(a, sc.Birthdays(crm.ChannelEmail))
			require.NoError(t, err)
			require.Equal(t, 2, n.n)
			pls, err := s.Pipelines().List(a, crm.PipelineFilter{}, crm.ListOptions{})
			require.NoError(t, err)
			var deals []crm.Deal
			for _, c := range []crm.Contact{cleo, ctl} {
				d, err := s.Deals().Create(a, crm.DealInput{PipelineID: pls.Items[0].ID, Title: "ring for " + c.FirstName, ContactID: c.ID})
				require.NoError(t, err)
				d, err = s.Deals().Move(a, d.ID, d.Version, "won")
				require.NoError(t, err)
				deals = append(deals, d)
			}
			client, err := s.Clients().Create(a, crm.ClientInput{Name: "Cleo Boutique Ltd", Email: "Cleo@Example.com", Phone: "+14155550142"})
			require.NoError(t, err)
			other, err := s.Clients().Create(a, crm.ClientInput{Name: "Other Ltd", Email: "control@example.com", Phone: "+14155550199"})
			require.NoError(t, err)

			subj := subject("cleo@example.com", cleo.ID)
			_, names, m := exportOf(t, sdk, a, subj)
			rows := map[string]int64{}
			for _, c := range m.Categories {
				rows[c.Name] = c.Rows
			}
			require.Equal(t, int64(1), rows[crm.CategoryClientContact], "%v: her billing details on the client: %+v (%v)", subj, rows, names)
			require.Equal(t, int64(1), rows["crm.notification"], "%v: her birthday greeting: %+v", subj, rows)
			require.Equal(t, int64(3), rows["crm.consent_event"], "%v: her consent history: %+v", subj, rows)
			require.Positive(t, rows["crm.deal_stage_change"], "%v: her deal's history: %+v", subj, rows)

			er := submitVerified(t, sdk, a, retention.KindErasure, subj)
			_, err = sdk.Retention.Erase(a, er.ID)
			require.NoError(t, err)
			got, err := s.Clients().Get(a, client.ID)
			require.NoError(t, err, "the client is kept")
			require.Equal(t, [3]string{"Cleo Boutique Ltd", "", ""}, [3]string{got.Name, got.Email, got.Phone}, "%v: her details are cleared", subj)
			got, err = s.Clients().Get(a, other.ID)
			require.NoError(t, err)
			require.Equal(t, "control@example.com", got.Email, "the control client is untouched")
			tid, err := tenancy.TenantID(a)
			require.NoError(t, err)
			left := func(table, col string, ids ...string) int {
				var n int
				sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "s10"), tid)
				require.NoError(t, err)
				require.NoError(t, tenancy.RunInTx(sys, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
					return tx.NewRaw("SELECT count(*) FROM "+table+" WHERE tenant_id = ? AND "+col+" IN (?)", tid, bun.In(ids)).Scan(ctx, &n)
				}))
				return n
			}
			require.Zero(t, left(crm.TableNotifications, "contact_id", cleo.ID), "%v", subj)
			require.Zero(t, left(crm.TableConsentEvents, "contact_id", cleo.ID), "%v", subj)
			require.Zero(t, left(crm.TableStageChanges, "deal_id", deals[0].ID), "%v", subj)
			require.Equal(t, 1, left(crm.TableNotifications, "contact_id", ctl.ID), "%v: the control's", subj)
			require.Equal(t, 3, left(crm.TableConsentEvents, "contact_id", ctl.ID), "%v: the control's", subj)
			require.Positive(t, left(crm.TableStageChanges, "deal_id", deals[1].ID), "%v: the control's", subj)
		}
	}, migrated)
}
