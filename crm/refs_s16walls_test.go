package crm_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
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
// and runs write while that deletion has not committed (see
// whileWriting). It returns write's error.
func whileDeleting(t *testing.T, e *env, table, id string, write func() error) error {
	t.Helper()
	return whileWriting(t, e, write, "DELETE FROM "+table+" WHERE id = '"+id+"'")
}

// whileWriting runs stmts (each must change a row) in a transaction of
// the owner's and runs op while that transaction has not committed: on
// PostgreSQL it commits once op has finished or waits for the
// transaction (a lock of a row); on SQLite, where writers take turns, it
// commits before op starts. It returns op's error.
func whileWriting(t *testing.T, e *env, op func() error, stmts ...string) error {
	t.Helper()
	bg := context.Background()
	admin := e.db.Admin(t)
	tx, err := admin.BeginTx(bg, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	for _, q := range stmts {
		res, err := tx.ExecContext(bg, q)
		require.NoError(t, err, q)
		if n, err := res.RowsAffected(); err == nil && !strings.HasPrefix(q, "SELECT") {
			require.EqualValues(t, 1, n, q)
		}
	}
	var xid int64
	if e.db.Name == "postgres" {
		require.NoError(t, tx.NewRaw("SELECT pg_current_xact_id()::text::bigint").Scan(bg, &xid))
	} else {
		require.NoError(t, tx.Commit())
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
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

// TestS16NothingOutlivesARecordBeingDeleted: a campaign, proposal or
// invoice written for a client (or campaign) whose deletion has not
// committed, an attachment or a custom field value written for a record
// being deleted, and a portal member linked to a client being deleted:
// each waits for the deletion and fails as for a record that does not
// exist, or commits first and is found by it. Before, the write checked
// its target with a plain read: on PostgreSQL it saw the row the deletion
// was removing, and an attachment (bytes and all) or a field value
// outlived its owner — the deletion had looked for its dependents
// before they were written — and a campaign named a client that no
// longer existed.
func TestS16NothingOutlivesARecordBeingDeleted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, _ := storageEnv(t, db, 1<<20)
		s, ctx := e.store, e.A
		client := func() string {
			c, err := s.Clients().Create(ctx, crm.ClientInput{Name: "Brand"})
			require.NoError(t, err)
			return c.ID
		}
		campaign := func() string {
			c, err := s.Campaigns().Create(ctx, crm.CampaignInput{ClientID: client(), Name: "launch", Status: crm.CampaignActive, Currency: "EUR"})
			require.NoError(t, err)
			return c.ID
		}
		contact := func() string {
			c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ann"})
			require.NoError(t, err)
			return c.ID
		}
		deal := func() string {
			pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "Sales", Stages: []string{"new", "won"}})
			require.NoError(t, err)
			d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "Ring"})
			require.NoError(t, err)
			return d.ID
		}
		_, err := s.Fields().Define(ctx, crm.FieldDefInput{RecordKind: "deal", Name: "source", Type: crm.FieldText})
		require.NoError(t, err)
		var campaignOf string // the client of the proposal's campaign
		for _, c := range []struct {
			name   string
			target func() string
			table  string
			write  func(id string) error
			count  string
		}{
			{"campaign for a client", client, crm.TableClients, func(id string) error {
				_, err := s.Campaigns().Create(ctx, crm.CampaignInput{ClientID: id, Name: "late", Status: crm.CampaignActive, Currency: "EUR"})
				return err
			}, "SELECT count(*) FROM " + crm.TableCampaigns + " WHERE client_id = ?"},
			{"proposal for a client", client, crm.TableClients, func(id string) error {
				_, err := s.Proposals().Create(ctx, crm.ProposalInput{ClientID: id, ProposalContent: crm.ProposalContent{Title: "late", Currency: "EUR"}})
				return err
			}, "SELECT count(*) FROM " + crm.TableProposals + " WHERE client_id = ?"},
			{"invoice for a client", client, crm.TableClients, func(id string) error {
				_, err := s.Invoices().Create(ctx, invoiceInput(id, "INV-late"))
				return err
			}, "SELECT count(*) FROM " + crm.TableInvoices + " WHERE client_id = ?"},
			{"proposal for a campaign", func() string {
				id := campaign()
				cm, err := s.Campaigns().Get(ctx, id)
				require.NoError(t, err)
				campaignOf = cm.ClientID
				return id
			}, crm.TableCampaigns, func(id string) error {
				_, err := s.Proposals().Create(ctx, crm.ProposalInput{ClientID: campaignOf, CampaignID: id, ProposalContent: crm.ProposalContent{Title: "late", Currency: "EUR"}})
				return err
			}, "SELECT count(*) FROM " + crm.TableProposals + " WHERE campaign_id = ?"},
			{"attachment of a contact", contact, crm.TableContacts, func(id string) error {
				_, err := s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: id, FileName: "id.pdf", ContentType: "application/pdf"}, strings.NewReader("passport scan"))
				return err
			}, "SELECT count(*) FROM " + crm.TableAttachments + " WHERE owner_id = ?"},
			{"attachment of a client", client, crm.TableClients, func(id string) error {
				_, err := s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: crm.KindClient, OwnerID: id, FileName: "brief.pdf", ContentType: "application/pdf"}, strings.NewReader("brief"))
				return err
			}, "SELECT count(*) FROM " + crm.TableAttachments + " WHERE owner_id = ?"},
			{"field value of a deal", deal, crm.TableDeals, func(id string) error {
				_, err := s.Fields().Set(ctx, "deal", id, map[string]any{"source": "fair"})
				return err
			}, "SELECT count(*) FROM " + crm.TableFieldValues + " WHERE record_id = ?"},
		} {
			t.Run(c.name, func(t *testing.T) {
				id := c.target()
				err := whileDeleting(t, e, c.table, id, func() error { return c.write(id) })
				var verr *crm.ValidationError
				require.True(t, errors.Is(err, crm.ErrNotFound) || errors.As(err, &verr), "a write for a record that is gone: %v", err)
				var n int
				require.NoError(t, e.db.Admin(t).NewRaw(c.count, id).Scan(context.Background(), &n))
				require.Zero(t, n, "nothing refers to the deleted record")
			})
		}
	}, setup)
}

// TestS16ClientInUseByAWriteNotYetCommitted: Clients.Delete refuses a
// client that campaigns, proposals or invoices name (ErrInUse). It looked
// for them before deleting the client, without holding the client's row:
// a campaign written for the client (or moved to it) that had not
// committed yet was not seen, the deletion then waited for the write's
// lock and deleted the client it named. The deletion now takes the
// client's row first, waits for the write, and sees its campaign.
func TestS16ClientInUseByAWriteNotYetCommitted(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s, ctx := e.store, e.A
		x, err := s.Clients().Create(ctx, crm.ClientInput{Name: "X"})
		require.NoError(t, err)
		y, err := s.Clients().Create(ctx, crm.ClientInput{Name: "Y"})
		require.NoError(t, err)
		c, err := s.Campaigns().Create(ctx, crm.CampaignInput{ClientID: y.ID, Name: "launch", Status: crm.CampaignActive, Currency: "EUR"})
		require.NoError(t, err)
		// What a write that names client X does before it commits: it holds
		// X's row (FOR KEY SHARE) and writes a row that names X.
		lock := "SELECT id FROM " + crm.TableClients + " WHERE id = '" + x.ID + "'"
		if e.db.Name == "postgres" {
			lock += " FOR KEY SHARE"
		}
		err = whileWriting(t, e, func() error { return s.Clients().Delete(ctx, x.ID) },
			lock, "UPDATE "+crm.TableCampaigns+" SET client_id = '"+x.ID+"' WHERE id = '"+c.ID+"'")
		require.ErrorIs(t, err, crm.ErrInUse)
		_, err = s.Clients().Get(ctx, x.ID)
		require.NoError(t, err, "the client its campaign names is still there")
	})
}
