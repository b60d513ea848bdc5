package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
)

// TestS16NoReferenceToARecordBeingDeleted: a write that refers to a
// company or a deal whose deletion has not committed yet either waits for
// the deletion and then fails, as for any record that does not exist, or
// commits first — it never stores a reference to a record already gone.
// Only references to contacts were checked that way (locked FOR KEY SHARE
// on PostgreSQL, as a foreign key is checked): a deal, note, activity or
// task created (or updated) beside a company's or a deal's deletion saw
// the row the deletion was removing, and the new row named a record that
// no longer existed. On SQLite writers take turns: the deletion commits
// first and the write fails.
func TestS16NoReferenceToARecordBeingDeleted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, ctx := e.store, e.A
		pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "won"}})
		require.NoError(t, err)
		company := func() string {
			co, err := s.Companies().Create(ctx, crm.CompanyInput{Name: "Acme"})
			require.NoError(t, err)
			return co.ID
		}
		deal := func() string {
			d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Ring"})
			require.NoError(t, err)
			return d.ID
		}
		for _, c := range []struct {
			name   string
			target func() string // creates the record that is being deleted
			table  string        // the target's table
			field  string        // the referring field
			write  func(id string) error
			count  string // counts the rows that refer to ?
		}{
			{"deal names a company", company, crm.TableCompanies, "company_id", func(id string) error {
				_, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "late", CompanyID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableDeals + " WHERE company_id = ?"},
			{"note names a company", company, crm.TableCompanies, "company_id", func(id string) error {
				_, err := s.Notes().Create(ctx, crm.NoteInput{Body: "late", CompanyID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableNotes + " WHERE company_id = ?"},
			{"activity names a company", company, crm.TableCompanies, "company_id", func(id string) error {
				_, err := s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, CompanyID: id, OccurredAt: fakeclock.Start})
				return err
			}, "SELECT count(*) FROM " + crm.TableActivities + " WHERE company_id = ?"},
			{"note names a deal", deal, crm.TableDeals, "deal_id", func(id string) error {
				_, err := s.Notes().Create(ctx, crm.NoteInput{Body: "late", DealID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableNotes + " WHERE deal_id = ?"},
			{"task names a deal", deal, crm.TableDeals, "deal_id", func(id string) error {
				_, err := s.Tasks().Create(ctx, crm.TaskInput{Title: "late", DealID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableTasks + " WHERE deal_id = ?"},
			{"activity names a deal", deal, crm.TableDeals, "deal_id", func(id string) error {
				_, err := s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityMeeting, DealID: id, OccurredAt: fakeclock.Start})
				return err
			}, "SELECT count(*) FROM " + crm.TableActivities + " WHERE deal_id = ?"},
			{"deal updated to name a company", company, crm.TableCompanies, "company_id", func(id string) error {
				d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "early"})
				if err != nil {
					return err
				}
				_, err = s.Deals().Update(ctx, d.ID, d.Version, crm.DealInput{PipelineID: pl.ID, Title: "late", CompanyID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableDeals + " WHERE company_id = ?"},
			{"contact updated to name a company", company, crm.TableCompanies, "company_id", func(id string) error {
				c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ann"})
				if err != nil {
					return err
				}
				_, err = s.Contacts().Update(ctx, c.ID, c.Version, crm.ContactInput{FirstName: "Ann", CompanyID: id})
				return err
			}, "SELECT count(*) FROM " + crm.TableContacts + " WHERE company_id = ?"},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := c.target()
				err := whileDeleting(t, e, c.table, id, func() error { return c.write(id) })
				var verr *crm.ValidationError
				require.ErrorAs(t, err, &verr, "a reference to a record that is gone")
				require.Equal(t, c.field, verr.Fields[0].Field)
				var n int
				require.NoError(t, e.db.Admin(t).NewRaw(c.count, id).Scan(context.Background(), &n))
				require.Zero(t, n, "no row refers to the deleted record")
			})
		}
	})
}

// whileDeleting deletes row id of table in a transaction of the owner's
// and runs write while that deletion has not committed: on PostgreSQL it
// commits once write has finished or waits for the deletion's transaction
// (a lock of the row); on SQLite, where writers take turns, it commits
// before write starts. It returns write's error.
func whileDeleting(t *testing.T, e *env, table, id string, write func() error) error {
	t.Helper()
	bg := context.Background()
	admin := e.db.Admin(t)
	tx, err := admin.BeginTx(bg, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	res, err := tx.NewRaw("DELETE FROM "+table+" WHERE id = ?", id).Exec(bg)
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	var xid int64
	if e.db.Name == "postgres" {
		require.NoError(t, tx.NewRaw("SELECT pg_current_xact_id()::text::bigint").Scan(bg, &xid))
	} else {
		require.NoError(t, tx.Commit())
	}
	done := make(chan error, 1)
	go func() { done <- write() }()
	if e.db.Name == "postgres" {
		for waiting := false; !waiting; {
			select {
			case err := <-done:
				waiting = true
				done <- err
			default:
				var n int
				require.NoError(t, admin.NewRaw("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text::bigint = ?", xid%(1<<32)).Scan(bg, &n))
				waiting = n > 0
			}
		}
		require.NoError(t, tx.Commit())
	}
	return <-done
}
