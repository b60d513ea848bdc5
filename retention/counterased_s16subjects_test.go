package retention_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS16HookCountsWhatItErases: a category's BeforeErase hook that erases
// rows of another category with its batch (the notes of the contacts it
// erases, which an erasure could not otherwise reach once their contact
// is gone) reports them with CountErased: the erasure's receipt and the
// request's stored counts hold them under their own category, and the
// batch's audit receipt names them ("with"). CountErased with a context
// that is no hook's does nothing.
func TestS16HookCountsWhatItErases(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		c := newClock()
		store, err := tenancy.NewStore(db, tenancy.WithClock(c.Now))
		require.NoError(t, err)
		eng, err := retention.New(db, retention.WithClock(c.Now), retention.WithStore(store), retention.WithPolicy(testPolicy()), retention.WithBatchSize(7))
		require.NoError(t, err)
		v := &env{db: db, clock: c, e: eng, store: store}
		_, a := v.tenant(t, "alpha")
		tid, err := tenancy.TenantID(a)
		require.NoError(t, err)
		// The contacts first: their hook takes the notes, which only it
		// reaches (the note category finds none by e-mail address).
		cats := []retention.Category{
			{Name: "crm.contact", Table: "test_contacts", Time: "updated_at",
				Subject: map[string]string{"email": "email"},
				BeforeErase: func(ctx context.Context, tx bun.Tx, ids []string) error {
					res, err := tx.NewDelete().TableExpr("test_notes").Where("tenant_id = ?", tid).Where("contact_id IN (?)", bun.In(ids)).Exec(ctx)
					if err != nil {
						return err
					}
					n, err := res.RowsAffected()
					retention.CountErased(ctx, "crm.note", n)
					return err
				},
				LegalBasis: "contract", Purpose: "customer relationship"},
			{Name: "crm.note", Table: "test_notes", Time: "created_at", Subject: map[string]string{"contact_id": "contact_id"},
				LegalBasis: "contract", Purpose: "notes about contacts"},
		}
		require.NoError(t, eng.Register(cats...))
		require.NoError(t, eng.Register(retention.TenancyCategories(store.Audit())...))
		require.NoError(t, eng.Register(retention.OwnCategories()...))

		insert(t, a, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch},
			{ID: "k2", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch}})
		insert(t, a, db, &[]note{{ID: "n1", ContactID: "k1", Body: "a", CreatedAt: epoch}, {ID: "n2", ContactID: "k1", Body: "b", CreatedAt: epoch},
			{ID: "n3", ContactID: "k2", Body: "c", CreatedAt: epoch}})
		retention.CountErased(a, "crm.note", 5) // no hook's context: nothing

		req, err := eng.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "ann@example.com"}})
		require.NoError(t, err)
		_, err = eng.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := eng.Erase(a, req.ID)
		require.NoError(t, err)
		got := map[string]int64{}
		for _, c := range rc.Categories {
			got[c.Category] = c.Erased
		}
		require.Equal(t, map[string]int64{"crm.contact": 1, "crm.note": 2, "tenancy.member": 0}, got)
		stored, err := eng.Get(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, int64(2), stored.Erased["crm.note"])
		require.Equal(t, []string{"n3"}, ids(t, a, db, "test_notes"), "Bob's note stays")

		var with []string
		for _, e := range receipts(t, a, db, "retention.erased") {
			if e.Metadata["category"] == "crm.contact" {
				with = append(with, e.Metadata["with"])
			}
		}
		require.Equal(t, []string{"crm.note:2"}, with)
	})
}
