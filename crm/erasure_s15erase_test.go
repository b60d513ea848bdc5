package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
)

// s15EraseEngine is a retention engine with crm's categories, the note
// category's AfterErase hook replaced by during (which runs once each
// batch of notes has committed, while the erasure goes on with the
// categories after it — the contact's last).
func s15EraseEngine(t *testing.T, e *env, during func(ctx context.Context) error) *retention.Engine {
	t.Helper()
	eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
	require.NoError(t, err)
	cats := e.store.Categories()
	found := false
	for i := range cats {
		if cats[i].Name == "crm.note" {
			require.Nil(t, cats[i].AfterErase, "the note category has no hook of its own to keep")
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

// s15EraseLeft counts, as the database's owner, the rows that name one of
// ids: the contacts themselves and every table holding a contact id.
func s15EraseLeft(t *testing.T, e *env, ids ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	count := func(table, col string) {
		for _, id := range ids {
			var n int
			require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+table+" WHERE "+col+" = ?", id).Scan(context.Background(), &n))
			if n > 0 {
				out[table] += n
			}
		}
	}
	count(crm.TableContacts, "id")
	for _, table := range []string{crm.TableNotes, crm.TableTasks, crm.TableActivities, crm.TableConsents,
		crm.TableConsentEvents, crm.TableContactTags, crm.TableContactNames, crm.TableDeals, crm.TableConversations} {
		count(table, "contact_id")
	}
	return out
}

// TestS15EraseLeavesNothingAWriteAddedMidRun: while an erasure by e-mail
// address is between the note category and the contact's (its notes'
// batch committed), the application adds a note, a task, an activity and a
// consent for the contact, and a second contact with the same address
// (with a note and tags of its own). The erasure finds them: when it ends,
// no row about the person is left in any table, and its receipt counts
// every row it erased, those written meanwhile included.
func TestS15EraseLeavesNothingAWriteAddedMidRun(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.A
		s := e.store
		const email = "dana@example.com"
		dana, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Dana", LastName: "Quill", Email: email})
		require.NoError(t, err)
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "met at the fair", ContactID: dana.ID})
		require.NoError(t, err)
		// The control: another person of the tenant keeps everything.
		carl, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Carl", Email: "carl@example.com"})
		require.NoError(t, err)
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "carl's note", ContactID: carl.ID})
		require.NoError(t, err)

		var dup crm.Contact
		calls := 0
		eng := s15EraseEngine(t, e, func(context.Context) error {
			if calls++; calls > 1 {
				return nil
			}
			// Dana's contact row is still there: the erasure has not reached it.
			_, err := s.Notes().Create(ctx, crm.NoteInput{Body: "called again", ContactID: dana.ID})
			require.NoError(t, err)
			_, err = s.Tasks().Create(ctx, crm.TaskInput{Title: "send the offer", ContactID: dana.ID})
			require.NoError(t, err)
			_, err = s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: dana.ID, OccurredAt: fakeclock.Start})
			require.NoError(t, err)
			_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: dana.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "form"})
			require.NoError(t, err)
			dup, err = s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Dana", Email: email, Tags: []string{"fair"}}, crm.AllowDuplicate())
			require.NoError(t, err)
			_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "the same Dana", ContactID: dup.ID})
			require.NoError(t, err)
			return nil
		})
		r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectEmail: email})
		rcpt, err := eng.Erase(ctx, r.ID)
		require.NoError(t, err)
		require.NotEmpty(t, dup.ID, "the write ran during the erasure")

		require.Empty(t, s15EraseLeft(t, e, dana.ID, dup.ID), "rows about Dana left behind")
		_, err = s.Contacts().Get(ctx, dup.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.Equal(t, map[string]int{}, s15EraseLeft(t, e, "no such id"))
		kept := s15EraseLeft(t, e, carl.ID)
		require.Equal(t, 1, kept[crm.TableContacts], "Carl keeps his contact")
		require.Equal(t, 1, kept[crm.TableNotes], "and his note")

		erased := map[string]int64{}
		for _, c := range rcpt.Categories {
			erased[c.Category] = c.Erased
		}
		require.Equal(t, int64(3), erased["crm.note"], "the note before and the two written meanwhile")
		require.Equal(t, int64(1), erased["crm.task"])
		require.Equal(t, int64(1), erased["crm.activity"])
		require.Equal(t, int64(1), erased["crm.consent"])
		require.Equal(t, int64(2), erased["crm.contact"], "Dana and her duplicate")
		done, err := eng.Get(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusCompleted, done.Status)
		require.Equal(t, erased["crm.note"], done.Erased["crm.note"], "the request records what the receipt counts")
		stored, err := eng.Receipt(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, rcpt.Erased(), stored.Erased())
	})
}

// TestS15EraseThatNeverCatchesUpStaysOpen: when every pass of an erasure
// meets new rows about the person (an application that, each time her
// notes are erased, adds a contact with her e-mail address and a note on
// it), the erasure stops after a bounded number of passes with
// ErrSubjectChanging; the request stays open, counting what was erased,
// and a later Erase, once the writes stopped, completes it.
func TestS15EraseThatNeverCatchesUpStaysOpen(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := e.A
		s := e.store
		const email = "eve@example.com"
		eve, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Eve", Email: email})
		require.NoError(t, err)
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "first", ContactID: eve.ID})
		require.NoError(t, err)
		ids := []string{eve.ID}
		writing := true
		eng := s15EraseEngine(t, e, func(context.Context) error {
			if writing {
				dup, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Eve", Email: email}, crm.AllowDuplicate())
				require.NoError(t, err)
				_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "again", ContactID: dup.ID})
				require.NoError(t, err)
				ids = append(ids, dup.ID)
			}
			return nil
		})
		r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectEmail: email})
		_, err = eng.Erase(ctx, r.ID)
		require.ErrorIs(t, err, retention.ErrSubjectChanging)
		writes := int64(len(ids) - 1)
		require.Equal(t, int64(retention.ErasePasses), writes, "one write per pass")
		open, err := eng.Get(ctx, r.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusOpen, open.Status)
		// Every pass erased the notes and contacts it found; the last
		// write is left for the next run.
		require.Equal(t, writes, open.Erased["crm.note"])
		require.Equal(t, writes, open.Erased["crm.contact"])
		left := s15EraseLeft(t, e, ids...)
		require.Equal(t, 1, left[crm.TableContacts], "the last duplicate")
		require.Equal(t, 1, left[crm.TableNotes], "the last duplicate's note")

		writing = false
		rcpt, err := eng.Erase(ctx, r.ID)
		require.NoError(t, err)
		require.Empty(t, s15EraseLeft(t, e, ids...))
		got := map[string]int64{}
		for _, c := range rcpt.Categories {
			got[c.Category] = c.Erased
		}
		require.Equal(t, writes+1, got["crm.note"])
		require.Equal(t, writes+1, got["crm.contact"])
	})
}

// TestS15NoteForAContactBeingErased: a note created for a contact whose
// deletion (an erasure's batch) has not committed yet either waits for it
// and then fails, as for any contact that does not exist, or commits
// first — never adds a note about a contact already gone. On PostgreSQL
// the deletion holds the contact's row while the create checks it; on
// SQLite writers take turns, and the create comes after the deletion.
func TestS15NoteForAContactBeingErased(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		bg := context.Background()
		ann, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann", Email: "ann@example.com"})
		require.NoError(t, err)
		admin := e.db.Admin(t)
		tx, err := admin.BeginTx(bg, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		_, err = tx.NewRaw("DELETE FROM "+crm.TableContacts+" WHERE id = ?", ann.ID).Exec(bg)
		require.NoError(t, err)
		var xid int64 // the deletion's transaction, whose lock the create waits for
		if e.db.Name == "postgres" {
			require.NoError(t, tx.NewRaw("SELECT pg_current_xact_id()::text::bigint").Scan(bg, &xid))
		} else {
			require.NoError(t, tx.Commit())
		}
		done := make(chan error, 1)
		go func() {
			_, err := e.store.Notes().Create(e.A, crm.NoteInput{Body: "late", ContactID: ann.ID})
			done <- err
		}()
		var created error
		if e.db.Name == "postgres" {
			// Until the create has finished or waits for the deletion's
			// transaction (its lock on the contact's row).
			for waiting := false; !waiting; {
				select {
				case created = <-done:
					waiting = true
					done <- created
				default:
					var n int
					require.NoError(t, admin.NewRaw("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text::bigint = ?", xid%(1<<32)).Scan(bg, &n))
					waiting = n > 0
				}
			}
			require.NoError(t, tx.Commit())
		}
		created = <-done
		var verr *crm.ValidationError
		require.ErrorAs(t, created, &verr, "a note about a contact that is gone")
		require.Equal(t, "contact_id", verr.Fields[0].Field)
		var n int
		require.NoError(t, admin.NewRaw("SELECT count(*) FROM "+crm.TableNotes+" WHERE contact_id = ?", ann.ID).Scan(bg, &n))
		require.Zero(t, n)
	})
}
