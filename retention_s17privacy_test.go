package socialcrm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// s17Events returns the raw rows of the events table of tenant tid.
func s17Events(t *testing.T, db bun.IDB, tid string) []struct {
	Name          string `bun:"name"`
	SubjectKind   string `bun:"subject_kind"`
	SubjectValue  string `bun:"subject_value"`
	SubjectHash   string `bun:"subject_hash"`
	SubjectSealed []byte `bun:"subject_sealed"`
} {
	t.Helper()
	var rows []struct {
		Name          string `bun:"name"`
		SubjectKind   string `bun:"subject_kind"`
		SubjectValue  string `bun:"subject_value"`
		SubjectHash   string `bun:"subject_hash"`
		SubjectSealed []byte `bun:"subject_sealed"`
	}
	require.NoError(t, db.NewRaw("SELECT name, subject_kind, subject_value, subject_hash, subject_sealed FROM "+retention.TableEvents+
		" WHERE tenant_id = ? ORDER BY at, id", tid).Scan(context.Background(), &rows))
	return rows
}

// TestS17EventsKeepNoIdentifierAndGoWithTheirSubject: the event a
// disconnect records (the connection's deauthorization, which starts its
// data's 30 days) stores the connection's id only sealed beside the
// tenant's keyed hash — no cell of the events table holds it — and is the
// subject's data: an access request by her open_id exports it with the
// id opened, an erasure by it erases it. A sealed event still triggers
// its rule: 31 days after a second disconnect the sweep erases that
// connection. An event an older version stored in clear is sealed by
// ProtectIdentifiers, and a request still finds it.
func TestS17EventsKeepNoIdentifierAndGoWithTheirSubject(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		ctx := context.Background()
		raw := db.Admin(t)
		tid, err := tenancy.TenantID(w.ctx)
		require.NoError(t, err)
		c := w.connectTikTok([]string{"profile"})
		_, err = w.sdk.Social.Disconnect(w.ctx, c.ID, w.ttProv)
		require.NoError(t, err)

		evs := s17Events(t, raw, tid)
		require.Len(t, evs, 1)
		require.Equal(t, retention.EventDeauthorized, evs[0].Name)
		require.Equal(t, social.SubjectConnection, evs[0].SubjectKind)
		require.Empty(t, evs[0].SubjectValue, "the identifier is not stored in clear")
		require.NotEmpty(t, evs[0].SubjectHash)
		require.NotEmpty(t, evs[0].SubjectSealed)
		for cell := range s15Cells(t, ctx, raw) {
			if strings.HasPrefix(cell, retention.TableEvents+".") {
				require.NotContains(t, cell, c.ID, "a cell of the events table holds the connection's id")
			}
		}

		subject := map[string]string{social.SubjectOpenID: canaryOpenID}
		text, _, m := exportOf(t, w.sdk, w.ctx, subject)
		var rows int64 = -1
		for _, mc := range m.Categories {
			if mc.Name == retention.CategoryEvent {
				rows = mc.Rows
			}
		}
		require.Equal(t, int64(1), rows, "the access export holds her event")
		require.Contains(t, text, `"subject_identifier":"`+c.ID+`"`, "exported with its identifier opened")
		require.NotContains(t, text, evs[0].SubjectHash, "the keyed hash is not exported")

		er := submitVerified(t, w.sdk, w.ctx, retention.KindErasure, subject)
		rc, err := w.sdk.Retention.Erase(w.ctx, er.ID)
		require.NoError(t, err)
		require.Equal(t, int64(1), receiptOf(rc, retention.CategoryEvent).Erased, "%+v", rc.Categories)
		require.Empty(t, s17Events(t, raw, tid), "the erasure erased her event")

		// A sealed event still triggers its rule.
		c2 := w.connectTikTok([]string{"profile"})
		_, err = w.sdk.Social.Disconnect(w.ctx, c2.ID, w.ttProv)
		require.NoError(t, err)
		require.Len(t, s17Events(t, raw, tid), 1)
		w.clk.Advance(31 * retention.Day)
		rep, err := w.sdk.Retention.Sweep(tenancy.System(ctx, "s17"), w.clk.Now())
		require.NoError(t, err)
		var swept int64
		for _, r := range rep.Receipts {
			if r.Category == social.CategoryConnection && r.Tenant == tid {
				swept += r.Erased
			}
		}
		require.Equal(t, int64(1), swept, "the sweep found the connection through its sealed event: %+v", rep.Receipts)
		_, err = w.sdk.Social.Get(w.ctx, c2.ID)
		require.ErrorIs(t, err, social.ErrNotFound)

		// An event stored in clear by an older version.
		const legacy = "conn-s17-legacy-event"
		_, err = raw.NewRaw("INSERT INTO "+retention.TableEvents+" (tenant_id, id, name, subject_kind, subject_value, at) VALUES (?, ?, ?, ?, ?, ?)",
			tid, tenancy.NewID(), retention.EventDisconnected, social.SubjectConnection, legacy, w.clk.Now()).Exec(ctx)
		require.NoError(t, err)
		n, err := w.sdk.Retention.ProtectIdentifiers(tenancy.System(ctx, "s17"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, 1)
		evs = s17Events(t, raw, tid)
		require.Len(t, evs, 1)
		require.Empty(t, evs[0].SubjectValue)
		require.NotEmpty(t, evs[0].SubjectSealed)
		text, _, _ = exportOf(t, w.sdk, w.ctx, map[string]string{social.SubjectConnection: legacy})
		require.Contains(t, text, `"subject_identifier":"`+legacy+`"`, "a request by the id finds the sealed legacy event")
	}, migrated)
}

// TestS17ReceiptCountsPendingNow: Engine.Receipt, asked after an erasure
// whose platform revoke failed, reports that revoke as still pending, as
// the erasure's own receipt did — by the platform account id and by the
// TikTok open_id, which no longer lead to any connection once it is
// erased — and, once RetryRevocations made it, no longer does.
func TestS17ReceiptCountsPendingNow(t *testing.T) {
	for _, kind := range []string{social.SubjectOpenID, social.SubjectAccount} {
		t.Run(kind, func(t *testing.T) {
			dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
				w := newPlatformWorld(t, db)
				c := w.connectTikTok([]string{"profile"})
				w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath})
				er := submitVerified(t, w.sdk, w.ctx, retention.KindErasure, map[string]string{kind: canaryOpenID})
				rc, err := w.sdk.Retention.Erase(w.ctx, er.ID)
				require.NoError(t, err)
				require.Equal(t, int64(1), receiptOf(rc, social.CategoryConnection).Erased)
				require.Equal(t, int64(1), receiptOf(rc, social.CategoryRevocation).Pending, "%+v", rc.Categories)

				got, err := w.sdk.Retention.Receipt(w.ctx, er.ID)
				require.NoError(t, err)
				require.Equal(t, int64(1), receiptOf(got, social.CategoryConnection).Erased)
				require.Equal(t, int64(1), receiptOf(got, social.CategoryRevocation).Pending,
					"the stored receipt says the revoke still waits: %+v", got.Categories)

				w.clk.Advance(time.Hour)
				done, err := w.sdk.Social.RetryRevocations(w.ctx)
				require.NoError(t, err)
				require.Equal(t, 1, done)
				got, err = w.sdk.Retention.Receipt(w.ctx, er.ID)
				require.NoError(t, err)
				require.Zero(t, receiptOf(got, social.CategoryRevocation).Pending, "made: %+v", got.Categories)
				require.Equal(t, int64(1), receiptOf(got, social.CategoryConnection).Erased)
				_, err = w.sdk.Social.Get(w.ctx, c.ID)
				require.ErrorIs(t, err, social.ErrNotFound)
			}, migrated)
		})
	}
}

// TestS17SubjectHoldByEmailHoldsHerContacts: a legal hold on a person by
// her e-mail address holds every row a request by that address reaches —
// both contacts holding it sealed (the duplicate's in other case), her
// conversation and its message — through a sweep that would erase them
// by age, an erasure request by the address and a tenant purge, while a
// control person's rows go. A hold by a phone number (known to resolvers
// only) is accepted; a kind nobody knows is refused. Once the hold is
// released, the next sweep erases her rows.
func TestS17SubjectHoldByEmailHoldsHerContacts(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		clk := fakeclock.New()
		p := socialcrm.DefaultPolicy(socialcrm.Categories(nil))
		p.Rules = append(p.Rules,
			retention.Rule{Category: "crm.contact", Period: retention.Day},
			retention.Rule{Category: "crm.conversation", Period: retention.Day},
			retention.Rule{Category: "crm.message", Period: retention.Day})
		st, err := crm.NewDirStorage(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now, Policy: &p, Attachments: st})
		require.NoError(t, err)
		a := dsarTenant(t, sdk, "held")
		tid, err := tenancy.TenantID(a)
		require.NoError(t, err)
		her := seedPerson(t, sdk, a, "hana", "+14155550171")
		ctrl := seedPerson(t, sdk, a, "ctrl", "+14155550172")
		raw := db.Admin(t)
		left := func(p dsarPerson) (contacts, convs, msgs int) {
			t.Helper()
			ids := bun.In([]string{p.contact.ID, p.dup.ID})
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableContacts+" WHERE tenant_id = ? AND id IN (?)", tid, ids).Scan(ctx, &contacts))
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableConversations+" WHERE tenant_id = ? AND contact_id IN (?)", tid, ids).Scan(ctx, &convs))
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE tenant_id = ? AND conversation_id IN (SELECT id FROM "+
				crm.TableConversations+" WHERE tenant_id = ? AND contact_id IN (?))", tid, tid, ids).Scan(ctx, &msgs))
			return
		}
		c, v, m := left(her)
		require.Equal(t, []int{2, 1, 1}, []int{c, v, m})

		_, err = sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "fax", SubjectValue: "123", Reason: "r"})
		var ve *retention.ValidationError
		require.True(t, errors.As(err, &ve), "%v", err)
		byPhone, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: crm.SubjectPhone,
			SubjectValue: "+1 (415) 555-0171", Reason: "litigation"})
		require.NoError(t, err, "a phone number is held through the resolvers")
		_, err = sdk.Retention.ReleaseHold(a, byPhone.ID)
		require.NoError(t, err)
		h, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: crm.SubjectEmail, SubjectValue: her.email, Reason: "litigation"})
		require.NoError(t, err)

		sys := tenancy.System(ctx, "s17")
		clk.Advance(2 * retention.Day)
		rep, err := sdk.Retention.Sweep(sys, clk.Now())
		require.NoError(t, err)
		c, v, m = left(her)
		require.Equal(t, []int{2, 1, 1}, []int{c, v, m}, "the sweep keeps her held rows: %+v", rep.Receipts)
		c, v, m = left(ctrl)
		require.Equal(t, []int{0, 0, 0}, []int{c, v, m}, "the sweep erased the control's")
		var held int64
		for _, r := range rep.Receipts {
			if r.Category == "crm.contact" {
				held += r.Held
			}
		}
		require.Equal(t, int64(2), held, "the sweep counts her contacts held")

		er := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{crm.SubjectEmail: her.email})
		rc, err := sdk.Retention.Erase(a, er.ID)
		require.NoError(t, err)
		require.Equal(t, int64(2), receiptOf(rc, "crm.contact").Held, "%+v", rc.Categories)
		require.Equal(t, int64(1), receiptOf(rc, "crm.conversation").Held, "%+v", rc.Categories)
		c, v, m = left(her)
		require.Equal(t, []int{2, 1, 1}, []int{c, v, m}, "the erasure keeps her held rows")

		_, err = sdk.Tenants.CloseTenant(a, retention.Day)
		require.NoError(t, err)
		clk.Advance(2 * retention.Day)
		res, err := sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged, "a hold keeps the tenant from being purged")
		c, v, m = left(her)
		require.Equal(t, []int{2, 1, 1}, []int{c, v, m}, "the purge keeps her held rows")

		tctx, err := tenancy.AsTenant(sys, tid)
		require.NoError(t, err)
		_, err = sdk.Retention.ReleaseHold(tctx, h.ID)
		require.NoError(t, err)
		res, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged, "released, the purge completes")
		c, v, m = left(her)
		require.Equal(t, []int{0, 0, 0}, []int{c, v, m})
	}, migrated)
}
