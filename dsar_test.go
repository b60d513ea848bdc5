package socialcrm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

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
	"github.com/socialcrm/socialcrm/vault"
)

// dsarSDK opens the SDK with attachment storage on a fresh database.
func dsarSDK(t *testing.T, db *dbtest.DB) *socialcrm.SDK {
	t.Helper()
	st, err := crm.NewDirStorage(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: fakeclock.New().Now, Attachments: st})
	require.NoError(t, err)
	return sdk
}

// dsarTenant creates a tenant and returns a context acting as its owner.
func dsarTenant(t *testing.T, sdk *socialcrm.SDK, name string) context.Context {
	t.Helper()
	_, owner, err := sdk.Tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: name,
		Owner: tenancy.NewMember{Email: "owner@" + name + ".example", Name: "Owner"}})
	require.NoError(t, err)
	ctx := tenancy.WithPrincipal(context.Background(), owner.Principal())
	_, err = sdk.CRM.Fields().Define(ctx, crm.FieldDefInput{RecordKind: "contact", Name: "size", Type: crm.FieldText})
	require.NoError(t, err)
	_, err = sdk.CRM.Pipelines().Create(ctx, crm.PipelineInput{Name: "sales", Stages: []string{"new", "won"}})
	require.NoError(t, err)
	return ctx
}

// dsarPerson is a person seeded in every category a request can reach:
// two contacts with her e-mail address (a duplicate), notes, a task, an
// activity, a deal, a consent, a Messenger conversation, a file with
// bytes, a custom field value, and a TikTok connection with media, a
// metric snapshot and a raw response.
type dsarPerson struct {
	name, email, phone, psid, openID string
	contact, dup                     crm.Contact
	// crmValues and socialValues are the values seeded in clear, each
	// unique to the person: an export must hold every one.
	crmValues, socialValues []string
}

func seedPerson(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, name, phone string) dsarPerson {
	t.Helper()
	s := sdk.CRM
	p := dsarPerson{name: name, email: name + "@example.com", phone: phone, psid: "psid-" + name, openID: "open-" + name}
	v := func(what string) string { return what + "-" + name }
	var err error
	p.contact, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: v("first"), LastName: v("last"), Email: p.email, Phone: phone})
	require.NoError(t, err)
	p.dup, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: v("dupfirst"), Email: strings.ToUpper(p.email)}, crm.AllowDuplicate())
	require.NoError(t, err)
	for _, n := range []struct{ contact, body string }{{p.contact.ID, v("note")}, {p.dup.ID, v("dupnote")}} {
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: n.body, ContactID: n.contact})
		require.NoError(t, err)
	}
	_, err = s.Tasks().Create(ctx, crm.TaskInput{Title: v("task"), ContactID: p.contact.ID})
	require.NoError(t, err)
	_, err = s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: p.contact.ID,
		Subject: v("callsubject"), Body: v("callbody"), OccurredAt: fakeclock.Start})
	require.NoError(t, err)
	pls, err := s.Pipelines().List(ctx, crm.PipelineFilter{}, crm.ListOptions{})
	require.NoError(t, err)
	_, err = s.Deals().Create(ctx, crm.DealInput{PipelineID: pls.Items[0].ID, Title: v("deal"), ContactID: p.contact.ID})
	require.NoError(t, err)
	_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: p.contact.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: v("consentsource")})
	require.NoError(t, err)
	key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: p.psid}
	m, err := s.Conversations().Record(ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: v("mid"), Text: v("message"), SentAt: fakeclock.Start})
	require.NoError(t, err)
	conv, err := s.Conversations().Get(ctx, m.ConversationID)
	require.NoError(t, err)
	_, err = s.Conversations().LinkContact(ctx, conv.ID, p.contact.ID, conv.Version)
	require.NoError(t, err)
	_, err = s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: p.contact.ID, FileName: v("file") + ".txt",
		ContentType: "text/plain"}, strings.NewReader(v("filebytes")))
	require.NoError(t, err)
	_, err = s.Fields().Set(ctx, "contact", p.contact.ID, map[string]any{"size": v("custom")})
	require.NoError(t, err)
	p.crmValues = []string{p.email, phone, v("first"), v("last"), v("dupfirst"), v("note"), v("dupnote"), v("task"), v("callsubject"),
		v("callbody"), v("deal"), v("consentsource"), p.psid, v("mid"), v("message"), v("file") + ".txt", v("filebytes"), v("custom")}

	// A TikTok creator's connection and what a sync fetched through it.
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	now := fakeclock.Start
	cn := social.Connection{ID: tenancy.NewID(), Platform: "tiktok", AccountID: p.openID, DisplayName: v("displayname"),
		AvatarURL: "https://cdn.example/" + v("avatar"), Scopes: social.Scopes{}, Requested: social.Scopes{}, Purposes: social.Purposes{},
		Status: social.Status("active"), CreatedAt: now, UpdatedAt: now}
	// Platform data is stored sealed, as the social store seals it.
	seal := func(value, record, field string) vault.Sealed {
		sealed, err := sdk.Vault.Seal(ctx, []byte(value), vault.Binding{Record: record, Field: field})
		require.NoError(t, err)
		return sealed
	}
	cn.DisplayNameSealed, cn.AvatarURLSealed = seal(cn.DisplayName, cn.ID, "display_name"), seal(cn.AvatarURL, cn.ID, "avatar_url")
	sealConnAccount(t, sdk.Vault, ctx, &cn)
	media := &social.Media{ID: social.MediaID(cn.ID, v("video")), ConnectionID: cn.ID, ExternalID: v("video"), Platform: "tiktok", Kind: "video",
		Purposes: social.Purposes{}, FetchedAt: now}
	media.TitleSealed, media.DescriptionSealed = seal(v("videotitle"), media.ID, "title"), seal(v("videodesc"), media.ID, "description")
	media.ShareURLSealed = seal("https://tiktok.example/"+v("share"), media.ID, "share_url")
	raw := &social.RawResponse{ID: tenancy.NewID(), ConnectionID: cn.ID, Platform: "tiktok", Endpoint: "/v2/user/info/", FetchedAt: now}
	raw.BodySealed = seal(`{"display_name":"`+v("rawbody")+`"}`, raw.ID, "body")
	require.NoError(t, tenancy.RunInTx(ctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&cn).Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewRaw("INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id) VALUES (?, ?, ?, ?)",
			"tiktok", p.openID, tid, cn.ID).Exec(ctx); err != nil {
			return err
		}
		for _, model := range []any{
			media,
			&social.Snapshot{ID: tenancy.NewID(), ConnectionID: cn.ID, Platform: "tiktok", TakenAt: now, Followers: social.KnownCount(42), Purposes: social.Purposes{}},
			raw,
		} {
			if _, err := tx.NewInsert().Model(model).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}))
	p.socialValues = []string{p.openID, v("displayname"), v("avatar"), v("video"), v("videotitle"), v("videodesc"), v("share"), v("rawbody")}
	return p
}

// dsarTables are the tenant-owned tables scanned for a person's values
// and counted: all but the engine's and the audit log's own records.
func dsarTables(t *testing.T, sdk *socialcrm.SDK) []string {
	t.Helper()
	var out []string
	for _, c := range sdk.Retention.Categories() {
		switch c.Table {
		case tenancy.TableAuditLog, tenancy.TableAuditCheckpoints, retention.TableRequests, retention.TableHolds, retention.TableEvents:
			continue
		}
		if !slices.Contains(out, c.Table) {
			out = append(out, c.Table)
		}
	}
	return out
}

// dump returns every value of the tenant's rows in tables, as text, and
// how many rows there are.
func dump(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, tables []string) (string, int) {
	t.Helper()
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	var b strings.Builder
	n := 0
	sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "dsar-test"), tid)
	require.NoError(t, err)
	require.NoError(t, tenancy.RunInTx(sys, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, table := range tables {
			rows, err := tx.QueryContext(ctx, "SELECT * FROM "+table+" WHERE tenant_id = ?", tid)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			cols, _ := rows.Columns()
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				n++
				for _, v := range vals {
					if bs, ok := v.([]byte); ok {
						v = string(bs)
					}
					fmt.Fprintf(&b, "%v\x00", v)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	}))
	return b.String(), n
}

// unzip returns the concatenated contents of every entry of a zip archive
// and its entry names.
func unzip(t *testing.T, archive []byte) (string, []string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	var b strings.Builder
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		b.Write(data)
		b.WriteByte(0)
	}
	return b.String(), names
}

func found(hay string, values []string) []string {
	var out []string
	for _, v := range values {
		if strings.Contains(hay, v) {
			out = append(out, v)
		}
	}
	return out
}

// exportOf exports the data of subject, as the owner of ctx's tenant.
func exportOf(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, subject map[string]string) (string, []string, retention.Manifest) {
	t.Helper()
	x := submitVerified(t, sdk, ctx, retention.KindAccess, subject)
	var archive bytes.Buffer
	m, err := sdk.Retention.Export(ctx, x.ID, &archive)
	require.NoError(t, err)
	x, err = sdk.Retention.Get(ctx, x.ID)
	require.NoError(t, err)
	require.Equal(t, m.Outcome, x.Outcome, "the request records the outcome")
	text, names := unzip(t, archive.Bytes())
	return text, names, m
}

// eraseCounted erases the data of subject in ctx's tenant through a
// verified request, which must find some, and checks that its receipt
// counts exactly the rows of tables removed plus the deals anonymized. It
// returns the request, the receipt and the tenant's rows after.
func eraseCounted(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, tables []string, subject map[string]string) (retention.Request, retention.Receipt, string) {
	t.Helper()
	_, before := dump(t, sdk, ctx, tables)
	er := submitVerified(t, sdk, ctx, retention.KindErasure, subject)
	rc, err := sdk.Retention.Erase(ctx, er.ID)
	require.NoError(t, err)
	require.Equal(t, retention.OutcomeDataFound, rc.Outcome)
	rows, after := dump(t, sdk, ctx, tables)
	anonymized := int64(0)
	for _, c := range rc.Categories {
		if c.Category == "crm.deal" {
			anonymized = c.Erased
		}
	}
	require.Equal(t, int64(before-after)+anonymized, rc.Erased(), "the receipt counts the rows removed and anonymized: %+v", rc.Categories)
	return er, rc, rows
}

func submitVerified(t *testing.T, sdk *socialcrm.SDK, ctx context.Context, kind retention.RequestKind, subject map[string]string) retention.Request {
	t.Helper()
	r, err := sdk.Retention.Submit(ctx, retention.Request{Kind: kind, Subject: subject})
	require.NoError(t, err)
	r, err = sdk.Retention.SetVerification(ctx, r.ID, retention.VerificationVerified)
	require.NoError(t, err)
	return r
}

// TestDSARMatrix: for each identifier a person gives — e-mail address,
// phone number written differently than stored, contact id, Messenger
// PSID, TikTok open_id, Meta-style account id — one request exports every
// value seeded about her and erases every row of hers, duplicates
// included, leaving a control person in the same tenant and the same
// person's namesake in another tenant untouched; the receipt counts
// exactly the rows removed or anonymized.
func TestDSARMatrix(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		tables := dsarTables(t, sdk)
		cases := []struct {
			name    string
			subject func(p dsarPerson) map[string]string
			social  bool // the request reaches her TikTok data, not her CRM records
		}{
			{"email", func(p dsarPerson) map[string]string {
				return map[string]string{crm.SubjectEmail: " " + strings.ToUpper(p.email)}
			}, false},
			{"phone", func(p dsarPerson) map[string]string {
				d := strings.TrimPrefix(p.phone, "+1") // +14155550123 → +1 (415) 555-0123
				return map[string]string{crm.SubjectPhone: "+1 (" + d[:3] + ") " + d[3:6] + "-" + d[6:]}
			}, false},
			{"contact_id", func(p dsarPerson) map[string]string { return map[string]string{crm.SubjectContact: p.contact.ID} }, false},
			{"thread_id", func(p dsarPerson) map[string]string { return map[string]string{crm.SubjectThread: p.psid} }, false},
			{"open_id", func(p dsarPerson) map[string]string { return map[string]string{social.SubjectOpenID: p.openID} }, true},
			{"account_id", func(p dsarPerson) map[string]string { return map[string]string{social.SubjectAccount: p.openID} }, true},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := dsarTenant(t, sdk, fmt.Sprintf("a%d", i))
				b := dsarTenant(t, sdk, fmt.Sprintf("b%d", i))
				ann := seedPerson(t, sdk, a, "ann", "+14155550123")
				bob := seedPerson(t, sdk, a, "bob", "+14155550199")
				annB := seedPerson(t, sdk, b, "ann", "+14155550123")
				want, other := ann.crmValues, ann.socialValues
				if tc.social {
					want, other = ann.socialValues, ann.crmValues
				}

				// Export: every value seeded about her, in one step.
				text, names, m := exportOf(t, sdk, a, tc.subject(ann))
				require.Equal(t, retention.OutcomeDataFound, m.Outcome)
				require.ElementsMatch(t, want, found(text, want), "the export holds every seeded value (%d)", len(want))
				require.Empty(t, found(text, bob.crmValues), "nothing of the control person")
				require.Empty(t, found(text, other), "nothing the identifier does not lead to")
				if !tc.social {
					require.True(t, slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "crm.attachment/") }),
						"the file's bytes are in the archive: %v", names)
				}

				// Erasure: no row of hers is left; the receipt counts what went.
				_, rowsB := dump(t, sdk, b, tables)
				er, rc, afterA := eraseCounted(t, sdk, a, tables, tc.subject(ann))
				require.Empty(t, found(afterA, want), "no value of hers is left in clear")
				text, _, m = exportOf(t, sdk, a, tc.subject(ann))
				require.Empty(t, found(text, want), "no value of hers is left to export")
				require.Equal(t, retention.OutcomeNoDataFound, m.Outcome, "nothing of hers is found any more")
				text, _, _ = exportOf(t, sdk, a, map[string]string{crm.SubjectEmail: bob.email, social.SubjectOpenID: bob.openID})
				all := append(slices.Clone(bob.crmValues), bob.socialValues...)
				require.ElementsMatch(t, all, found(text, all), "the control person is untouched")
				_, rowsBAfter := dump(t, sdk, b, tables)
				require.Equal(t, rowsB, rowsBAfter, "the other tenant is untouched")
				text, _, _ = exportOf(t, sdk, b, map[string]string{crm.SubjectEmail: annB.email, social.SubjectOpenID: annB.openID})
				all = append(slices.Clone(annB.crmValues), annB.socialValues...)
				require.ElementsMatch(t, all, found(text, all), "her namesake in the other tenant is untouched")
				got, err := sdk.Retention.Get(a, er.ID)
				require.NoError(t, err)
				require.Equal(t, retention.StatusCompleted, got.Status)
				var sum int64
				for _, n := range got.Erased {
					sum += n
				}
				require.Equal(t, rc.Erased(), sum)
				if !tc.social {
					for _, c := range []crm.Contact{ann.contact, ann.dup} {
						_, err := sdk.CRM.Contacts().Get(a, c.ID)
						require.ErrorIs(t, err, crm.ErrNotFound, "the contact and her duplicate are gone")
					}
					page, err := sdk.CRM.Contacts().List(a, crm.ContactFilter{Email: bob.email}, crm.ListOptions{})
					require.NoError(t, err)
					require.Len(t, page.Items, 2, "the control person's contacts remain")
					page, err = sdk.CRM.Contacts().List(b, crm.ContactFilter{Email: annB.email}, crm.ListOptions{})
					require.NoError(t, err)
					require.Len(t, page.Items, 2, "her namesake's contacts in the other tenant remain")
				}
			})
		}
	}, migrated)
}

// TestDSAROutcomes: an identifier kind nobody knows is refused with the
// known kinds; a person who is not there gets "no data found", for an
// export and for an erasure, never a plain "completed".
func TestDSAROutcomes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "acme")
		seedPerson(t, sdk, a, "bob", "+14155550199")

		_, err := sdk.Retention.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"shoe_size": "42"}})
		var uk *retention.UnknownKindError
		require.True(t, errors.As(err, &uk), "Submit returned %v, want an *UnknownKindError", err)
		require.Equal(t, "shoe_size", uk.Kind)
		for _, k := range []string{crm.SubjectEmail, crm.SubjectPhone, crm.SubjectContact, crm.SubjectThread, social.SubjectOpenID, social.SubjectAccount} {
			require.Contains(t, uk.Known, k)
		}

		nobody := map[string]string{crm.SubjectEmail: "nobody@example.com"}
		x := submitVerified(t, sdk, a, retention.KindExport, nobody)
		m, err := sdk.Retention.Export(a, x.ID, io.Discard)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeNoDataFound, m.Outcome)
		require.Equal(t, 1, m.Searched[crm.SubjectEmail])
		x, err = sdk.Retention.Close(a, x.ID, retention.StatusCompleted)
		require.NoError(t, err)
		require.Equal(t, retention.StatusNoDataFound, x.Status)

		// Every export is audited: who, which request, counts — no values.
		p, _ := tenancy.FromContext(a)
		var exported []tenancy.AuditEntry
		for after := int64(0); ; {
			es, err := sdk.Audit.List(a, tenancy.AuditListOptions{AfterSeq: after, Limit: 1000})
			require.NoError(t, err)
			for _, e := range es {
				if e.Action == "retention.exported" {
					exported = append(exported, e)
				}
			}
			if len(es) < 1000 {
				break
			}
			after = es[len(es)-1].Seq
		}
		require.Len(t, exported, 1)
		require.Equal(t, "member:"+p.MemberID, exported[0].Actor)
		require.Equal(t, "request:"+x.ID, exported[0].Target)
		require.Equal(t, "no_data_found", exported[0].Metadata["outcome"])
		require.Equal(t, "email", exported[0].Metadata["identifiers"])
		require.NotContains(t, fmt.Sprint(exported[0].Metadata), "nobody@", "no identifier value in the audit log")

		er := submitVerified(t, sdk, a, retention.KindErasure, nobody)
		rc, err := sdk.Retention.Erase(a, er.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeNoDataFound, rc.Outcome)
		require.Zero(t, rc.Erased())
		require.NotEmpty(t, rc.Categories, "the receipt lists the categories searched")
		er, err = sdk.Retention.Get(a, er.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusNoDataFound, er.Status)
		require.Equal(t, retention.OutcomeNoDataFound, er.Outcome)
	}, migrated)
}

// TestRequestIdentifiersSealed: the identifiers a person gives are stored
// only sealed, beside a keyed hash that matches a later request; Get,
// Export and Erase still use them; a request stored in clear before (an
// older version) is sealed by ProtectIdentifiers, once.
func TestRequestIdentifiersSealed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "acme")
		// A name long enough that random ciphertext and hashes in the dump
		// never spell it by chance ("ann" did, now and then).
		ann := seedPerson(t, sdk, a, "annwenna", "+14155550123")
		tables := []string{retention.TableRequests}

		r := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{crm.SubjectEmail: ann.email, crm.SubjectThread: ann.psid})
		raw, _ := dump(t, sdk, a, tables)
		require.Empty(t, found(raw, []string{ann.email, ann.psid, "annwenna"}), "no identifier in clear in the request records")
		got, err := sdk.Retention.Get(a, r.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{crm.SubjectEmail: ann.email, crm.SubjectThread: ann.psid}, got.Subject)
		require.Equal(t, []string{crm.SubjectEmail, crm.SubjectThread}, got.IdentifierKinds)
		rc, err := sdk.Retention.Erase(a, r.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, rc.Outcome)

		// The person writes again: her request is found by the hash.
		ms, err := sdk.Retention.Match(a, crm.SubjectEmail, " "+strings.ToUpper(ann.email))
		require.NoError(t, err)
		require.Len(t, ms, 1)
		require.Equal(t, r.ID, ms[0].ID)
		require.Equal(t, retention.StatusCompleted, ms[0].Status)
		ms, err = sdk.Retention.Match(a, crm.SubjectPhone, ann.email)
		require.NoError(t, err)
		require.Empty(t, ms, "the kind is part of the match")
		other := dsarTenant(t, sdk, "other")
		ms, err = sdk.Retention.Match(other, crm.SubjectEmail, ann.email)
		require.NoError(t, err)
		require.Empty(t, ms, "another tenant's requests are not matched")

		// A request stored in clear by an older version.
		old := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{crm.SubjectEmail: "legacy@example.com"})
		tid, err := tenancy.TenantID(a)
		require.NoError(t, err)
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "dsar-test"), tid)
		require.NoError(t, err)
		require.NoError(t, tenancy.RunInTx(sys, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("UPDATE "+retention.TableRequests+` SET subject = '{"email":"legacy@example.com"}', subject_sealed = NULL, subject_hashes = '{}' WHERE tenant_id = ? AND id = ?`,
				tid, old.ID).Exec(ctx)
			return err
		}))
		raw, _ = dump(t, sdk, a, tables)
		require.Contains(t, raw, "legacy@example.com")
		_, err = sdk.Retention.ProtectIdentifiers(a)
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
		n, err := sdk.Retention.ProtectIdentifiers(tenancy.System(context.Background(), "dsar-test"))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		raw, _ = dump(t, sdk, a, tables)
		require.NotContains(t, raw, "legacy@example.com")
		n, err = sdk.Retention.ProtectIdentifiers(tenancy.System(context.Background(), "dsar-test"))
		require.NoError(t, err)
		require.Zero(t, n, "a second run has nothing to do")
		got, err = sdk.Retention.Get(a, old.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]string{crm.SubjectEmail: "legacy@example.com"}, got.Subject)
		ms, err = sdk.Retention.Match(a, crm.SubjectEmail, "legacy@example.com")
		require.NoError(t, err)
		require.Len(t, ms, 1)
	}, migrated)
}
