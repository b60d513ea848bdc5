package retention_test

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

func ptr[T any](v T) *T { return &v }

func TestRequestDeadlines(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")

		var ve *retention.ValidationError
		_, err := v.e.Submit(a, retention.Request{Kind: "gossip", Subject: map[string]string{"email": "x@example.com"}})
		require.ErrorAs(t, err, &ve)
		_, err = v.e.Submit(a, retention.Request{Kind: retention.KindAccess})
		require.ErrorAs(t, err, &ve)

		r1, err := v.e.Submit(a, retention.Request{Kind: retention.KindAccess, Subject: map[string]string{"email": "x@example.com"}})
		require.NoError(t, err)
		require.Equal(t, epoch.Add(30*retention.Day), r1.DueAt)
		require.Equal(t, retention.VerificationPending, r1.Verification)
		require.Equal(t, retention.StatusOpen, r1.Status)
		r2, err := v.e.Submit(b, retention.Request{Kind: retention.KindObjection, Subject: map[string]string{"email": "y@example.com"}})
		require.NoError(t, err)

		_, err = v.e.Extend(a, r1.ID, 60*retention.Day, "")
		require.ErrorAs(t, err, &ve)
		r1, err = v.e.Extend(a, r1.ID, 60*retention.Day, "complex request: several systems")
		require.NoError(t, err)
		require.Equal(t, epoch.Add(90*retention.Day), r1.DueAt)
		_, err = v.e.Extend(a, r1.ID, retention.Day, "again")
		require.ErrorIs(t, err, retention.ErrAlreadyExtended)
		_, err = v.e.Extend(b, r1.ID, retention.Day, "x")
		require.ErrorIs(t, err, retention.ErrNotFound, "another tenant's request is not found")

		later := epoch.Add(31 * retention.Day)
		od, err := v.e.Overdue(a, later)
		require.NoError(t, err)
		require.Empty(t, od, "the extended request is not overdue")
		od, err = v.e.Overdue(system(), later)
		require.NoError(t, err)
		require.Len(t, od, 1)
		require.Equal(t, r2.ID, od[0].ID)
		od, err = v.e.Overdue(a, epoch.Add(91*retention.Day))
		require.NoError(t, err)
		require.Len(t, od, 1)

		_, err = v.e.Close(b, r2.ID, retention.StatusRejected)
		require.NoError(t, err)
		_, err = v.e.Close(b, r2.ID, retention.StatusCompleted)
		require.ErrorIs(t, err, retention.ErrClosed)
		od, err = v.e.Overdue(system(), later)
		require.NoError(t, err)
		require.Empty(t, od)

		e2, err := retention.New(db, retention.WithClock(v.clock.Now), retention.WithRequestDeadline(10*retention.Day))
		require.NoError(t, err)
		require.NoError(t, e2.Register(testCategories(nil)...))
		r3, err := e2.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "z@example.com"}})
		require.NoError(t, err)
		require.Equal(t, epoch.Add(10*retention.Day), r3.DueAt)
		require.Len(t, receipts(t, a, db, "retention.request_received"), 2)
	})
}

func TestErase(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		cs := []contact{
			{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch},
			{ID: "k2", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch},
		}
		insert(t, a, db, &cs)
		var ns []note
		for i := range 10 {
			ns = append(ns, note{ID: id("n", i), ContactID: []string{"k1", "k2"}[i%2], Body: "hello", CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		inv := []invoice{
			{ID: "i-old", ContactID: "k1", Amount: 5, IssuedAt: epoch.Add(-8 * retention.Year)},
			{ID: "i-new", ContactID: "k1", Amount: 5, IssuedAt: epoch.Add(-retention.Year)},
			{ID: "i-bob", ContactID: "k2", Amount: 5, IssuedAt: epoch.Add(-8 * retention.Year)},
		}
		insert(t, a, db, &inv)
		// The same ids in tenant beta must survive.
		csB := []contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}}
		insert(t, b, db, &csB)
		_, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "crm.note", RecordID: "n-0002", Reason: "evidence"})
		require.NoError(t, err)

		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "ann@example.com", "contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.Erase(a, req.ID)
		require.ErrorIs(t, err, retention.ErrNotVerified)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		staff := tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: req.TenantID, MemberID: "m", Role: tenancy.RoleStaff})
		_, err = v.e.Erase(staff, req.ID)
		require.ErrorIs(t, err, tenancy.ErrForbidden)

		rc, err := v.e.Erase(a, req.ID)
		require.NoError(t, err)
		got := map[string]retention.CategoryReceipt{}
		for _, c := range rc.Categories {
			got[c.Category] = c
		}
		require.EqualValues(t, 1, got["crm.contact"].Erased)
		require.EqualValues(t, 4, got["crm.note"].Erased)
		require.EqualValues(t, 1, got["crm.note"].Held)
		require.EqualValues(t, 1, got[catInvoice].Erased)
		require.EqualValues(t, 1, got[catInvoice].Kept)

		var k []contact
		require.NoError(t, in(a, db, func(tx bun.Tx) error { return tx.NewSelect().Model(&k).Order("id").Scan(a) }))
		require.Nil(t, k[0].Email)
		require.Equal(t, "erased", k[0].Name)
		require.Equal(t, "bob@example.com", *k[1].Email)
		require.Equal(t, []string{"n-0001", "n-0002", "n-0003", "n-0005", "n-0007", "n-0009"}, ids(t, a, db, "test_notes"))
		require.Equal(t, []string{"i-bob", "i-new"}, ids(t, a, db, "test_invoices"))
		require.Equal(t, []string{"k1"}, ids(t, b, db, "test_contacts"))
		var kb contact
		require.NoError(t, in(b, db, func(tx bun.Tx) error { return tx.NewSelect().Model(&kb).Scan(b) }))
		require.Equal(t, "Ann", kb.Name)

		req, err = v.e.Get(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusCompleted, req.Status)
		_, err = v.e.Erase(a, req.ID)
		require.ErrorIs(t, err, retention.ErrClosed)
		require.NotEmpty(t, receipts(t, a, db, "retention.erased"))
		require.Len(t, receipts(t, a, db, "retention.request_completed"), 1)
	})
}

func TestExport(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		cs := []contact{
			{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann \"the\" <first>, 東京", UpdatedAt: epoch},
			{ID: "k2", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch},
		}
		insert(t, a, db, &cs)
		var ns []note
		for i := range 2500 { // several export batches
			ns = append(ns, note{ID: id("n", i), ContactID: []string{"k1", "k2"}[i%2], Body: "line1\nline2", CreatedAt: epoch.Add(time.Duration(i) * time.Second)})
		}
		insert(t, a, db, &ns)

		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindExport, Subject: map[string]string{"email": "ann@example.com"}})
		require.NoError(t, err)
		_, err = v.e.Export(a, req.ID, io.Discard)
		require.ErrorIs(t, err, retention.ErrNotVerified)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		var buf bytes.Buffer
		m, err := v.e.Export(a, req.ID, &buf)
		require.NoError(t, err)
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err)
		files := map[string][]byte{}
		var names []string
		for _, f := range zr.File {
			rc, err := f.Open()
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			files[f.Name] = b
			names = append(names, f.Name)
		}
		require.Equal(t, []string{"crm.contact.json", "crm.contact.csv", "crm.note.json", "crm.note.csv",
			"tenancy.member.json", "tenancy.member.csv", "manifest.json"}, names)
		// The member category matches nobody here; its CSV still has its header, without omitted secrets.
		require.Equal(t, "[\n]\n", string(files["tenancy.member.json"]))
		require.NotContains(t, string(files["tenancy.member.csv"]), "password_hash")

		var contacts []map[string]any
		require.NoError(t, json.Unmarshal(files["crm.contact.json"], &contacts))
		require.Len(t, contacts, 1)
		require.Equal(t, "Ann \"the\" <first>, 東京", contacts[0]["name"])
		var notes []map[string]any
		require.NoError(t, json.Unmarshal(files["crm.note.json"], &notes))
		require.Len(t, notes, 1250)
		require.Equal(t, "line1\nline2", notes[0]["body"])
		recs, err := csv.NewReader(bytes.NewReader(files["crm.note.csv"])).ReadAll()
		require.NoError(t, err)
		require.Len(t, recs, 1251)
		require.Equal(t, []string{"tenant_id", "id", "contact_id", "body", "created_at"}, recs[0])

		var man retention.Manifest
		require.NoError(t, json.Unmarshal(files["manifest.json"], &man))
		require.Equal(t, m.Request, man.Request)
		require.Equal(t, "example-2026", man.Policy)
		require.Len(t, man.Categories, 3)
		require.EqualValues(t, 1250, man.Categories[1].Rows)
		require.Len(t, receipts(t, a, db, "retention.exported"), 1)

		// Erasure requests cannot be exported.
		er, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "ann@example.com"}})
		require.NoError(t, err)
		var ve *retention.ValidationError
		_, err = v.e.Export(a, er.ID, io.Discard)
		require.ErrorAs(t, err, &ve)
	})
}
