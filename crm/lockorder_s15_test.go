package crm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/retention"
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

// s15Race runs write and the erasure of subject at once. It returns the
// write's error when that is nil or typed (ErrNotFound, ErrConflict);
// else, or when the erasure failed, it returns a description of the
// failure as lost, counting the deadlocks (SQLSTATE 40P01) of both sides
// in *deadlocks.
func s15Race(t *testing.T, e *env, eng *retention.Engine, subject map[string]string, deadlocks *int, write func() error) (writeErr error, lost string) {
	t.Helper()
	r := request(t, e.A, eng, retention.KindErasure, subject)
	var wg sync.WaitGroup
	var eraseErr error
	wg.Go(func() { _, eraseErr = eng.Erase(e.A, r.ID) })
	wg.Go(func() { writeErr = write() })
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

// TestS15LockOrderCompositeWritesDuringErasure: Merge, Update, Delete and
// the CSV import of an existing person, each racing the erasure of the
// same person, never deadlock and leave one of the two orders' outcomes.
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
			err, lost := s15Race(t, e, eng, map[string]string{crm.SubjectContact: subject}, &d, write)
			deadlocks[t.Name()] += d
			if err != nil {
				typed[t.Name()]++
			}
			if lost != "" {
				failed[t.Name()] = append(failed[t.Name()], fmt.Sprintf("round %d: %s", round, lost))
				return err, false
			}
			return err, true
		}

		t.Run("Merge", func(t *testing.T) {
			for round := range s15Rounds {
				keep := s15Person(t, e, crm.ContactInput{FirstName: "Ada", Tags: []string{"keep"}})
				dup := s15Person(t, e, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", round), Tags: []string{"dup"}})
				var merged crm.Contact
				err, ok := race(t, round, dup.ID, func() error {
					var err error
					merged, err = contacts.Merge(e.A, keep.ID, dup.ID)
					return err
				})
				if !ok {
					continue
				}
				gone(t, dup.ID)
				got, gerr := contacts.Get(e.A, keep.ID)
				require.NoError(t, gerr, "round %d: the kept contact", round)
				if err == nil {
					// Merged first: the kept contact has the duplicate's
					// fields; its rows moved (or were erased before the
					// merge moved them: none is left on the duplicate).
					require.Equal(t, dup.Email, got.Email, "round %d", round)
					require.Equal(t, merged.Version, got.Version, "round %d", round)
					require.ElementsMatch(t, []string{"dup", "keep"}, got.Tags, "round %d", round)
				} else {
					// Erased first: the merge wrote nothing.
					require.Equal(t, keep.Version, got.Version, "round %d: a failed merge changed the kept contact", round)
					require.Empty(t, got.Email, "round %d", round)
					require.Equal(t, []string{"keep"}, got.Tags, "round %d", round)
				}
				wantTags := 1
				if err == nil {
					wantTags = 2
				}
				require.Equal(t, wantTags, s15Left(t, e, keep.ID)[crm.TableContactTags], "round %d: tag rows of the kept contact", round)
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
		for path, n := range typed {
			t.Logf("%s: the erasure went first %d of %d times (a typed error)", path, n, s15Rounds)
		}
		for path, lost := range failed {
			t.Errorf("%s: %d of %d races failed, %d deadlocks (SQLSTATE 40P01):\n%s", path, len(lost), s15Rounds, deadlocks[path], strings.Join(lost, "\n"))
		}
	})
}
