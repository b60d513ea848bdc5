package crm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// contactNameRows counts the name index rows of contact id (as the
// database's owner: every tenant's).
func contactNameRows(t *testing.T, e *env, id string) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE contact_id = ?", id).
		Scan(context.Background(), &n))
	return n
}

// nameEngine is a retention engine with crm's categories.
func nameEngine(t *testing.T, e *env) *retention.Engine {
	t.Helper()
	eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now), retention.WithBatchSize(3))
	require.NoError(t, err)
	require.NoError(t, eng.Register(e.store.Categories()...))
	for kind, r := range e.store.Resolvers() {
		require.NoError(t, eng.RegisterResolver(kind, r))
	}
	return eng
}

// erasedOf returns what rc erased per category.
func erasedOf(rc retention.Receipt) map[string]int64 {
	out := map[string]int64{}
	for _, c := range rc.Categories {
		out[c.Category] += c.Erased
	}
	return out
}

// TestNamesErasureThroughTokens: the erasure of a contact erases her name
// index rows and its receipt counts them (in batches of 3), before her
// contact's row goes; the rows of a contact whose name shares prefixes
// with hers, and another tenant's, stay; a contact without a name (no
// name_index) is erased without any. On PostgreSQL, whose name index rows
// have one b-tree (on token), the erasure's statement on them — the
// selection by her name_index's tokens and the delete of the selected
// rows — reads them through that b-tree, planned as the application's
// role under row-level security: no scan of the table. SQLite keeps no
// rows there (its name index is the FTS5 table).
func TestNamesErasureThroughTokens(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		ada, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Ada", LastName: "King Byron"})
		require.NoError(t, err)
		adam, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Adam", LastName: "Kingsley"})
		require.NoError(t, err)
		nameless, err := contacts.Create(e.A, crm.ContactInput{Email: "nameless@example.com"})
		require.NoError(t, err)
		other, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: "King Byron"})
		require.NoError(t, err)
		requireNameIndexExact(t, e)
		adaRows, adamRows, otherRows := contactNameRows(t, e, ada.ID), contactNameRows(t, e, adam.ID), contactNameRows(t, e, other.ID)
		if e.db.Name == "postgres" {
			require.Equal(t, nameRows(e, "ada", "king", "byron"), adaRows, "her rows are those of her new name")
			require.Greater(t, adaRows, 3, "more rows than a batch")
		} else {
			require.Zero(t, adaRows)
		}

		h := &captureHook{}
		e.db.AddQueryHook(h)
		eng := nameEngine(t, e)
		for _, c := range []crm.Contact{ada, nameless} {
			r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: c.ID})
			rc, err := eng.Erase(e.A, r.ID)
			require.NoError(t, err)
			erased := erasedOf(rc)
			require.Equal(t, int64(1), erased["crm.contact"])
			want := int64(0)
			if c.ID == ada.ID {
				want = int64(adaRows)
			}
			require.Equal(t, want, erased["crm.contact_name"], "the receipt counts her name index rows")
		}
		require.Zero(t, contactNameRows(t, e, ada.ID))
		require.Equal(t, adamRows, contactNameRows(t, e, adam.ID), "a name sharing her prefixes keeps its rows")
		require.Equal(t, otherRows, contactNameRows(t, e, other.ID), "another tenant's rows of the same name stay")
		requireNameIndexExact(t, e)
		p, err := contacts.List(e.A, crm.ContactFilter{NamePrefix: "ki"}, crm.ListOptions{Limit: 10})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		require.Equal(t, adam.ID, p.Items[0].ID)

		if e.db.Name != "postgres" {
			return
		}
		del := h.last("DELETE FROM "+crm.TableContactNames, ada.ID)
		require.Contains(t, del, "WITH s AS MATERIALIZED", "the batch's delete:\n%s", del)
		var lines []string
		require.NoError(t, tenancy.RunInTx(owner(tenantOf(del)), e.db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return err
			}
			return tx.NewRaw("EXPLAIN "+del).Scan(ctx, &lines)
		}))
		plan := strings.Join(lines, "\n")
		require.NotContains(t, plan, "Seq Scan on "+crm.TableContactNames, "the batch's delete:\n%s", plan)
		// Twice through the token b-tree: the selection, the delete.
		require.Equal(t, 2, strings.Count(plan, "Index Scan on socialcrm_crm_contact_names_token")+
			strings.Count(plan, "Index Scan using socialcrm_crm_contact_names_token"), "the batch's delete:\n%s", plan)
	})
}

// TestNamesErasureMeetsRename: a contact renamed while her erasure runs
// leaves no name index row behind, whichever commits first. On
// PostgreSQL the rename holds her rows (its trigger deleted the old ones
// and wrote the new) until the erasure waits on them; then it commits,
// and the erasure finds her old rows gone and her contact's delete
// trigger deletes the new ones through their tokens. On SQLite, whose
// writers take turns, the rename comes first.
func TestNamesErasureMeetsRename(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		bob, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Bob", LastName: "Brown"})
		require.NoError(t, err)
		bobRows := contactNameRows(t, e, bob.ID)
		eng := nameEngine(t, e)
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: ada.ID})

		if e.db.Name != "postgres" {
			_, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Ada", LastName: "King"})
			require.NoError(t, err)
			_, err = eng.Erase(e.A, r.ID)
			require.NoError(t, err)
		} else {
			// The rename, as Update writes it: her name_index replaced (by
			// Bob's tokens: any other tokens will do).
			tenant := principal(e.A).TenantID
			app := e.db.Reopen(t)
			tx, err := app.BeginTx(context.Background(), nil)
			require.NoError(t, err)
			defer tx.Rollback() //nolint:errcheck // committed below
			_, err = tx.ExecContext(context.Background(), "SELECT set_config('app.tenant_id', ?, true)", tenant)
			require.NoError(t, err)
			res, err := tx.ExecContext(context.Background(), "UPDATE "+crm.TableContacts+
				" SET name_index = (SELECT name_index FROM "+crm.TableContacts+" WHERE tenant_id = ? AND id = ?) WHERE tenant_id = ? AND id = ?",
				tenant, bob.ID, tenant, ada.ID)
			require.NoError(t, err)
			n, _ := res.RowsAffected()
			require.Equal(t, int64(1), n)

			done := make(chan error, 1)
			go func() {
				_, err := eng.Erase(e.A, r.ID)
				done <- err
			}()
			// The erasure waits on a lock the rename holds.
			admin := e.db.Admin(t)
			for deadline := time.Now().Add(20 * time.Second); ; {
				var waiting int
				require.NoError(t, admin.NewRaw("SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(context.Background(), &waiting))
				if waiting > 0 {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("the erasure ended (%v) without waiting for the rename", err)
				default:
				}
				require.True(t, time.Now().Before(deadline), "the erasure never waited for the rename")
				time.Sleep(10 * time.Millisecond)
			}
			require.NoError(t, tx.Commit())
			require.NoError(t, <-done)
		}
		require.Zero(t, contactNameRows(t, e, ada.ID), "no row of her name, old or new, is left")
		_, err = contacts.Get(e.A, ada.ID)
		require.Error(t, err)
		require.Equal(t, bobRows, contactNameRows(t, e, bob.ID))
		requireNameIndexExact(t, e)
	})
}
