package crm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// s16Thread records an inbound Messenger message from psid to Page page
// and returns the conversation it went into.
func s16Thread(t *testing.T, e *env, ctx context.Context, page, psid, text string) crm.Conversation {
	t.Helper()
	key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: page, ThreadID: psid}
	_, err := e.store.Conversations().Record(ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, Text: text, SentAt: e.clock.Now()})
	require.NoError(t, err)
	conv, err := e.store.Conversations().Find(ctx, key)
	require.NoError(t, err)
	return conv
}

// s16Person is one person of the tenant with a contact (e-mail address
// and phone number), a duplicate by each of them, a note on each contact
// and a Messenger thread linked to the first contact.
type s16Person struct {
	contact, dupEmail, dupPhone crm.Contact
	conv                        crm.Conversation
	email, phone, psid          string
}

func s16Seed(t *testing.T, e *env, ctx context.Context, first, email, phone, psid string) s16Person {
	t.Helper()
	s := e.store
	p := s16Person{email: email, phone: phone, psid: psid}
	var err error
	p.contact, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: first, LastName: "First", Email: email, Phone: phone})
	require.NoError(t, err)
	p.dupEmail, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: first, LastName: "ByEmail", Email: email}, crm.AllowDuplicate())
	require.NoError(t, err)
	p.dupPhone, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: first, LastName: "ByPhone", Phone: phone}, crm.AllowDuplicate())
	require.NoError(t, err)
	for _, c := range []crm.Contact{p.contact, p.dupEmail, p.dupPhone} {
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "note on " + c.LastName + " " + first, ContactID: c.ID})
		require.NoError(t, err)
	}
	conv := s16Thread(t, e, ctx, "page-1", psid, "hello from "+first)
	p.conv, err = s.Conversations().LinkContact(ctx, conv.ID, p.contact.ID, conv.Version)
	require.NoError(t, err)
	return p
}

// TestS16ContactIDResolvesLikeItsIdentifiers: a request by a contact's id
// reaches the same contacts and conversations as one by its e-mail
// address, its phone number (written another way) or its Messenger PSID
// — its duplicates by either, whichever of them is named — and the
// export by contact id holds every one of them, and nothing of another
// person of the tenant.
func TestS16ContactIDResolvesLikeItsIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.A
		ann := s16Seed(t, e, ctx, "Ann", "ann@example.com", "+14155550101", "7100000000000001")
		bob := s16Seed(t, e, ctx, "Bob", "bob@example.com", "+14155550202", "7200000000000002")
		eng := s15EraseEngine(t, e, func(context.Context) error { return nil })

		want := []string{ann.contact.ID, ann.dupEmail.ID, ann.dupPhone.ID}
		for name, subject := range map[string]map[string]string{
			"contact id":           {crm.SubjectContact: ann.contact.ID},
			"duplicate's id":       {crm.SubjectContact: ann.dupEmail.ID},
			"other duplicate's id": {crm.SubjectContact: ann.dupPhone.ID},
			"e-mail address":       {crm.SubjectEmail: " ANN@example.com"},
			"phone number":         {crm.SubjectPhone: "+1 415-555-0101"},
			"PSID":                 {crm.SubjectThread: ann.psid},
		} {
			keys, err := eng.Resolve(ctx, subject)
			require.NoError(t, err, name)
			require.ElementsMatch(t, want, keys[crm.SubjectContact], "by %s: every contact of the person", name)
			require.Equal(t, []string{ann.conv.ID}, keys[crm.SubjectConversation], "by %s: her conversation", name)
		}

		r := request(t, ctx, eng, retention.KindExport, map[string]string{crm.SubjectContact: ann.dupPhone.ID})
		var buf bytes.Buffer
		m, err := eng.Export(ctx, r.ID, &buf)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeDataFound, m.Outcome)
		files := s16Files(t, buf.Bytes())
		for _, v := range []string{ann.contact.ID, ann.dupEmail.ID, ann.dupPhone.ID, "ann@example.com", "+14155550101"} {
			require.Contains(t, files["crm.contact.json"], v)
		}
		for _, v := range []string{"note on First Ann", "note on ByEmail Ann", "note on ByPhone Ann"} {
			require.Contains(t, files["crm.note.json"], v)
		}
		require.Contains(t, files["crm.message.json"], "hello from Ann")
		for name, f := range files {
			for _, v := range []string{bob.contact.ID, bob.dupEmail.ID, bob.dupPhone.ID, "bob@example.com", "Bob", bob.psid} {
				require.NotContains(t, f, v, "%s holds another person's %s", name, v)
			}
		}
	})
}

// s16Files returns the files of a zip archive by name.
func s16Files(t *testing.T, archive []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
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

// TestS16EraseByContactIDReachesWritesMidRun: an erasure named by a
// contact id alone, while it is between the note category and the
// contact's (her conversation and messages already erased), meets a new
// duplicate with her e-mail address, another with her phone number
// written another way (each with a note) and a new message from her PSID,
// which opens a new, unlinked conversation. Its later pass finds them all
// through her address, number and thread id — the contact it was named
// by is gone by then — and erases them; the receipt counts them; another
// person of the tenant keeps everything.
func TestS16EraseByContactIDReachesWritesMidRun(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.A
		s := e.store
		ann := s16Seed(t, e, ctx, "Ann", "ann@example.com", "+14155550101", "7100000000000001")
		bob := s16Seed(t, e, ctx, "Bob", "bob@example.com", "+14155550202", "7200000000000002")

		var late []crm.Contact
		var lateConv crm.Conversation
		calls := 0
		eng := s15EraseEngine(t, e, func(context.Context) error {
			if calls++; calls > 1 {
				return nil
			}
			_, err := s.Conversations().Get(ctx, ann.conv.ID)
			require.ErrorIs(t, err, crm.ErrNotFound, "her conversation went before her notes")
			byEmail, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ann", LastName: "Late", Email: "Ann@Example.com"}, crm.AllowDuplicate())
			require.NoError(t, err)
			byPhone, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ann", LastName: "Later", Phone: "+1 (415) 555-0101"}, crm.AllowDuplicate())
			require.NoError(t, err)
			late = []crm.Contact{byEmail, byPhone}
			for _, c := range late {
				_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "late note", ContactID: c.ID})
				require.NoError(t, err)
			}
			lateConv = s16Thread(t, e, ctx, "page-1", ann.psid, "are you there?")
			return nil
		})
		r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectContact: ann.contact.ID})
		rcpt, err := eng.Erase(ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, late, 2, "the writes ran during the erasure")

		ids := []string{ann.contact.ID, ann.dupEmail.ID, ann.dupPhone.ID, late[0].ID, late[1].ID}
		require.Empty(t, s15EraseLeft(t, e, ids...), "rows about Ann left behind")
		for _, id := range ids {
			_, err := s.Contacts().Get(ctx, id)
			require.ErrorIs(t, err, crm.ErrNotFound)
		}
		_, err = s.Conversations().Get(ctx, lateConv.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the conversation her PSID opened during the erasure")
		convs, err := s.Conversations().FindThread(ctx, ann.psid)
		require.NoError(t, err)
		require.Empty(t, convs)

		erased := map[string]int64{}
		for _, c := range rcpt.Categories {
			erased[c.Category] = c.Erased
		}
		require.Equal(t, int64(5), erased["crm.contact"], "her contact, two duplicates and two written meanwhile")
		require.Equal(t, int64(5), erased["crm.note"])
		require.Equal(t, int64(2), erased["crm.conversation"])
		require.Equal(t, int64(2), erased["crm.message"])
		require.Equal(t, retention.OutcomeDataFound, rcpt.Outcome)

		kept := s15EraseLeft(t, e, bob.contact.ID, bob.dupEmail.ID, bob.dupPhone.ID)
		require.Equal(t, 3, kept[crm.TableContacts], "Bob keeps his contacts")
		require.Equal(t, 3, kept[crm.TableNotes], "and his notes")
		require.Equal(t, 1, kept[crm.TableConversations], "and his conversation")
	})
}

// s16EraseEngine is a retention engine with the crm's categories and
// resolvers, category cat's AfterErase hook replaced by during (which runs
// once each batch of cat has committed, while the erasure goes on with the
// categories after it).
func s16EraseEngine(t *testing.T, e *env, cat string, during func(ctx context.Context) error) *retention.Engine {
	t.Helper()
	eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
	require.NoError(t, err)
	cats := e.store.Categories()
	found := false
	for i := range cats {
		if cats[i].Name == cat {
			require.Nil(t, cats[i].AfterErase, "%s has no hook of its own to keep", cat)
			cats[i].AfterErase = func(ctx context.Context, _ []string) error { return during(ctx) }
			found = true
		}
	}
	require.True(t, found)
	require.NoError(t, eng.Register(cats...))
	for kind, r := range e.store.Resolvers() {
		require.NoError(t, eng.RegisterResolver(kind, r))
	}
	return eng
}

// TestS16EraseTakesFilesAttachedMidRun: the attachment and custom field
// value categories come before the records they hang off (notes, tasks,
// activities, deals, the contact), found through them. Files and values
// attached to the person's note, task, activity, deal and contact while
// an erasure is past those two categories (in its consent batch) went
// unfound once their owners were gone: nothing named them any more. The
// erasure takes them with their owners and counts them in its receipt:
// no attachment row, byte or custom value of hers is left, and another
// person's stay.
func TestS16EraseTakesFilesAttachedMidRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, dir := storageEnv(t, db, 1<<20)
		ctx := e.A
		s := e.store
		for _, kind := range []string{"contact", "note", "task", "activity", "deal"} {
			_, err := s.Fields().Define(ctx, crm.FieldDefInput{RecordKind: kind, Name: "size", Type: crm.FieldText})
			require.NoError(t, err)
		}
		type person struct {
			contact crm.Contact
			owners  map[string]string // kind → id
		}
		seed := func(name string) person {
			c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: name, Email: strings.ToLower(name) + "@example.com"})
			require.NoError(t, err)
			p := person{contact: c, owners: map[string]string{"contact": c.ID}}
			n, err := s.Notes().Create(ctx, crm.NoteInput{Body: "note", ContactID: c.ID})
			require.NoError(t, err)
			tk, err := s.Tasks().Create(ctx, crm.TaskInput{Title: "task", ContactID: c.ID})
			require.NoError(t, err)
			a, err := s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: c.ID, OccurredAt: e.clock.Now()})
			require.NoError(t, err)
			pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "p-" + name, Stages: []string{"new", "won"}})
			require.NoError(t, err)
			d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "deal", ContactID: c.ID})
			require.NoError(t, err)
			p.owners["note"], p.owners["task"], p.owners["activity"], p.owners["deal"] = n.ID, tk.ID, a.ID, d.ID
			_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "form"})
			require.NoError(t, err)
			return p
		}
		attach := func(p person, tag string) {
			for kind, id := range p.owners {
				_, err := s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: kind, OwnerID: id, FileName: tag + "-" + kind + ".txt",
					ContentType: "text/plain"}, strings.NewReader("bytes of "+tag+" "+kind))
				require.NoError(t, err)
				_, err = s.Fields().Set(ctx, kind, id, map[string]any{"size": tag + " " + kind})
				require.NoError(t, err)
			}
		}
		ann, bob := seed("Ann"), seed("Bob")
		attach(ann, "ann-before")
		attach(bob, "bob")
		calls := 0
		eng := s16EraseEngine(t, e, "crm.consent", func(context.Context) error {
			if calls++; calls == 1 {
				attach(ann, "ann-during")
			}
			return nil
		})
		r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectEmail: "ann@example.com"})
		rcpt, err := eng.Erase(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, 1, calls, "the attachments were added during the erasure")
		erased := map[string]int64{}
		for _, c := range rcpt.Categories {
			erased[c.Category] = c.Erased
		}
		require.Equal(t, int64(10), erased["crm.attachment"], "the receipt counts the files attached before and during the erasure")
		require.Equal(t, int64(10), erased["crm.custom_field_value"], "and the custom values")
		stored, err := eng.Receipt(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, rcpt.Erased(), stored.Erased(), "the request records what the receipt counts")

		count := func(table, col string, ids ...string) int {
			var n int
			require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+table+" WHERE "+col+" IN (?)", bun.In(ids)).Scan(context.Background(), &n))
			return n
		}
		annIDs, bobIDs := slices.Collect(maps.Values(ann.owners)), slices.Collect(maps.Values(bob.owners))
		require.Zero(t, count(crm.TableAttachments, "owner_id", annIDs...), "attachments of Ann's records left")
		require.Zero(t, count(crm.TableFieldValues, "record_id", annIDs...), "custom values of Ann's records left")
		require.Equal(t, 5, count(crm.TableAttachments, "owner_id", bobIDs...), "Bob keeps his")
		require.Equal(t, 5, count(crm.TableFieldValues, "record_id", bobIDs...))
		var files []string
		require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return err
		}))
		require.Len(t, files, 5, "only Bob's bytes are left in the storage")
	}, setup)
}

// TestS16ChainOfDuplicatesFromAPSID: five contacts of one person, each
// sharing an e-mail address or a phone number with the next only (A–B by
// address, B–C by number, and so on), the first linked to her Messenger
// thread: a request by her PSID reaches all five within the engine's
// default resolution limits, each hop from contact to address to
// contact, and erases them.
func TestS16ChainOfDuplicatesFromAPSID(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.A
		s := e.store
		in := []crm.ContactInput{
			{FirstName: "A", Email: "e1@example.com", Phone: "+14155550001"},
			{FirstName: "B", Email: "e1@example.com", Phone: "+14155550002"},
			{FirstName: "C", Email: "e2@example.com", Phone: "+14155550002"},
			{FirstName: "D", Email: "e2@example.com", Phone: "+14155550003"},
			{FirstName: "E", Email: "e3@example.com", Phone: "+14155550003"},
		}
		var ids []string
		for _, c := range in {
			got, err := s.Contacts().Create(ctx, c, crm.AllowDuplicate())
			require.NoError(t, err)
			ids = append(ids, got.ID)
		}
		other, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Z", Email: "z@example.com", Phone: "+14155550009"})
		require.NoError(t, err)
		conv := s16Thread(t, e, ctx, "page-1", "7100000000000005", "hi")
		_, err = s.Conversations().LinkContact(ctx, conv.ID, ids[0], conv.Version)
		require.NoError(t, err)

		eng := s15EraseEngine(t, e, func(context.Context) error { return nil })
		keys, err := eng.Resolve(ctx, map[string]string{crm.SubjectThread: "7100000000000005"})
		require.NoError(t, err)
		require.ElementsMatch(t, ids, keys[crm.SubjectContact])
		r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectThread: "7100000000000005"})
		rcpt, err := eng.Erase(ctx, r.ID)
		require.NoError(t, err)
		require.Empty(t, s15EraseLeft(t, e, ids...))
		for _, c := range rcpt.Categories {
			if c.Category == "crm.contact" {
				require.Equal(t, int64(5), c.Erased)
			}
		}
		_, err = s.Contacts().Get(ctx, other.ID)
		require.NoError(t, err, "another person keeps her contact")
	})
}
