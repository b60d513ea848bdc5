package crm

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// seal and those that build on the sealed schema (the name index):
// the schema of a database created by the release before.
func migrationsBeforeSealing() *migrate.Migrations {
	ms := migrate.NewMigrations()
	for _, m := range append(coreMigrations(), commerceMigrations()...) {
		if m.version != "20261123000550" && m.version != "20261123000650" && m.version != "20261123000560" && m.version != "20261123000570" {
			imigrations.Add(ms, m.version, m.comment, m.up)
		}
	}
	return ms
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
			_, err := st.Put(ctx, tid, att[1].(string), strings.NewReader(fmt.Sprintf("BytesOld%d", ti)))
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
		h, err := tinkkeyset.NewHandle(aead.AES256GCMKeyTemplate())
		require.NoError(t, err)
		kek, err := aead.New(h)
		require.NoError(t, err)
		v, err := vault.New(db.DB, kek)
		require.NoError(t, err)
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
			require.Equal(t, fmt.Sprintf("UtmSrc%dx0", ti), c.UTM.Source)
			require.Equal(t, Birthday{Year: 1990, Month: 4, Day: 2}, c.Birthday)
			require.Equal(t, []string{"TagOld" + fmt.Sprint(ti)}, c.Tags)
			require.Equal(t, map[string]string{"size": "Pref" + fmt.Sprint(ti, 0)}, c.Preferences)
			p, err := app.Contacts().List(tctx, ContactFilter{NamePrefix: fmt.Sprintf("zoe quill%dx5", ti)}, ListOptions{})
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
	h, err := tinkkeyset.NewHandle(aead.AES256GCMKeyTemplate())
	require.NoError(t, err)
	kek, err := aead.New(h)
	require.NoError(t, err)
	v, err := vault.New(db.DB, kek)
	require.NoError(t, err)
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
