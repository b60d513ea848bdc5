package crm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// The lock order of composite writes against retention: every retention
// batch locks the rows it erases and then, last, the head of the
// tenant's audit chain. A write that took the audit head before rows such
// a batch holds would deadlock with it on PostgreSQL (SQLSTATE 40P01).
// Each case below runs one composite write of a contact concurrently with
// the erasure of that contact, several rounds, and checks that neither
// side fails with anything but a typed error (the erasure went first:
// ErrNotFound, ErrConflict) and that the outcome is one of the two
// orders, never a half-done state. SQLite serializes writers: no deadlock
// there, but the same outcome is checked.

// s15Rounds is how many times each write races its erasure.
const s15Rounds = 8

// s15Person is a contact with rows in the tables a composite write of it
// touches: tags, a note, a task, a consent.
func s15Person(t *testing.T, e *env, in crm.ContactInput) crm.Contact {
	t.Helper()
	ctx := e.A
	c, err := e.store.Contacts().Create(ctx, in, crm.AllowDuplicate())
	require.NoError(t, err)
	_, err = e.store.Notes().Create(ctx, crm.NoteInput{Body: "met at the fair", ContactID: c.ID})
	require.NoError(t, err)
	_, err = e.store.Tasks().Create(ctx, crm.TaskInput{Title: "call back", ContactID: c.ID})
	require.NoError(t, err)
	_, err = e.store.Consents().Grant(ctx, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "form"})
	require.NoError(t, err)
	return c
}

// s15Left counts the rows of the tables s15Person fills that still name
// contact id (as the database's owner: every row, none hidden).
func s15Left(t *testing.T, e *env, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{crm.TableNotes, crm.TableTasks, crm.TableConsents, crm.TableConsentEvents, crm.TableContactTags} {
		var n int
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+table+" WHERE contact_id = ?", id).Scan(context.Background(), &n))
		if n > 0 {
			out[table] = n
		}
	}
	return out
}

// s15Race runs write and the erasure of subject at once: the write starts
// once the erasure has committed lead batches (its receipts in the audit
// log), or has ended, so that the rounds meet the erasure at different
// points. It returns the write's error when that is nil or typed
// (ErrNotFound, ErrConflict); else, or when the erasure failed, it
// returns a description of the failure as lost, counting the deadlocks
// (SQLSTATE 40P01) of both sides in *deadlocks.
func s15Race(t *testing.T, e *env, eng *retention.Engine, subject map[string]string, lead int, deadlocks *int, write func() error) (writeErr error, lost string) {
	t.Helper()
	r := request(t, e.A, eng, retention.KindErasure, subject)
	receipts := func() int {
		var n int
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM socialcrm_audit_log WHERE tenant_id = ? AND action = 'retention.erased' AND metadata LIKE ?",
			principal(e.A).TenantID, "%"+r.ID+"%").Scan(context.Background(), &n))
		return n
	}
	var wg sync.WaitGroup
	var eraseErr error
	erased := make(chan struct{})
	wg.Go(func() { _, eraseErr = eng.Erase(e.A, r.ID); close(erased) })
	wg.Go(func() {
		for lead > 0 && receipts() < lead {
			select {
			case <-erased:
				lead = 0
			case <-time.After(time.Millisecond): // polling a condition, not timing one
			}
		}
		writeErr = write()
	})
	wg.Wait()
	for _, err := range []error{eraseErr, writeErr} {
		if dberr.Code(err) == "40P01" {
			*deadlocks++
		}
	}
	switch {
	case eraseErr != nil:
		return writeErr, fmt.Sprintf("the erasure failed: %v (the write: %v)", eraseErr, writeErr)
	case writeErr != nil && !errors.Is(writeErr, crm.ErrNotFound) && !errors.Is(writeErr, crm.ErrConflict):
		return writeErr, fmt.Sprintf("the write failed untyped: %v", writeErr)
	}
	return writeErr, ""
}

// TestS15LockOrderCompositeWritesDuringErasure: Merge, Update, Delete,
// the CSV import of an existing person and the ingestion of messages
// into her conversation, each racing the erasure of the same person,
// never deadlock and leave one of the two orders' outcomes.
func TestS15LockOrderCompositeWritesDuringErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		eng := nameEngine(t, e)
		contacts := e.store.Contacts()
		gone := func(t *testing.T, id string) {
			t.Helper()
			_, err := contacts.Get(e.A, id)
			require.ErrorIs(t, err, crm.ErrNotFound)
			require.Empty(t, s15Left(t, e, id), "rows of the erased contact are left")
		}
		// Each path's failed races, and the deadlocks among them: a race
		// that failed is not checked further.
		failed, deadlocks, typed := map[string][]string{}, map[string]int{}, map[string]int{}
		race := func(t *testing.T, round int, subject string, write func() error) (error, bool) {
			t.Helper()
			d := 0
			err, lost := s15Race(t, e, eng, map[string]string{crm.SubjectContact: subject}, round%4, &d, write)
			deadlocks[t.Name()] += d
			if lost != "" {
				failed[t.Name()] = append(failed[t.Name()], fmt.Sprintf("round %d: %s", round, lost))
				return err, false
			}
			if err != nil {
				typed[t.Name()]++
			}
			return err, true
		}

		t.Run("Merge", func(t *testing.T) {
			for round := range s15Rounds {
				keep := s15Person(t, e, crm.ContactInput{FirstName: "Ada", Tags: []string{"keep"}})
				dup := s15Person(t, e, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", round), Tags: []string{"dup"}})
				err, ok := race(t, round, dup.ID, func() error {
					_, err := contacts.Merge(e.A, keep.ID, dup.ID)
					return err
				})
				if !ok {
					continue
				}
				gone(t, dup.ID)
				if err == nil {
					// Merged first: the kept contact took the duplicate's
					// e-mail address. An erasure that found the duplicate
					// follows its address, and erased the kept contact
					// with its rows when the merge committed before its
					// last check; one that began after the merge found no
					// contact by the duplicate's id (Merge deleted it).
					if _, gerr := contacts.Get(e.A, keep.ID); errors.Is(gerr, crm.ErrNotFound) {
						gone(t, keep.ID)
						continue
					}
					got, gerr := contacts.Get(e.A, keep.ID)
					require.NoError(t, gerr, "round %d: the kept contact", round)
					require.Equal(t, dup.Email, got.Email, "round %d", round)
					require.ElementsMatch(t, []string{"dup", "keep"}, got.Tags, "round %d", round)
					continue
				}
				// Erased first: the merge wrote nothing.
				got, gerr := contacts.Get(e.A, keep.ID)
				require.NoError(t, gerr, "round %d: the kept contact", round)
				require.Equal(t, keep.Version, got.Version, "round %d: a failed merge changed the kept contact", round)
				require.Empty(t, got.Email, "round %d", round)
				require.Equal(t, []string{"keep"}, got.Tags, "round %d", round)
				require.Equal(t, 1, s15Left(t, e, keep.ID)[crm.TableContactTags], "round %d: tag rows of the kept contact", round)
			}
		})

		t.Run("Update", func(t *testing.T) {
			for round := range s15Rounds {
				c := s15Person(t, e, crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Tags: []string{"navy"}})
				_, ok := race(t, round, c.ID, func() error {
					_, err := contacts.Update(e.A, c.ID, c.Version, crm.ContactInput{FirstName: "Grace", LastName: "Murray", Tags: []string{"navy", "cobol"}})
					return err
				})
				if !ok {
					continue
				}
				gone(t, c.ID)
				require.Zero(t, contactNameRows(t, e, c.ID), "round %d: a name row is left", round)
			}
		})

		t.Run("Delete", func(t *testing.T) {
			for round := range s15Rounds {
				c := s15Person(t, e, crm.ContactInput{FirstName: "Katherine", LastName: "Johnson", Tags: []string{"nasa", "orbits"}})
				if _, ok := race(t, round, c.ID, func() error { return contacts.Delete(e.A, c.ID) }); !ok {
					continue
				}
				gone(t, c.ID)
			}
		})

		t.Run("ImportCSV", func(t *testing.T) {
			for round := range s15Rounds {
				email := fmt.Sprintf("hedy%d@example.com", round)
				c := s15Person(t, e, crm.ContactInput{FirstName: "Hedy", LastName: "Kiesler", Email: email, Tags: []string{"film"}})
				other := s15Person(t, e, crm.ContactInput{FirstName: "Anne", LastName: "Other", Email: fmt.Sprintf("anne%d@example.com", round)})
				var rep crm.ImportReport
				// Two rows in one batch: the person erased, then another
				// person, whose update comes after the first's audit entry.
				csv := "email,first_name,last_name,tags\n" + email + ",Hedy,Lamarr,film;radio\n" + other.Email + ",Anne,Renamed,x\n"
				err, ok := race(t, round, c.ID, func() error {
					var err error
					rep, err = contacts.ImportCSV(e.A, strings.NewReader(csv), crm.ImportOptions{})
					return err
				})
				if !ok {
					continue
				}
				gone(t, c.ID)
				got, gerr := contacts.Get(e.A, other.ID)
				require.NoError(t, gerr)
				if err == nil {
					require.Equal(t, "Renamed", got.LastName, "round %d: %+v", round, rep)
				} else {
					require.Equal(t, other.Version, got.Version, "round %d: a failed import batch changed a contact", round)
				}
			}
		})
		t.Run("Ingest", func(t *testing.T) {
			at := fakeclock.Start.Add(time.Minute)
			for round := range s15Rounds {
				c := s15Person(t, e, crm.ContactInput{FirstName: "Mary", LastName: "Jackson"})
				k := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-1", ThreadID: fmt.Sprintf("psid-%d", round)}
				msg := func(mid string) crm.NewMessage {
					return crm.NewMessage{Conversation: k, Direction: crm.Inbound, ExternalID: mid, Text: "hello", SentAt: at}
				}
				_, err := e.store.Conversations().Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{msg("mid.0")}})
				require.NoError(t, err)
				conv, err := e.store.Conversations().Find(e.A, k)
				require.NoError(t, err)
				_, err = e.store.Conversations().LinkContact(e.A, conv.ID, c.ID, conv.Version)
				require.NoError(t, err)
				if _, ok := race(t, round, c.ID, func() error {
					_, err := e.store.Conversations().Ingest(e.A, crm.Batch{Messages: []crm.NewMessage{msg("mid.1"), msg("mid.2")}})
					return err
				}); !ok {
					continue
				}
				gone(t, c.ID)
				_, err = e.store.Conversations().Get(e.A, conv.ID)
				require.ErrorIs(t, err, crm.ErrNotFound, "round %d: her conversation", round)
				var left int
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE conversation_id = ?", conv.ID).
					Scan(context.Background(), &left))
				require.Zero(t, left, "round %d: messages of her erased conversation are left", round)
			}
		})
		for path, n := range typed {
			t.Logf("%s: the erasure went first %d of %d times (a typed error)", path, n, s15Rounds)
		}
		for path, lost := range failed {
			t.Errorf("%s: %d of %d races failed, %d deadlocks (SQLSTATE 40P01):\n%s", path, len(lost), s15Rounds, deadlocks[path], strings.Join(lost, "\n"))
		}
	})
}

// TestS15MergeMeetsAnErasureMidBatch: on PostgreSQL, the interleaving of
// Merge and the erasure of the duplicate that deadlocked when Merge
// appended its Update's audit entry before moving the duplicate's rows,
// set up step by step: a transaction of the test holds the duplicate's
// consent history rows, so that the erasure waits in its batch of them;
// the test then takes the audit head too and starts Merge, which waits on
// the test as well; when the test commits, the erasure deletes those rows
// and asks for the audit head for its receipt while Merge goes on. Merge
// must not hold the audit head by then: either it moves the rows first or
// the erasure does, and both end without error.
func TestS15MergeMeetsAnErasureMidBatch(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return // SQLite runs one writer at a time: no batch runs during a merge
		}
		ctx := e.A
		eng := nameEngine(t, e)
		contacts := e.store.Contacts()
		tid := principal(ctx).TenantID
		plain, err := pgx.Connect(ctx, e.db.DSN())
		require.NoError(t, err)
		defer plain.Close(context.Background())
		// waiting waits until n sessions of the test's database wait for a
		// lock, or one of done has ended.
		waiting := func(n int, done ...chan error) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				for _, d := range done {
					select {
					case err := <-d:
						d <- err
						require.Failf(t, "ended before waiting", "%v", err)
					default:
					}
				}
				var got int
				require.NoError(t, plain.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got))
				if got >= n {
					return
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, not timing one
			}
			require.FailNow(t, "no session waits", "want %d waiting", n)
		}
		for round := range 3 {
			keep := s15Person(t, e, crm.ContactInput{FirstName: "Ada", Tags: []string{"keep"}})
			dup := s15Person(t, e, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", round)})
			r := request(t, ctx, eng, retention.KindErasure, map[string]string{crm.SubjectContact: dup.ID})
			erased, merged := make(chan error, 1), make(chan error, 1)
			var got crm.Contact
			err := tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "SELECT id FROM "+crm.TableConsentEvents+" WHERE tenant_id = ? AND contact_id = ? FOR UPDATE", tid, dup.ID); err != nil {
					return err
				}
				go func() { _, err := eng.Erase(e.A, r.ID); erased <- err }()
				waiting(1, erased) // the erasure, in its batch of the consent history
				log, err := e.vault.AuditLog(ctx, tx)
				if err != nil {
					return err
				}
				if _, err := log.Append(ctx, tenancy.AuditEvent{Action: "test.holds_the_head", Target: "contact:" + dup.ID}); err != nil {
					return err
				}
				go func() {
					var err error
					got, err = contacts.Merge(e.A, keep.ID, dup.ID)
					merged <- err
				}()
				waiting(2, erased, merged) // and Merge
				return nil
			})
			require.NoError(t, err)
			eraseErr, mergeErr := <-erased, <-merged
			require.NoError(t, eraseErr, "round %d: the erasure (deadlock: %v)", round, dberr.Code(eraseErr) == "40P01")
			require.NoError(t, mergeErr, "round %d: the merge (deadlock: %v)", round, dberr.Code(mergeErr) == "40P01")
			require.Equal(t, dup.Email, got.Email)
			_, err = contacts.Get(ctx, dup.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
			require.Empty(t, s15Left(t, e, dup.ID))
			// The merged contact holds the duplicate's e-mail address: the
			// erasure, which follows that address, erased it too when the
			// merge committed before its last check; otherwise it keeps
			// its own consent history, and the duplicate's if Merge moved
			// it before the erasure took it.
			if _, err := contacts.Get(ctx, keep.ID); errors.Is(err, crm.ErrNotFound) {
				require.Empty(t, s15Left(t, e, keep.ID), "round %d: rows of the merged contact are left", round)
				t.Logf("round %d: the merged contact was erased with the duplicate's address", round)
				continue
			}
			n := s15Left(t, e, keep.ID)[crm.TableConsentEvents]
			require.Contains(t, []int{1, 2}, n, "round %d: consent history of the kept contact", round)
			t.Logf("round %d: the kept contact has %d consent events (2: moved by Merge first)", round, n)
		}
	})
}
