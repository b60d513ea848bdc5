package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/aead"
	tinkkeyset "github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// migrationsBeforeSealing returns the crm migrations without those that
// seal and those that build on the sealed schema (the name index, the
// conversations' keys by thread index):
// the schema of a database created by the release before.
func migrationsBeforeSealing() *migrate.Migrations {
	return migrationsWithout("20261123000550", "20261123000650", "20261123000560", "20261123000570", "20261123000580",
		"20261123000590", "20261123000595", "20261123000610", "20261208010000")
}

// migrationsWithout returns the crm migrations but those of versions.
func migrationsWithout(versions ...string) *migrate.Migrations {
	ms := migrate.NewMigrations()
	for _, m := range append(append(coreMigrations(), commerceMigrations()...), claimMigrations()...) {
		if !slices.Contains(versions, m.version) {
			imigrations.Add(ms, m.version, m.comment, m.up)
		}
	}
	return ms
}

// testVault returns a vault on db's application handle, with a new
// key-encryption key.
func testVault(t *testing.T, db *dbtest.DB) *vault.Vault {
	t.Helper()
	h, err := tinkkeyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	kek, err := aead.New(h)
	require.NoError(t, err)
	v, err := vault.New(db.DB, kek)
	require.NoError(t, err)
	return v
}

// TestSealExistingSealsAnOldDatabase builds the schema of the release
// before sealing, stores personal data in clear as it did (two tenants,
// enough contacts for several batches, attachment bytes in clear), then
// migrates: the plaintext columns are gone at once, SealExisting stopped
// after two batches and run again seals the rest, a third run is a no-op,
// every value reads back through the API, search works, and no plaintext
// is left in any table.
func TestSealExistingSealsAnOldDatabase(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(),
			migrationsBeforeSealing()))
		raw := db.Admin(t) // the old release's rows, written as it wrote them
		dbtest.GrantApp(t, db)
		v := testVault(t, db) // the old release sealed e-mail addresses already
		dir := t.TempDir()
		st, err := NewDirStorage(dir)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })

		tenants := []string{tenancy.NewID(), tenancy.NewID()}
		now := time.Now().UTC().Truncate(time.Second)
		var canaries []string
		type seeded struct{ contact, conv, att, invoice, client string }
		seeds := map[string]seeded{}
		for ti, tid := range tenants {
			exec := func(q string, args ...any) {
				t.Helper()
				_, err := raw.ExecContext(ctx, q, args...)
				require.NoError(t, err)
			}
			rec := func() []any { return []any{tid, tenancy.NewID(), now, now, 1} }
			var first string
			for i := range 12 {
				fn, ln := fmt.Sprintf("Zoe%dx%d", ti, i), fmt.Sprintf("Quill%dx%d", ti, i)
				canaries = append(canaries, fn, ln)
				r := rec()
				if i == 0 {
					first = r[1].(string)
				}
				exec(`INSERT INTO socialcrm_crm_contacts (tenant_id, id, created_at, updated_at, version, first_name, last_name, stage, source,
					utm_source, utm_medium, utm_campaign, utm_term, utm_content, birth_year, birth_month, birth_day, preferences, tags,
					name_fold, last_fold) VALUES (?, ?, ?, ?, ?, ?, ?, 'lead', 'web', ?, '', '', '', '', 1990, 4, 2, ?, ?, ?, ?)`,
					append(r, fn, ln, fmt.Sprintf("UtmSrc%dx%d", ti, i), `{"size":"Pref`+fmt.Sprint(ti, i)+`"}`,
						`["TagOld`+fmt.Sprint(ti)+`"]`, strings.ToLower(fn+" "+ln), strings.ToLower(ln))...)
				exec(`INSERT INTO socialcrm_crm_contact_tags (tenant_id, id, created_at, updated_at, version, contact_id, tag) VALUES (?, ?, ?, ?, ?, ?, ?)`,
					append(rec(), r[1], "TagOld"+fmt.Sprint(ti))...)
			}
			canaries = append(canaries, "TagOld"+fmt.Sprint(ti))
			// The first contact's e-mail address, sealed on its own as that
			// release sealed it, bound to tenant|contact|"email".
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			email := fmt.Sprintf("zoe%d@old.example", ti)
			sealed, err := v.Seal(tctx, []byte(email), vault.Binding{Record: first, Field: "email"})
			require.NoError(t, err)
			idx, err := v.Index(tctx, email, indexEmail)
			require.NoError(t, err)
			exec(`UPDATE socialcrm_crm_contacts SET email_sealed = ?, email_index = ? WHERE tenant_id = ? AND id = ?`, sealed, idx, tid, first)
			canaries = append(canaries, email)
			note := fmt.Sprintf("NoteOld%d", ti)
			exec(`INSERT INTO socialcrm_crm_notes (tenant_id, id, created_at, updated_at, version, body, contact_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				append(rec(), note, first)...)
			conv := rec()
			psid := fmt.Sprintf("PsidOld%d", ti)
			exec(`INSERT INTO socialcrm_crm_conversations (tenant_id, id, created_at, updated_at, version, channel, account_id, thread_id, contact_id, last_message_at)
				VALUES (?, ?, ?, ?, ?, 'messenger', 'page', ?, ?, ?)`, append(conv, psid, first, now)...)
			msg := fmt.Sprintf("MsgOld%d", ti)
			exec(`INSERT INTO socialcrm_crm_messages (tenant_id, id, created_at, updated_at, version, conversation_id, direction, external_id, text, attachments, sent_at, status)
				VALUES (?, ?, ?, ?, ?, ?, 'in', 'mid', ?, '[]', ?, 'delivered')`, append(rec(), conv[1], msg, now)...)
			client := rec()
			cname := fmt.Sprintf("ClientOld%d", ti)
			exec(`INSERT INTO socialcrm_crm_clients (tenant_id, id, created_at, updated_at, version, name, email) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				append(client, cname, fmt.Sprintf("billing%d@old.example", ti))...)
			inv := rec()
			exec(`INSERT INTO socialcrm_crm_invoices (tenant_id, id, created_at, updated_at, version, number, client_id, currency, status, lines,
				subtotal, tax, total, paid, dated_at, bill_to_name, bill_to_address, bill_to_tax_id)
				VALUES (?, ?, ?, ?, ?, 'N1', ?, 'EUR', 'draft', ?, 100, 0, 100, 0, ?, ?, 'Old Street 1', 'TX1')`,
				append(inv, client[1], `[{"description":"LineOld`+fmt.Sprint(ti)+`","quantity":1,"unit_price":100,"tax_rate":0,"net":100,"tax":0,"total":100}]`,
					now, fmt.Sprintf("BillOld%d", ti))...)
			exec(`INSERT INTO socialcrm_crm_invoice_recipients (tenant_id, invoice_id, contact_id, email, created_at) VALUES (?, ?, ?, ?, ?)`,
				tid, inv[1], first, fmt.Sprintf("recipient%d@old.example", ti), now)
			att := rec()
			exec(`INSERT INTO socialcrm_crm_attachments (tenant_id, id, created_at, updated_at, version, owner_kind, owner_id, file_name, content_type, size, sha256, author)
				VALUES (?, ?, ?, ?, ?, 'contact', ?, ?, 'text/plain', 10, '', 'test')`, append(att, first, fmt.Sprintf("FileOld%d.txt", ti))...)
			_, err = st.Put(ctx, tid, att[1].(string), strings.NewReader(fmt.Sprintf("BytesOld%d", ti)))
			require.NoError(t, err)
			canaries = append(canaries, note, psid, msg, cname, fmt.Sprintf("billing%d@old.example", ti), "LineOld"+fmt.Sprint(ti),
				fmt.Sprintf("BillOld%d", ti), fmt.Sprintf("recipient%d@old.example", ti), fmt.Sprintf("FileOld%d", ti), fmt.Sprintf("BytesOld%d", ti))
			seeds[tid] = seeded{contact: first, conv: conv[1].(string), att: att[1].(string), invoice: inv[1].(string), client: client[1].(string)}
		}

		// The new release's migrations: the plaintext columns go at once.
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		dbtest.GrantApp(t, db)
		for _, col := range []string{"first_name", "name_fold", "tags", "preferences"} {
			has, err := hasColumn(ctx, raw, TableContacts, col)
			require.NoError(t, err)
			require.False(t, has, col)
		}
		app, err := New(db.DB, v, WithStorage(st, 0))
		require.NoError(t, err)
		s := app.Using(db.Owner) // SealExisting drops the staging table: the owner's right

		// Stopped after two batches (of 5 records).
		stop, cancel := context.WithCancel(ctx)
		calls := 0
		done, err := s.SealExisting(stop, 5, func(done, total int64) {
			if calls++; calls == 2 {
				cancel()
			}
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Positive(t, done)
		var left int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+tableUnsealed).Scan(ctx, &left))
		require.Positive(t, left, "stopped midway")

		var last, total int64
		rest, err := s.SealExisting(ctx, 5, func(d, t int64) { last, total = d, t })
		require.NoError(t, err)
		require.Equal(t, int64(left), rest)
		require.Equal(t, total, last)
		ok, err := hasTable(ctx, raw, tableUnsealed)
		require.NoError(t, err)
		require.False(t, ok, "the staging table is dropped when done")
		for _, col := range fieldColumns {
			has, err := hasColumn(ctx, raw, TableContacts, col)
			require.NoError(t, err)
			require.False(t, has, "%s: every contact has its profile, the columns of fields sealed one by one go", col)
		}
		again, err := s.SealExisting(ctx, 5, nil)
		require.NoError(t, err)
		require.Zero(t, again, "a second run is a no-op")

		for ti, tid := range tenants {
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			sd := seeds[tid]
			c, err := app.Contacts().Get(tctx, sd.contact)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("Zoe%dx0", ti), c.FirstName)
			require.Equal(t, fmt.Sprintf("Quill%dx0", ti), c.LastName)
			require.Equal(t, fmt.Sprintf("zoe%d@old.example", ti), c.Email, "sealed by the old release, now in the profile")
			p, err := app.Contacts().List(tctx, ContactFilter{Email: c.Email}, ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1)
			require.Equal(t, fmt.Sprintf("UtmSrc%dx0", ti), c.UTM.Source)
			require.Equal(t, Birthday{Year: 1990, Month: 4, Day: 2}, c.Birthday)
			require.Equal(t, []string{"TagOld" + fmt.Sprint(ti)}, c.Tags)
			require.Equal(t, map[string]string{"size": "Pref" + fmt.Sprint(ti, 0)}, c.Preferences)
			p, err = app.Contacts().List(tctx, ContactFilter{NamePrefix: fmt.Sprintf("zoe quill%dx5", ti)}, ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1, "name search by the rebuilt index")
			p, err = app.Contacts().List(tctx, ContactFilter{Tag: "TagOld" + fmt.Sprint(ti)}, ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 12, "tag filter by the rebuilt index")
			notes, err := app.Notes().List(tctx, NoteFilter{}, ListOptions{})
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("NoteOld%d", ti), notes.Items[0].Body)
			convs, err := app.Conversations().FindThread(tctx, fmt.Sprintf("PsidOld%d", ti))
			require.NoError(t, err)
			require.Len(t, convs, 1)
			require.Equal(t, sd.conv, convs[0].ID)
			ms, err := app.Conversations().Messages(tctx, sd.conv, ListOptions{})
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("MsgOld%d", ti), ms.Items[0].Text)
			inv, err := app.Invoices().Get(tctx, sd.invoice)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("BillOld%d", ti), inv.BillTo.Name)
			require.Equal(t, "LineOld"+fmt.Sprint(ti), inv.Lines[0].Description)
			require.Equal(t, fmt.Sprintf("recipient%d@old.example", ti), inv.Recipient.Email)
			cl, err := app.Clients().Get(tctx, sd.client)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("ClientOld%d", ti), cl.Name)
			att, rc, err := app.Attachments().Open(tctx, sd.att)
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			rc.Close()
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("BytesOld%d", ti), string(b))
			require.Equal(t, fmt.Sprintf("FileOld%d.txt", ti), att.FileName)
		}
		hits, err := leakscan.Tables(ctx, raw, canaries)
		require.NoError(t, err)
		require.Empty(t, hits)
		hits, err = leakscan.Files(canaries, dir)
		require.NoError(t, err)
		require.Empty(t, hits)
	})
}

// TestSealedBytesRefuseTampering: attachment bytes open only whole, in
// order, for their own attachment.
func TestSealedBytesRefuseTampering(t *testing.T) {
	db := dbtest.SQLite(t, func(ctx context.Context, db *bun.DB) error {
		return imigrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations())
	})
	v := testVault(t, db)
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
	plain := strings.Repeat("0123456789", 3*chunkSize/10+7) // three full chunks and a part
	sealed, err := io.ReadAll(newSealingReader(ctx, v, "att-1", strings.NewReader(plain)))
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "0123456789")
	open := func(id string, b []byte) (string, error) {
		out, err := io.ReadAll(newOpeningReader(ctx, v, id, io.NopCloser(strings.NewReader(string(b)))))
		return string(out), err
	}
	got, err := open("att-1", sealed)
	require.NoError(t, err)
	require.Equal(t, plain, got)
	for name, tc := range map[string]struct {
		id string
		b  []byte
	}{
		"another attachment": {"att-2", sealed},
		"cut inside a chunk": {"att-1", sealed[:len(sealed)/2]},
		"cut at a frame":     {"att-1", firstFrames(sealed, 2)},
		"extra bytes":        {"att-1", append(append([]byte(nil), sealed...), 'x')},
	} {
		_, err := open(tc.id, tc.b)
		require.Error(t, err, name)
		require.True(t, errors.Is(err, errSealedBytes), "%s: %v", name, err)
	}
	empty, err := io.ReadAll(newSealingReader(ctx, v, "att-3", strings.NewReader("")))
	require.NoError(t, err)
	got, err = open("att-3", empty)
	require.NoError(t, err)
	require.Empty(t, got)
}

// firstFrames returns the first n length-prefixed frames of a sealed stream.
func firstFrames(b []byte, n int) []byte {
	off := 0
	for range n {
		size := int(b[off])<<24 | int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3])
		off += 4 + size
	}
	return b[:off]
}

// migrationsBeforeProfile returns the crm migrations without the one that
// adds the contact profile: the schema of the release that sealed a
// contact's personal fields one by one.
func migrationsBeforeProfile() *migrate.Migrations {
	return migrationsWithout("20261123000580", "20261123000590", "20261208010000")
}

// TestSealExistingSealsFieldsAsProfiles writes contacts as the release
// before the profile did — each personal field sealed on its own, bound to
// tenant|contact|field — in two tenants, then migrates: the migration
// keeps the old columns while contacts need them, SealExisting stopped
// after its first batch and run again seals every contact's fields as its
// profile, drops the old columns and the staging table, a third run is a
// no-op, and every value reads back through Get, List and search.
func TestSealExistingSealsFieldsAsProfiles(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(),
			migrationsBeforeProfile()))
		dbtest.GrantApp(t, db)
		raw := db.Admin(t)
		v := testVault(t, db)
		app, err := New(db.DB, v)
		require.NoError(t, err)

		now := time.Now().UTC().Truncate(time.Second)
		type want struct {
			tctx context.Context
			in   ContactInput
		}
		wants := map[string]want{}
		for ti := range 2 {
			tid := tenancy.NewID()
			tctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
			for i := range 7 {
				id := tenancy.NewID()
				in := ContactInput{FirstName: fmt.Sprintf("Old%dx%d", ti, i), LastName: "Field Sealed", Email: fmt.Sprintf("old%d.%d@example.com", ti, i),
					Phone: fmt.Sprintf("+1415555%02d%02d", ti, i), UTM: UTM{Source: "ig", Campaign: fmt.Sprint("c", i)},
					Birthday: Birthday{Month: 3, Day: i + 1}, Preferences: map[string]string{"lang": "fr"}, Tags: []string{fmt.Sprint("oldtag", ti)}}
				if i == 6 { // only an e-mail address: the other columns NULL
					in = ContactInput{Email: fmt.Sprintf("only%d@example.com", ti)}
				}
				seal := func(field string, pt []byte) any {
					t.Helper()
					if len(pt) == 0 || string(pt) == "{}" || string(pt) == "null" || string(pt) == "[]" {
						return nil
					}
					s, err := v.Seal(tctx, pt, vault.Binding{Record: id, Field: field})
					require.NoError(t, err)
					return s
				}
				js := func(x any) []byte { b, err := json.Marshal(x); require.NoError(t, err); return b }
				email, err := v.Index(tctx, in.Email, indexEmail)
				require.NoError(t, err)
				_, err = raw.ExecContext(ctx, `INSERT INTO socialcrm_crm_contacts (tenant_id, id, created_at, updated_at, version, stage, source,
					first_name_sealed, last_name_sealed, email_sealed, email_index, phone_sealed, utm_sealed, birthday_sealed, preferences_sealed, tags_sealed)
					VALUES (?, ?, ?, ?, 1, 'lead', 'web', ?, ?, ?, ?, ?, ?, ?, ?, ?)`, tid, id, now, now,
					seal("first_name", []byte(in.FirstName)), seal("last_name", []byte(in.LastName)), seal("email", []byte(in.Email)), email,
					seal("phone", []byte(in.Phone)), seal("utm", js(in.UTM)), seal("birthday", js(in.Birthday)), seal("preferences", js(in.Preferences)),
					seal("tags", js(in.Tags)))
				require.NoError(t, err)
				wants[id] = want{tctx, in}
			}
		}

		// The new release's migrations: the old columns stay while needed.
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		dbtest.GrantApp(t, db)
		for _, col := range append([]string{"profile_sealed"}, fieldColumns...) {
			has, err := hasColumn(ctx, raw, TableContacts, col)
			require.NoError(t, err)
			require.True(t, has, col)
		}
		s := app.Using(db.Owner) // SealExisting drops columns: the owner's right
		stop, cancel := context.WithCancel(ctx)
		done, err := s.SealExisting(stop, 5, func(done, total int64) {
			require.EqualValues(t, 14, total)
			cancel()
		})
		require.ErrorIs(t, err, context.Canceled)
		require.EqualValues(t, 5, done, "one batch committed")
		has, err := hasColumn(ctx, raw, TableContacts, "first_name_sealed")
		require.NoError(t, err)
		require.True(t, has, "stopped midway: the old columns stay")

		var last, total int64
		rest, err := s.SealExisting(ctx, 5, func(d, t int64) { last, total = d, t })
		require.NoError(t, err)
		require.EqualValues(t, 9, rest)
		require.Equal(t, total, last)
		for _, col := range fieldColumns {
			has, err := hasColumn(ctx, raw, TableContacts, col)
			require.NoError(t, err)
			require.False(t, has, col)
		}
		has, err = hasTable(ctx, raw, tableUnsealed)
		require.NoError(t, err)
		require.False(t, has)
		again, err := s.SealExisting(ctx, 5, nil)
		require.NoError(t, err)
		require.Zero(t, again, "a second run is a no-op")
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		require.NoError(t, profileMigration(ctx, mustBegin(t, db.Owner)), "the migration again is a no-op")

		for id, w := range wants {
			c, err := app.Contacts().Get(w.tctx, id)
			require.NoError(t, err)
			exp := w.in
			exp.normalize()
			require.Equal(t, exp.FirstName, c.FirstName)
			require.Equal(t, exp.LastName, c.LastName)
			require.Equal(t, exp.Email, c.Email)
			require.Equal(t, exp.Phone, c.Phone)
			require.Equal(t, exp.UTM, c.UTM)
			require.Equal(t, exp.Birthday, c.Birthday)
			require.Equal(t, exp.Preferences, c.Preferences)
			require.Equal(t, exp.Tags, c.Tags)
			p, err := app.Contacts().List(w.tctx, ContactFilter{Email: exp.Email}, ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1)
			require.Equal(t, id, p.Items[0].ID)
			if exp.FirstName != "" {
				p, err = app.Contacts().List(w.tctx, ContactFilter{NamePrefix: exp.FirstName}, ListOptions{})
				require.NoError(t, err)
				require.Len(t, p.Items, 1, "name search by the rebuilt index")
				p, err = app.Contacts().List(w.tctx, ContactFilter{Tag: exp.Tags[0]}, ListOptions{})
				require.NoError(t, err)
				require.Len(t, p.Items, 6, "tag filter by the rebuilt index")
			}
		}
	})
}

// mustBegin begins a transaction on db, rolled back when the test ends.
func mustBegin(t *testing.T, db *bun.DB) bun.Tx {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}
